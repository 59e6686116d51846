/* Compile time per kernel variant: trace + passes, then lowering +
 * optimization + emission for the host (object) and for sm_90 (PTX), over
 * every point of every kernel's tune space, in CPU milliseconds.
 *   compile_time [OUT.csv [FILE.xk...]]   (default: no CSV, kernels.xk)
 * Prints a table, then the median per kernel and target. */
#include "compile.h"
#include "variants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this thread: the compiler is single-threaded, and on a shared
 * machine wall time also counts the waits for a core. */
static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
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

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct {
  double worst, sum;
  int n;
} totals;

/* Every variant of every kernel of src; a row per variant to stdout and
 * csv, then the kernel's medians. */
static int time_file(const char *src, LLVMTargetMachineRef host,
                     LLVMTargetMachineRef gpu, FILE *csv, totals *t,
                     xk_diag *d) {
  xk_dsl *dsl;
  if (xk_dsl_open(src, &dsl, d))
    return -1;
  int rc = 0;
  for (int k = 0; k < xk_dsl_nkernels(dsl) && !rc; k++) {
    const xk_kernel_spec *s = xk_dsl_kernel(dsl, k);
    xk_override_set *vs;
    int nv;
    if (xk_variants_enumerate(s, NULL, 0, 1, &vs, &nv, d)) {
      rc = -1;
      break;
    }
    double *hs = malloc((size_t)(nv ? nv : 1) * 2 * sizeof *hs), *gs = hs + nv;
    if (!hs) {
      xk_variants_free(vs, nv);
      rc = xk_diag_set(d, "out of memory");
      break;
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
      if (xk_compile_ir(dsl, k, vs[v].over, vs[v].n, &f, d)) {
        rc = -1;
        break;
      }
      double tr = now_ms() - t0;
      double th = backend_ms(f, "host", host, d);
      double tg = th < 0 ? -1 : backend_ms(f, "sm_90", gpu, d);
      xk_func_free(f);
      if (tg < 0) {
        rc = -1;
        break;
      }
      printf("%-16s %-44s %9.2f %9.2f %9.2f\n", s->name, name, tr, th, tg);
      if (csv)
        fprintf(csv, "%s,\"%s\",%.3f,%.3f,%.3f\n", s->name, name, tr, th, tg);
      hs[v] = tr + th;
      gs[v] = tr + tg;
      double tot = tr + (th > tg ? th : tg);
      t->worst = tot > t->worst ? tot : t->worst;
      t->sum += tot;
      t->n++;
    }
    if (!rc && nv)
      printf("%-16s median of %d variants (trace + backend): host %.1f ms, "
             "sm_90 %.1f ms\n",
             s->name, nv, median(hs, nv), median(gs, nv));
    free(hs);
    xk_variants_free(vs, nv);
  }
  xk_dsl_close(dsl);
  return rc;
}

int main(int argc, char **argv) {
  FILE *csv = argc > 1 ? fopen(argv[1], "w") : NULL;
  xk_diag d;
  LLVMTargetMachineRef host, gpu;
  if (argc > 1 && !csv) {
    fprintf(stderr, "compile_time: cannot write %s\n", argv[1]);
    return 1;
  }
  if (xk_target_machine("host", &host, &d) ||
      xk_target_machine("sm_90", &gpu, &d)) {
    fprintf(stderr, "compile_time: %s\n", d.msg);
    return 1;
  }
  if (csv)
    fprintf(csv, "kernel,variant,trace_ms,host_ms,sm90_ms\n");
  printf("%-16s %-44s %9s %9s %9s\n", "kernel", "variant", "trace ms",
         "host ms", "sm_90 ms");
  totals t = {0, 0, 0};
  int rc = 0;
  for (int i = 2; i < (argc > 2 ? argc : 3) && !rc; i++)
    rc = time_file(argc > 2 ? argv[i] : "kernels.xk", host, gpu, csv, &t, &d);
  if (rc)
    fprintf(stderr, "compile_time: %s\n", d.msg);
  else
    printf("%d variants: mean %.2f ms, worst %.2f ms per variant and target "
           "(trace + slower backend)\n",
           t.n, t.n ? t.sum / t.n : 0, t.worst);
  if (csv)
    fclose(csv);
  LLVMDisposeTargetMachine(host);
  LLVMDisposeTargetMachine(gpu);
  return rc ? 1 : 0;
}
