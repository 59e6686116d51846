/* Device-neutral test cases for the kernels in kernels.xk.
 *
 * For a traced kernel (its constexprs decide tile sizes and shape constants
 * such as R and D) and a problem size, xk_case_setup allocates host inputs
 * from a deterministic RNG, computes a plain C reference, and lays out the
 * launch: args[] in the kernel's argument order (cuLaunchKernel-style:
 * args[i] points at argument i's value) and the grid. Any device runs it
 * (xk_case_run_host for host code; a GPU test copies buf[i] to the device,
 * launches, and copies buf[out_arg] back), then xk_case_check compares. */
#ifndef XK_KERNEL_CASES_H
#define XK_KERNEL_CASES_H

#include "lower.h"

#include <stddef.h>
#include <stdint.h>

#define XK_CASE_MAXARGS 12

typedef struct {
  char kernel[32];
  char desc[128]; /* e.g. "gemm_f32 M=37 N=29 K=45 BLOCK_M=32 ..." */
  int nargs;
  void *args[XK_CASE_MAXARGS];   /* args[i] -> argument i's value */
  void *buf[XK_CASE_MAXARGS];    /* host buffer of pointer argument i */
  size_t bytes[XK_CASE_MAXARGS]; /* its size (without the guard) */
  int32_t ival[XK_CASE_MAXARGS]; /* value of i32 argument i */
  void *ptrval[XK_CASE_MAXARGS]; /* storage args[i] points at for pointers */
  int32_t grid[3];
  int out_arg; /* argument index of the output buffer */
  int out_f16; /* output stored as f16 bits (else f32) */
  double *ref; /* reference output, one per output element */
  int64_t nref;
  double tol; /* max |out - ref| / max |ref| allowed */
} xk_case;

/* Kernels with cases, NULL-terminated. */
extern const char *const xk_case_kernels[];
/* How many problem sizes kernel has (0 when unknown). */
int xk_case_nsizes(const char *kernel);

int xk_case_setup(const char *kernel, const xk_func *f, int size_idx,
                  xk_case *c, xk_diag *d);
/* Runs every program of the grid in order on this thread. */
void xk_case_run_host(xk_case *c, xk_host_fn fn);
/* 0 when within tolerance; the error is returned either way. Also fails when
 * the kernel wrote past the end of any buffer. */
int xk_case_check(xk_case *c, double *err, xk_diag *d);
void xk_case_free(xk_case *c);

/* IEEE half <-> float, round to nearest even. */
uint16_t xk_f32_to_f16(float f);
float xk_f16_to_f32(uint16_t h);
/* bfloat16, round to nearest even; NaN stays NaN */
uint16_t xk_f32_to_bf16(float f);
float xk_bf16_to_f32(uint16_t h);

#endif
