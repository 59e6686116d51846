/* Small text helpers shared by the tools, the runtime and the tests. */
#ifndef XK_TEXT_H
#define XK_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "diag.h"

/* The whole file, NUL-terminated past *len (len may be NULL); NULL with a
 * diag naming the path and the cause. */
char *xk_read_file(const char *path, size_t *len, xk_diag *d);
/* A C identifier: what kernel, symbol and argument names must be. */
int xk_is_ident(const char *s);

/* s as a JSON string literal (quotes, escapes); NULL writes "". */
void xk_json_put_str(FILE *o, const char *s);

#endif
