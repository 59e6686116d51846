/* The CUDA device (label "gpu"): hand-written PTX kernels through the
 * embedded table and a manifest directory (PTX and cubin), memory, streams,
 * events, and the CUDA error paths. Without a GPU it exits 77 (skipped). */
#include "rt_util.h"
#include "xkv.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char vadd_ptx[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry rt_gpu_vadd(.param .u64 X, .param .u64 Y, .param .u64 Z,"
    " .param .u32 N)\n{\n"
    "  .reg .pred %p<2>;\n  .reg .b32 %r<6>;\n  .reg .f32 %f<4>;\n"
    "  .reg .b64 %rd<11>;\n"
    "  ld.param.u64 %rd1, [X];\n  ld.param.u64 %rd2, [Y];\n"
    "  ld.param.u64 %rd3, [Z];\n  ld.param.u32 %r1, [N];\n"
    "  mov.u32 %r2, %ctaid.x;\n  mov.u32 %r3, %ntid.x;\n"
    "  mov.u32 %r4, %tid.x;\n  mad.lo.s32 %r5, %r2, %r3, %r4;\n"
    "  setp.ge.s32 %p1, %r5, %r1;\n  @%p1 bra DONE;\n"
    "  cvta.to.global.u64 %rd4, %rd1;\n  cvta.to.global.u64 %rd5, %rd2;\n"
    "  cvta.to.global.u64 %rd6, %rd3;\n  mul.wide.s32 %rd7, %r5, 4;\n"
    "  add.s64 %rd8, %rd4, %rd7;\n  add.s64 %rd9, %rd5, %rd7;\n"
    "  add.s64 %rd10, %rd6, %rd7;\n  ld.global.f32 %f1, [%rd8];\n"
    "  ld.global.f32 %f2, [%rd9];\n  add.f32 %f3, %f1, %f2;\n"
    "  st.global.f32 [%rd10], %f3;\nDONE:\n  ret;\n}\n";

static const char empty_ptx[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry rt_gpu_empty(.param .u64 P, .param .u32 N)\n{\n  "
    "ret;\n}\n";

static const char broken_ptx[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry rt_gpu_broken(.param .u64 P, .param .u32 N)\n{\n"
    "  this is not ptx;\n}\n";

#define VARIANT(kernel, sym, args, grid, threads)                              \
  "{\"kernel\": \"" kernel "\", \"symbol\": \"" sym "\", \"file\": \"" sym     \
  ".ptx\", \"consts\": {\"BLOCK\": 128}, \"num_warps\": 4, \"num_stages\": 1," \
  " \"args\": [" args "], \"grid\": [" grid ", \"1\", \"1\"], \"key\": [],"    \
  " \"shared_bytes\": 0, \"threads\": " threads "}"
#define VADD_ARGS                                                              \
  "{\"name\": \"X\", \"type\": \"ptr<f32>\"}, {\"name\": \"Y\", \"type\": "    \
  "\"ptr<f32>\"}, {\"name\": \"Z\", \"type\": \"ptr<f32>\"}, {\"name\": "      \
  "\"N\", \"type\": \"i32\"}"
#define PN_ARGS                                                                \
  "{\"name\": \"P\", \"type\": \"ptr<f32>\"}, {\"name\": \"N\", \"type\": "    \
  "\"i32\"}"

static const char manifest[] =
    "{\"format\": \"xkv-manifest-1\", \"target\": \"sm_75\", \"variants\": "
    "[" VARIANT("vadd", "rt_gpu_vadd", VADD_ARGS, "\"cdiv(N, BLOCK)\"",
                "128") "," VARIANT("empty", "rt_gpu_empty", PN_ARGS, "\"1\"",
                                   "32") "," VARIANT("broken", "rt_gpu_broken",
                                                     PN_ARGS, "\"1\"",
                                                     "32") "]}";

static const xkv_embedded_variant table[] = {
    {"rt_gpu_vadd", NULL, vadd_ptx, NULL, 0},
    {"rt_gpu_empty", NULL, empty_ptx, NULL, 0},
    {"rt_gpu_broken", NULL, broken_ptx, NULL, 0}};
static const xkv_embedded embedded = {manifest, "sm_75", 3, table};

static xkv_context *open_gpu(void) {
  xkv_context *ctx;
  xkv_status s = xkv_open(&ctx, "cuda");
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  return ctx;
}

static void run_vadd(xkv_context *ctx, int n, xkv_stream *st) {
  size_t bytes = (size_t)n * 4;
  float *hx = malloc(bytes), *hy = malloc(bytes), *hz = malloc(bytes);
  for (int i = 0; i < n; i++) {
    hx[i] = (float)i * 0.25f;
    hy[i] = 3.0f - (float)(i % 17);
  }
  void *x, *y, *z;
  ck_assert_int_eq(xkv_alloc(ctx, bytes, &x), XKV_OK);
  ck_assert_int_eq(xkv_alloc(ctx, bytes, &y), XKV_OK);
  ck_assert_int_eq(xkv_alloc(ctx, bytes, &z), XKV_OK);
  ck_assert_int_eq(xkv_copy_h2d(ctx, x, hx, bytes, st), XKV_OK);
  ck_assert_int_eq(xkv_copy_h2d(ctx, y, hy, bytes, st), XKV_OK);
  ck_assert_int_eq(xkv_memset(ctx, z, 0, bytes, st), XKV_OK);
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, y),
                 xkv_arg_ptr(XKV_F32, z), xkv_arg_i32(n)};
  xkv_status s = xkv_launch_named(ctx, "vadd", NULL, 0, NULL, a, 4, st);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  ck_assert_int_eq(xkv_copy_d2h(ctx, hz, z, bytes, st), XKV_OK);
  ck_assert_int_eq(xkv_stream_sync(ctx, st), XKV_OK);
  for (int i = 0; i < n; i++)
    ck_assert_msg(hz[i] == hx[i] + hy[i], "n=%d i=%d: %g", n, i, hz[i]);
  xkv_free(ctx, x);
  xkv_free(ctx, y);
  xkv_free(ctx, z);
  free(hx);
  free(hy);
  free(hz);
}

START_TEST(device_info) {
  xkv_context *ctx = open_gpu();
  xkv_device_info d;
  ck_assert_int_eq(xkv_device_get_info(ctx, &d), XKV_OK);
  ck_assert_int_eq(d.kind, XKV_DEVICE_CUDA);
  ck_assert_int_ge(d.cc_major, 7);
  ck_assert_int_gt(d.total_memory, 1u << 30);
  ck_assert_int_gt(d.driver_version, 0);
  ck_assert_int_gt(d.units, 0);
  printf("GPU: %s %s, driver %d, %d SMs\n", d.name, d.arch, d.driver_version,
         d.units);
  xkv_close(ctx);
}
END_TEST

START_TEST(embedded_ptx_kernels) {
  xkv_context *ctx = open_gpu();
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &embedded), XKV_OK);
  int sizes[] = {1, 127, 128, 129, 100000, 1 << 20};
  for (int i = 0; i < 6; i++)
    run_vadd(ctx, sizes[i], NULL);
  xkv_stream *st;
  ck_assert_int_eq(xkv_stream_create(ctx, &st), XKV_OK);
  run_vadd(ctx, 4099, st);
  ck_assert_int_eq(xkv_stream_destroy(ctx, st), XKV_OK);
  /* Launch failures name the kernel and the CUDA error. */
  float *p;
  ck_assert_int_eq(xkv_alloc(ctx, 64, (void **)&p), XKV_OK);
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, p), xkv_arg_i32(1)};
  xkv_status s = xkv_launch_named(ctx, "broken", NULL, 0, NULL, a, 2, NULL);
  ck_assert_int_eq(s, XKV_ERR_LAUNCH);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "kernel broken"));
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "CUDA_ERROR_"));
  printf("broken PTX: %s\n", xkv_last_error(ctx));
  xkv_grid big = {1, 70000, 1};
  s = xkv_launch_named(ctx, "empty", NULL, 0, &big, a, 2, NULL);
  ck_assert_int_eq(s, XKV_ERR_GRID);
  ck_assert_int_eq(xkv_sync(ctx), XKV_OK);
  xkv_close(ctx);
}
END_TEST

/* From a directory: PTX, and a cubin built here with ptxas when present. */
START_TEST(directory_ptx_and_cubin) {
  xkv_context *ctx = open_gpu();
  xkv_device_info d;
  ck_assert_int_eq(xkv_device_get_info(ctx, &d), XKV_OK);
  char *dir = rt_tmpdir("gpu");
  ck_assert_int_eq(rt_write(dir, "rt_gpu_vadd.ptx", vadd_ptx), 0);
  ck_assert_int_eq(rt_write(dir, "rt_gpu_empty.ptx", empty_ptx), 0);
  ck_assert_int_eq(rt_write(dir, "rt_gpu_broken.ptx", broken_ptx), 0);
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "%s -arch=%s %s/rt_gpu_vadd.ptx -o %s/v.cubin",
           XK_PTXAS, d.arch, dir, dir);
  int have_cubin = XK_PTXAS[0] && !access(XK_PTXAS, X_OK) && !system(cmd);
  char *m = rt_replace(manifest, "", "");
  if (have_cubin) { /* the first variant gets "cubin": "v.cubin" */
    char *m2 =
        rt_replace(m, "\"file\": \"rt_gpu_vadd.ptx\"",
                   "\"file\": \"rt_gpu_vadd.ptx\", \"cubin\": \"v.cubin\"");
    free(m);
    m = m2;
  }
  /* The cubin's target must be the device's for it to be used. */
  char target[64];
  snprintf(target, sizeof target, "\"target\": \"%s\"", d.arch);
  char *m3 = rt_replace(m, "\"target\": \"sm_75\"", target);
  ck_assert_int_eq(rt_write(dir, "manifest.json", m3), 0);
  xkv_status s = xkv_registry_load(ctx, dir);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  run_vadd(ctx, 12345, NULL);
  printf("directory load with%s cubin: ok\n", have_cubin ? "" : "out");
  /* Artifacts for a newer GPU are refused. */
  char *m4 =
      rt_replace(manifest, "\"target\": \"sm_75\"", "\"target\": \"sm_990\"");
  ck_assert_int_eq(rt_write(dir, "manifest.json", m4), 0);
  ck_assert_int_eq(xkv_registry_load(ctx, dir), XKV_ERR_TARGET);
  xkv_close(ctx);
  rt_rmdir(dir);
  free(dir);
  free(m);
  free(m3);
  free(m4);
}
END_TEST

START_TEST(memory_and_events) {
  xkv_context *ctx = open_gpu();
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &embedded), XKV_OK);
  void *p = NULL;
  xkv_status s = xkv_alloc(ctx, (size_t)1 << 50, &p);
  ck_assert_int_eq(s, XKV_ERR_OUT_OF_MEMORY);
  ck_assert_ptr_nonnull(
      strstr(xkv_last_error(ctx), "CUDA_ERROR_OUT_OF_MEMORY"));
  unsigned char h[4096], back[4096];
  for (int i = 0; i < 4096; i++)
    h[i] = (unsigned char)(i * 13);
  void *a, *b;
  ck_assert_int_eq(xkv_alloc(ctx, 4096, &a), XKV_OK);
  ck_assert_int_eq(xkv_alloc(ctx, 4096, &b), XKV_OK);
  ck_assert_int_eq(xkv_copy_h2d(ctx, a, h, 4096, NULL), XKV_OK);
  ck_assert_int_eq(xkv_copy_d2d(ctx, b, a, 4096, NULL), XKV_OK);
  ck_assert_int_eq(xkv_memset(ctx, b, 7, 100, NULL), XKV_OK);
  ck_assert_int_eq(xkv_copy_d2h(ctx, back, b, 4096, NULL), XKV_OK);
  for (int i = 0; i < 4096; i++)
    ck_assert_int_eq(back[i], i < 100 ? 7 : (unsigned char)(i * 13));
  int local;
  ck_assert_int_eq(xkv_free(ctx, &local), XKV_ERR_INVALID);
  xkv_event *e0, *e1;
  ck_assert_int_eq(xkv_event_create(ctx, &e0), XKV_OK);
  ck_assert_int_eq(xkv_event_create(ctx, &e1), XKV_OK);
  xkv_kernel *k;
  ck_assert_int_eq(xkv_kernel_find(ctx, "empty", NULL, 0, &k), XKV_OK);
  xkv_arg args[] = {xkv_arg_ptr(XKV_F32, a), xkv_arg_i32(0)};
  ck_assert_int_eq(xkv_event_record(ctx, e0, NULL), XKV_OK);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(xkv_launch(ctx, k, NULL, args, 2, NULL), XKV_OK);
  ck_assert_int_eq(xkv_event_record(ctx, e1, NULL), XKV_OK);
  float ms = -1;
  ck_assert_int_eq(xkv_event_elapsed_ms(ctx, e0, e1, &ms), XKV_OK);
  ck_assert(ms > 0 && ms < 1000);
  printf("100 empty launches: %.3f ms on the GPU\n", ms);
  xkv_event_destroy(ctx, e0);
  xkv_event_destroy(ctx, e1);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  xkv_context *probe;
  xkv_status s = xkv_open(&probe, "cuda");
  if (s == XKV_ERR_NO_DRIVER || s == XKV_ERR_NO_DEVICE) {
    printf("SKIP test_runtime_cuda: no GPU here (%s)\n", xkv_last_error(probe));
    xkv_close(probe);
    return 77;
  }
  xkv_close(probe);
  Suite *su = suite_create("runtime_cuda");
  TCase *tc = tcase_create("cuda");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, device_info);
  tcase_add_test(tc, embedded_ptx_kernels);
  tcase_add_test(tc, directory_ptx_and_cubin);
  tcase_add_test(tc, memory_and_events);
  suite_add_tcase(su, tc);
  return xk_check_run(su);
}
