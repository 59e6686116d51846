/* Float and string constexprs (tests/data/const_kinds.xk): two ACTIVATION
 * strings times two ALPHA floats traced, JIT-compiled for the host and run
 * at a ragged size against a C reference; distinct values give distinct
 * variant symbols. */
#include "compile.h"
#include "jit_util.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_dsl *dsl;

static float reference(float x, const char *act, double alpha) {
  float y = !strcmp(act, "relu") ? (x > 0 ? x : 0) : (x > 0 ? x : x * 0.01f);
  return y * (float)alpha;
}

static xk_func *trace(const char *act, double alpha) {
  xk_constexpr over[2] = {
      {.name = "ACTIVATION", .kind = XK_CONST_STR, .str = (char *)act},
      {.name = "ALPHA", .kind = XK_CONST_FLOAT, .fvalue = alpha}};
  xk_func *f;
  xk_diag d;
  int k = xk_dsl_find(dsl, "act_scale");
  ck_assert_int_ge(k, 0);
  ck_assert_msg(xk_compile_ir(dsl, k, over, 2, &f, &d) == 0, "%s", d.msg);
  return f;
}

static const char *const acts[] = {"relu", "leaky_relu"};
static const double alphas[] = {0.25, 1.5};

START_TEST(test_host_matches_reference) {
  const char *act = acts[_i / 2];
  double alpha = alphas[_i % 2];
  xk_func *f = trace(act, alpha);
  xk_test_host j;
  xk_diag d;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  enum { N = 300, BLOCK = 128, PROGRAMS = (N + BLOCK - 1) / BLOCK };
  float x[N], y[N];
  for (int i = 0; i < N; i++)
    x[i] = (float)(i % 17) - 8.5f;
  int32_t n = N;
  float *px = x, *py = y;
  void *args[] = {&px, &py, &n};
  int32_t np[3] = {PROGRAMS, 1, 1};
  for (int p = 0; p < PROGRAMS; p++) {
    int32_t pid[3] = {p, 0, 0};
    j.fn(args, pid, np);
  }
  for (int i = 0; i < N; i++)
    ck_assert_msg(y[i] == reference(x[i], act, alpha), "%s %g: y[%d] = %g", act,
                  alpha, i, (double)y[i]);
  xk_jit_free(j.jit);
  xk_func_free(f);
}
END_TEST

START_TEST(test_values_hash_apart) {
  uint64_t h[4];
  for (int v = 0; v < 4; v++) {
    xk_func *f = trace(acts[v / 2], alphas[v % 2]);
    h[v] = xk_variant_hash(f, "host");
    xk_func_free(f);
  }
  for (int a = 0; a < 4; a++)
    for (int b = a + 1; b < 4; b++)
      ck_assert_msg(h[a] != h[b], "variants %d and %d share a hash", a, b);
}
END_TEST

START_TEST(test_unknown_string_names_the_value) {
  xk_constexpr over = {
      .name = "ACTIVATION", .kind = XK_CONST_STR, .str = "gelu"};
  xk_func *f;
  xk_diag d;
  ck_assert_int_eq(
      xk_compile_ir(dsl, xk_dsl_find(dsl, "act_scale"), &over, 1, &f, &d), -1);
  ck_assert_msg(strstr(d.msg, "unknown ACTIVATION gelu") &&
                    strstr(d.msg, "const_kinds.xk:"),
                "%s", d.msg);
}
END_TEST

static void open_dsl(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/tests/data/const_kinds.xk", &dsl, &d))
    fprintf(stderr, "test_const_kinds: %s\n", d.msg);
}

static void close_dsl(void) {
  xk_dsl_close(dsl);
  dsl = NULL;
}

int main(void) {
  Suite *s = suite_create("const_kinds");
  TCase *tc = tcase_create("const_kinds");
  tcase_set_timeout(tc, 60);
  tcase_add_unchecked_fixture(tc, open_dsl, close_dsl);
  tcase_add_loop_test(tc, test_host_matches_reference, 0, 4);
  tcase_add_test(tc, test_values_hash_apart);
  tcase_add_test(tc, test_unknown_string_names_the_value);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
