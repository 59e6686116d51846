/* The inputs the tuner runs a kernel on at one key: deterministic random
 * buffers, the launch arguments, which buffers the kernel writes, and the
 * plain C reference of what it computes. Kernels are looked up in
 * problem.c's table (by name, or by a prefix followed by a dtype suffix);
 * a kernel not in it is an error saying so. */
#ifndef XK_TUNE_PROBLEM_H
#define XK_TUNE_PROBLEM_H

#include "diag.h"
#include "xkv.h"

#define XK_PROBLEM_MAXARGS 24
#define XK_PROBLEM_MAXOUT 4

typedef struct xk_problem xk_problem;

struct xk_problem {
  int nargs;
  xkv_arg args[XK_PROBLEM_MAXARGS];
  void *bufs[XK_PROBLEM_MAXARGS]; /* host memory (the CPU device's too) */
  size_t nelem[XK_PROBLEM_MAXARGS];
  int outs[XK_PROBLEM_MAXOUT]; /* argument indices the kernel writes */
  int nouts;
  int accumulates; /* the kernel adds into its output: reset to 0, not NaN */
  /* The checked output: `view` derives it from the written buffers (e.g.
   * split partials merged, which do not depend on the split boundaries a
   * tune dim moves); without one, the first output as is. */
  size_t out_elems;
  void (*view)(const xk_problem *p, double *out);
  int64_t dims[8]; /* what the view needs to know of the shape */
  double tol;      /* max |out - ref| / max |ref| */
  double flops;    /* useful flops of one launch (0: not a FLOP kernel) */
  double *c_ref;   /* a plain C reference of the output, or NULL */
};

/* key: the kernel's key names and values (all of them); units: the
 * device's parallel units (SMs, CPU pool threads), which size the work
 * split the way the runtime splits it. */
int xk_problem_make(const char *kernel, const char *const *names,
                    const int64_t *vals, int n, int units, xk_problem *p,
                    xk_diag *d);
/* The default config's output (already run on p) into ref, checked
 * against the plain C reference where there is one: an error naming the
 * kernel and key when it differs (then there is nothing to tune against). */
int xk_problem_reference(const xk_problem *p, const char *kernel,
                         const char *key, double *ref, xk_diag *d);
/* 1 when the table has inputs for the kernel. */
int xk_problem_known(const char *kernel);
/* Before a run: NaN in every output element (0 where the kernel
 * accumulates), so elements a variant does not write are caught. */
void xk_problem_poison(xk_problem *p);
/* The checked output as doubles (n = out_elems). */
void xk_problem_output(const xk_problem *p, double *out);
void xk_problem_free(xk_problem *p);

#endif
