/* xkv-check: the main job's report. Every kernel of a kernels.xk, at its
 * default config, compiled for the host (run on this CPU against the plain
 * C references over ragged sizes) and for sm_90 (PTX checked by ptxas for
 * registers, spills and shared memory). Exit status 1 when any check fails.
 * usage: xkv-check [kernels.xk] */
#include "compile.h"
#include "kernel_cases.h"
#include "ptxas.h"

#include <stdio.h>
#include <time.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Runs every case size of kernel f on the host; worst relative error. */
static int run_host(const xk_func *f, xk_jit *jit, LLVMTargetMachineRef tm,
                    double *worst, double *tol, double *ms, int *sizes,
                    xk_diag *d) {
  char sym[128];
  LLVMModuleRef mod;
  xk_host_fn fn;
  xk_variant_symbol(f, "host", sym, sizeof sym);
  if (xk_compile_llvm(f, "host", tm, sym, 1, &mod, NULL, d) ||
      xk_jit_add(jit, mod, d) || xk_jit_lookup(jit, sym, &fn, d))
    return -1;
  *worst = 0;
  *ms = 0;
  *sizes = xk_case_nsizes(f->name);
  for (int s = 0; s < *sizes; s++) {
    xk_case c;
    double err;
    if (xk_case_setup(f->name, f, s, &c, d))
      return -1;
    double t0 = now_ms();
    xk_case_run_host(&c, fn);
    *ms += now_ms() - t0;
    *tol = c.out[0].tol;
    int rc = xk_case_check(&c, &err, d);
    xk_case_free(&c);
    *worst = err > *worst ? err : *worst;
    if (rc)
      return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *src = argc > 1 ? argv[1] : "kernels.xk";
  xk_diag d;
  xk_dsl *dsl = NULL;
  xk_jit *jit = NULL;
  LLVMTargetMachineRef host = NULL, gpu = NULL;
  if (xk_dsl_open(src, &dsl, &d) || xk_jit_new(&jit, &d) ||
      xk_target_machine("host", &host, &d) ||
      xk_target_machine("sm_90", &gpu, &d)) {
    fprintf(stderr, "xkv-check: %s\n", d.msg);
    return 1;
  }
  printf("%-22s %5s %11s %8s %9s | %6s %6s %7s %5s\n", "kernel", "sizes",
         "max rel err", "tol", "host ms", "regs", "spills", "smem B", "ok");
  int bad = 0;
  for (int k = 0; k < xk_dsl_nkernels(dsl); k++) {
    xk_func *f = NULL;
    double err = 0, tol = 0, ms = 0;
    int sizes = 0;
    xk_ptxas_info pi = {-1, 0, 0};
    xk_nvptx_info info = {0, 0};
    const char *name = xk_dsl_kernel(dsl, k)->name;
    int ok = xk_compile_ir(dsl, k, NULL, 0, &f, &d) == 0;
    ok = ok && run_host(f, jit, host, &err, &tol, &ms, &sizes, &d) == 0;
    ok = ok && xk_ptxas_func(f, "sm_90", gpu, &pi, &info, &d) == 0;
    if (!ok) {
      printf("%-22s FAILED: %s\n", name, d.msg);
      bad++;
    } else {
      char regs[16] = "n/a", spills[16] = "n/a"; /* no ptxas */
      if (pi.registers >= 0) {
        snprintf(regs, sizeof regs, "%d", pi.registers);
        snprintf(spills, sizeof spills, "%d", pi.spill_bytes);
      }
      if (sizes)
        printf("%-22s %5d %11.2e %8.0e %9.3f | %6s %6s %7d %5s\n", name, sizes,
               err, tol, ms, regs, spills, info.shared_bytes, "yes");
      else /* checked through the xKV cache tests (tests/test_xkv_*) */
        printf("%-22s %5s %11s %8s %9s | %6s %6s %7d %5s\n", name, "-", "-",
               "-", "-", regs, spills, info.shared_bytes, "yes");
    }
    xk_func_free(f);
  }
  printf("%d kernel(s), %d failed; host = this CPU (LLVM JIT), GPU column = "
         "sm_90 PTX through ptxas%s; '-': kernels checked by the xKV cache "
         "tests\n",
         xk_dsl_nkernels(dsl), bad, xk_ptxas_find() ? "" : " (not found)");
  xk_jit_free(jit);
  LLVMDisposeTargetMachine(host);
  LLVMDisposeTargetMachine(gpu);
  xk_dsl_close(dsl);
  return bad ? 1 : 0;
}
