/* Test cases for the kernels in kernels.xk (case_util.h has the case).
 *
 * For a traced kernel (its constexprs decide tile sizes and shape constants
 * such as R and D) and a problem size, xk_case_setup allocates host inputs
 * from a deterministic RNG, computes a plain C reference, and lays out the
 * launch: args[] in the kernel's argument order (cuLaunchKernel-style:
 * args[i] points at argument i's value) and the grid. Any device runs it
 * (xk_case_run_host for host code; a GPU test copies buf[i] to the device,
 * launches, and copies the outputs back), then xk_case_check compares. */
#ifndef XK_KERNEL_CASES_H
#define XK_KERNEL_CASES_H

#include "case_util.h"

/* Kernels with cases, NULL-terminated. */
extern const char *const xk_case_kernels[];
/* How many problem sizes kernel has (0 when unknown). */
int xk_case_nsizes(const char *kernel);

int xk_case_setup(const char *kernel, const xk_func *f, int size_idx,
                  xk_case *c, xk_diag *d);

#endif
