/* See jit_util.h. */
#include "jit_util.h"

#include "compile.h"

/* Adds m (consumed) to a new JIT and looks sym up. */
static int jit_module(LLVMModuleRef m, const char *sym, xk_jit **jit,
                      xk_host_fn *fn, xk_diag *d) {
  *jit = NULL;
  if (xk_jit_new(jit, d)) {
    LLVMDisposeModule(m);
    return -1;
  }
  if (xk_jit_add(*jit, m, d) || xk_jit_lookup(*jit, sym, fn, d)) {
    xk_jit_free(*jit);
    *jit = NULL;
    return -1;
  }
  return 0;
}

int xk_test_jit_host(const xk_func *f, xk_test_host *j, xk_diag *d) {
  LLVMTargetMachineRef tm;
  j->jit = NULL;
  if (xk_target_machine("host", &tm, d))
    return -1;
  LLVMModuleRef m = xk_module_new(f->name, "host", tm);
  int rc = xk_lower_host(f, m, f->name, d);
  if (!rc)
    rc = xk_optimize(m, tm, d);
  LLVMDisposeTargetMachine(tm);
  if (rc) {
    LLVMDisposeModule(m);
    return -1;
  }
  return jit_module(m, f->name, &j->jit, &j->fn, d);
}

int xk_test_jit_sim(const xk_func *f, xk_test_sim *k, xk_diag *d) {
  LLVMTargetMachineRef tm;
  LLVMModuleRef m;
  k->jit = NULL;
  if (xk_target_machine("sim", &tm, d))
    return -1;
  int rc = xk_compile_llvm(f, "sim", tm, f->name, 1, &m, &k->info, d);
  LLVMDisposeTargetMachine(tm);
  if (rc)
    return -1;
  xk_host_fn hf;
  if (jit_module(m, f->name, &k->jit, &hf, d))
    return -1;
  k->fn = (xk_sim_fn)(void (*)(void))hf;
  return 0;
}
