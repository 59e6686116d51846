/* The inputs the tuner runs a kernel on at one key: deterministic random
 * buffers, the launch arguments, and which buffer is the output. Kernels
 * are recognized by name (the GEMMs, gemm_st_*, vadd, softmax,
 * sumsq_f32); any other kernel is an error saying so. */
#ifndef XK_TUNE_PROBLEM_H
#define XK_TUNE_PROBLEM_H

#include "diag.h"
#include "dsl.h"
#include "xkv.h"

#define XK_PROBLEM_MAXARGS 16

typedef struct {
  int nargs;
  xkv_arg args[XK_PROBLEM_MAXARGS];
  void *bufs[XK_PROBLEM_MAXARGS]; /* host memory (the CPU device's too) */
  int out;                        /* argument index of the output */
  size_t out_elems;
  int out_f16;     /* output elements are f16 (else f32) */
  int accumulates; /* the kernel adds into its output: reset to 0, not NaN */
  double tol;      /* max |out - ref| / max |ref| */
  double flops;    /* useful flops of one launch (0: not a FLOP kernel) */
  double *c_ref;   /* a plain C reference of the output, or NULL */
} xk_problem;

/* key: the kernel's key names and values (all of them). */
int xk_problem_make(const xk_kernel_spec *spec, const char *const *names,
                    const int64_t *vals, int n, xk_problem *p, xk_diag *d);
/* Before a run: NaN in every output element (0 where the kernel
 * accumulates), so elements a variant does not write are caught. */
void xk_problem_poison(xk_problem *p);
/* The output as doubles (n = out_elems). */
void xk_problem_output(const xk_problem *p, double *out);
void xk_problem_free(xk_problem *p);

#endif
