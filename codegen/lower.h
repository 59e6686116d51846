/* Lowering tile IR to LLVM, and the LLVM plumbing around it (target
 * machines, the O3 pipeline, PTX/object emission, the host JIT). */
#ifndef XK_LOWER_H
#define XK_LOWER_H

#include "ir.h"
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>

/* Host ABI of every lowered kernel, mirroring cuLaunchKernel's params:
 * args[i] points at the value of argument i (a pointer for ptr args).
 * Returns 0, or 1 when the program could not allocate its heap tiles
 * (malloc failed) and so did nothing. */
typedef int32_t (*xk_host_fn)(void **args, const int32_t *pid,
                              const int32_t *nprog);

typedef struct {
  int shared_bytes; /* dynamic shared memory the launch must give it (set
                       also when it is past the target's limit) */
  int threads;      /* threads per block = 32 * num_warps */
} xk_nvptx_info;

/* Adds `sym` to `mod`. */
int xk_lower_host(const xk_func *f, LLVMModuleRef mod, const char *sym,
                  xk_diag *d);
int xk_lower_nvptx(const xk_func *f, LLVMModuleRef mod, const char *sym,
                   const char *sm, xk_nvptx_info *info, xk_diag *d);
/* The sim target: xk_lower_nvptx's per-thread code on the host, calling
 * the SIMT emulator (sim.h); `sym` has the xk_sim_fn ABI. */
int xk_lower_sim(const xk_func *f, LLVMModuleRef mod, const char *sym,
                 xk_nvptx_info *info, xk_diag *d);

/* lower_atomic.c: one ATOMIC element (attr rmw, sem; cmp only for CAS) as
 * an LLVM atomic instruction at `p`; returns the old value. */
LLVMValueRef xk_llvm_atomic(LLVMBuilderRef b, int rmw, int sem, LLVMValueRef p,
                            LLVMValueRef cmp, LLVMValueRef v);

/* target.c: tells LLVM an argument's ALIGN16/DIV16 facts (llvm.assume);
 * the lowerings call it on each argument value in their entry block. */
void xk_spec_assume(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef v,
                    int spec);

/* target.c. `target` is "host", "sim" (a host machine) or an "sm_XX"
 * name. */
int xk_target_is_gpu(const char *target);
int xk_target_machine(const char *target, LLVMTargetMachineRef *tm, xk_diag *d);
LLVMModuleRef xk_module_new(const char *name, const char *target,
                            LLVMTargetMachineRef tm);
/* Verifies and runs the LLVM pipeline (O3 for GPUs, O2 for the host). */
int xk_optimize(LLVMModuleRef mod, LLVMTargetMachineRef tm, xk_diag *d);
/* Emits assembly (PTX for GPUs) or an object file; malloc'd buffer. */
int xk_target_emit(LLVMModuleRef mod, LLVMTargetMachineRef tm, int object,
                   char **buf, size_t *len, xk_diag *d);

/* jit.c: an ORC LLJIT holding host kernels. Takes ownership of mod. */
typedef struct xk_jit xk_jit;
int xk_jit_new(xk_jit **out, xk_diag *d);
int xk_jit_add(xk_jit *j, LLVMModuleRef mod, xk_diag *d);
int xk_jit_lookup(xk_jit *j, const char *sym, xk_host_fn *fn, xk_diag *d);
void xk_jit_free(xk_jit *j);

#endif
