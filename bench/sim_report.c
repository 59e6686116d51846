/* sim_report: per kernel variant, the sim target's counters on the largest
 * test problem of kernel_cases.c, ptxas's registers and spills for sm_90,
 * H100 occupancy and the modeled time (codegen/perf_model.c). Without a
 * GPU this is how variants are compared.
 *
 *   sim_report [KERNELS.xk] [--variants default|all] [--kernel NAME]
 *              [--csv FILE]
 */
#include "../tests/kernel_cases.h"
#include "compile.h"
#include "perf_model.h"
#include "ptxas.h"
#include "variants.h"

#include <stdio.h>
#include <string.h>

static int sim_run(const xk_func *f, xk_case *c, xk_sim_counters *cnt,
                   xk_nvptx_info *info, xk_diag *d) {
  LLVMTargetMachineRef tm;
  LLVMModuleRef m;
  if (xk_target_machine("sim", &tm, d))
    return -1;
  int rc = xk_compile_llvm(f, "sim", tm, f->name, 1, &m, info, d);
  LLVMDisposeTargetMachine(tm);
  if (rc)
    return -1;
  xk_jit *j;
  if (xk_jit_new(&j, d)) {
    LLVMDisposeModule(m);
    return -1;
  }
  xk_host_fn fn;
  rc = xk_jit_add(j, m, d) || xk_jit_lookup(j, f->name, &fn, d);
  if (!rc)
    rc = xk_sim_launch((xk_sim_fn)(void (*)(void))fn, c->args, c->grid,
                       info->threads, info->shared_bytes, cnt, d);
  double err;
  if (!rc)
    rc = xk_case_check(c, &err, d);
  xk_jit_free(j);
  return rc ? -1 : 0;
}

static void describe(const xk_func *f, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < f->nconsts && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s=%lld ", f->consts[i].name,
                          (long long)f->consts[i].value);
  if (k < n)
    snprintf(buf + k, n - k, "w=%d", f->num_warps);
}

static int report(xk_dsl *dsl, int ki, const xk_override_set *v, FILE *csv,
                  xk_diag *d) {
  const char *name = xk_dsl_kernel(dsl, ki)->name;
  xk_func *f;
  if (xk_compile_ir(dsl, ki, v->over, v->n, &f, d))
    return -1;
  xk_case c;
  char cfg[256];
  describe(f, cfg, sizeof cfg);
  int rc = xk_case_setup(name, f, xk_case_nsizes(name) - 1, &c, d);
  if (rc) {
    xk_func_free(f);
    return -1;
  }
  xk_sim_counters k;
  xk_nvptx_info info;
  xk_ptxas_info pi;
  xk_perf_estimate e;
  rc = sim_run(f, &c, &k, &info, d) ||
       xk_ptxas_func(f, "sm_90", NULL, &pi, NULL, d);
  xk_perf_launch pl = {pi.registers, info.shared_bytes, info.threads,
                       (int64_t)c.grid[0] * c.grid[1] * c.grid[2]};
  if (!rc)
    rc = xk_perf_model(&k, &pl, &e, d);
  if (!rc) {
    double moved = 32.0 * (double)(k.gld_sectors + k.gst_sectors);
    printf("%-10s %-44s %s\n", name, cfg, c.desc);
    printf("  gld %lld req %lld sect eff %.3f | gst %lld req eff %.3f | "
           "moved/min %.2f | smem %lld req %lld conflicts | fma %lld mma "
           "%lld shfl %lld bar %lld\n",
           (long long)k.gld_requests, (long long)k.gld_sectors,
           xk_sim_gld_efficiency(&k), (long long)k.gst_requests,
           xk_sim_gst_efficiency(&k),
           k.unique_bytes ? moved / (double)k.unique_bytes : 0.0,
           (long long)k.smem_requests, (long long)k.smem_conflicts,
           (long long)k.inst[XK_SIM_FMA], (long long)k.inst[XK_SIM_MMA],
           (long long)k.inst[XK_SIM_SHFL], (long long)k.inst[XK_SIM_BAR]);
    printf("  regs %d spill %d smem %d | %d blocks/SM (%s) occ %.2f waves "
           "%.0f | H100 model %.2f us (%s-bound)\n",
           pi.registers, pi.spill_bytes, info.shared_bytes, e.blocks_per_sm,
           e.limiter, e.occupancy, e.waves, e.seconds * 1e6, e.bound);
    if (csv)
      fprintf(csv,
              "%s,\"%s\",\"%s\",%lld,%lld,%.4f,%lld,%.4f,%lld,%lld,%lld,%lld,"
              "%lld,%lld,%lld,%d,%d,%d,%d,%.3f,%.3f\n",
              name, cfg, c.desc, (long long)k.gld_requests,
              (long long)k.gld_sectors, xk_sim_gld_efficiency(&k),
              (long long)k.gst_sectors, xk_sim_gst_efficiency(&k),
              (long long)k.unique_bytes, (long long)k.smem_requests,
              (long long)k.smem_conflicts, (long long)k.inst[XK_SIM_FMA],
              (long long)k.inst[XK_SIM_MMA], (long long)k.inst[XK_SIM_SHFL],
              (long long)k.inst[XK_SIM_BAR], pi.registers, pi.spill_bytes,
              info.shared_bytes, e.blocks_per_sm, e.occupancy, e.seconds * 1e6);
  }
  xk_case_free(&c);
  xk_func_free(f);
  return rc ? -1 : 0;
}

int main(int argc, char **argv) {
  const char *src = "kernels.xk", *only = NULL, *csv_path = NULL;
  int all = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--variants") && i + 1 < argc)
      all = !strcmp(argv[++i], "all");
    else if (!strcmp(argv[i], "--kernel") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "--csv") && i + 1 < argc)
      csv_path = argv[++i];
    else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: sim_report [KERNELS.xk] [--variants default|all] "
                      "[--kernel NAME] [--csv FILE]\n");
      return 2;
    } else
      src = argv[i];
  }
  xk_diag d;
  xk_dsl *dsl;
  if (xk_dsl_open(src, &dsl, &d)) {
    fprintf(stderr, "sim_report: %s\n", d.msg);
    return 1;
  }
  FILE *csv = csv_path ? fopen(csv_path, "w") : NULL;
  if (csv_path && !csv) {
    fprintf(stderr, "sim_report: cannot write %s\n", csv_path);
    xk_dsl_close(dsl);
    return 1;
  }
  if (csv)
    fprintf(csv, "kernel,config,problem,gld_requests,gld_sectors,gld_eff,"
                 "gst_sectors,gst_eff,unique_bytes,smem_requests,"
                 "smem_conflicts,fma,mma,shfl,bar,regs,spill_bytes,smem,"
                 "blocks_per_sm,occupancy,model_us\n");
  int failed = 0;
  for (int i = 0; xk_case_kernels[i]; i++) {
    if (only && strcmp(only, xk_case_kernels[i]))
      continue;
    int ki = xk_dsl_find(dsl, xk_case_kernels[i]);
    xk_override_set *vs;
    int nv;
    if (ki < 0 || xk_variants_enumerate(xk_dsl_kernel(dsl, ki), NULL, 0, all,
                                        &vs, &nv, &d)) {
      fprintf(stderr, "sim_report: %s: %s\n", xk_case_kernels[i],
              ki < 0 ? "not in the kernel file" : d.msg);
      failed = 1;
      continue;
    }
    for (int v = 0; v < nv; v++)
      if (report(dsl, ki, &vs[v], csv, &d)) {
        fprintf(stderr, "sim_report: %s: %s\n", xk_case_kernels[i], d.msg);
        failed = 1;
      }
    xk_variants_free(vs, nv);
  }
  if (csv)
    fclose(csv);
  xk_dsl_close(dsl);
  return failed;
}
