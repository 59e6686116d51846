/* Running NVIDIA's ptxas: validates emitted PTX, assembles cubins, and
 * reports register and spill usage. */
#ifndef XK_PTXAS_H
#define XK_PTXAS_H

#include "ir.h"

typedef struct {
  int registers;   /* per thread, -1 when not reported */
  int spill_bytes; /* spill stores + loads */
  int shared_bytes;
} xk_ptxas_info;

/* $XK_PTXAS, else ptxas on PATH, else /usr/local/cuda/bin/ptxas; NULL when
 * none is executable. The string is static. */
const char *xk_ptxas_find(void);
/* ptxas -arch=SM -v PTX -o OUT (OUT may be "/dev/null"). A non-zero exit is
 * an error carrying ptxas's own message. */
int xk_ptxas_run(const char *ptxas, const char *sm, const char *ptx_path,
                 const char *out_path, xk_ptxas_info *info, xk_diag *d);

#endif
