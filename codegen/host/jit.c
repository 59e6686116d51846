/* ORC LLJIT for host kernels. The JIT compiles with a host target machine
 * (the machine's CPU and features, so f16 conversions use F16C and loops use
 * the full vector width) and resolves libm and compiler-rt helpers from the
 * process. */
#include "lower.h"
#include "sim.h"

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct xk_jit {
  LLVMOrcLLJITRef lljit;
};

/* Consumes e. */
static int jit_error(xk_diag *d, const char *what, LLVMErrorRef e) {
  char *m = LLVMGetErrorMessage(e);
  xk_diag_set(d, "JIT: %s: %s", what, m);
  LLVMDisposeErrorMessage(m);
  return -1;
}

/* The emulator's entry points for sim kernels, defined by address: they
 * need not be exported from the executable that links them. */
static int define_sim_symbols(LLVMOrcLLJITRef j, xk_diag *d) {
  LLVMOrcCSymbolMapPair pairs[32];
  size_t n = 0;
  for (const xk_sim_symbol *s = xk_sim_symbols; s->name && n < 32; s++, n++) {
    pairs[n].Name = LLVMOrcLLJITMangleAndIntern(j, s->name);
    pairs[n].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)s->addr;
    pairs[n].Sym.Flags.GenericFlags =
        LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
    pairs[n].Sym.Flags.TargetFlags = 0;
  }
  LLVMErrorRef e = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(j),
                                         LLVMOrcAbsoluteSymbols(pairs, n));
  return e ? jit_error(d, "cannot define the sim emulator's symbols", e) : 0;
}

int xk_jit_new(xk_jit **out, xk_diag *d) {
  *out = NULL;
  LLVMTargetMachineRef tm;
  if (xk_target_machine("host", &tm, d))
    return -1;
  LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
  /* takes ownership of tm */
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
      b, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
  LLVMOrcLLJITRef j;
  LLVMErrorRef e = LLVMOrcCreateLLJIT(&j, b); /* consumes b */
  if (e)
    return jit_error(d, "cannot create LLJIT", e);
  LLVMOrcDefinitionGeneratorRef gen;
  e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &gen, LLVMOrcLLJITGetGlobalPrefix(j), NULL, NULL);
  if (e) {
    jit_error(d, "cannot search process symbols", e);
    LLVMConsumeError(LLVMOrcDisposeLLJIT(j));
    return -1;
  }
  LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j), gen);
  if (define_sim_symbols(j, d)) {
    LLVMConsumeError(LLVMOrcDisposeLLJIT(j));
    return -1;
  }
  xk_jit *x = calloc(1, sizeof *x);
  if (!x) {
    LLVMConsumeError(LLVMOrcDisposeLLJIT(j));
    return xk_diag_set(d, "out of memory");
  }
  x->lljit = j;
  *out = x;
  return 0;
}

int xk_jit_add(xk_jit *j, LLVMModuleRef mod, xk_diag *d) {
  /* The module lives in the context it was created in; the thread-safe
   * context only provides the lock the JIT takes around it. */
  LLVMOrcThreadSafeContextRef ts = LLVMOrcCreateNewThreadSafeContext();
  LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, ts);
  LLVMOrcDisposeThreadSafeContext(ts);
  LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModule(
      j->lljit, LLVMOrcLLJITGetMainJITDylib(j->lljit), tsm);
  if (e) {
    /* ownership of tsm passed to the JIT even on failure */
    return jit_error(d, "cannot add module", e);
  }
  return 0;
}

int xk_jit_lookup(xk_jit *j, const char *sym, xk_host_fn *fn, xk_diag *d) {
  LLVMOrcExecutorAddress addr = 0;
  *fn = NULL;
  LLVMErrorRef e = LLVMOrcLLJITLookup(j->lljit, &addr, sym);
  if (e) {
    char what[256];
    snprintf(what, sizeof what, "cannot find or compile '%s'", sym);
    return jit_error(d, what, e);
  }
  /* the executor address of a function is its entry point */
  *fn = (xk_host_fn)(uintptr_t)addr;
  return 0;
}

void xk_jit_free(xk_jit *j) {
  if (!j)
    return;
  LLVMConsumeError(LLVMOrcDisposeLLJIT(j->lljit));
  free(j);
}
