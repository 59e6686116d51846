#include "compile.h"

#include "passes.h"

#include <stdio.h>
#include <string.h>

int xk_compile_ir(xk_dsl *dsl, int k, const xk_constexpr *over, int nover,
                  xk_func **out, xk_diag *d) {
  return xk_compile_ir_spec(dsl, k, over, nover, NULL, out, d);
}

int xk_compile_ir_spec(xk_dsl *dsl, int k, const xk_constexpr *over, int nover,
                       const int *spec, xk_func **out, xk_diag *d) {
  xk_func *f = NULL;
  if (xk_dsl_trace(dsl, k, over, nover, &f, d))
    return -1;
  if (xk_spec_apply(f, spec, d) || xk_passes_run(f, d)) {
    xk_func_free(f);
    return -1;
  }
  *out = f;
  return 0;
}

int xk_compile_llvm(const xk_func *f, const char *target,
                    LLVMTargetMachineRef tm, const char *sym, int opt,
                    LLVMModuleRef *mod, xk_nvptx_info *info, xk_diag *d) {
  xk_nvptx_info scratch;
  LLVMModuleRef m = xk_module_new(f->name, target, tm);
  int rc = xk_target_is_gpu(target)
               ? xk_lower_nvptx(f, m, sym, target, info ? info : &scratch, d)
           : !strcmp(target, "sim")
               ? xk_lower_sim(f, m, sym, info ? info : &scratch, d)
               : xk_lower_host(f, m, sym, d);
  if (!rc && opt)
    rc = xk_optimize(m, tm, d);
  if (rc) {
    LLVMDisposeModule(m);
    return -1;
  }
  *mod = m;
  return 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 0x100000001b3ull;
  return h;
}

uint64_t xk_variant_hash(const xk_func *f, const char *target) {
  uint64_t h = 0xcbf29ce484222325ull;
  h = fnv(h, f->name, strlen(f->name) + 1);
  h = fnv(h, target, strlen(target) + 1);
  for (int i = 0; i < f->nconsts; i++) {
    h = fnv(h, f->consts[i].name, strlen(f->consts[i].name) + 1);
    const xk_constexpr *c = &f->consts[i];
    /* an int keeps its old hash; a float and a string hash their kind too,
     * so 1, 1.0 and "1" are three variants */
    if (c->kind == XK_CONST_INT)
      h = fnv(h, &c->value, sizeof c->value);
    else if (c->kind == XK_CONST_FLOAT)
      h = fnv(fnv(h, &c->kind, sizeof c->kind), &c->fvalue, sizeof c->fvalue);
    else
      h = fnv(fnv(h, &c->kind, sizeof c->kind), c->str, strlen(c->str) + 1);
  }
  for (int i = 0; i < f->nargs; i++)
    if (f->args[i].spec) { /* unspecialized variants keep their hashes */
      h = fnv(h, &i, sizeof i);
      h = fnv(h, &f->args[i].spec, sizeof f->args[i].spec);
    }
  h = fnv(h, &f->num_warps, sizeof f->num_warps);
  return fnv(h, &f->num_stages, sizeof f->num_stages);
}

void xk_variant_symbol(const xk_func *f, const char *target, char *buf,
                       size_t n) {
  snprintf(buf, n, "%s_%016llx", f->name,
           (unsigned long long)xk_variant_hash(f, target));
}
