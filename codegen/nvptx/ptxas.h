/* Running NVIDIA's ptxas: validates emitted PTX, assembles cubins, and
 * reports register and spill usage. */
#ifndef XK_PTXAS_H
#define XK_PTXAS_H

#include "lower.h"

typedef struct {
  int registers;    /* per thread, -1 when not reported */
  int spill_bytes;  /* spill stores + loads */
  int shared_bytes; /* static (what ptxas -v reports); xk_ptxas_func adds
                       the lowering's dynamic shared memory */
} xk_ptxas_info;

/* $XK_PTXAS, else ptxas on PATH, else /usr/local/cuda/bin/ptxas; NULL when
 * none is executable. The string is static. */
const char *xk_ptxas_find(void);
/* ptxas -arch=SM -v PTX -o OUT (OUT may be "/dev/null"). A non-zero exit is
 * an error carrying ptxas's own message. */
int xk_ptxas_run(const char *ptxas, const char *sm, const char *ptx_path,
                 const char *out_path, xk_ptxas_info *info, xk_diag *d);
/* xk_ptxas_run on PTX text (len bytes) instead of a file: ptxas reads only
 * files, so the text goes through a temporary one, removed afterwards. */
int xk_ptxas_run_text(const char *ptxas, const char *sm, const char *ptx,
                      size_t len, xk_ptxas_info *info, xk_diag *d);
/* What ptxas -v says of f's variant for `sm` (registers, spills, static
 * shared memory), the question every variant report asks. tm is a target
 * machine for sm, or NULL to make one here; info (may be NULL) gets the
 * lowering's shared bytes and threads. The PTX is emitted even when no
 * ptxas is found (xk_ptxas_find), so the lowering is still checked and info
 * filled: then pi has registers = spill_bytes = -1 and the lowering's
 * shared bytes, and the result is 0. */
int xk_ptxas_func(const xk_func *f, const char *sm, LLVMTargetMachineRef tm,
                  xk_ptxas_info *pi, xk_nvptx_info *info, xk_diag *d);

#endif
