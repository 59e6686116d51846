/* Compile time per kernel variant of kernels.xk: trace + passes, then
 * lowering + O3 + emission for the host (object) and for sm_90 (PTX).
 * Prints a table and writes CSV to argv[2] when given. */
#include "compile.h"
#include "variants.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* ms to lower, optimize and emit f for target */
static double backend_ms(const xk_func *f, const char *target,
                         LLVMTargetMachineRef tm, xk_diag *d) {
  double t0 = now_ms();
  LLVMModuleRef mod;
  char sym[128], *buf = NULL;
  size_t len;
  xk_variant_symbol(f, target, sym, sizeof sym);
  if (xk_compile_llvm(f, target, tm, sym, 1, &mod, NULL, d))
    return -1;
  int rc = xk_target_emit(mod, tm, !xk_target_is_gpu(target), &buf, &len, d);
  LLVMDisposeModule(mod);
  free(buf);
  return rc ? -1 : now_ms() - t0;
}

int main(int argc, char **argv) {
  const char *src = argc > 1 ? argv[1] : "kernels.xk";
  FILE *csv = argc > 2 ? fopen(argv[2], "w") : NULL;
  xk_diag d;
  xk_dsl *dsl;
  LLVMTargetMachineRef host, gpu;
  if (xk_dsl_open(src, &dsl, &d) || xk_target_machine("host", &host, &d) ||
      xk_target_machine("sm_90", &gpu, &d)) {
    fprintf(stderr, "compile_time: %s\n", d.msg);
    return 1;
  }
  if (csv)
    fprintf(csv, "kernel,variant,trace_ms,host_ms,sm90_ms\n");
  printf("%-10s %-44s %9s %9s %9s\n", "kernel", "variant", "trace ms",
         "host ms", "sm_90 ms");
  double worst = 0, sum = 0;
  int n = 0, rc = 0;
  for (int k = 0; k < xk_dsl_nkernels(dsl) && !rc; k++) {
    const xk_kernel_spec *s = xk_dsl_kernel(dsl, k);
    xk_override_set *vs;
    int nv;
    if (xk_variants_enumerate(s, NULL, 0, 1, &vs, &nv, &d)) {
      fprintf(stderr, "compile_time: %s\n", d.msg);
      return 1;
    }
    for (int v = 0; v < nv && !rc; v++) {
      char name[256] = "";
      size_t o = 0;
      for (int i = 0; i < vs[v].n && o < sizeof name; i++)
        o += (size_t)snprintf(name + o, sizeof name - o, "%s%s=%lld",
                              i ? "," : "", vs[v].over[i].name,
                              (long long)vs[v].over[i].value);
      double t0 = now_ms();
      xk_func *f;
      if (xk_compile_ir(dsl, k, vs[v].over, vs[v].n, &f, &d)) {
        rc = 1;
        break;
      }
      double tr = now_ms() - t0;
      double th = backend_ms(f, "host", host, &d);
      double tg = th < 0 ? -1 : backend_ms(f, "sm_90", gpu, &d);
      xk_func_free(f);
      if (tg < 0) {
        rc = 1;
        break;
      }
      printf("%-10s %-44s %9.2f %9.2f %9.2f\n", s->name, name, tr, th, tg);
      if (csv)
        fprintf(csv, "%s,\"%s\",%.3f,%.3f,%.3f\n", s->name, name, tr, th, tg);
      double tot = tr + (th > tg ? th : tg);
      worst = tot > worst ? tot : worst;
      sum += tot;
      n++;
    }
    xk_variants_free(vs, nv);
  }
  if (rc)
    fprintf(stderr, "compile_time: %s\n", d.msg);
  else
    printf("%d variants: mean %.2f ms, worst %.2f ms per variant and target "
           "(trace + slower backend)\n",
           n, n ? sum / n : 0, worst);
  if (csv)
    fclose(csv);
  LLVMDisposeTargetMachine(host);
  LLVMDisposeTargetMachine(gpu);
  xk_dsl_close(dsl);
  return rc;
}
