/* --embed: a C source holding a build's manifest and artifacts, so an
 * engine links every kernel variant into one library (runtime/xkv.h
 * declares the xkv_embedded table it defines). */
#ifndef XK_EMBED_H
#define XK_EMBED_H

#include "manifest.h"

/* Writes DIR/NAME.c from DIR's manifest.json and artifacts. */
int xk_embed_write(const char *dir, const char *name, const char *target,
                   const xk_manifest_entry *e, int n, xk_diag *d);
/* Links DIR's host objects into DIR/kernels.so with the system compiler. */
int xk_link_shared(const char *dir, const xk_manifest_entry *e, int n,
                   xk_diag *d);

#endif
