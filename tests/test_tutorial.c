/* Triton's tutorial kernels as a new kernel author writes them
 * (tests/tutorial/tutorial.xk), against the C references of
 * tutorial_cases.c at ragged sizes: every variant of each tune space on the
 * host, the default and the two ends of the space under sim, and every
 * variant through ptxas for sm_80 and sm_90 with no spills in the default
 * config (without ptxas: lowering and PTX emission only). */
#include "compile.h"
#include "jit_util.h"
#include "ptxas.h"
#include "tutorial_cases.h"
#include "variants.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKERNELS 9

static xk_dsl *dsl;

static void open_dsl(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/tests/tutorial/tutorial.xk", &dsl, &d))
    fprintf(stderr, "test_tutorial: tutorial.xk not usable: %s\n", d.msg);
}

static void close_dsl(void) {
  xk_dsl_close(dsl);
  dsl = NULL;
}

/* The variants of kernel k: the default (no overrides) first, then every
 * point of its tune space. */
typedef struct {
  xk_override_set *sets;
  int n; /* tune points; variant 0 is the default, 1..n the points */
} variants;

static variants variants_of(int k) {
  variants v;
  xk_diag d;
  ck_assert_msg(dsl != NULL, "tutorial.xk did not load");
  ck_assert_msg(xk_variants_enumerate(xk_dsl_kernel(dsl, k), NULL, 0, 1,
                                      &v.sets, &v.n, &d) == 0,
                "%s", d.msg);
  return v;
}

static xk_func *trace_variant(int k, const variants *v, int i) {
  xk_func *f;
  xk_diag d;
  const xk_override_set *o = i ? &v->sets[i - 1] : NULL;
  ck_assert_msg(
      xk_compile_ir(dsl, k, o ? o->over : NULL, o ? o->n : 0, &f, &d) == 0,
      "%s: %s", xk_dsl_kernel(dsl, k)->name, d.msg);
  return f;
}

static const xk_case_def *cases_of(const xk_func *f) {
  const xk_case_def *def = xk_case_find(xk_tutorial_cases, f->name);
  ck_assert_msg(def != NULL, "no cases for %s", f->name);
  return def;
}

START_TEST(test_every_kernel_has_cases) {
  ck_assert_msg(dsl != NULL, "tutorial.xk did not load");
  ck_assert_int_eq(xk_dsl_nkernels(dsl), NKERNELS);
  for (int k = 0; k < NKERNELS; k++)
    ck_assert_msg(xk_case_find(xk_tutorial_cases, xk_dsl_kernel(dsl, k)->name),
                  "no cases for %s", xk_dsl_kernel(dsl, k)->name);
  for (const xk_case_def *c = xk_tutorial_cases; c->kernel; c++)
    ck_assert_msg(xk_dsl_find(dsl, c->kernel) >= 0, "no kernel %s", c->kernel);
}
END_TEST

START_TEST(test_host) {
  variants v = variants_of(_i);
  for (int i = 0; i <= v.n; i++) {
    xk_func *f = trace_variant(_i, &v, i);
    const xk_case_def *def = cases_of(f);
    xk_test_host j;
    xk_diag d;
    ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s: %s", f->name, d.msg);
    for (int s = 0; s < def->nsizes; s++) {
      xk_case c;
      double err;
      ck_assert_msg(xk_case_setup_def(def, f, s, &c, &d) == 0, "%s", d.msg);
      xk_case_run_host(&c, j.fn);
      int rc = xk_case_check(&c, &err, &d);
      printf("host %-14s %-66s err %.2e\n", f->name, c.desc, err);
      ck_assert_msg(rc == 0, "%s", d.msg);
      xk_case_free(&c);
    }
    xk_jit_free(j.jit);
    xk_func_free(f);
  }
  xk_variants_free(v.sets, v.n);
}
END_TEST

START_TEST(test_sim) {
  variants v = variants_of(_i);
  const int which[3] = {0, 1, v.n};
  for (int w = 0; w < 3; w++) {
    xk_func *f = trace_variant(_i, &v, which[w]);
    const xk_case_def *def = cases_of(f);
    xk_test_sim k;
    xk_diag d;
    ck_assert_msg(xk_test_jit_sim(f, &k, &d) == 0, "%s: %s", f->name, d.msg);
    for (int s = 0; s < def->nsizes; s++) {
      xk_case c;
      double err;
      xk_sim_counters cnt;
      ck_assert_msg(xk_case_setup_def(def, f, s, &c, &d) == 0, "%s", d.msg);
      ck_assert_msg(xk_sim_launch(k.fn, c.args, c.grid, k.info.threads,
                                  k.info.shared_bytes, &cnt, &d) == 0,
                    "%s %s: %s", f->name, c.desc, d.msg);
      int rc = xk_case_check(&c, &err, &d);
      printf("sim  %-14s %-66s err %.2e\n", f->name, c.desc, err);
      ck_assert_msg(rc == 0, "%s", d.msg);
      ck_assert_int_eq(cnt.blocks, (int64_t)c.grid[0] * c.grid[1] * c.grid[2]);
      xk_case_free(&c);
    }
    xk_jit_free(k.jit);
    xk_func_free(f);
  }
  xk_variants_free(v.sets, v.n);
}
END_TEST

START_TEST(test_ptxas) {
  static const char *const sms[] = {"sm_80", "sm_90"};
  variants v = variants_of(_i);
  for (int i = 0; i <= v.n; i++) {
    xk_func *f = trace_variant(_i, &v, i);
    char what[256] = "default";
    for (int k = 0, o = 0; i && k < v.sets[i - 1].n && o < (int)sizeof what;
         k++)
      o += snprintf(what + o, sizeof what - (size_t)o, "%s%s=%lld",
                    k ? "," : "", v.sets[i - 1].over[k].name,
                    (long long)v.sets[i - 1].over[k].value);
    for (int s = 0; s < 2; s++) {
      xk_ptxas_info pi;
      xk_nvptx_info info;
      xk_diag d;
      ck_assert_msg(xk_ptxas_func(f, sms[s], NULL, &pi, &info, &d) == 0,
                    "%s variant %d %s: %s", f->name, i, sms[s], d.msg);
      fprintf(stderr, "  %-14s %-5s %-44s regs %3d spill %4d smem %6d\n",
              f->name, sms[s], what, pi.registers, pi.spill_bytes,
              pi.shared_bytes);
      ck_assert_int_eq(info.threads, 32 * f->num_warps);
      if (i == 0)
        ck_assert_msg(pi.spill_bytes <= 0,
                      "%s default config spills %d bytes on %s", f->name,
                      pi.spill_bytes, sms[s]);
    }
    xk_func_free(f);
  }
  xk_variants_free(v.sets, v.n);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("tutorial");
  const struct {
    const char *name;
    const TTest *test;
  } parts[] = {{"host", test_host}, {"sim", test_sim}, {"ptxas", test_ptxas}};
  TCase *t = tcase_create("cases");
  tcase_add_unchecked_fixture(t, open_dsl, close_dsl);
  tcase_add_test(t, test_every_kernel_has_cases);
  suite_add_tcase(s, t);
  for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
    t = tcase_create(parts[i].name); /* CK_RUN_CASE=sim runs one part */
    tcase_set_timeout(t, 600);
    tcase_add_unchecked_fixture(t, open_dsl, close_dsl);
    tcase_add_loop_test(t, parts[i].test, 0, NKERNELS);
    suite_add_tcase(s, t);
  }
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
