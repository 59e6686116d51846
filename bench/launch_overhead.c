/* Host-side cost of one xkv_launch of an empty kernel.
 *   CPU device: xkv_launch (explicit grid, grid rule, by name) against a
 *   direct call of the host function.
 *   CUDA device (when present): xkv_launch against a raw cuLaunchKernel of
 *   the same module-loaded function, in the same run.
 * Prints ns per launch (median of batches). Usage: launch_overhead [N] */
#include "xkv.h"
#ifdef XKV_HAVE_CUDA
#include "../runtime/cuda_api.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCHES 15

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

/* The empty host kernel, with the host ABI. */
static int32_t empty_host(void **args, const int32_t *pid,
                          const int32_t *nprog) {
  __asm__ volatile("" ::: "memory");
  return 0;
}

static const char host_manifest[] =
    "{\"format\": \"xkv-manifest-1\", \"target\": \"host\", \"variants\": ["
    "{\"kernel\": \"empty\", \"symbol\": \"empty_host\", \"file\": \"e.o\","
    " \"consts\": {\"BLOCK\": 128}, \"num_warps\": 4, \"num_stages\": 1,"
    " \"args\": [{\"name\": \"P\", \"type\": \"ptr<f32>\"},"
    "            {\"name\": \"N\", \"type\": \"i32\"}],"
    " \"grid\": [\"cdiv(N, BLOCK)\", \"1\", \"1\"], \"key\": [],"
    " \"shared_bytes\": 0, \"threads\": 128}]}";

static const char empty_ptx[] =
    ".version 7.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry empty_gpu(.param .u64 P, .param .u32 N)\n{\n  ret;\n}\n";

static const char gpu_manifest[] =
    "{\"format\": \"xkv-manifest-1\", \"target\": \"sm_75\", \"variants\": ["
    "{\"kernel\": \"empty\", \"symbol\": \"empty_gpu\", \"file\": \"e.ptx\","
    " \"consts\": {\"BLOCK\": 128}, \"num_warps\": 4, \"num_stages\": 1,"
    " \"args\": [{\"name\": \"P\", \"type\": \"ptr<f32>\"},"
    "            {\"name\": \"N\", \"type\": \"i32\"}],"
    " \"grid\": [\"cdiv(N, BLOCK)\", \"1\", \"1\"], \"key\": [],"
    " \"shared_bytes\": 0, \"threads\": 128}]}";

typedef enum { DIRECT, EXPLICIT, RULE, NAMED, RAW_CUDA } mode;

typedef struct {
  xkv_context *ctx;
  xkv_kernel *k;
  xkv_arg args[2];
#ifdef XKV_HAVE_CUDA
  rt_cuda_api *api;
  CUfunction fn;
#endif
} setup;

static int run(setup *s, mode m, int n) {
  xkv_grid g = {1, 1, 1};
  xkv_status st = XKV_OK;
  void *params[2] = {&s->args[0].v, &s->args[1].v};
  int32_t pid[3] = {0, 0, 0}, nprog[3] = {1, 1, 1};
  for (int i = 0; i < n && !st; i++) {
    switch (m) {
    case DIRECT:
      empty_host(params, pid, nprog);
      break;
    case EXPLICIT:
      st = xkv_launch(s->ctx, s->k, &g, s->args, 2, NULL);
      break;
    case RULE:
      st = xkv_launch(s->ctx, s->k, NULL, s->args, 2, NULL);
      break;
    case NAMED:
      st = xkv_launch_named(s->ctx, "empty", NULL, 0, NULL, s->args, 2, NULL);
      break;
    case RAW_CUDA:
#ifdef XKV_HAVE_CUDA
      st = s->api->cuLaunchKernel(s->fn, 1, 1, 1, 128, 1, 1, 0, NULL, params,
                                  NULL)
               ? XKV_ERR_LAUNCH
               : XKV_OK;
#endif
      break;
    }
  }
  if (st)
    fprintf(stderr, "launch_overhead: %s\n", xkv_last_error(s->ctx));
  return st ? -1 : 0;
}

/* ns per launch: batches of n launches, then a sync (not timed). */
static double measure(setup *s, mode m, int n) {
  double t[BATCHES];
  for (int b = 0; b < BATCHES; b++) {
    double t0 = now_ns();
    if (run(s, m, n))
      return -1;
    t[b] = (now_ns() - t0) / n;
    xkv_sync(s->ctx);
  }
  return median(t, BATCHES);
}

static int bench_cpu(int n) {
  setenv("XKV_NUM_THREADS", "1", 0);
  setup s = {0};
  if (xkv_open(&s.ctx, "cpu")) {
    fprintf(stderr, "launch_overhead: %s\n", xkv_last_error(s.ctx));
    return 1;
  }
  xkv_embedded_variant v = {"empty_host", empty_host, NULL, NULL, 0};
  xkv_embedded e = {host_manifest, "host", 1, &v};
  float buf[4];
  s.args[0] = xkv_arg_ptr(XKV_F32, buf);
  s.args[1] = xkv_arg_i32(100);
  if (xkv_registry_add_embedded(s.ctx, &e) ||
      xkv_kernel_find(s.ctx, "empty", NULL, 0, &s.k)) {
    fprintf(stderr, "launch_overhead: %s\n", xkv_last_error(s.ctx));
    xkv_close(s.ctx);
    return 1;
  }
  double direct = measure(&s, DIRECT, n), expl = measure(&s, EXPLICIT, n),
         rule = measure(&s, RULE, n), named = measure(&s, NAMED, n);
  printf("cpu device, empty kernel, 1 program, %d launches x %d batches:\n", n,
         BATCHES);
  printf("  direct host call            %8.1f ns\n", direct);
  printf("  xkv_launch, explicit grid   %8.1f ns  (+%.1f)\n", expl,
         expl - direct);
  printf("  xkv_launch, grid rule       %8.1f ns  (+%.1f)\n", rule,
         rule - direct);
  printf("  xkv_launch_named            %8.1f ns  (+%.1f)\n", named,
         named - direct);
  xkv_close(s.ctx);
  return 0;
}

static int bench_gpu(int n) {
#ifdef XKV_HAVE_CUDA
  setup s = {0};
  xkv_status st = xkv_open(&s.ctx, "cuda");
  if (st) {
    printf("cuda device: skipped (%s)\n", xkv_last_error(s.ctx));
    xkv_close(s.ctx);
    return 0;
  }
  xkv_embedded_variant v = {"empty_gpu", NULL, empty_ptx, NULL, 0};
  xkv_embedded e = {gpu_manifest, "sm_75", 1, &v};
  void *buf;
  rt_cuda_api api;
  char err[512];
  CUmodule mod;
  if (xkv_registry_add_embedded(s.ctx, &e) ||
      xkv_kernel_find(s.ctx, "empty", NULL, 0, &s.k) ||
      xkv_alloc(s.ctx, 4096, &buf)) {
    fprintf(stderr, "launch_overhead: %s\n", xkv_last_error(s.ctx));
    xkv_close(s.ctx);
    return 1;
  }
  s.args[0] = xkv_arg_ptr(XKV_F32, buf);
  s.args[1] = xkv_arg_i32(100);
  /* The raw path: the same PTX through the driver API directly, in the
   * context xkv made current (the device's primary context). */
  if (rt_cuda_api_load(&api, err, sizeof err) ||
      api.cuModuleLoadData(&mod, empty_ptx) ||
      api.cuModuleGetFunction(&s.fn, mod, "empty_gpu")) {
    fprintf(stderr, "launch_overhead: raw driver setup failed: %s\n", err);
    xkv_close(s.ctx);
    return 1;
  }
  s.api = &api;
  /* Warm up both paths (module load on xkv's first launch). */
  run(&s, EXPLICIT, 100);
  run(&s, RAW_CUDA, 100);
  xkv_sync(s.ctx);
  double raw = measure(&s, RAW_CUDA, n), expl = measure(&s, EXPLICIT, n),
         rule = measure(&s, RULE, n), raw2 = measure(&s, RAW_CUDA, n);
  raw = raw < raw2 ? raw : raw2;
  xkv_device_info d;
  xkv_device_get_info(s.ctx, &d);
  printf("cuda device %s (%s), empty kernel, %d launches x %d batches:\n",
         d.name, d.arch, n, BATCHES);
  printf("  raw cuLaunchKernel          %8.1f ns\n", raw);
  printf("  xkv_launch, explicit grid   %8.1f ns  (+%.1f)\n", expl, expl - raw);
  printf("  xkv_launch, grid rule       %8.1f ns  (+%.1f)\n", rule, rule - raw);
  api.cuModuleUnload(mod);
  rt_cuda_api_unload(&api);
  xkv_close(s.ctx);
#else
  printf("cuda device: skipped (built without cuda.h)\n");
#endif
  return 0;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  if (n < 1) {
    fprintf(stderr, "usage: launch_overhead [LAUNCHES_PER_BATCH]\n");
    return 2;
  }
  int rc = bench_cpu(n);
  return rc ? rc : bench_gpu(n < 5000 ? n : 5000);
}
