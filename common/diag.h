/* Diagnostics: errors are returned, never printed deep inside. Shared by the
 * compiler and the runtime, so it depends on nothing. */
#ifndef XK_DIAG_H
#define XK_DIAG_H

typedef struct {
  char msg[1024];
} xk_diag;
int xk_diag_set(xk_diag *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))); /* returns -1 */

#endif
