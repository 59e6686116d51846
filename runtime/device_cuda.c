/* The CUDA device: driver API through cuda_api.c, the device's primary
 * context, modules loaded on a variant's first launch and cached. */
#include "arch.h"
#include "cuda_api.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  rt_cuda_api api;
  CUdevice dev;
  CUcontext cu;
  int ordinal, cc_major, cc_minor;
} cuda_dev;

static xkv_status cuda_fail(xkv_context *ctx, xkv_status s, CUresult r,
                            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "<what>: CUDA_ERROR_X (description)" */
static xkv_status cuda_fail(xkv_context *ctx, xkv_status s, CUresult r,
                            const char *fmt, ...) {
  cuda_dev *d = ctx->dev;
  char what[512], text[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  rt_cuda_error_text(d ? &d->api : NULL, r, text, sizeof text);
  return rt_err(ctx, s, "%s: %s", what, text);
}

/* The primary context must be current on the calling thread; reading the
 * current one is a thread-local read in the driver, setting is rarer. */
static CUresult bind(cuda_dev *d) {
  CUcontext cur = NULL;
  if (!d->api.cuCtxGetCurrent(&cur) && cur == d->cu)
    return CUDA_SUCCESS;
  return d->api.cuCtxSetCurrent(d->cu);
}

#define BIND(ctx, d, what)                                                     \
  do {                                                                         \
    CUresult r_ = bind(d);                                                     \
    if (r_)                                                                    \
      return cuda_fail(ctx, XKV_ERR_CUDA, r_,                                  \
                       "%s: cannot make the CUDA context current", what);      \
  } while (0)

static CUstream stream_of(xkv_stream *s) {
  return s ? (CUstream)s->h : NULL;
}

static void cuda_close(xkv_context *ctx) {
  cuda_dev *d = ctx->dev;
  if (!d)
    return;
  if (d->cu) {
    bind(d);
    d->api.cuCtxSynchronize();
    d->api.cuDevicePrimaryCtxRelease(d->dev);
  }
  rt_cuda_api_unload(&d->api);
  free(d);
  ctx->dev = NULL;
}

static xkv_status cuda_info(xkv_context *ctx, xkv_device_info *o) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_device_get_info");
  d->api.cuDeviceGetName(o->name, (int)sizeof o->name, d->dev);
  snprintf(o->arch, sizeof o->arch, "sm_%d%d", d->cc_major, d->cc_minor);
  o->cc_major = d->cc_major;
  o->cc_minor = d->cc_minor;
  d->api.cuDriverGetVersion(&o->driver_version);
  d->api.cuDeviceGetAttribute(&o->units,
                              CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d->dev);
  size_t total = 0, free_b = 0;
  d->api.cuDeviceTotalMem(&total, d->dev);
  d->api.cuMemGetInfo(&free_b, &total);
  o->total_memory = total;
  o->free_memory = free_b;
  return XKV_OK;
}

static xkv_status cuda_alloc(xkv_context *ctx, size_t bytes, void **p) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_alloc");
  CUdeviceptr dp = 0;
  CUresult r = d->api.cuMemAlloc(&dp, bytes);
  if (r)
    return cuda_fail(ctx,
                     r == CUDA_ERROR_OUT_OF_MEMORY ? XKV_ERR_OUT_OF_MEMORY
                                                   : XKV_ERR_CUDA,
                     r, "xkv_alloc: cuMemAlloc(%zu bytes) failed", bytes);
  *p = (void *)(uintptr_t)dp;
  return XKV_OK;
}

static xkv_status cuda_free(xkv_context *ctx, void *p) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_free");
  CUresult r = d->api.cuMemFree((CUdeviceptr)(uintptr_t)p);
  return r ? cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_free: cuMemFree failed")
           : XKV_OK;
}

static xkv_status cuda_copy(xkv_context *ctx, void *dst, const void *src,
                            size_t n, int dir, xkv_stream *s) {
  cuda_dev *d = ctx->dev;
  static const char *names[] = {"xkv_copy_h2d", "xkv_copy_d2h", "xkv_copy_d2d"};
  BIND(ctx, d, names[dir]);
  CUdeviceptr dd = (CUdeviceptr)(uintptr_t)dst;
  CUdeviceptr ds = (CUdeviceptr)(uintptr_t)src;
  CUresult r;
  if (!s) {
    r = dir == 0   ? d->api.cuMemcpyHtoD(dd, src, n)
        : dir == 1 ? d->api.cuMemcpyDtoH(dst, ds, n)
                   : d->api.cuMemcpyDtoD(dd, ds, n);
    /* DtoD is asynchronous for the host; "NULL stream = done" says wait. */
    if (!r && dir == 2)
      r = d->api.cuStreamSynchronize(NULL);
  } else {
    CUstream st = stream_of(s);
    r = dir == 0   ? d->api.cuMemcpyHtoDAsync(dd, src, n, st)
        : dir == 1 ? d->api.cuMemcpyDtoHAsync(dst, ds, n, st)
                   : d->api.cuMemcpyDtoDAsync(dd, ds, n, st);
  }
  return r ? cuda_fail(ctx, XKV_ERR_CUDA, r, "%s of %zu bytes failed",
                       names[dir], n)
           : XKV_OK;
}

static xkv_status cuda_memset(xkv_context *ctx, void *dst, int byte, size_t n,
                              xkv_stream *s) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_memset");
  CUdeviceptr dd = (CUdeviceptr)(uintptr_t)dst;
  CUresult r =
      s ? d->api.cuMemsetD8Async(dd, (unsigned char)byte, n, stream_of(s))
        : d->api.cuMemsetD8(dd, (unsigned char)byte, n);
  if (!r && !s)
    r = d->api.cuStreamSynchronize(NULL);
  return r ? cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_memset of %zu bytes failed",
                       n)
           : XKV_OK;
}

static xkv_status cuda_stream_create(xkv_context *ctx, xkv_stream *s) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_stream_create");
  CUstream st;
  CUresult r = d->api.cuStreamCreate(&st, CU_STREAM_DEFAULT);
  if (r)
    return cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_stream_create failed");
  s->h = st;
  return XKV_OK;
}

static xkv_status cuda_stream_destroy(xkv_context *ctx, xkv_stream *s) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_stream_destroy");
  CUresult r = d->api.cuStreamDestroy(stream_of(s));
  return r ? cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_stream_destroy failed")
           : XKV_OK;
}

static xkv_status sync_fail(xkv_context *ctx, CUresult r, const char *what) {
  return cuda_fail(ctx, XKV_ERR_LAUNCH, r,
                   "%s: a kernel failed (last launched: %s)", what,
                   ctx->last_kernel ? ctx->last_kernel : "none");
}

static xkv_status cuda_stream_sync(xkv_context *ctx, xkv_stream *s) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_stream_sync");
  CUresult r = d->api.cuStreamSynchronize(stream_of(s));
  return r ? sync_fail(ctx, r, "xkv_stream_sync") : XKV_OK;
}

static xkv_status cuda_sync(xkv_context *ctx) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_sync");
  CUresult r = d->api.cuCtxSynchronize();
  return r ? sync_fail(ctx, r, "xkv_sync") : XKV_OK;
}

static xkv_status cuda_event_create(xkv_context *ctx, xkv_event *e) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_event_create");
  CUevent ev;
  CUresult r = d->api.cuEventCreate(&ev, CU_EVENT_DEFAULT);
  if (r)
    return cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_event_create failed");
  e->h = ev;
  return XKV_OK;
}

static xkv_status cuda_event_destroy(xkv_context *ctx, xkv_event *e) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_event_destroy");
  CUresult r = d->api.cuEventDestroy((CUevent)e->h);
  return r ? cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_event_destroy failed")
           : XKV_OK;
}

static xkv_status cuda_event_record(xkv_context *ctx, xkv_event *e,
                                    xkv_stream *s) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_event_record");
  CUresult r = d->api.cuEventRecord((CUevent)e->h, stream_of(s));
  return r ? cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_event_record failed")
           : XKV_OK;
}

static xkv_status cuda_event_elapsed(xkv_context *ctx, xkv_event *a,
                                     xkv_event *b, float *ms) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_event_elapsed_ms");
  CUresult r = d->api.cuEventSynchronize((CUevent)b->h);
  if (r)
    return sync_fail(ctx, r, "xkv_event_elapsed_ms");
  r = d->api.cuEventElapsedTime(ms, (CUevent)a->h, (CUevent)b->h);
  return r ? cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_event_elapsed_ms failed")
           : XKV_OK;
}

/* "sm_90" -> 90, "sm_90a" -> 90 with *arch_specific = 1; -1 if malformed. */
static int parse_sm(const char *t, int *arch_specific) {
  int v = 0, n = 0;
  if (strncmp(t, "sm_", 3))
    return -1;
  for (t += 3; *t >= '0' && *t <= '9' && n < 4; t++, n++)
    v = v * 10 + (*t - '0');
  *arch_specific = *t == 'a';
  if (!n || (*t && strcmp(t, "a")))
    return -1;
  return v;
}

/* PTX for sm_XY is JIT-compiled for any device of compute capability >= XY
 * (arch-specific "a" targets only for the same one). */
static xkv_status cuda_accept(xkv_context *ctx, const char *target) {
  cuda_dev *d = ctx->dev;
  int a, sm = parse_sm(target, &a), dev = 10 * d->cc_major + d->cc_minor;
  if (sm < 0)
    return rt_err(ctx, XKV_ERR_TARGET,
                  "artifacts for target '%s' cannot run on the CUDA device "
                  "sm_%d (needs an sm_XX target)",
                  target, dev);
  if (a ? sm != dev : sm > dev)
    return rt_err(ctx, XKV_ERR_TARGET,
                  "artifacts for %s cannot run on this GPU (sm_%d)", target,
                  dev);
  return XKV_OK;
}

/* A cubin for sm_XY runs on compute capability X.Z with Z >= Y. */
static int cubin_fits(const cuda_dev *d, const char *target) {
  int a, sm = parse_sm(target, &a), dev = 10 * d->cc_major + d->cc_minor;
  if (sm < 0)
    return 0;
  return a ? sm == dev : sm / 10 == d->cc_major && sm <= dev;
}

static CUresult load_image(cuda_dev *d, const void *image, CUmodule *mod,
                           char *log, size_t loglen) {
  CUjit_option opt[2] = {CU_JIT_ERROR_LOG_BUFFER,
                         CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *val[2] = {log, (void *)(uintptr_t)loglen};
  log[0] = 0;
  return d->api.cuModuleLoadDataEx(mod, image, 2, opt, val);
}

static xkv_status load_module(xkv_context *ctx, rt_variant *v) {
  cuda_dev *d = ctx->dev;
  char log[2048];
  CUmodule mod = NULL;
  CUresult r = CUDA_ERROR_NOT_FOUND;
  int used_cubin = 0;
  if (cubin_fits(d, v->target) && (v->cubin || v->cubin_path)) {
    size_t len;
    unsigned char *file = NULL;
    const void *img = v->cubin;
    if (!img)
      img = file = (unsigned char *)xk_read_file(v->cubin_path, &len, NULL);
    if (img) {
      r = load_image(d, img, &mod, log, sizeof log);
      used_cubin = !r;
    }
    free(file);
  }
  if (!used_cubin) {
    size_t len;
    char *file = NULL;
    const char *ptx = v->ptx;
    if (!ptx && v->ptx_path &&
        !(ptx = file = xk_read_file(v->ptx_path, &len, NULL)))
      return rt_err(ctx, XKV_ERR_MANIFEST, "kernel %s (%s): cannot read %s",
                    v->kernel, v->symbol, v->ptx_path);
    if (!ptx)
      return rt_err(ctx, XKV_ERR_MANIFEST, "kernel %s (%s): no PTX", v->kernel,
                    v->symbol);
    r = load_image(d, ptx, &mod, log, sizeof log);
    free(file);
    if (r)
      return cuda_fail(ctx, XKV_ERR_LAUNCH, r,
                       "kernel %s (%s): cuModuleLoadDataEx failed%s%s",
                       v->kernel, v->symbol, log[0] ? ": " : "", log);
  }
  CUfunction fn;
  r = d->api.cuModuleGetFunction(&fn, mod, v->symbol);
  if (r) {
    d->api.cuModuleUnload(mod);
    return cuda_fail(ctx, XKV_ERR_LAUNCH, r,
                     "kernel %s: symbol %s not in its module", v->kernel,
                     v->symbol);
  }
  /* Dynamic shared memory beyond 48 KiB must be opted into per function. */
  if (v->dyn_shared > XK_SMEM_DEFAULT_MAX) {
    r = d->api.cuFuncSetAttribute(
        fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, v->dyn_shared);
    if (r) {
      d->api.cuModuleUnload(mod);
      return cuda_fail(ctx, XKV_ERR_LAUNCH, r,
                       "kernel %s (%s): %d bytes of shared memory refused",
                       v->kernel, v->symbol, v->dyn_shared);
    }
  }
  v->module = mod;
  v->function = fn;
  return XKV_OK;
}

static xkv_status cuda_launch(xkv_context *ctx, rt_variant *v,
                              const uint32_t g[3], void **params,
                              xkv_stream *s) {
  cuda_dev *d = ctx->dev;
  BIND(ctx, d, "xkv_launch");
  if (g[0] > INT32_MAX || g[1] > 65535 || g[2] > 65535)
    return rt_err(ctx, XKV_ERR_GRID,
                  "xkv_launch(%s): grid (%u, %u, %u) exceeds the CUDA limits "
                  "(x < 2^31, y and z <= 65535)",
                  v->kernel, g[0], g[1], g[2]);
  if (!v->function) {
    xkv_status st = load_module(ctx, v);
    if (st)
      return st;
  }
  ctx->last_kernel = v->kernel;
  CUresult r = d->api.cuLaunchKernel(
      (CUfunction)v->function, g[0], g[1], g[2], (unsigned)v->threads, 1, 1,
      (unsigned)v->dyn_shared, stream_of(s), params, NULL);
  return r ? cuda_fail(ctx, XKV_ERR_LAUNCH, r,
                       "kernel %s (%s): cuLaunchKernel with grid (%u, %u, %u) "
                       "and %d threads failed",
                       v->kernel, v->symbol, g[0], g[1], g[2], v->threads)
           : XKV_OK;
}

static void cuda_unload(xkv_context *ctx, rt_variant *v) {
  cuda_dev *d = ctx->dev;
  if (v->module && d) {
    bind(d);
    d->api.cuModuleUnload((CUmodule)v->module);
  }
  v->module = v->function = NULL;
}

static const rt_device_ops cuda_ops = {
    cuda_close,         cuda_info,           cuda_alloc,
    cuda_free,          cuda_copy,           cuda_memset,
    cuda_stream_create, cuda_stream_destroy, cuda_stream_sync,
    cuda_sync,          cuda_event_create,   cuda_event_destroy,
    cuda_event_record,  cuda_event_elapsed,  cuda_accept,
    cuda_launch,        cuda_unload};

xkv_status rt_cuda_open(xkv_context *ctx, int ordinal) {
  cuda_dev *d = calloc(1, sizeof *d);
  if (!d)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_open(cuda): no memory");
  char why[512];
  if (rt_cuda_api_load(&d->api, why, sizeof why)) {
    free(d);
    return rt_err(ctx, XKV_ERR_NO_DRIVER, "%s", why);
  }
  ctx->dev = d; /* cuda_fail names errors through the loaded driver */
  xkv_status st = XKV_OK;
  int count = 0;
  CUresult r = d->api.cuInit(0);
  if (r == CUDA_ERROR_STUB_LIBRARY)
    st = cuda_fail(ctx, XKV_ERR_NO_DEVICE, r,
                   "no GPU: the CUDA driver library is the toolkit's stub, "
                   "not a real driver; cuInit failed");
  else if (r)
    st = cuda_fail(ctx, XKV_ERR_NO_DEVICE, r, "no GPU: cuInit failed");
  else if ((r = d->api.cuDeviceGetCount(&count)))
    st =
        cuda_fail(ctx, XKV_ERR_NO_DEVICE, r, "no GPU: cuDeviceGetCount failed");
  else if (count == 0)
    st = rt_err(ctx, XKV_ERR_NO_DEVICE, "no GPU: the CUDA driver sees none");
  else if (ordinal >= count)
    st = rt_err(ctx, XKV_ERR_INVALID, "xkv_open: GPU %d requested, %d present",
                ordinal, count);
  else if ((r = d->api.cuDeviceGet(&d->dev, ordinal)) ||
           (r = d->api.cuDevicePrimaryCtxRetain(&d->cu, d->dev)))
    st =
        cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_open: cannot use GPU %d", ordinal);
  if (st) {
    rt_cuda_api_unload(&d->api);
    free(d);
    ctx->dev = NULL;
    return st;
  }
  d->ordinal = ordinal;
  d->api.cuDeviceGetAttribute(
      &d->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d->dev);
  d->api.cuDeviceGetAttribute(
      &d->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d->dev);
  if ((r = d->api.cuCtxSetCurrent(d->cu))) {
    st =
        cuda_fail(ctx, XKV_ERR_CUDA, r, "xkv_open: cannot use GPU %d", ordinal);
    d->api.cuDevicePrimaryCtxRelease(d->dev);
    rt_cuda_api_unload(&d->api);
    free(d);
    ctx->dev = NULL;
    return st;
  }
  ctx->ops = &cuda_ops;
  ctx->kind = XKV_DEVICE_CUDA;
  return XKV_OK;
}
