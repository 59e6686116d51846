/* The compile pipeline every tool shares: trace a kernel variant, run the IR
 * passes, lower to an optimized LLVM module for a target. */
#ifndef XK_COMPILE_H
#define XK_COMPILE_H

#include "dsl.h"
#include "lower.h"

/* Trace kernel `k` with overrides and run the passes. */
int xk_compile_ir(xk_dsl *dsl, int k, const xk_constexpr *over, int nover,
                  xk_func **out, xk_diag *d);
/* The same, specialized: spec[i] (XK_SPEC_* bits, NULL = none) is what
 * argument i's run-time value is known to satisfy (see xk_spec_apply). */
int xk_compile_ir_spec(xk_dsl *dsl, int k, const xk_constexpr *over, int nover,
                       const int *spec, xk_func **out, xk_diag *d);
/* Lower `f` as `sym` for `target` and optimize (O3) unless opt is 0.
 * info may be NULL; it is filled for GPU targets and sim. */
int xk_compile_llvm(const xk_func *f, const char *target,
                    LLVMTargetMachineRef tm, const char *sym, int opt,
                    LLVMModuleRef *mod, xk_nvptx_info *info, xk_diag *d);
/* Stable identity of a variant: kernel, constexprs, warps, stages, target,
 * and argument specialization when there is any. */
uint64_t xk_variant_hash(const xk_func *f, const char *target);
/* "NAME_<16 hex>" into buf */
void xk_variant_symbol(const xk_func *f, const char *target, char *buf,
                       size_t n);

#endif
