/* Status names, the per-context error sentence, small string helpers. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *xkv_status_name(xkv_status s) {
  static const char *names[] = {"XKV_OK",
                                "XKV_ERR_INVALID",
                                "XKV_ERR_NO_DRIVER",
                                "XKV_ERR_NO_DEVICE",
                                "XKV_ERR_CUDA",
                                "XKV_ERR_OUT_OF_MEMORY",
                                "XKV_ERR_NOT_FOUND",
                                "XKV_ERR_ARGS",
                                "XKV_ERR_MANIFEST",
                                "XKV_ERR_TARGET",
                                "XKV_ERR_GRID",
                                "XKV_ERR_LAUNCH"};
  if ((unsigned)s < sizeof names / sizeof *names)
    return names[s];
  return "XKV_ERR_UNKNOWN";
}

xkv_status rt_verr(xkv_context *ctx, xkv_status s, const char *fmt,
                   va_list ap) {
  if (ctx)
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
  return s;
}

xkv_status rt_err(xkv_context *ctx, xkv_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rt_verr(ctx, s, fmt, ap);
  va_end(ap);
  return s;
}

const char *xkv_last_error(const xkv_context *ctx) {
  return ctx ? ctx->err : "no context (xkv_open failed for lack of memory)";
}

char *rt_strdup(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *o = malloc(n);
  if (o)
    memcpy(o, s, n);
  return o;
}

static const char *dtype_names[] = {"i1", "i32", "i64", "f16", "bf16", "f32"};

const char *rt_dtype_name(int dt) {
  return dt >= 0 && dt <= XKV_F32 ? dtype_names[dt] : "?";
}

int rt_dtype_parse(const char *s) {
  for (int i = 0; i <= XKV_F32; i++)
    if (!strcmp(s, dtype_names[i]))
      return i;
  return -1;
}
