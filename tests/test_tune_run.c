/* xkv-tune-run's engine (autotune/tune_run.c) on the CPU device, over
 * tests/data/tune_gate.xk built with `xkvgen --variants all` (the
 * directory TUNE_GATE_DIR): the correctness gate rejects the variant that
 * computes the wrong thing and the one that leaves outputs unwritten, a
 * wrong split merge, and a default that differs from the C reference; the
 * records are "measured", merge into a valid file, and make the runtime
 * launch the winner, whose output is X + Y; bad devices, directories and
 * keys are errors that say so. */
#include "check_main.h"
#include "rt_util.h"
#include "tune_run.h"
#include "tune_write.h"
#include "xkv.h"

#include <stdlib.h>
#include <string.h>

static const rt_tune_record *find(const rt_tune_cache *c, const char *name,
                                  int64_t v) {
  for (int i = 0; i < c->n; i++)
    for (int j = 0; j < c->r[i].nconf; j++)
      if (!strcmp(c->r[i].conf[j].name, name) && c->r[i].conf[j].value == v)
        return &c->r[i];
  return NULL;
}

static xk_run_session *open_cpu(void) {
  xk_run_opts o = {.device = "cpu", .rounds = 2};
  xk_run_session *s = NULL;
  xk_diag d;
  ck_assert_msg(!xk_run_open(TUNE_GATE_DIR, &o, &s, &d), "%s", d.msg);
  return s;
}

static const char *const N_KEY[] = {"N"}, *const D_KEY[] = {"D"};

START_TEST(gate_and_records) {
  xk_run_session *s = open_cpu();
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  xk_diag d;
  int64_t n = 5000;
  ck_assert_msg(!xk_run_key(s, "vadd", N_KEY, &n, 1, out, &row, &d), "%s",
                d.msg);
  const rt_tune_record *wrong = find(out, "BLOCK", 512),
                       *partial = find(out, "BLOCK", 2048);
  ck_assert_ptr_nonnull(wrong);
  ck_assert_ptr_nonnull(partial);
  ck_assert_str_eq(wrong->status, "wrong");
  ck_assert_str_eq(partial->status, "wrong");
  ck_assert_ptr_nonnull(strstr(partial->why, "NaN or unwritten"));
  int winners = 0, ok = 0;
  const rt_tune_record *win = NULL;
  for (int i = 0; i < out->n; i++) {
    const rt_tune_record *r = &out->r[i];
    ck_assert_str_eq(r->source, "measured");
    ck_assert_str_eq(r->fingerprint, xk_run_fingerprint(s));
    ck_assert_str_ne(r->ir_hash, "unknown"); /* xkvgen wrote it */
    ck_assert_int_eq(r->nkey, 1);
    ck_assert_int_eq(r->key[0].value, 5000);
    ck_assert_int_eq(r->nconf, 1); /* BLOCK: the one dim the builds vary */
    winners += r->winner;
    ok += !strcmp(r->status, "ok");
    if (r->winner)
      win = r;
  }
  ck_assert_int_eq(winners, 1);
  ck_assert_int_eq(ok, 2); /* BLOCK = 256 and 1024 */
  ck_assert_str_eq(win->status, "ok");
  ck_assert(win->time_us > 0);
  ck_assert_int_eq(row.n_ok, 2);
  ck_assert_int_eq(row.n_wrong, 2);

  /* merged into a file, read back, and chosen by the runtime */
  char *dir = rt_tmpdir("tune_run"), path[512];
  snprintf(path, sizeof path, "%s/cache.json", dir);
  ck_assert_msg(!xk_tune_merge_write(path, out, &d), "%s", d.msg);
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  ck_assert_int_eq(xkv_registry_load(ctx, TUNE_GATE_DIR), XKV_OK);
  ck_assert_msg(xkv_tune_cache_load(ctx, path) == XKV_OK, "%s",
                xkv_last_error(ctx));
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y),
        *z = malloc(n * sizeof *z);
  for (int i = 0; i < n; i++) {
    x[i] = (float)i * 0.5f;
    y[i] = 3.0f - (float)i;
    z[i] = -1;
  }
  xkv_arg args[] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, y),
                    xkv_arg_ptr(XKV_F32, z), xkv_arg_i32((int32_t)n)};
  xkv_kernel *k;
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  const char *sym;
  ck_assert_int_eq(xkv_kernel_select(ctx, k, args, 4, &sym), XKV_OK);
  xkv_kernel *want;
  xkv_const block = {"BLOCK", win->conf[0].value};
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", &block, 1, &want), XKV_OK);
  const char *want_sym;
  ck_assert_int_eq(xkv_kernel_select(ctx, want, args, 4, &want_sym), XKV_OK);
  ck_assert_str_eq(sym, want_sym);
  ck_assert_int_eq(xkv_launch(ctx, k, NULL, args, 4, NULL), XKV_OK);
  for (int i = 0; i < n; i++)
    ck_assert_float_eq(z[i], x[i] + y[i]);
  free(x);
  free(y);
  free(z);
  xkv_close(ctx);
  rt_rmdir(dir);
  free(dir);
  rt_tune_free(out);
  xk_run_close(s);
}
END_TEST

START_TEST(split_merge_and_reference) {
  xk_run_session *s = open_cpu();
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  xk_diag d;
  int64_t D = 64;
  /* BUG=1 drops the last split: its merged output differs */
  ck_assert_msg(
      !xk_run_key(s, "xkv_decode_combine", D_KEY, &D, 1, out, &row, &d), "%s",
      d.msg);
  const rt_tune_record *bug = find(out, "BUG", 1), *ok = find(out, "BUG", 0);
  ck_assert_ptr_nonnull(bug);
  ck_assert_str_eq(bug->status, "wrong");
  ck_assert_str_eq(ok->status, "ok");
  ck_assert(ok->winner);
  /* a default that misses its C reference leaves nothing to tune against */
  int before = out->n;
  ck_assert_int_ne(xk_run_key(s, "xkv_rows_f32", D_KEY, &D, 1, out, &row, &d),
                   0);
  ck_assert_ptr_nonnull(strstr(d.msg, "C reference"));
  ck_assert_int_eq(out->n, before);
  rt_tune_free(out);
  xk_run_close(s);
}
END_TEST

START_TEST(bad_inputs) {
  xk_run_session *s = NULL;
  xk_diag d;
  xk_run_opts o = {.device = "tpu"};
  ck_assert_int_ne(xk_run_open(TUNE_GATE_DIR, &o, &s, &d), 0);
  ck_assert_ptr_nonnull(strstr(d.msg, "tpu"));
  xk_run_close(s);
  o.device = "cpu";
  s = NULL;
  ck_assert_int_ne(xk_run_open("/nonexistent/tune_run", &o, &s, &d), 0);
  ck_assert_ptr_nonnull(strstr(d.msg, "/nonexistent/tune_run"));
  xk_run_close(s);

  s = open_cpu();
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  int64_t D = 128; /* built at D = 64 only */
  ck_assert_int_ne(
      xk_run_key(s, "xkv_decode_combine", D_KEY, &D, 1, out, &row, &d), 0);
  ck_assert_ptr_nonnull(strstr(d.msg, "no built variant"));
  ck_assert(!xk_run_has_kernel(s, "gemm_f16"));
  ck_assert(xk_run_has_kernel(s, "vadd"));
  ck_assert_int_eq(out->n, 0);
  rt_tune_free(out);
  xk_run_close(s);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("tune_run");
  TCase *tc = tcase_create("all");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, gate_and_records);
  tcase_add_test(tc, split_merge_and_reference);
  tcase_add_test(tc, bad_inputs);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
