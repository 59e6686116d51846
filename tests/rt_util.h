/* Small helpers shared by the runtime tests. */
#ifndef RT_UTIL_H
#define RT_UTIL_H

#include <stddef.h>

/* A fresh directory under the build tree; malloc'd path. */
char *rt_tmpdir(const char *tag);
/* Writes text to DIR/NAME; returns 0 on success. */
int rt_write(const char *dir, const char *name, const char *text);
/* Removes DIR and the files in it (one level). */
void rt_rmdir(const char *dir);

/* Replaces the first occurrence of `from` in s by `to`; malloc'd. */
char *rt_replace(const char *s, const char *from, const char *to);

#endif
