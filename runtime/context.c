/* Opening a context on a device, and closing it. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "cuda" -> 0, "cuda:3" -> 3; -1 when malformed. */
static int cuda_ordinal(const char *s) {
  if (!strcmp(s, "cuda"))
    return 0;
  if (strncmp(s, "cuda:", 5) || !s[5])
    return -1;
  int v = 0;
  for (s += 5; *s; s++) {
    if (*s < '0' || *s > '9' || v > 1000)
      return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

static xkv_status open_device(xkv_context *ctx, const char *device);

xkv_status xkv_open(xkv_context **out, const char *device) {
  if (!out)
    return XKV_ERR_INVALID;
  xkv_context *ctx = calloc(1, sizeof *ctx);
  *out = ctx;
  if (!ctx)
    return XKV_ERR_OUT_OF_MEMORY;
  xkv_status s = open_device(ctx, device);
  if (!s)
    rt_tune_open_env(ctx);
  return s;
}

static xkv_status open_device(xkv_context *ctx, const char *device) {
  if (!device)
    device = "auto";
  if (!strcmp(device, "cpu"))
    return rt_cpu_open(ctx);
  if (!strcmp(device, "auto")) {
    xkv_status s = rt_cuda_open(ctx, 0);
    if (!s)
      return XKV_OK;
    if (s != XKV_ERR_NO_DRIVER && s != XKV_ERR_NO_DEVICE)
      return s; /* a GPU exists but failed: do not hide it */
    snprintf(ctx->note, sizeof ctx->note, "using the CPU: %.490s", ctx->err);
    s = rt_cpu_open(ctx);
    if (!s)
      snprintf(ctx->err, sizeof ctx->err, "%s", ctx->note);
    return s;
  }
  int ord = cuda_ordinal(device);
  if (ord < 0)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_open: unknown device '%s' (auto, cpu, cuda, cuda:N)",
                  device);
  return rt_cuda_open(ctx, ord);
}

void xkv_close(xkv_context *ctx) {
  if (!ctx)
    return;
  if (ctx->ops) {
    xkv_sync(ctx);
    rt_registry_free(ctx); /* unloads modules: needs the device */
    for (size_t i = 0; i < ctx->allocs.cap; i++)
      if (ctx->allocs.key[i])
        ctx->ops->free(ctx, ctx->allocs.key[i]);
    ctx->ops->close(ctx);
  } else {
    rt_registry_free(ctx);
  }
  rt_tune_close(ctx);
  rt_allocs_free(&ctx->allocs);
  free(ctx);
}

xkv_status xkv_device_get_info(xkv_context *ctx, xkv_device_info *out) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!out)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_device_get_info: out is NULL");
  memset(out, 0, sizeof *out);
  snprintf(out->note, sizeof out->note, "%s", ctx->note);
  if (!ctx->ops)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_device_get_info: the context failed to open");
  out->kind = ctx->kind;
  return ctx->ops->info(ctx, out);
}
