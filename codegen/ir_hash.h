/* The content hash tune-cache records are keyed on (README "Autotuning"):
 * the kernel's default configuration's IR at a variant's key constexprs,
 * its tune space and the compiler. xkv-tune writes it into each record and
 * xkvgen into each manifest entry, so the runtime can tell a record tuned
 * for another version of the kernel. */
#ifndef XK_IR_HASH_H
#define XK_IR_HASH_H

#include "dsl.h"

#define XK_TUNE_COMPILER "xkv-tune-1 llvm-19"

/* The hash (16 hex digits) of kernel k at the key constexprs of f (the
 * key names that are constexprs take f's values); f NULL: the defaults. */
int xk_kernel_ir_hash(xk_dsl *dsl, int k, const xk_func *f, char *buf, size_t n,
                      xk_diag *d);

#endif
