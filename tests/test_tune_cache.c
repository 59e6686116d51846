/* The runtime's tune cache: the reader on corrupt, truncated and foreign
 * files (an error naming the file, the defaults kept), and the per-launch
 * choice: exact bucket, nearest bucket in log space, the default, pinned
 * handles, other devices' records, misses reported to a file; records of
 * another version of the kernel (IR hash) ignored with one message. Variants
 * are tests/rt_kernels.c's vadd (BLOCK=256 w4 first, BLOCK=64, BLOCK=256 w8).
 */
#include "check_main.h"
#include "rt_util.h"
#include "text.h"
#include "xkv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;

/* a record for vadd at N with config BLOCK/num_warps, for fingerprint fp */
static char *record(int n, int block, int warps, const char *fp, int last) {
  char *r = malloc(512);
  snprintf(r, 512,
           "{\"kernel\": \"vadd\", \"key\": {\"N\": %d}, \"config\": "
           "{\"BLOCK\": %d, \"num_warps\": %d, \"num_stages\": 1}, "
           "\"status\": \"ok\", \"time_us\": 10, \"spread\": 0.01, "
           "\"winner\": true, \"margin\": 0.2, \"source\": \"measured\", "
           "\"fingerprint\": \"%s\", \"ir_hash\": \"0\", \"compiler\": "
           "\"t\"}%s",
           n, block, warps, fp, last ? "" : ",");
  return r;
}

/* Records at N = 1024 (BLOCK=64), 65536 (BLOCK=256 w8), 16 (BLOCK=512:
 * not built) for this device, and 4096 (BLOCK=64) for another CPU; grid
 * 16, 1024, 4096, 65536 rounded to the nearest. */
static char *cache_text(const char *fp) {
  char *a = record(1024, 64, 4, fp, 0), *b = record(65536, 256, 8, fp, 0),
       *c = record(16, 512, 4, fp, 0),
       *e = record(4096, 64, 4, "cpu:other:base:cores=1", 1);
  char *t = malloc(4096);
  snprintf(t, 4096,
           "{\"format\": \"xkv-tune-1\", \"grids\": [{\"kernel\": \"vadd\", "
           "\"key\": \"N\", \"round\": \"nearest\", \"values\": [16, 1024, "
           "4096, 65536]}],\n\"records\": [%s\n%s\n%s\n%s]}\n",
           a, b, c, e);
  free(a);
  free(b);
  free(c);
  free(e);
  return t;
}

static xkv_context *open_cpu(void) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
  return ctx;
}

static const char *chosen(xkv_context *ctx, xkv_kernel *k, int n) {
  static float x[70000], y[70000], z[70000];
  for (int i = 0; i < n; i++) {
    x[i] = (float)i;
    y[i] = 0.5f;
    z[i] = NAN;
  }
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, y),
                 xkv_arg_ptr(XKV_F32, z), xkv_arg_i32(n)};
  const char *sym = NULL;
  ck_assert_int_eq(xkv_kernel_select(ctx, k, a, 4, &sym), XKV_OK);
  ck_assert_int_eq(xkv_launch(ctx, k, NULL, a, 4, NULL), XKV_OK);
  for (int i = 0; i < n; i++) /* the chosen variant computed it */
    ck_assert_float_eq(z[i], (float)i + 0.5f);
  return sym;
}

/* the default configuration (BLOCK=256 w4), or its twin for N % 16 == 0 */
static int is_default(const char *sym) {
  return !strcmp(sym, "rt_vadd_b256") || !strcmp(sym, "rt_vadd_b256_spec");
}

START_TEST(fallback_chain) {
  xkv_context *ctx = open_cpu();
  char *t = cache_text(xkv_tune_fingerprint(ctx));
  ck_assert_int_eq(rt_write(dir, "tune.json", t), 0);
  free(t);
  char path[1024], misses[1024];
  snprintf(path, sizeof path, "%s/tune.json", dir);
  snprintf(misses, sizeof misses, "%s/misses.txt", dir);
  remove(misses);
  ck_assert_int_eq(xkv_tune_cache_load(ctx, path), XKV_OK);
  ck_assert_int_eq(xkv_tune_misses_file(ctx, misses), XKV_OK);
  xkv_kernel *k;
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  /* exact bucket, also for a value that buckets there (1500 -> 1024) */
  ck_assert_str_eq(chosen(ctx, k, 1024), "rt_vadd_b64");
  ck_assert_str_eq(chosen(ctx, k, 1500), "rt_vadd_b64");
  ck_assert_str_eq(chosen(ctx, k, 65536), "rt_vadd_b256_w8");
  ck_assert_str_eq(chosen(ctx, k, 40000), "rt_vadd_b256_w8");
  /* 4096 has only another CPU's record: the nearest of this one's (1024) */
  ck_assert_str_eq(chosen(ctx, k, 4096), "rt_vadd_b64");
  /* 16's config (BLOCK=512) is not built: the default */
  ck_assert(is_default(chosen(ctx, k, 16)));
  /* a handle that fixed a tuned constexpr keeps it */
  xkv_const pin = {"BLOCK", 256};
  xkv_kernel *kp;
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", &pin, 1, &kp), XKV_OK);
  ck_assert(is_default(chosen(ctx, kp, 1024)));
  chosen(ctx, k, 4096); /* a second miss at 4096 is not reported again */
  char *m = xk_read_file(misses, NULL, NULL);
  ck_assert_ptr_nonnull(m);
  ck_assert_str_eq(m, "vadd N=4096\nvadd N=16\n");
  free(m);
  xkv_close(ctx);
}
END_TEST

/* Each bad file: an error naming the file and the cause; the cache loaded
 * before stays in effect, and launches still work. */
START_TEST(bad_files) {
  xkv_context *ctx = open_cpu();
  char *good = cache_text(xkv_tune_fingerprint(ctx));
  size_t half = strlen(good) / 2;
  char *trunc = strndup(good, half);
  char *foreign = rt_replace(good, "xkv-tune-1", "xkv-tune-0");
  char *loser = rt_replace(good, "\"status\": \"ok\"", "\"status\": \"wrong\"");
  char *nokey = rt_replace(good, "\"key\": {\"N\": 1024}", "\"key\": [1024]");
  struct {
    const char *name, *text, *why;
  } cases[] = {
      {"garbage.json", "\x01\x02 not json", "not JSON"},
      {"truncated.json", trunc, "not JSON (truncated or corrupt?)"},
      {"empty.json", "", "not JSON"},
      {"foreign.json", foreign, "format is \"xkv-tune-0\""},
      {"loser.json", loser, "a winner must have status ok"},
      {"nokey.json", nokey, "\"key\" and \"config\" must be objects"},
      {"nofile.json", NULL, "tune cache"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, cases[i].name);
    if (cases[i].text)
      ck_assert_int_eq(rt_write(dir, cases[i].name, cases[i].text), 0);
    else
      remove(path);
    ck_assert_int_ne(xkv_tune_cache_load(ctx, path), XKV_OK);
    const char *e = xkv_last_error(ctx);
    ck_assert_msg(strstr(e, cases[i].why) && strstr(e, cases[i].name), "%s: %s",
                  cases[i].name, e);
  }
  xkv_kernel *k;
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  ck_assert(is_default(chosen(ctx, k, 1024))); /* no cache */
  free(good);
  free(trunc);
  free(foreign);
  free(loser);
  free(nokey);
  xkv_close(ctx);
}
END_TEST

/* XKV_TUNE_CACHE at xkv_open: a good file takes effect, a bad one is
 * reported and the defaults stay. */
START_TEST(env_var) {
  xkv_context *probe = open_cpu();
  char *t = cache_text(xkv_tune_fingerprint(probe));
  xkv_close(probe);
  ck_assert_int_eq(rt_write(dir, "env.json", t), 0);
  free(t);
  char path[1024];
  snprintf(path, sizeof path, "%s/env.json", dir);
  setenv("XKV_TUNE_CACHE", path, 1);
  xkv_context *ctx = open_cpu();
  xkv_kernel *k;
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  ck_assert_str_eq(chosen(ctx, k, 1024), "rt_vadd_b64");
  xkv_close(ctx);
  setenv("XKV_TUNE_CACHE", "/nonexistent/tune.json", 1);
  ctx = open_cpu();
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  ck_assert(is_default(chosen(ctx, k, 1024)));
  xkv_close(ctx);
  unsetenv("XKV_TUNE_CACHE");
}
END_TEST

/* The test kernels in a directory of their own whose manifest gives every
 * variant IR hash `hash`; malloc'd path. */
static char *hashed_registry(const char *hash) {
  char *d = rt_tmpdir("tune_hash");
  char *m = xk_read_file(RT_HOST_DIR "/manifest.json", NULL, NULL);
  ck_assert_ptr_nonnull(m);
  /* the replacement's extra space keeps it from matching again */
  const char *from = "\"shared_bytes\": 0, \"threads\"";
  char to[96];
  snprintf(to, sizeof to,
           "\"ir_hash\": \"%s\", \"shared_bytes\" : 0, \"threads\"", hash);
  while (strstr(m, from)) {
    char *p = rt_replace(m, from, to);
    free(m);
    m = p;
  }
  ck_assert_int_eq(rt_write(d, "manifest.json", m), 0);
  free(m);
  char so[1024];
  snprintf(so, sizeof so, "%s/kernels.so", d);
  ck_assert_int_eq(symlink(RT_HOST_DIR "/kernels.so", so), 0);
  return d;
}

/* The records carry IR hash "0": a build whose kernel hashes to "0" uses
 * them; one whose kernel hashes otherwise launches the defaults, says so
 * once, and lists every such key as a miss for the next xkv-tune run. */
START_TEST(stale_ir_hash) {
  for (int same = 1; same >= 0; same--) {
    char *reg = hashed_registry(same ? "0" : "5eed");
    xkv_context *ctx;
    ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
    ck_assert_int_eq(xkv_registry_load(ctx, reg), XKV_OK);
    char *t = cache_text(xkv_tune_fingerprint(ctx));
    ck_assert_int_eq(rt_write(dir, "hash.json", t), 0);
    free(t);
    char path[1024], misses[1024], errs[1024];
    snprintf(path, sizeof path, "%s/hash.json", dir);
    snprintf(misses, sizeof misses, "%s/hash_misses.txt", dir);
    snprintf(errs, sizeof errs, "%s/stderr.txt", dir);
    remove(misses);
    ck_assert_int_eq(xkv_tune_cache_load(ctx, path), XKV_OK);
    ck_assert_int_eq(xkv_tune_misses_file(ctx, misses), XKV_OK);
    xkv_kernel *k;
    ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
    fflush(stderr);
    int saved = dup(2);
    FILE *e = fopen(errs, "w");
    ck_assert(saved >= 0 && e);
    dup2(fileno(e), 2);
    const char *a = chosen(ctx, k, 1024), *b = chosen(ctx, k, 65536);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(e);
    char *said = xk_read_file(errs, NULL, NULL),
         *m = xk_read_file(misses, NULL, NULL);
    ck_assert_ptr_nonnull(said);
    if (same) {
      ck_assert_str_eq(a, "rt_vadd_b64");
      ck_assert_str_eq(b, "rt_vadd_b256_w8");
      ck_assert_str_eq(said, "");
      ck_assert_ptr_null(m);
    } else {
      ck_assert(is_default(a) && is_default(b));
      const char *hit = strstr(said, "another version of the kernel");
      ck_assert_msg(hit && !strstr(hit + 1, "another version"), "%s", said);
      ck_assert_ptr_nonnull(strstr(said, "5eed"));
      ck_assert_ptr_nonnull(m);
      ck_assert_str_eq(m, "vadd N=1024\nvadd N=65536\n");
    }
    free(said);
    free(m);
    xkv_close(ctx);
    rt_rmdir(reg);
    free(reg);
  }
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("tune_cache");
  TCase *tc = tcase_create("all");
  tcase_add_test(tc, fallback_chain);
  tcase_add_test(tc, bad_files);
  tcase_add_test(tc, env_var);
  tcase_add_test(tc, stale_ir_hash);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  dir = rt_tmpdir("tune_cache");
  int rc = xk_check_run(suite());
  rt_rmdir(dir);
  free(dir);
  return rc;
}
