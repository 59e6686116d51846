/* The CPU device runs kernels over its thread pool: results against plain
 * C references, through a manifest directory and an embedded table. */
#include "rt_kernels.h"
#include "rt_util.h"
#include "text.h"
#include "xkv.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *manifest_text;
static xkv_embedded_variant table[16];
static xkv_embedded embedded;

/* The embedded table: the manifest's text plus the functions linked into
 * this test, in manifest order (what xkvgen --embed generates). */
static void build_table(void) {
  manifest_text = xk_read_file(RT_HOST_DIR "/manifest.json", NULL, NULL);
  ck_assert_ptr_nonnull(manifest_text);
  int n = 0;
#define RT_ENTRY(name)                                                         \
  table[n++] = (xkv_embedded_variant){#name, name, 0, 0, 0};
  RT_HOST_KERNELS(RT_ENTRY)
#undef RT_ENTRY
  embedded = (xkv_embedded){manifest_text, "host", n, table};
}

static xkv_context *open_cpu(const char *threads) {
  if (threads)
    setenv("XKV_NUM_THREADS", threads, 1);
  else
    unsetenv("XKV_NUM_THREADS");
  xkv_context *ctx;
  xkv_status s = xkv_open(&ctx, "cpu");
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  unsetenv("XKV_NUM_THREADS");
  return ctx;
}

static void check_vadd(xkv_context *ctx, xkv_kernel *k, int n) {
  size_t bytes = (size_t)(n ? n : 1) * sizeof(float);
  float *hx = malloc(bytes), *hy = malloc(bytes), *hz = malloc(bytes);
  for (int i = 0; i < n; i++) {
    hx[i] = (float)i * 0.5f - 3.0f;
    hy[i] = 1.0f / (float)(i + 1);
  }
  void *x, *y, *z;
  ck_assert_int_eq(xkv_alloc(ctx, bytes, &x), XKV_OK);
  ck_assert_int_eq(xkv_alloc(ctx, bytes, &y), XKV_OK);
  ck_assert_int_eq(xkv_alloc(ctx, bytes, &z), XKV_OK);
  ck_assert_int_eq(xkv_copy_h2d(ctx, x, hx, (size_t)n * 4, NULL), XKV_OK);
  ck_assert_int_eq(xkv_copy_h2d(ctx, y, hy, (size_t)n * 4, NULL), XKV_OK);
  ck_assert_int_eq(xkv_memset(ctx, z, 0xff, bytes, NULL), XKV_OK);
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, y),
                 xkv_arg_ptr(XKV_F32, z), xkv_arg_i32(n)};
  xkv_status s = xkv_launch(ctx, k, NULL, a, 4, NULL);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  ck_assert_int_eq(xkv_copy_d2h(ctx, hz, z, bytes, NULL), XKV_OK);
  for (int i = 0; i < n; i++)
    ck_assert_msg(hz[i] == hx[i] + hy[i], "n=%d i=%d: %g != %g", n, i, hz[i],
                  hx[i] + hy[i]);
  if (n == 0) { /* nothing written: still the 0xff pattern */
    uint32_t bits;
    memcpy(&bits, hz, 4);
    ck_assert_uint_eq(bits, 0xffffffffu);
  }
  xkv_free(ctx, x);
  xkv_free(ctx, y);
  xkv_free(ctx, z);
  free(hx);
  free(hy);
  free(hz);
}

static const int sizes[] = {0, 1, 63, 64, 65, 255, 256, 257, 1000, 4096, 4099};

START_TEST(vadd_from_directory) {
  xkv_context *ctx = open_cpu(NULL);
  xkv_status s = xkv_registry_load(ctx, RT_HOST_DIR);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  for (int b = 0; b < 2; b++) {
    xkv_const c = {"BLOCK", b ? 64 : 256};
    xkv_kernel *k;
    ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", &c, 1, &k), XKV_OK);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
      check_vadd(ctx, k, sizes[i]);
  }
  xkv_close(ctx);
}
END_TEST

START_TEST(vadd_from_embedded_table) {
  build_table();
  xkv_context *ctx = open_cpu(NULL);
  xkv_status s = xkv_registry_add_embedded(ctx, &embedded);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  ck_assert_int_eq(xkv_num_variants(ctx), 7);
  xkv_kernel *k;
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    int before = rt_spec_calls, n = sizes[i];
    check_vadd(ctx, k, n);
    /* The div16/align16 variant runs exactly when N % 16 == 0 (xkv_alloc
     * memory is aligned); N == 0 launches nothing. */
    int want = n > 0 && n % 16 == 0;
    ck_assert_int_eq(rt_spec_calls - before, want);
  }
  xkv_close(ctx);
  free(manifest_text);
}
END_TEST

/* Every program id once, x fastest, nprog right: with an explicit grid and
 * with the manifest rule, for several pool sizes. */
START_TEST(program_ids_3d) {
  const char *threads[] = {"1", "2", "3", "8"};
  for (int t = 0; t < 4; t++) {
    xkv_context *ctx = open_cpu(threads[t]);
    ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
    xkv_device_info info;
    ck_assert_int_eq(xkv_device_get_info(ctx, &info), XKV_OK);
    ck_assert_int_eq(info.units, atoi(threads[t]));
    ck_assert_str_eq(info.arch, "host");
    int gx = 7, gy = 5, gz = 3, n = gx * gy * gz;
    int32_t *out;
    ck_assert_int_eq(xkv_alloc(ctx, (size_t)n * 4, (void **)&out), XKV_OK);
    for (int explicit_grid = 0; explicit_grid < 2; explicit_grid++) {
      memset(out, 0x80, (size_t)n * 4);
      xkv_arg a[] = {xkv_arg_ptr(XKV_I32, out), xkv_arg_i32(gx),
                     xkv_arg_i32(gy), xkv_arg_i32(gz)};
      xkv_grid g = {(uint32_t)gx, (uint32_t)gy, (uint32_t)gz};
      xkv_status s = xkv_launch_named(ctx, "pid3", NULL, 0,
                                      explicit_grid ? &g : NULL, a, 4, NULL);
      ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
      for (int z = 0; z < gz; z++)
        for (int y = 0; y < gy; y++)
          for (int x = 0; x < gx; x++)
            ck_assert_int_eq(out[(z * gy + y) * gx + x],
                             x + 1000 * y + 1000000 * z);
    }
    xkv_close(ctx); /* frees `out` too */
  }
}
END_TEST

/* Same bits whatever the pool size: programs own disjoint outputs. */
START_TEST(results_independent_of_threads) {
  const int64_t n = 100003;
  float *hx = malloc(n * 4), *hy = malloc(n * 4), *ref = malloc(n * 4),
        *got = malloc(n * 4);
  for (int64_t i = 0; i < n; i++) {
    hx[i] = (float)(i % 977) * 0.25f;
    hy[i] = (float)(i % 131) - 17.0f;
    ref[i] = 1.5f * hx[i] + hy[i];
  }
  const char *threads[] = {"1", "2", "5", "16"};
  for (int t = 0; t < 4; t++) {
    xkv_context *ctx = open_cpu(threads[t]);
    ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
    void *x, *y;
    ck_assert_int_eq(xkv_alloc(ctx, n * 4, &x), XKV_OK);
    ck_assert_int_eq(xkv_alloc(ctx, n * 4, &y), XKV_OK);
    xkv_copy_h2d(ctx, x, hx, n * 4, NULL);
    xkv_copy_h2d(ctx, y, hy, n * 4, NULL);
    xkv_arg a[] = {xkv_arg_f32(1.5f), xkv_arg_ptr(XKV_F32, x),
                   xkv_arg_ptr(XKV_F32, y), xkv_arg_i64(n)};
    xkv_kernel *k;
    ck_assert_int_eq(xkv_kernel_find(ctx, "axpy", NULL, 0, &k), XKV_OK);
    xkv_grid g;
    ck_assert_int_eq(xkv_kernel_grid(ctx, k, a, 4, &g), XKV_OK);
    ck_assert_uint_eq(g.x, (n + 127) / 128);
    ck_assert_uint_eq(g.y, 1);
    ck_assert_int_eq(xkv_launch(ctx, k, NULL, a, 4, NULL), XKV_OK);
    xkv_copy_d2h(ctx, got, y, n * 4, NULL);
    ck_assert_int_eq(memcmp(got, ref, n * 4), 0);
    xkv_close(ctx);
  }
  free(hx);
  free(hy);
  free(ref);
  free(got);
}
END_TEST

START_TEST(memory_copies) {
  xkv_context *ctx = open_cpu(NULL);
  unsigned char h[1000], back[1000];
  for (int i = 0; i < 1000; i++)
    h[i] = (unsigned char)(i * 7);
  void *a, *b, *z;
  ck_assert_int_eq(xkv_alloc(ctx, 1000, &a), XKV_OK);
  ck_assert_int_eq(xkv_alloc(ctx, 1000, &b), XKV_OK);
  ck_assert_int_eq((uintptr_t)a % 16, 0);
  ck_assert_int_eq(xkv_alloc(ctx, 0, &z), XKV_OK);
  ck_assert_ptr_null(z);
  ck_assert_int_eq(xkv_copy_h2d(ctx, a, h, 1000, NULL), XKV_OK);
  ck_assert_int_eq(xkv_copy_d2d(ctx, b, a, 1000, NULL), XKV_OK);
  ck_assert_int_eq(xkv_memset(ctx, b, 0xAB, 10, NULL), XKV_OK);
  ck_assert_int_eq(xkv_copy_d2h(ctx, back, b, 1000, NULL), XKV_OK);
  for (int i = 0; i < 1000; i++)
    ck_assert_int_eq(back[i], i < 10 ? 0xAB : (unsigned char)(i * 7));
  ck_assert_int_eq(xkv_free(ctx, a), XKV_OK);
  ck_assert_int_eq(xkv_free(ctx, NULL), XKV_OK);
  ck_assert_int_eq(xkv_free(ctx, b), XKV_OK);
  /* Many allocations: the tracking table grows and shrinks. */
  void *p[300];
  for (int i = 0; i < 300; i++)
    ck_assert_int_eq(xkv_alloc(ctx, 16 + (size_t)i, &p[i]), XKV_OK);
  for (int i = 0; i < 300; i += 2)
    ck_assert_int_eq(xkv_free(ctx, p[i]), XKV_OK);
  for (int i = 1; i < 300; i += 2)
    ck_assert_int_eq(xkv_free(ctx, p[i]), XKV_OK);
  xkv_close(ctx);
}
END_TEST

START_TEST(streams_and_events) {
  xkv_context *ctx = open_cpu("2");
  ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
  xkv_stream *s;
  xkv_event *e0, *e1;
  ck_assert_int_eq(xkv_stream_create(ctx, &s), XKV_OK);
  ck_assert_int_eq(xkv_event_create(ctx, &e0), XKV_OK);
  ck_assert_int_eq(xkv_event_create(ctx, &e1), XKV_OK);
  float h[512], out[512];
  for (int i = 0; i < 512; i++)
    h[i] = (float)i;
  void *x;
  ck_assert_int_eq(xkv_alloc(ctx, sizeof h, &x), XKV_OK);
  ck_assert_int_eq(xkv_copy_h2d(ctx, x, h, sizeof h, s), XKV_OK);
  ck_assert_int_eq(xkv_event_record(ctx, e0, s), XKV_OK);
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, x),
                 xkv_arg_ptr(XKV_F32, x), xkv_arg_i32(512)};
  xkv_const c = {"BLOCK", 64};
  for (int r = 0; r < 3; r++)
    ck_assert_int_eq(xkv_launch_named(ctx, "vadd", &c, 1, NULL, a, 4, s),
                     XKV_OK);
  ck_assert_int_eq(xkv_event_record(ctx, e1, s), XKV_OK);
  ck_assert_int_eq(xkv_stream_sync(ctx, s), XKV_OK);
  ck_assert_int_eq(xkv_copy_d2h(ctx, out, x, sizeof out, s), XKV_OK);
  ck_assert_int_eq(xkv_sync(ctx), XKV_OK);
  for (int i = 0; i < 512; i++)
    ck_assert_float_eq(out[i], 8.0f * (float)i);
  float ms = -1;
  ck_assert_int_eq(xkv_event_elapsed_ms(ctx, e0, e1, &ms), XKV_OK);
  ck_assert(ms >= 0 && ms < 10000);
  ck_assert_int_eq(xkv_event_destroy(ctx, e0), XKV_OK);
  ck_assert_int_eq(xkv_event_destroy(ctx, e1), XKV_OK);
  ck_assert_int_eq(xkv_stream_destroy(ctx, s), XKV_OK);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  Suite *s = suite_create("runtime_cpu");
  TCase *tc = tcase_create("cpu");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, vadd_from_directory);
  tcase_add_test(tc, vadd_from_embedded_table);
  tcase_add_test(tc, program_ids_3d);
  tcase_add_test(tc, results_independent_of_threads);
  tcase_add_test(tc, memory_copies);
  tcase_add_test(tc, streams_and_events);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
