/* The kernel registry: manifests and embedded tables, grouping into
 * configurations, variant choice (constexprs, num_warps, argument
 * specialization), and the JSON reader underneath. */
#include "../runtime/internal.h"
#include "../runtime/json.h"
#include "rt_kernels.h"
#include "rt_util.h"
#include "text.h"
#include "xkv.h"

#include "check_main.h"
#include <stdlib.h>
#include <string.h>

static xkv_context *open_loaded(void) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  xkv_status s = xkv_registry_load(ctx, RT_HOST_DIR);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  return ctx;
}

static const char *pick(xkv_context *ctx, xkv_kernel *k, void *z, int n) {
  float dummy[4];
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, dummy), xkv_arg_ptr(XKV_F32, dummy),
                 xkv_arg_ptr(XKV_F32, z), xkv_arg_i32(n)};
  const char *sym = NULL;
  ck_assert_int_eq(xkv_kernel_select(ctx, k, a, 4, &sym), XKV_OK);
  return sym;
}

START_TEST(manifest_directory_contents) {
  xkv_context *ctx = open_loaded();
  ck_assert_int_eq(xkv_num_variants(ctx), 7);
  xkv_variant_info v;
  ck_assert_int_eq(xkv_variant_get_info(ctx, 2, &v), XKV_OK);
  ck_assert_str_eq(v.kernel, "vadd");
  ck_assert_str_eq(v.symbol, "rt_vadd_b256_spec");
  ck_assert_str_eq(v.target, "host");
  ck_assert_str_eq(v.source, RT_HOST_DIR);
  ck_assert_str_eq(v.signature,
                   "X: ptr<f32>, Y: ptr<f32>, Z: ptr<f32>, N: i32");
  ck_assert_str_eq(v.spec, "Z: align16, N: div16");
  ck_assert_str_eq(v.grid[0], "cdiv(N, BLOCK)");
  ck_assert_int_eq(v.nconsts, 1);
  ck_assert_str_eq(v.consts[0].name, "BLOCK");
  ck_assert_int_eq(v.consts[0].value, 256);
  ck_assert_int_eq(v.threads, 128);
  ck_assert_int_eq(v.registers, -1);
  ck_assert_int_eq(xkv_variant_get_info(ctx, 7, &v), XKV_ERR_INVALID);
  /* Loading the same artifacts again adds nothing. */
  ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
  ck_assert_int_eq(xkv_num_variants(ctx), 7);
  xkv_close(ctx);
}
END_TEST

START_TEST(variant_choice) {
  xkv_context *ctx = open_loaded();
  float *buf;
  ck_assert_int_eq(xkv_alloc(ctx, 4096, (void **)&buf), XKV_OK);
  xkv_kernel *k;
  /* No constexprs given: the first built configuration (the default). */
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  ck_assert_str_eq(pick(ctx, k, buf, 1000), "rt_vadd_b256");
  /* Specialized variant only when every assumption holds. */
  ck_assert_str_eq(pick(ctx, k, buf, 1024), "rt_vadd_b256_spec");
  ck_assert_str_eq(pick(ctx, k, buf + 1, 1024), "rt_vadd_b256");
  ck_assert_str_eq(pick(ctx, k, buf + 4, 32), "rt_vadd_b256_spec");
  ck_assert_str_eq(pick(ctx, k, buf, 17), "rt_vadd_b256");
  xkv_const c64 = {"BLOCK", 64};
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", &c64, 1, &k), XKV_OK);
  ck_assert_str_eq(pick(ctx, k, buf, 1024), "rt_vadd_b64");
  xkv_const w8[] = {{"BLOCK", 256}, {"num_warps", 8}};
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", w8, 2, &k), XKV_OK);
  ck_assert_str_eq(pick(ctx, k, buf, 1024), "rt_vadd_b256_w8");
  xkv_const w8only = {"num_warps", 8};
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", &w8only, 1, &k), XKV_OK);
  ck_assert_str_eq(pick(ctx, k, buf, 1024), "rt_vadd_b256_w8");
  /* Handles are stable: the same query gives the same handle. */
  xkv_kernel *k2;
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", &w8only, 1, &k2), XKV_OK);
  ck_assert_ptr_eq(k, k2);
  xkv_const c512 = {"BLOCK", 512};
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", &c512, 1, &k),
                   XKV_ERR_NOT_FOUND);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "BLOCK=512"));
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "BLOCK=64"));
  xkv_close(ctx);
}
END_TEST

static char *read_manifest(void) {
  char *t = xk_read_file(RT_HOST_DIR "/manifest.json", NULL, NULL);
  ck_assert_ptr_nonnull(t);
  return t;
}

START_TEST(embedded_tables) {
  char *text = read_manifest();
  xkv_embedded_variant vs[16];
  int n = 0;
#define RT_ENTRY(name) vs[n++] = (xkv_embedded_variant){#name, name, 0, 0, 0};
  RT_HOST_KERNELS(RT_ENTRY)
#undef RT_ENTRY
  xkv_embedded e = {text, "host", n, vs};
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);

  xkv_embedded bad = e;
  bad.nvariants = n - 1;
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &bad), XKV_ERR_MANIFEST);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "7 variants"));
  bad = e;
  bad.target = "sm_90";
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &bad), XKV_ERR_MANIFEST);
  xkv_embedded_variant swapped[16];
  memcpy(swapped, vs, sizeof vs);
  swapped[0] = vs[1];
  swapped[1] = vs[0];
  bad = e;
  bad.variants = swapped;
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &bad), XKV_ERR_MANIFEST);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "rt_vadd_b64"));
  swapped[0] = vs[0];
  swapped[1] = vs[1];
  swapped[3].host_fn = NULL;
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &bad), XKV_ERR_MANIFEST);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "no host function"));
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, NULL), XKV_ERR_INVALID);
  /* Nothing of the failed attempts was added. */
  ck_assert_int_eq(xkv_num_variants(ctx), 0);

  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &e), XKV_OK);
  ck_assert_int_eq(xkv_num_variants(ctx), 7);
  xkv_variant_info vi;
  ck_assert_int_eq(xkv_variant_get_info(ctx, 0, &vi), XKV_OK);
  ck_assert_str_eq(vi.source, "embedded");
  /* The directory holds the same symbols: nothing new. */
  ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
  ck_assert_int_eq(xkv_num_variants(ctx), 7);
  xkv_close(ctx);
  free(text);
}
END_TEST

START_TEST(gpu_artifacts_rejected_on_cpu) {
  char *text = read_manifest();
  char *gpu = rt_replace(text, "\"target\": \"host\"", "\"target\": \"sm_90\"");
  char *dir = rt_tmpdir("gpu");
  ck_assert_int_eq(rt_write(dir, "manifest.json", gpu), 0);
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  ck_assert_int_eq(xkv_registry_load(ctx, dir), XKV_ERR_TARGET);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "sm_90"));
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "CPU"));
  xkv_embedded e = {gpu, "sm_90", 0, NULL};
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &e), XKV_ERR_TARGET);
  ck_assert_int_eq(xkv_num_variants(ctx), 0);
  xkv_close(ctx);
  rt_rmdir(dir);
  free(dir);
  free(gpu);
  free(text);
}
END_TEST

START_TEST(json_reader) {
  char err[128];
  const char *ok = " {\"a\": [1, -2, 3.5e2, true, false, null],"
                   " \"s\": \"x\\u00e9\\ud83d\\ude00\\n\\\"\", \"o\": {},"
                   " \"big\": 123456789012345678901234567890, \"z\": -0}";
  json_val *v = json_parse(ok, strlen(ok), err, sizeof err);
  ck_assert_msg(v != NULL, "%s", err);
  const json_val *a = json_get(v, "a");
  ck_assert_int_eq(a->t, JSON_ARR);
  ck_assert_int_eq(a->n, 6);
  ck_assert(a->items[0].is_int && a->items[0].i == 1);
  ck_assert(a->items[1].is_int && a->items[1].i == -2);
  ck_assert(!a->items[2].is_int && a->items[2].num == 350.0);
  ck_assert(a->items[3].t == JSON_BOOL && a->items[3].i == 1);
  ck_assert_int_eq(a->items[5].t, JSON_NULL);
  ck_assert_str_eq(json_get(v, "s")->str, "x\xc3\xa9\xf0\x9f\x98\x80\n\"");
  ck_assert_int_eq(json_get(v, "o")->n, 0);
  ck_assert(!json_get(v, "big")->is_int);
  ck_assert(json_get(v, "z")->is_int);
  ck_assert_ptr_null(json_get(v, "missing"));
  json_free(v);

  const char *bad[] = {
      "",           "{",          "[1,]",      "{\"a\" 1}",     "[01]", "\"abc",
      "[1] x",      "{\"a\":}",   "[\"\\x\"]", "[\"\\ud800\"]", "[1e]", "tru",
      "[\"a\tb\"]", "{\"a\":1,}", "[-]",       "[\"\\u00\"]"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    json_val *b = json_parse(bad[i], strlen(bad[i]), err, sizeof err);
    ck_assert_msg(b == NULL, "accepted: %s", bad[i]);
    ck_assert_ptr_nonnull(strstr(err, "line 1, column"));
  }
  /* Deep nesting is refused, not a stack overflow. */
  char deep[20001];
  memset(deep, '[', 20000);
  deep[20000] = 0;
  ck_assert_ptr_null(json_parse(deep, 20000, err, sizeof err));
  ck_assert_ptr_nonnull(strstr(err, "nesting"));
  /* Errors say where. */
  ck_assert_ptr_null(json_parse("{\n  \"a\": 1\n  \"b\": 2}", 20, err, 128));
  ck_assert_ptr_nonnull(strstr(err, "line 3"));
}
END_TEST

/* Found by fuzz/fuzz_manifest.c: rt_registry_free kept the arrays'
 * capacities, so a registration after it wrote through NULL. */
START_TEST(registry_reusable_after_free) {
  xkv_context *ctx = open_loaded();
  rt_registry_free(ctx);
  ck_assert_int_eq(xkv_num_variants(ctx), 0);
  ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
  ck_assert_int_eq(xkv_num_variants(ctx), 7);
  xkv_kernel *k;
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("runtime_registry");
  TCase *tc = tcase_create("registry");
  tcase_add_test(tc, manifest_directory_contents);
  tcase_add_test(tc, variant_choice);
  tcase_add_test(tc, embedded_tables);
  tcase_add_test(tc, gpu_artifacts_rejected_on_cpu);
  tcase_add_test(tc, json_reader);
  tcase_add_test(tc, registry_reusable_after_free);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
