#include "sim_model.h"

#include "compile.h"
#include "grid.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const xk_func *f;
  const xk_kernel_spec *spec;
  const xk_problem *p;
} lookup_ctx;

/* a grid name: an integer argument of the problem, or a constexpr of f */
static int lookup(void *ctx, const char *name, int64_t *v) {
  const lookup_ctx *c = ctx;
  for (int i = 0; i < c->spec->nargs && i < c->p->nargs; i++)
    if (!strcmp(c->spec->args[i].name, name) && !c->p->args[i].is_ptr) {
      *v = c->p->args[i].v.i32;
      return 0;
    }
  for (int i = 0; i < c->f->nconsts; i++)
    if (!strcmp(c->f->consts[i].name, name)) {
      *v = c->f->consts[i].value;
      return 0;
    }
  return -1;
}

static double rel_err(const xk_problem *p) {
  double *out = malloc(p->out_elems * sizeof *out), e = 0, m = 0;
  if (!out)
    return INFINITY;
  xk_problem_output(p, out);
  for (size_t i = 0; i < p->out_elems; i++) {
    if (!isfinite(out[i])) {
      e = INFINITY;
      break;
    }
    e = fmax(e, fabs(out[i] - p->c_ref[i]));
    m = fmax(m, fabs(p->c_ref[i]));
  }
  free(out);
  return e / (m > 0 ? m : 1);
}

int xk_sim_model_time(const xk_gpu *g, const xk_func *f,
                      const xk_kernel_spec *spec, xk_problem *p,
                      const xk_ptxas_info *pi, const xk_nvptx_info *info,
                      double *us, double *err, xk_diag *d) {
  lookup_ctx lc = {f, spec, p};
  int32_t grid[3];
  int64_t blocks = 1;
  for (int i = 0; i < 3; i++) {
    int64_t g;
    if (xk_grid_eval(spec->grid[i], lookup, &lc, &g, d))
      return -1;
    grid[i] = (int32_t)g;
    blocks *= g;
  }
  LLVMTargetMachineRef tm;
  LLVMModuleRef mod;
  xk_nvptx_info si;
  if (xk_target_machine("sim", &tm, d))
    return -1;
  int rc = xk_compile_llvm(f, "sim", tm, f->name, 1, &mod, &si, d);
  LLVMDisposeTargetMachine(tm);
  if (rc)
    return -1;
  xk_jit *j;
  if (xk_jit_new(&j, d)) {
    LLVMDisposeModule(mod);
    return -1;
  }
  xk_host_fn fn;
  void *args[XK_PROBLEM_MAXARGS];
  for (int i = 0; i < p->nargs; i++)
    args[i] =
        p->args[i].is_ptr ? (void *)&p->args[i].v.p : (void *)&p->args[i].v;
  xk_sim_counters c;
  xk_problem_poison(p);
  rc = xk_jit_add(j, mod, d) || xk_jit_lookup(j, f->name, &fn, d) ||
       xk_sim_launch((xk_sim_fn)(void (*)(void))fn, args, grid, si.threads,
                     si.shared_bytes, &c, d);
  xk_jit_free(j);
  if (rc)
    return -1;
  *err = p->c_ref ? rel_err(p) : 0;
  xk_perf_launch l = {pi->registers, info->shared_bytes, info->threads, blocks};
  xk_perf_estimate e;
  if (xk_perf_model_gpu(g, &c, &l, &e, d))
    return -1;
  *us = e.seconds * 1e6;
  return 0;
}
