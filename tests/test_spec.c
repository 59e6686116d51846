/* Argument specialization (xk_compile_ir_spec): XK_SPEC_ONE folds the
 * argument away (fewer ops) and a specialized host variant computes what
 * the generic one does, bit for bit, where its facts hold; ALIGN16/DIV16
 * reach LLVM as llvm.assume; facts that cannot apply are errors; the
 * variant hash tells the twins apart. */
#include "compile.h"
#include "kernel_cases.h"

#include "check_main.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static xk_dsl *open_dsl(void) {
  xk_dsl *dsl = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(xk_dsl_open(XK_SRC "/kernels.xk", &dsl, &d) == 0, "%s", d.msg);
  return dsl;
}

static int live_ops(const xk_func *f) {
  int n = 0;
  for (int i = 0; i < f->nops; i++)
    n += !f->ops[i].dead;
  return n;
}

/* Lowers for the host, JITs, runs case `size` of `kernel`; returns the
 * output buffer (malloc'd copy) and checks it against the reference. */
static void *run_host(const xk_func *f, int size, size_t *bytes,
                      int *all_aligned) {
  xk_diag d = {{0}};
  LLVMTargetMachineRef tm;
  ck_assert_msg(xk_target_machine("host", &tm, &d) == 0, "%s", d.msg);
  LLVMModuleRef m;
  ck_assert_msg(xk_compile_llvm(f, "host", tm, f->name, 1, &m, NULL, &d) == 0,
                "%s", d.msg);
  LLVMDisposeTargetMachine(tm);
  xk_jit *j;
  xk_host_fn fn;
  ck_assert_msg(xk_jit_new(&j, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_jit_add(j, m, &d) == 0 &&
                    xk_jit_lookup(j, f->name, &fn, &d) == 0,
                "%s", d.msg);
  xk_case c;
  ck_assert_msg(xk_case_setup(f->name, f, size, &c, &d) == 0, "%s", d.msg);
  *all_aligned = 1;
  for (int i = 0; i < c.nargs; i++)
    if (c.buf[i] && ((uintptr_t)c.buf[i] & 15))
      *all_aligned = 0;
  xk_case_run_host(&c, fn);
  double err;
  ck_assert_msg(xk_case_check(&c, &err, &d) == 0, "%s: %s", c.desc, d.msg);
  *bytes = c.bytes[c.out[0].arg];
  void *out = malloc(*bytes);
  memcpy(out, c.buf[c.out[0].arg], *bytes);
  xk_case_free(&c);
  xk_jit_free(j);
  return out;
}

static int arg_index(const xk_func *f, const char *name) {
  for (int i = 0; i < f->nargs; i++)
    if (!strcmp(f->args[i].name, name))
      return i;
  return -1;
}

/* gemm_f32 size 0 is M = N = K = 1: the ONE twin holds there. */
START_TEST(test_one_folds) {
  xk_dsl *dsl = open_dsl();
  int k = xk_dsl_find(dsl, "gemm_f32");
  xk_func *g = NULL, *s = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(xk_compile_ir(dsl, k, NULL, 0, &g, &d) == 0, "%s", d.msg);
  int spec[8] = {0}, im = arg_index(g, "M"), in = arg_index(g, "N"),
      ik = arg_index(g, "K");
  ck_assert(im >= 0 && in >= 0 && ik >= 0);
  spec[im] = spec[in] = spec[ik] = XK_SPEC_ONE;
  ck_assert_msg(xk_compile_ir_spec(dsl, k, NULL, 0, spec, &s, &d) == 0, "%s",
                d.msg);
  ck_assert_int_lt(live_ops(s), live_ops(g));
  ck_assert_int_eq(s->args[ik].spec, XK_SPEC_ONE);
  ck_assert(xk_variant_hash(s, "host") != xk_variant_hash(g, "host"));
  size_t nb_g, nb_s;
  int al;
  void *og = run_host(g, 0, &nb_g, &al);
  void *os = run_host(s, 0, &nb_s, &al);
  ck_assert_uint_eq(nb_g, nb_s);
  ck_assert(!memcmp(og, os, nb_g));
  free(og);
  free(os);
  xk_func_free(g);
  xk_func_free(s);
  xk_dsl_close(dsl);
}
END_TEST

/* Every pointer ALIGN16: identical outputs on every case size (the case
 * buffers come from malloc, 16-byte aligned here; checked). */
START_TEST(test_align16_identical) {
  xk_dsl *dsl = open_dsl();
  static const char *const names[] = {"vadd", "gemm_f16", "softmax"};
  for (size_t n = 0; n < sizeof names / sizeof *names; n++) {
    int k = xk_dsl_find(dsl, names[n]);
    ck_assert_int_ge(k, 0);
    xk_func *g = NULL, *s = NULL;
    xk_diag d = {{0}};
    ck_assert_msg(xk_compile_ir(dsl, k, NULL, 0, &g, &d) == 0, "%s", d.msg);
    int spec[16] = {0};
    for (int i = 0; i < g->nargs; i++)
      spec[i] = g->args[i].type.dtype == XK_PTR ? XK_SPEC_ALIGN16 : 0;
    ck_assert_msg(xk_compile_ir_spec(dsl, k, NULL, 0, spec, &s, &d) == 0, "%s",
                  d.msg);
    for (int z = 0; z < xk_case_nsizes(names[n]); z++) {
      size_t nb_g, nb_s;
      int al_g, al_s;
      void *og = run_host(g, z, &nb_g, &al_g);
      void *os = run_host(s, z, &nb_s, &al_s);
      if (al_s) /* the variant's facts hold: it must agree */
        ck_assert_msg(!memcmp(og, os, nb_g), "%s size %d differs", names[n], z);
      free(og);
      free(os);
    }
    xk_func_free(g);
    xk_func_free(s);
  }
  xk_dsl_close(dsl);
}
END_TEST

/* ALIGN16 and DIV16 become llvm.assume in the lowered module (host and
 * NVPTX); the generic variant has none. */
START_TEST(test_assumes_emitted) {
  xk_dsl *dsl = open_dsl();
  int k = xk_dsl_find(dsl, "gemm_f16");
  static const char *const targets[] = {"host", "sm_90"};
  for (int spec_on = 0; spec_on < 2; spec_on++)
    for (int t = 0; t < 2; t++) {
      xk_func *f = NULL;
      xk_diag d = {{0}};
      int spec[16] = {0};
      ck_assert_msg(xk_compile_ir(dsl, k, NULL, 0, &f, &d) == 0, "%s", d.msg);
      for (int i = 0; i < f->nargs; i++)
        spec[i] =
            f->args[i].type.dtype == XK_PTR ? XK_SPEC_ALIGN16 : XK_SPEC_DIV16;
      xk_func_free(f);
      ck_assert_msg(xk_compile_ir_spec(dsl, k, NULL, 0, spec_on ? spec : NULL,
                                       &f, &d) == 0,
                    "%s", d.msg);
      LLVMTargetMachineRef tm;
      ck_assert_msg(xk_target_machine(targets[t], &tm, &d) == 0, "%s", d.msg);
      LLVMModuleRef m;
      ck_assert_msg(xk_compile_llvm(f, targets[t], tm, "k", 0, &m, NULL, &d) ==
                        0,
                    "%s", d.msg);
      char *ir = LLVMPrintModuleToString(m);
      ck_assert_int_eq(strstr(ir, "llvm.assume") != NULL, spec_on);
      LLVMDisposeMessage(ir);
      LLVMDisposeModule(m);
      LLVMDisposeTargetMachine(tm);
      xk_func_free(f);
    }
  xk_dsl_close(dsl);
}
END_TEST

START_TEST(test_bad_spec) {
  xk_dsl *dsl = open_dsl();
  int k = xk_dsl_find(dsl, "vadd");
  xk_func *f = NULL;
  xk_diag d = {{0}};
  int spec[8] = {XK_SPEC_DIV16}; /* arg 0 is a pointer */
  ck_assert_int_eq(xk_compile_ir_spec(dsl, k, NULL, 0, spec, &f, &d), -1);
  ck_assert_ptr_null(f);
  ck_assert_msg(strstr(d.msg, "does not apply"), "%s", d.msg);
  xk_dsl_close(dsl);
}
END_TEST

int main(void) {
  Suite *s = suite_create("spec");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_one_folds);
  tcase_add_test(tc, test_align16_identical);
  tcase_add_test(tc, test_assumes_emitted);
  tcase_add_test(tc, test_bad_spec);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
