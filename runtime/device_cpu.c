/* The CPU device: host kernels (xkvgen --target host) run over the grid on
 * a thread pool; device memory is host memory. Launches complete before
 * xkv_launch returns, so streams and sync are trivial. */
#include "internal.h"
#include "threadpool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  rt_pool *pool;
  uint64_t phys_bytes;
} cpu_dev;

typedef struct {
  xkv_host_fn fn;
  void **params;
  int32_t nprog[3];
  int64_t failed; /* programs that could not allocate their scratch */
} cpu_job;

static void run_programs(void *arg, int64_t lo, int64_t hi) {
  cpu_job *j = arg;
  int64_t gx = j->nprog[0], gxy = gx * j->nprog[1], failed = 0;
  int32_t pid[3];
  for (int64_t i = lo; i < hi; i++) {
    pid[0] = (int32_t)(i % gx);
    pid[1] = (int32_t)(i % gxy / gx);
    pid[2] = (int32_t)(i / gxy);
    failed += j->fn(j->params, pid, j->nprog) != 0;
  }
  if (failed)
    __atomic_add_fetch(&j->failed, failed, __ATOMIC_RELAXED);
}

static xkv_status cpu_launch(xkv_context *ctx, rt_variant *v,
                             const uint32_t g[3], void **params,
                             xkv_stream *s) {
  cpu_dev *d = ctx->dev;
  cpu_job j = {v->host_fn, params, {0, 0, 0}, 0};
  for (int i = 0; i < 3; i++) {
    if (g[i] > INT32_MAX)
      return rt_err(ctx, XKV_ERR_GRID,
                    "xkv_launch(%s): grid dimension %d is %u, above INT32_MAX",
                    v->kernel, i, g[i]);
    j.nprog[i] = (int32_t)g[i];
  }
  if (!j.fn)
    return rt_err(ctx, XKV_ERR_LAUNCH,
                  "xkv_launch(%s): variant %s has no host function", v->kernel,
                  v->symbol);
  int64_t n = (int64_t)g[0] * g[1] * g[2];
  rt_pool_run(d->pool, n, run_programs, &j);
  if (j.failed)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY,
                  "xkv_launch(%s): %lld of %lld programs of host variant %s "
                  "ran out of memory for their heap tiles (malloc failed); "
                  "the outputs are incomplete",
                  v->kernel, (long long)j.failed, (long long)n, v->symbol);
  return XKV_OK;
}

static void cpu_close(xkv_context *ctx) {
  cpu_dev *d = ctx->dev;
  rt_pool_free(d->pool);
  free(d);
}

static xkv_status cpu_info(xkv_context *ctx, xkv_device_info *o) {
  cpu_dev *d = ctx->dev;
  snprintf(o->name, sizeof o->name, "cpu");
  snprintf(o->arch, sizeof o->arch, "host");
  o->units = rt_pool_threads(d->pool);
  o->total_memory = d->phys_bytes;
  long avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  o->free_memory = avail > 0 && page > 0 ? (uint64_t)avail * (uint64_t)page : 0;
  return XKV_OK;
}

static xkv_status cpu_alloc(xkv_context *ctx, size_t bytes, void **p) {
  cpu_dev *d = ctx->dev;
  /* Refuse what the machine cannot hold rather than relying on overcommit
   * (which would fail later, at first touch, with a crash). */
  if (d->phys_bytes && bytes > d->phys_bytes)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY,
                  "xkv_alloc: %zu bytes requested, the machine has %llu bytes "
                  "of memory",
                  bytes, (unsigned long long)d->phys_bytes);
  /* 128-byte alignment like cuMemAlloc's (>= 256 there): vector loads and
   * the align16 specialization hold. */
  int rc = posix_memalign(p, 128, bytes);
  if (rc)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY,
                  "xkv_alloc: out of memory allocating %zu bytes: %s", bytes,
                  strerror(rc));
  return XKV_OK;
}

static xkv_status cpu_free(xkv_context *ctx, void *p) {
  free(p);
  return XKV_OK;
}

static xkv_status cpu_copy(xkv_context *ctx, void *dst, const void *src,
                           size_t n, int dir, xkv_stream *s) {
  memmove(dst, src, n);
  return XKV_OK;
}

static xkv_status cpu_memset(xkv_context *ctx, void *dst, int byte, size_t n,
                             xkv_stream *s) {
  memset(dst, byte, n);
  return XKV_OK;
}

static xkv_status cpu_nop_stream(xkv_context *ctx, xkv_stream *s) {
  return XKV_OK;
}

static xkv_status cpu_sync(xkv_context *ctx) {
  return XKV_OK;
}

static xkv_status cpu_nop_event(xkv_context *ctx, xkv_event *e) {
  return XKV_OK;
}

static xkv_status cpu_event_record(xkv_context *ctx, xkv_event *e,
                                   xkv_stream *s) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  e->t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
  return XKV_OK;
}

static xkv_status cpu_event_elapsed(xkv_context *ctx, xkv_event *a,
                                    xkv_event *b, float *ms) {
  *ms = (float)((b->t - a->t) * 1e3);
  return XKV_OK;
}

static xkv_status cpu_accept(xkv_context *ctx, const char *target) {
  if (!strcmp(target, "host"))
    return XKV_OK;
  return rt_err(ctx, XKV_ERR_TARGET,
                "artifacts for target '%s' cannot run on the CPU device "
                "(needs xkvgen --target host)",
                target);
}

static void cpu_unload(xkv_context *ctx, rt_variant *v) {}

static const rt_device_ops cpu_ops = {
    cpu_close,        cpu_info,          cpu_alloc,      cpu_free,
    cpu_copy,         cpu_memset,        cpu_nop_stream, cpu_nop_stream,
    cpu_nop_stream,   cpu_sync,          cpu_nop_event,  cpu_nop_event,
    cpu_event_record, cpu_event_elapsed, cpu_accept,     cpu_launch,
    cpu_unload};

/* XKV_NUM_THREADS: a positive integer; unset means all online cores. */
static int num_threads(xkv_context *ctx, int *out) {
  const char *s = getenv("XKV_NUM_THREADS");
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (s && *s) {
    char *end;
    errno = 0;
    n = strtol(s, &end, 10);
    if (errno || *end || n < 1 || n > 4096)
      return rt_err(ctx, XKV_ERR_INVALID,
                    "XKV_NUM_THREADS='%s' is not a thread count (1..4096)", s);
  }
  *out = n < 1 ? 1 : (int)n;
  return XKV_OK;
}

xkv_status rt_cpu_open(xkv_context *ctx) {
  int n = 1;
  xkv_status s = num_threads(ctx, &n);
  if (s)
    return s;
  cpu_dev *d = calloc(1, sizeof *d);
  if (!d || !(d->pool = rt_pool_new(n))) {
    free(d);
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_open(cpu): no memory");
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  d->phys_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
  ctx->dev = d;
  ctx->ops = &cpu_ops;
  ctx->kind = XKV_DEVICE_CPU;
  return XKV_OK;
}
