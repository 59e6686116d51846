/* xkv-tune's engine (autotune/): the correctness gate rejects a variant
 * that computes the wrong thing and one that leaves outputs unwritten;
 * configs that cannot fit are pruned as infeasible before timing; two
 * tuners merging into one file at once leave a valid file with both's
 * records; every kernel of kernels.xk the xKV cache launches has inputs
 * whose C reference its default config matches, and a wrong split merge
 * or a default that misses its reference are caught. Kernels:
 * tests/data/tune_gate.xk. */
#include "check_main.h"
#include "rt_util.h"
#include "tune.h"
#include "tune_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GATE XK_SRC "/tests/data/tune_gate.xk"
#define KERNELS XK_SRC "/kernels.xk"

static const rt_tune_record *find(const rt_tune_cache *c, const char *name,
                                  int64_t v) {
  for (int i = 0; i < c->n; i++)
    for (int j = 0; j < c->r[i].nconf; j++)
      if (!strcmp(c->r[i].conf[j].name, name) && c->r[i].conf[j].value == v)
        return &c->r[i];
  return NULL;
}

START_TEST(gate_rejects_wrong_variants) {
  xk_tune_opts o = {.device = "cpu", .rounds = 2};
  xk_tune_session *s;
  xk_diag d;
  ck_assert_msg(!xk_tune_open(GATE, &o, &s, &d), "%s", d.msg);
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  int64_t n = 5000;
  int k = xk_dsl_find(xk_tune_dsl(s), "vadd");
  ck_assert_msg(!xk_tune_key(s, k, &n, out, &row, &d), "%s", d.msg);
  const rt_tune_record *wrong = find(out, "BLOCK", 512),
                       *partial = find(out, "BLOCK", 2048);
  ck_assert_ptr_nonnull(wrong);
  ck_assert_ptr_nonnull(partial);
  ck_assert_str_eq(wrong->status, "wrong");
  ck_assert_str_eq(partial->status, "wrong");
  ck_assert_ptr_nonnull(strstr(partial->why, "NaN or unwritten"));
  ck_assert(!wrong->winner && !partial->winner);
  int winners = 0, ok = 0;
  for (int i = 0; i < out->n; i++) {
    winners += out->r[i].winner;
    ok += !strcmp(out->r[i].status, "ok");
  }
  ck_assert_int_eq(winners, 1);
  ck_assert_int_eq(ok, 2); /* BLOCK = 256 and 1024 */
  ck_assert_int_eq(row.n_wrong, 2);
  rt_tune_free(out);
  xk_tune_close(s);
}
END_TEST

START_TEST(infeasible_pruned) {
  xk_tune_opts o = {.device = "model:sm_90"};
  xk_tune_session *s;
  xk_diag d;
  ck_assert_msg(!xk_tune_open(GATE, &o, &s, &d), "%s", d.msg);
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  int64_t key[3] = {512, 512, 512};
  int k = xk_dsl_find(xk_tune_dsl(s), "gemm_f32");
  ck_assert_msg(!xk_tune_key(s, k, key, out, &row, &d), "%s", d.msg);
  const rt_tune_record *big = find(out, "BLOCK_K", 1024),
                       *small = find(out, "BLOCK_K", 32);
  ck_assert_ptr_nonnull(big);
  ck_assert_str_eq(big->status, "infeasible");
  ck_assert_ptr_nonnull(strstr(big->why, "shared memory"));
  ck_assert_str_eq(small->status, "ok");
  ck_assert(small->winner);
  ck_assert_str_eq(small->source, "model");
  ck_assert_int_eq(row.n_infeasible, 1);
  rt_tune_free(out);
  xk_tune_close(s);
}
END_TEST

/* -j 2 on the model device: the workers' records are the serial run's
 * (statuses, modeled times, the winner; the infeasible config pruned in
 * its worker too). */
START_TEST(parallel_model_matches_serial) {
  rt_tune_cache *out[2];
  xk_tune_row row[2];
  for (int j = 0; j < 2; j++) {
    xk_tune_opts o = {.device = "model:sm_90", .jobs = 2 * j};
    xk_tune_session *s;
    xk_diag d;
    ck_assert_msg(!xk_tune_open(GATE, &o, &s, &d), "%s", d.msg);
    out[j] = calloc(1, sizeof *out[j]);
    int64_t key[3] = {512, 512, 512};
    int k = xk_dsl_find(xk_tune_dsl(s), "gemm_f32");
    ck_assert_msg(!xk_tune_key(s, k, key, out[j], &row[j], &d), "%s", d.msg);
    xk_tune_close(s);
  }
  ck_assert_int_eq(out[0]->n, out[1]->n);
  ck_assert_int_eq(out[0]->n, 2);
  for (int i = 0; i < out[0]->n; i++) {
    const rt_tune_record *a = &out[0]->r[i], *b = &out[1]->r[i];
    ck_assert_str_eq(a->status, b->status);
    ck_assert_int_eq(a->winner, b->winner);
    ck_assert(a->time_us == b->time_us); /* the model is deterministic */
    ck_assert_int_eq(a->conf[0].value, b->conf[0].value);
  }
  ck_assert_int_eq(row[1].n_infeasible, 1);
  ck_assert_str_eq(row[0].config, row[1].config);
  rt_tune_free(out[0]);
  rt_tune_free(out[1]);
}
END_TEST

/* Tunes kernel `name` of the session at key vals; the row in *row. */
static int tune_one(xk_tune_session *s, const char *name, const int64_t *vals,
                    rt_tune_cache *out, xk_tune_row *row, xk_diag *d) {
  int k = xk_dsl_find(xk_tune_dsl(s), name);
  ck_assert_msg(k >= 0, "%s is not in the kernels file", name);
  return xk_tune_key(s, k, vals, out, row, d);
}

START_TEST(xkv_kernels_match_references) {
  /* the default config only: its output against the C reference */
  xk_tune_opts o = {.device = "cpu", .rounds = 1, .max_configs = 1};
  xk_tune_session *s;
  xk_diag d;
  ck_assert_msg(!xk_tune_open(KERNELS, &o, &s, &d), "%s", d.msg);
  static const char *const fams[] = {"xkv_rows_",         "xkv_decode_lr_",
                                     "xkv_decode_exact_", "xkv_sr_rebuild_",
                                     "xkv_scores_exact_", "gemm_st_f32_"};
  static const char *const dts[] = {"f16", "bf16", "f32"};
  int64_t d_only[] = {64}, ranks[] = {64, 48, 40}, mnk[] = {96, 80, 64};
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  for (size_t f = 0; f < sizeof fams / sizeof *fams; f++)
    for (size_t t = 0; t < 3; t++) {
      char name[64];
      snprintf(name, sizeof name, "%s%s", fams[f], dts[t]);
      const int64_t *key = strstr(name, "gemm") ? mnk
                           : strstr(name, "lr_") || strstr(name, "sr_")
                               ? ranks
                               : d_only;
      ck_assert_msg(!tune_one(s, name, key, out, &row, &d), "%s: %s", name,
                    d.msg);
      ck_assert_int_eq(row.n_ok, 1);
    }
  int64_t rk[] = {40, 64};
  ck_assert_msg(!tune_one(s, "xkv_decode_combine", d_only, out, &row, &d), "%s",
                d.msg);
  ck_assert_msg(!tune_one(s, "rebuild_k", rk, out, &row, &d), "%s", d.msg);
  rt_tune_free(out);
  xk_tune_close(s);
}
END_TEST

START_TEST(xkv_gate) {
  xk_tune_opts o = {.device = "cpu", .rounds = 2};
  xk_tune_session *s;
  xk_diag d;
  ck_assert_msg(!xk_tune_open(GATE, &o, &s, &d), "%s", d.msg);
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  int64_t D = 64;
  ck_assert_msg(!tune_one(s, "xkv_decode_combine", &D, out, &row, &d), "%s",
                d.msg);
  const rt_tune_record *bug = find(out, "BUG", 1), *ok = find(out, "BUG", 0);
  ck_assert_ptr_nonnull(bug);
  ck_assert_str_eq(bug->status, "wrong");
  ck_assert_str_eq(ok->status, "ok");
  ck_assert(ok->winner);
  ck_assert_int_ne(tune_one(s, "xkv_rows_f32", &D, out, &row, &d), 0);
  ck_assert_ptr_nonnull(strstr(d.msg, "differs from the C reference"));
  rt_tune_free(out);
  xk_tune_close(s);
}
END_TEST

/* model:sm_90-h200: its own fingerprint naming the GPU, so that its
 * records and model:sm_90's stay apart in one file; the same feasibility
 * (same SM) and no config slower than on the H100 (same compute, more
 * bandwidth; test_perf_model checks the DRAM-bound ratio) */
static rt_tune_cache *tune_model(const char *dev, int64_t *key, char *fp,
                                 size_t n) {
  xk_tune_opts o = {.device = dev};
  xk_tune_session *s;
  xk_diag d;
  ck_assert_msg(!xk_tune_open(GATE, &o, &s, &d), "%s", d.msg);
  snprintf(fp, n, "%s", xk_tune_fingerprint(s));
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  int k = xk_dsl_find(xk_tune_dsl(s), "gemm_f32");
  ck_assert_msg(!xk_tune_key(s, k, key, out, &row, &d), "%s", d.msg);
  xk_tune_close(s);
  return out;
}

START_TEST(model_h200_device) {
  char fp100[128], fp200[128];
  int64_t key[3] = {512, 512, 512};
  rt_tune_cache *a = tune_model("model:sm_90", key, fp100, sizeof fp100);
  rt_tune_cache *b = tune_model("model:sm_90-h200", key, fp200, sizeof fp200);
  ck_assert_str_eq(fp100, "model:sm_90:sms=132:smem=232448");
  ck_assert_ptr_nonnull(strstr(fp200, "model:sm_90-h200:gpu=h200"));
  ck_assert_int_eq(a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    const rt_tune_record *x = &a->r[i], *y = &b->r[i];
    ck_assert_str_eq(x->status, y->status);
    ck_assert_str_eq(y->fingerprint, fp200);
    ck_assert_str_eq(y->source, "model");
    if (strcmp(x->status, "ok"))
      continue;
    ck_assert(y->time_us <= x->time_us * (1 + 1e-12));
  }
  char *dir = rt_tmpdir("tune_h200");
  char path[1024], err[1024];
  snprintf(path, sizeof path, "%s/cache.json", dir);
  xk_diag d;
  ck_assert_msg(!xk_tune_merge_write(path, a, &d), "%s", d.msg);
  ck_assert_msg(!xk_tune_merge_write(path, b, &d), "%s", d.msg);
  rt_tune_cache *both = rt_tune_read(path, err, sizeof err);
  ck_assert_msg(both != NULL, "%s", err);
  ck_assert_int_eq(both->n, a->n + b->n);
  rt_tune_free(both);
  rt_rmdir(dir);
  free(dir);
  rt_tune_free(a);
  rt_tune_free(b);
  xk_tune_opts o = {.device = "model:sm_90-h300"};
  xk_tune_session *s = NULL;
  ck_assert_int_eq(xk_tune_open(GATE, &o, &s, &d), -1);
  ck_assert_ptr_nonnull(strstr(d.msg, "model:sm_90-h200"));
  xk_tune_close(s);
}
END_TEST

/* A budget spent before the first candidate: the default alone is timed
 * and wins; the skipped configs leave no records. */
START_TEST(budget_spent) {
  xk_tune_opts o = {.device = "cpu", .rounds = 2, .budget_s = 1e-9};
  xk_tune_session *s;
  xk_diag d;
  ck_assert_msg(!xk_tune_open(GATE, &o, &s, &d), "%s", d.msg);
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row row;
  int64_t n = 5000;
  ck_assert_msg(!tune_one(s, "vadd", &n, out, &row, &d), "%s", d.msg);
  ck_assert_int_eq(out->n, 1);
  ck_assert(out->r[0].winner);
  ck_assert_int_eq(row.n_skipped, 3);
  rt_tune_free(out);
  xk_tune_close(s);
}
END_TEST

/* A record of group "g<who>" at N = i, config BLOCK = 64 */
static void add(rt_tune_cache *c, const char *fp, int64_t n) {
  rt_tune_record r = {.kernel = "vadd",
                      .ir_hash = "h",
                      .compiler = "t",
                      .fingerprint = (char *)fp,
                      .source = "measured",
                      .status = "ok",
                      .nkey = 1,
                      .nconf = 1,
                      .time_us = 1,
                      .spread = 0,
                      .winner = 1};
  r.key[0] = (rt_tune_pair){"N", n};
  r.conf[0] = (rt_tune_pair){"BLOCK", 64};
  ck_assert_int_eq(rt_tune_add(c, &r), 0);
}

START_TEST(concurrent_writers) {
  char *dir = rt_tmpdir("tune_write");
  char path[1024];
  snprintf(path, sizeof path, "%s/cache.json", dir);
  enum { WRITERS = 2, ROUNDS = 40 };
  for (int w = 0; w < WRITERS; w++) {
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p)
      continue;
    char fp[32];
    snprintf(fp, sizeof fp, "writer%d", w);
    int bad = 0;
    for (int i = 0; i < ROUNDS && !bad; i++) {
      rt_tune_cache *c = calloc(1, sizeof *c);
      add(c, fp, i + 1);
      xk_diag d;
      bad = xk_tune_merge_write(path, c, &d);
      rt_tune_free(c);
    }
    _exit(bad);
  }
  for (int w = 0; w < WRITERS; w++) {
    int st;
    ck_assert_int_gt(wait(&st), 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  char err[1024];
  rt_tune_cache *c = rt_tune_read(path, err, sizeof err);
  ck_assert_msg(c != NULL, "%s", err);
  ck_assert_int_eq(c->n, WRITERS * ROUNDS); /* every group, once */
  /* a rewrite of one group replaces it */
  rt_tune_cache *again = calloc(1, sizeof *again);
  add(again, "writer0", 1);
  xk_diag d;
  ck_assert_int_eq(xk_tune_merge_write(path, again, &d), 0);
  rt_tune_free(again);
  rt_tune_free(c);
  c = rt_tune_read(path, err, sizeof err);
  ck_assert_int_eq(c->n, WRITERS * ROUNDS);
  rt_tune_free(c);
  /* a corrupt file is not overwritten */
  ck_assert_int_eq(rt_write(dir, "cache.json", "{\"format\": "), 0);
  again = calloc(1, sizeof *again);
  add(again, "writer0", 1);
  ck_assert_int_ne(xk_tune_merge_write(path, again, &d), 0);
  ck_assert_ptr_nonnull(strstr(d.msg, "not overwritten"));
  rt_tune_free(again);
  rt_rmdir(dir);
  free(dir);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("tune");
  TCase *tc = tcase_create("all");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, gate_rejects_wrong_variants);
  tcase_add_test(tc, infeasible_pruned);
  tcase_add_test(tc, parallel_model_matches_serial);
  tcase_add_test(tc, model_h200_device);
  tcase_add_test(tc, concurrent_writers);
  tcase_add_test(tc, xkv_kernels_match_references);
  tcase_add_test(tc, xkv_gate);
  tcase_add_test(tc, budget_spent);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
