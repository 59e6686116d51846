/* Error paths: every bad input gives an error status and a sentence naming
 * the cause, never a crash. */
#include "rt_kernels.h"
#include "rt_util.h"
#include "text.h"
#include "xkv.h"

#include "check_main.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STUB "/usr/local/cuda/lib64/stubs/libcuda.so"

#define ASSERT_ERR(call, status, fragment)                                     \
  do {                                                                         \
    xkv_status s_ = (call);                                                    \
    ck_assert_msg(s_ == (status), "%s: got %s (%s)", #call,                    \
                  xkv_status_name(s_), xkv_last_error(ctx));                   \
    ck_assert_msg(strstr(xkv_last_error(ctx), fragment), "'%s' lacks '%s'",    \
                  xkv_last_error(ctx), fragment);                              \
  } while (0)

static xkv_context *open_loaded(void) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
  return ctx;
}

START_TEST(launch_errors) {
  xkv_context *ctx = open_loaded();
  float *x;
  ck_assert_int_eq(xkv_alloc(ctx, 1024, (void **)&x), XKV_OK);
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, x),
                 xkv_arg_ptr(XKV_F32, x), xkv_arg_i32(10)};
  xkv_kernel *k;
  ASSERT_ERR(xkv_kernel_find(ctx, "vaddd", NULL, 0, &k), XKV_ERR_NOT_FOUND,
             "no kernel 'vaddd' in the registry (kernels: vadd, pid3");
  xkv_const bad = {"BLOK", 256};
  ASSERT_ERR(xkv_kernel_find(ctx, "vadd", &bad, 1, &k), XKV_ERR_NOT_FOUND,
             "kernel 'vadd' has no constexpr 'BLOK'");
  ASSERT_ERR(xkv_launch_named(ctx, "nope", NULL, 0, NULL, a, 4, NULL),
             XKV_ERR_NOT_FOUND, "no kernel 'nope'");
  ck_assert_int_eq(xkv_kernel_find(ctx, "vadd", NULL, 0, &k), XKV_OK);
  ASSERT_ERR(xkv_launch(ctx, k, NULL, a, 3, NULL), XKV_ERR_ARGS,
             "xkv_launch(vadd): 3 arguments given, the kernel takes 4 (X: "
             "ptr<f32>, Y: ptr<f32>, Z: ptr<f32>, N: i32)");
  ASSERT_ERR(xkv_launch(ctx, k, NULL, a, 5, NULL), XKV_ERR_ARGS,
             "5 arguments given");
  ASSERT_ERR(xkv_launch(ctx, k, NULL, NULL, 4, NULL), XKV_ERR_ARGS,
             "arguments given");
  a[1] = xkv_arg_ptr(XKV_F16, x);
  ASSERT_ERR(xkv_launch(ctx, k, NULL, a, 4, NULL), XKV_ERR_ARGS,
             "argument 1 'Y' must be ptr<f32>, got ptr<f16>");
  a[1] = xkv_arg_ptr(XKV_F32, x);
  a[3] = xkv_arg_i64(10);
  ASSERT_ERR(xkv_launch(ctx, k, NULL, a, 4, NULL), XKV_ERR_ARGS,
             "argument 3 'N' must be i32, got i64");
  a[3] = xkv_arg_f32(10);
  ASSERT_ERR(xkv_launch(ctx, k, NULL, a, 4, NULL), XKV_ERR_ARGS,
             "must be i32, got f32");
  a[3] = xkv_arg_i32(10);
  a[0] = xkv_arg_i32(0);
  ASSERT_ERR(xkv_launch(ctx, k, NULL, a, 4, NULL), XKV_ERR_ARGS,
             "argument 0 'X' must be ptr<f32>, got i32");
  a[0] = xkv_arg_ptr(XKV_F32, x);
  ASSERT_ERR(xkv_launch(ctx, NULL, NULL, a, 4, NULL), XKV_ERR_INVALID,
             "kernel handle is NULL");
  /* Grids the device cannot run. */
  xkv_grid huge = {1u << 31, 1, 1};
  ASSERT_ERR(xkv_launch(ctx, k, &huge, a, 4, NULL), XKV_ERR_GRID,
             "above INT32_MAX");
  xkv_grid empty = {0, 1, 1};
  ck_assert_int_eq(xkv_launch(ctx, k, &empty, a, 4, NULL), XKV_OK);
  /* A negative size: cdiv(-300, 256) is 0 programs, nothing runs. */
  a[3] = xkv_arg_i32(-300);
  ck_assert_int_eq(xkv_launch(ctx, k, NULL, a, 4, NULL), XKV_OK);
  /* A rule that goes negative is an error. */
  xkv_arg p[] = {xkv_arg_ptr(XKV_I32, x), xkv_arg_i32(-3), xkv_arg_i32(1),
                 xkv_arg_i32(1)};
  ASSERT_ERR(xkv_launch_named(ctx, "pid3", NULL, 0, NULL, p, 4, NULL),
             XKV_ERR_GRID,
             "xkv_launch(pid3): grid rule 'GX' gives -3 programs");
  xkv_close(ctx);
}
END_TEST

/* A manifest whose grid rule divides by an argument. */
static const char *grid_manifest =
    "{\"format\": \"xkv-manifest-1\", \"target\": \"host\", \"variants\": ["
    "{\"kernel\": \"g\", \"symbol\": \"rt_empty\", \"file\": \"rt_empty.o\","
    " \"consts\": {}, \"num_warps\": 1, \"num_stages\": 1,"
    " \"args\": [{\"name\": \"P\", \"type\": \"ptr<f32>\"},"
    "            {\"name\": \"N\", \"type\": \"i32\"}],"
    " \"grid\": [\"cdiv(4, N)\", \"1 +\", \"1\"], \"key\": [],"
    " \"shared_bytes\": 0, \"threads\": 32}]}";

START_TEST(grid_rule_errors) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  xkv_embedded_variant v = {"rt_empty", rt_empty, 0, 0, 0};
  xkv_embedded e = {grid_manifest, "host", 1, &v};
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &e), XKV_OK);
  float f;
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, &f), xkv_arg_i32(0)};
  ASSERT_ERR(xkv_launch_named(ctx, "g", NULL, 0, NULL, a, 2, NULL),
             XKV_ERR_GRID,
             "xkv_launch(g): grid rule 'cdiv(4, N)': division "
             "by zero");
  a[1] = xkv_arg_i32(2);
  ASSERT_ERR(xkv_launch_named(ctx, "g", NULL, 0, NULL, a, 2, NULL),
             XKV_ERR_GRID, "grid rule '1 +'");
  xkv_grid g = {1, 1, 1}; /* an explicit grid bypasses the rule */
  ck_assert_int_eq(xkv_launch_named(ctx, "g", NULL, 0, &g, a, 2, NULL), XKV_OK);
  xkv_close(ctx);
}
END_TEST

/* A kernel without a grid rule ("grid": null) runs only with an explicit
 * grid: launching it without one used to run one program and say OK. */
START_TEST(no_grid_rule) {
  char *m =
      rt_replace(grid_manifest, "[\"cdiv(4, N)\", \"1 +\", \"1\"]", "null");
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  xkv_embedded_variant v = {"rt_empty", rt_empty, 0, 0, 0};
  xkv_embedded e = {m, "host", 1, &v};
  ck_assert_int_eq(xkv_registry_add_embedded(ctx, &e), XKV_OK);
  float f;
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, &f), xkv_arg_i32(4)};
  ASSERT_ERR(xkv_launch_named(ctx, "g", NULL, 0, NULL, a, 2, NULL),
             XKV_ERR_GRID,
             "xkv_launch(g): the kernel has no grid rule (no grid = {...} in "
             "its kernels.xk spec), so the launch must pass an explicit "
             "xkv_grid");
  xkv_kernel *k;
  xkv_grid out;
  ck_assert_int_eq(xkv_kernel_find(ctx, "g", NULL, 0, &k), XKV_OK);
  ASSERT_ERR(xkv_kernel_grid(ctx, k, a, 2, &out), XKV_ERR_GRID,
             "has no grid rule");
  xkv_grid g = {3, 1, 1};
  ck_assert_int_eq(xkv_launch_named(ctx, "g", NULL, 0, &g, a, 2, NULL), XKV_OK);
  xkv_close(ctx);
  free(m);
}
END_TEST

/* Mutations of the good manifest and the error each must give. */
static const struct {
  const char *from, *to, *fragment;
} corruptions[] = {
    {"\"format\": \"xkv-manifest-1\"", "\"format\": \"v0\"",
     "'format' is 'v0'"},
    {"\"ptr<f32>\"", "\"ptr<f33>\"", "has type 'ptr<f33>'"},
    {"\"cdiv(N, BLOCK)\"", "\"cdiv(N, BLOCKS)\"", "uses 'BLOCKS'"},
    {"\"num_warps\": 4", "\"num_warps\": 0", "'num_warps' missing"},
    {"\"threads\": 128", "\"threads\": \"128\"", "'threads' missing"},
    {"\"div16\"", "\"div17\"", "spec 'div17' for 'N'"},
    {"\"Z\": \"align16\"", "\"N\": \"align16\"",
     "spec 'align16' does not apply to argument 'N'"},
    {"\"Z\": \"align16\"", "\"N\": \"one\"", "'N' specialized twice"},
    {"{\"name\": \"Y\"", "{\"name\": \"X\"", "'X' appears twice"},
    {"\"kernel\": \"vadd\"", "\"kernel\": \"v add\"", "not an identifier"},
    {"\"file\": \"rt_vadd_b64.o\"", "\"file\": \"../x.o\"", "plain file"},
    {"\"BLOCK\": 64", "\"BLOCK\": true", "a number or a string"},
    /* a float constexpr loads, but grid rules take integers only */
    {"\"BLOCK\": 64", "\"BLOCK\": 6.4", "not an int argument or constexpr"},
    {"\"variants\": [", "\"variants\": {", "line"},
    {"\"grid\": [\"1\", \"1\", \"1\"]", "\"grid\": [\"1\", \"1\"]",
     "not 3 rules"},
    {"{\"name\": \"N\", \"type\": \"i32\"}],\n     \"grid\": [\"cdiv(N, "
     "BLOCK)\", \"1\", \"1\"], \"key\": [\"BLOCK\"],\n     \"shared_bytes\": "
     "0, "
     "\"threads\": 128},\n    {\"kernel\": \"vadd\", \"symbol\": "
     "\"rt_vadd_b64\"",
     "{\"name\": \"N\", \"type\": \"i64\"}],\n     \"grid\": [\"cdiv(N, "
     "BLOCK)\", \"1\", \"1\"], \"key\": [\"BLOCK\"],\n     \"shared_bytes\": "
     "0, "
     "\"threads\": 128},\n    {\"kernel\": \"vadd\", \"symbol\": "
     "\"rt_vadd_b64\"",
     "has signature"},
    {"\"symbol\": \"rt_empty\"", "\"symbol\": \"rt_nope\"",
     "symbol rt_nope missing from"},
};

START_TEST(corrupt_manifests) {
  char *good = xk_read_file(RT_HOST_DIR "/manifest.json", NULL, NULL);
  ck_assert_ptr_nonnull(good);
  char *dir = rt_tmpdir("corrupt");
  char so[4096], link[4096];
  snprintf(so, sizeof so, "%s/kernels.so", RT_HOST_DIR);
  snprintf(link, sizeof link, "%s/kernels.so", dir);
  ck_assert_int_eq(symlink(so, link), 0);
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  for (size_t i = 0; i < sizeof corruptions / sizeof *corruptions; i++) {
    ck_assert_msg(strstr(good, corruptions[i].from), "no '%s' in manifest",
                  corruptions[i].from);
    char *bad = rt_replace(good, corruptions[i].from, corruptions[i].to);
    ck_assert_int_eq(rt_write(dir, "manifest.json", bad), 0);
    ASSERT_ERR(xkv_registry_load(ctx, dir), XKV_ERR_MANIFEST,
               corruptions[i].fragment);
    ck_assert_msg(strstr(xkv_last_error(ctx), "manifest.json"), "%s",
                  xkv_last_error(ctx));
    free(bad);
  }
  /* Truncated at every 97th byte: always an error, never a crash. */
  size_t n = strlen(good);
  for (size_t cut = 0; cut < n; cut += 97) {
    char *t = strndup(good, cut);
    ck_assert_int_eq(rt_write(dir, "manifest.json", t), 0);
    ck_assert_int_eq(xkv_registry_load(ctx, dir), XKV_ERR_MANIFEST);
    free(t);
  }
  ck_assert_int_eq(rt_write(dir, "manifest.json",
                            "\x7f"
                            "ELF garbage"),
                   0);
  ASSERT_ERR(xkv_registry_load(ctx, dir), XKV_ERR_MANIFEST,
             "corrupt manifest: line 1, column 1");
  ck_assert_int_eq(xkv_num_variants(ctx), 0); /* all or nothing */
  /* The good manifest without its kernels.so. */
  unlink(link);
  ck_assert_int_eq(rt_write(dir, "manifest.json", good), 0);
  ASSERT_ERR(xkv_registry_load(ctx, dir), XKV_ERR_MANIFEST,
             "kernels.so: missing");
  ck_assert_int_eq(rt_write(dir, "kernels.so", "not an ELF file"), 0);
  ASSERT_ERR(xkv_registry_load(ctx, dir), XKV_ERR_MANIFEST,
             "kernels.so: cannot load");
  /* No manifest at all. */
  ASSERT_ERR(xkv_registry_load(ctx, RT_TMP "/no/such/dir"), XKV_ERR_MANIFEST,
             "no/such/dir/manifest.json: cannot read the manifest: No such "
             "file or directory");
  ck_assert_int_eq(xkv_num_variants(ctx), 0);
  xkv_close(ctx);
  rt_rmdir(dir);
  free(dir);
  free(good);
}
END_TEST

START_TEST(memory_errors) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  void *p = (void *)1;
  ASSERT_ERR(xkv_alloc(ctx, (size_t)1 << 60, &p), XKV_ERR_OUT_OF_MEMORY,
             "1152921504606846976 bytes requested");
  ck_assert_ptr_null(p);
  ASSERT_ERR(xkv_alloc(ctx, SIZE_MAX, &p), XKV_ERR_OUT_OF_MEMORY, "bytes");
  ASSERT_ERR(xkv_alloc(ctx, 16, NULL), XKV_ERR_INVALID, "dptr is NULL");
  int local;
  ASSERT_ERR(xkv_free(ctx, &local), XKV_ERR_INVALID,
             "was not allocated by this context");
  ck_assert_int_eq(xkv_alloc(ctx, 64, &p), XKV_OK);
  ck_assert_int_eq(xkv_free(ctx, p), XKV_OK);
  ASSERT_ERR(xkv_free(ctx, p), XKV_ERR_INVALID, "already freed");
  ASSERT_ERR(xkv_copy_h2d(ctx, NULL, &local, 4, NULL), XKV_ERR_INVALID,
             "xkv_copy_h2d: destination pointer is NULL");
  ASSERT_ERR(xkv_copy_d2h(ctx, &local, NULL, 4, NULL), XKV_ERR_INVALID,
             "xkv_copy_d2h: source pointer is NULL");
  ASSERT_ERR(xkv_memset(ctx, NULL, 0, 4, NULL), XKV_ERR_INVALID, "NULL");
  xkv_event *e0, *e1;
  float ms;
  ck_assert_int_eq(xkv_event_create(ctx, &e0), XKV_OK);
  ck_assert_int_eq(xkv_event_create(ctx, &e1), XKV_OK);
  ck_assert_int_eq(xkv_event_record(ctx, e0, NULL), XKV_OK);
  ASSERT_ERR(xkv_event_elapsed_ms(ctx, e0, e1, &ms), XKV_ERR_INVALID,
             "the end event was never recorded");
  xkv_event_destroy(ctx, e0);
  xkv_event_destroy(ctx, e1);
  xkv_close(ctx);
  /* NULL contexts are refused, not dereferenced. */
  ck_assert_int_eq(xkv_alloc(NULL, 4, &p), XKV_ERR_INVALID);
  ck_assert_int_eq(xkv_sync(NULL), XKV_ERR_INVALID);
  ck_assert_int_eq(xkv_registry_load(NULL, "."), XKV_ERR_INVALID);
  ck_assert_ptr_nonnull(xkv_last_error(NULL));
  xkv_close(NULL);
}
END_TEST

START_TEST(open_errors) {
  xkv_context *ctx;
  ASSERT_ERR(xkv_open(&ctx, "tpu"), XKV_ERR_INVALID,
             "unknown device 'tpu' (auto, cpu, cuda, cuda:N)");
  /* A context that failed to open refuses work with a clear message. */
  ASSERT_ERR(xkv_registry_load(ctx, RT_HOST_DIR), XKV_ERR_INVALID,
             "the context failed to open");
  void *p;
  ASSERT_ERR(xkv_alloc(ctx, 4, &p), XKV_ERR_INVALID, "failed to open");
  xkv_close(ctx);
  ASSERT_ERR(xkv_open(&ctx, "cuda:x"), XKV_ERR_INVALID, "unknown device");
  xkv_close(ctx);
  setenv("XKV_NUM_THREADS", "0", 1);
  ASSERT_ERR(xkv_open(&ctx, "cpu"), XKV_ERR_INVALID,
             "XKV_NUM_THREADS='0' is not a thread count");
  xkv_close(ctx);
  setenv("XKV_NUM_THREADS", "4x", 1);
  ASSERT_ERR(xkv_open(&ctx, "cpu"), XKV_ERR_INVALID, "'4x'");
  xkv_close(ctx);
  unsetenv("XKV_NUM_THREADS");
}
END_TEST

/* Without a driver: "cuda" fails and says so; "auto" runs on the CPU. */
START_TEST(no_driver) {
  setenv("XKV_LIBCUDA", RT_TMP "/no/libcuda.so.1", 1);
  xkv_context *ctx;
  ASSERT_ERR(xkv_open(&ctx, "cuda"), XKV_ERR_NO_DRIVER,
             "no CUDA driver: cannot load " RT_TMP "/no/libcuda.so.1");
  xkv_close(ctx);
  ck_assert_int_eq(xkv_open(&ctx, "auto"), XKV_OK);
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "using the CPU: no CUDA "
                                                    "driver"));
  xkv_device_info d;
  ck_assert_int_eq(xkv_device_get_info(ctx, &d), XKV_OK);
  ck_assert_int_eq(d.kind, XKV_DEVICE_CPU);
  ck_assert_ptr_nonnull(strstr(d.note, "no CUDA driver"));
  /* ...and it works. */
  ck_assert_int_eq(xkv_registry_load(ctx, RT_HOST_DIR), XKV_OK);
  xkv_close(ctx);
  unsetenv("XKV_LIBCUDA");
}
END_TEST

/* The toolkit's stub libcuda answers cuInit with CUDA_ERROR_STUB_LIBRARY. */
START_TEST(stub_driver) {
  if (access(STUB, R_OK)) {
    printf("SKIP stub_driver: %s not present\n", STUB);
    return;
  }
  setenv("XKV_LIBCUDA", STUB, 1);
  xkv_context *ctx;
  ASSERT_ERR(xkv_open(&ctx, "cuda"), XKV_ERR_NO_DEVICE,
             "no GPU: the CUDA driver library is the toolkit's stub");
  ck_assert_ptr_nonnull(strstr(xkv_last_error(ctx), "CUDA_ERROR_STUB_LIBRARY"));
  xkv_close(ctx);
  ck_assert_int_eq(xkv_open(&ctx, "auto"), XKV_OK);
  xkv_device_info d;
  ck_assert_int_eq(xkv_device_get_info(ctx, &d), XKV_OK);
  ck_assert_int_eq(d.kind, XKV_DEVICE_CPU);
  ck_assert_ptr_nonnull(strstr(d.note, "CUDA_ERROR_STUB_LIBRARY"));
  xkv_close(ctx);
  unsetenv("XKV_LIBCUDA");
}
END_TEST

int main(void) {
  Suite *s = suite_create("runtime_errors");
  TCase *tc = tcase_create("errors");
  tcase_add_test(tc, launch_errors);
  tcase_add_test(tc, grid_rule_errors);
  tcase_add_test(tc, no_grid_rule);
  tcase_add_test(tc, corrupt_manifests);
  tcase_add_test(tc, memory_errors);
  tcase_add_test(tc, open_errors);
  tcase_add_test(tc, no_driver);
  tcase_add_test(tc, stub_driver);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
