/* The public memory, stream and event API: argument checks, then the
 * device. Live allocations are tracked so that a foreign or double xkv_free
 * is an error rather than heap corruption, and xkv_close frees leftovers. */
#include "internal.h"

#include <stdlib.h>

static size_t slot_of(const rt_alloc_table *t, const void *p) {
  uintptr_t h = (uintptr_t)p;
  h ^= h >> 17;
  h *= UINT64_C(0x9E3779B97F4A7C15);
  return (size_t)(h >> 7) & (t->cap - 1);
}

static int rehash(rt_alloc_table *t, size_t cap) {
  rt_alloc_table n = {calloc(cap, sizeof(void *)), calloc(cap, sizeof(size_t)),
                      cap, 0};
  if (!n.key || !n.size) {
    free(n.key);
    free(n.size);
    return -1;
  }
  for (size_t i = 0; i < t->cap; i++)
    if (t->key[i])
      rt_allocs_add(&n, t->key[i], t->size[i]);
  free(t->key);
  free(t->size);
  *t = n;
  return 0;
}

int rt_allocs_add(rt_alloc_table *t, void *p, size_t size) {
  if (2 * (t->n + 1) > t->cap && rehash(t, t->cap ? 2 * t->cap : 64))
    return -1;
  size_t i = slot_of(t, p);
  while (t->key[i])
    i = (i + 1) & (t->cap - 1);
  t->key[i] = p;
  t->size[i] = size;
  t->n++;
  return 0;
}

int rt_allocs_remove(rt_alloc_table *t, void *p) {
  if (!t->cap)
    return -1;
  size_t i = slot_of(t, p);
  while (t->key[i] && t->key[i] != p)
    i = (i + 1) & (t->cap - 1);
  if (!t->key[i])
    return -1;
  t->key[i] = NULL;
  t->n--;
  /* Re-insert the rest of the probe run (linear probing deletion). */
  for (size_t j = (i + 1) & (t->cap - 1); t->key[j];
       j = (j + 1) & (t->cap - 1)) {
    void *k = t->key[j];
    size_t s = t->size[j];
    t->key[j] = NULL;
    t->n--;
    rt_allocs_add(t, k, s);
  }
  return 0;
}

void rt_allocs_free(rt_alloc_table *t) {
  free(t->key);
  free(t->size);
  t->key = NULL;
  t->size = NULL;
  t->cap = t->n = 0;
}

#define NEED_CTX(ctx, what)                                                    \
  do {                                                                         \
    if (!(ctx))                                                                \
      return XKV_ERR_INVALID;                                                  \
    if (!(ctx)->ops)                                                           \
      return rt_err(ctx, XKV_ERR_INVALID, "%s: the context failed to open",    \
                    what);                                                     \
  } while (0)

xkv_status xkv_alloc(xkv_context *ctx, size_t bytes, void **dptr) {
  NEED_CTX(ctx, "xkv_alloc");
  if (!dptr)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_alloc: dptr is NULL");
  *dptr = NULL;
  if (!bytes)
    return XKV_OK; /* like malloc(0): nothing to free */
  void *p = NULL;
  xkv_status s = ctx->ops->alloc(ctx, bytes, &p);
  if (s)
    return s;
  if (rt_allocs_add(&ctx->allocs, p, bytes)) {
    ctx->ops->free(ctx, p);
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY,
                  "xkv_alloc: out of host memory for the allocation table");
  }
  *dptr = p;
  return XKV_OK;
}

xkv_status xkv_free(xkv_context *ctx, void *dptr) {
  NEED_CTX(ctx, "xkv_free");
  if (!dptr)
    return XKV_OK;
  if (rt_allocs_remove(&ctx->allocs, dptr))
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_free: %p was not allocated by this context or was "
                  "already freed",
                  dptr);
  return ctx->ops->free(ctx, dptr);
}

static xkv_status copy(xkv_context *ctx, void *dst, const void *src,
                       size_t bytes, int dir, xkv_stream *s, const char *fn) {
  NEED_CTX(ctx, fn);
  if (!bytes)
    return XKV_OK;
  if (!dst || !src)
    return rt_err(ctx, XKV_ERR_INVALID, "%s: %s pointer is NULL", fn,
                  dst ? "source" : "destination");
  return ctx->ops->copy(ctx, dst, src, bytes, dir, s);
}

xkv_status xkv_copy_h2d(xkv_context *ctx, void *dst, const void *src,
                        size_t bytes, xkv_stream *s) {
  return copy(ctx, dst, src, bytes, 0, s, "xkv_copy_h2d");
}

xkv_status xkv_copy_d2h(xkv_context *ctx, void *dst, const void *src,
                        size_t bytes, xkv_stream *s) {
  return copy(ctx, dst, src, bytes, 1, s, "xkv_copy_d2h");
}

xkv_status xkv_copy_d2d(xkv_context *ctx, void *dst, const void *src,
                        size_t bytes, xkv_stream *s) {
  return copy(ctx, dst, src, bytes, 2, s, "xkv_copy_d2d");
}

xkv_status xkv_memset(xkv_context *ctx, void *dst, int byte, size_t bytes,
                      xkv_stream *s) {
  NEED_CTX(ctx, "xkv_memset");
  if (!bytes)
    return XKV_OK;
  if (!dst)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_memset: destination is NULL");
  return ctx->ops->memset(ctx, dst, byte, bytes, s);
}

xkv_status xkv_stream_create(xkv_context *ctx, xkv_stream **out) {
  NEED_CTX(ctx, "xkv_stream_create");
  if (!out)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_stream_create: out is NULL");
  xkv_stream *s = calloc(1, sizeof *s);
  if (!s)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_stream_create: no memory");
  xkv_status st = ctx->ops->stream_create(ctx, s);
  if (st) {
    free(s);
    return st;
  }
  *out = s;
  return XKV_OK;
}

xkv_status xkv_stream_destroy(xkv_context *ctx, xkv_stream *s) {
  NEED_CTX(ctx, "xkv_stream_destroy");
  if (!s)
    return XKV_OK;
  xkv_status st = ctx->ops->stream_destroy(ctx, s);
  free(s);
  return st;
}

xkv_status xkv_stream_sync(xkv_context *ctx, xkv_stream *s) {
  NEED_CTX(ctx, "xkv_stream_sync");
  return ctx->ops->stream_sync(ctx, s);
}

xkv_status xkv_sync(xkv_context *ctx) {
  NEED_CTX(ctx, "xkv_sync");
  return ctx->ops->sync(ctx);
}

xkv_status xkv_event_create(xkv_context *ctx, xkv_event **out) {
  NEED_CTX(ctx, "xkv_event_create");
  if (!out)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_event_create: out is NULL");
  xkv_event *e = calloc(1, sizeof *e);
  if (!e)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_event_create: no memory");
  xkv_status st = ctx->ops->event_create(ctx, e);
  if (st) {
    free(e);
    return st;
  }
  *out = e;
  return XKV_OK;
}

xkv_status xkv_event_destroy(xkv_context *ctx, xkv_event *e) {
  NEED_CTX(ctx, "xkv_event_destroy");
  if (!e)
    return XKV_OK;
  xkv_status st = ctx->ops->event_destroy(ctx, e);
  free(e);
  return st;
}

xkv_status xkv_event_record(xkv_context *ctx, xkv_event *e, xkv_stream *s) {
  NEED_CTX(ctx, "xkv_event_record");
  if (!e)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_event_record: event is NULL");
  xkv_status st = ctx->ops->event_record(ctx, e, s);
  if (!st)
    e->recorded = 1;
  return st;
}

xkv_status xkv_event_elapsed_ms(xkv_context *ctx, xkv_event *a, xkv_event *b,
                                float *ms) {
  NEED_CTX(ctx, "xkv_event_elapsed_ms");
  if (!a || !b || !ms)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_event_elapsed_ms: NULL argument");
  if (!a->recorded || !b->recorded)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_event_elapsed_ms: the %s event was never recorded",
                  a->recorded ? "end" : "start");
  return ctx->ops->event_elapsed(ctx, a, b, ms);
}
