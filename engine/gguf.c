#include "gguf.h"
#include "model.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bounds-checked cursor over the file. */
typedef struct {
  const unsigned char *base, *p, *end;
  const char *name;
  eng_err *err;
} rd;

static int need(rd *r, uint64_t n, const char *what) {
  if ((uint64_t)(r->end - r->p) < n)
    return eng_fail(r->err,
                    "%s: truncated GGUF: %s needs %llu bytes at offset %lld, "
                    "only %lld left",
                    r->name, what, (unsigned long long)n,
                    (long long)(r->p - r->base), (long long)(r->end - r->p));
  return 0;
}

static int rd_u32(rd *r, uint32_t *v, const char *what) {
  if (need(r, 4, what))
    return -1;
  memcpy(v, r->p, 4);
  r->p += 4;
  return 0;
}

static int rd_u64(rd *r, uint64_t *v, const char *what) {
  if (need(r, 8, what))
    return -1;
  memcpy(v, r->p, 8);
  r->p += 8;
  return 0;
}

static int rd_str(rd *r, eng_gguf_str *s, const char *what) {
  if (rd_u64(r, &s->len, what) || need(r, s->len, what))
    return -1;
  s->s = (const char *)r->p;
  r->p += s->len;
  return 0;
}

static size_t scalar_size(uint32_t t) {
  static const size_t sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  return t < sizeof sz / sizeof *sz ? sz[t] : 0;
}

/* Reads one value of type t into kv->v (arrays: checked, not copied). */
static int rd_value(rd *r, uint32_t t, eng_gguf_kv *kv, int depth,
                    const char *key) {
  if (t == GGUF_T_STRING)
    return rd_str(r, &kv->v.str, key);
  if (t == GGUF_T_ARRAY) {
    if (depth > 0)
      return eng_fail(r->err, "%s: GGUF key %s: nested arrays unsupported",
                      r->name, key);
    uint32_t et;
    uint64_t n;
    if (rd_u32(r, &et, key) || rd_u64(r, &n, key))
      return -1;
    kv->v.arr.type = et;
    kv->v.arr.n = n;
    kv->v.arr.data = r->p;
    if (et == GGUF_T_STRING) {
      /* every string takes at least its 8-byte length */
      if (n > (uint64_t)(r->end - r->p) / 8)
        return eng_fail(r->err,
                        "%s: GGUF key %s: absurd array length %llu for %lld "
                        "bytes left",
                        r->name, key, (unsigned long long)n,
                        (long long)(r->end - r->p));
      eng_gguf_str s;
      for (uint64_t i = 0; i < n; i++)
        if (rd_str(r, &s, key))
          return -1;
      return 0;
    }
    size_t es = scalar_size(et);
    if (!es)
      return eng_fail(r->err, "%s: GGUF key %s: bad array element type %u",
                      r->name, key, et);
    if (n > (uint64_t)(r->end - r->p) / es)
      return eng_fail(r->err,
                      "%s: GGUF key %s: array of %llu elements runs past the "
                      "end of the file",
                      r->name, key, (unsigned long long)n);
    r->p += n * es;
    return 0;
  }
  size_t es = scalar_size(t);
  if (!es)
    return eng_fail(r->err, "%s: GGUF key %s: bad value type %u", r->name, key,
                    t);
  if (need(r, es, key))
    return -1;
  const unsigned char *p = r->p;
  r->p += es;
  switch (t) {
  case GGUF_T_U8:
  case GGUF_T_BOOL:
    kv->v.u = p[0];
    break;
  case GGUF_T_I8:
    kv->v.i = (signed char)p[0];
    break;
  case GGUF_T_U16: {
    uint16_t x;
    memcpy(&x, p, 2);
    kv->v.u = x;
    break;
  }
  case GGUF_T_I16: {
    int16_t x;
    memcpy(&x, p, 2);
    kv->v.i = x;
    break;
  }
  case GGUF_T_U32: {
    uint32_t x;
    memcpy(&x, p, 4);
    kv->v.u = x;
    break;
  }
  case GGUF_T_I32: {
    int32_t x;
    memcpy(&x, p, 4);
    kv->v.i = x;
    break;
  }
  case GGUF_T_F32: {
    float x;
    memcpy(&x, p, 4);
    kv->v.f = x;
    break;
  }
  case GGUF_T_U64:
    memcpy(&kv->v.u, p, 8);
    break;
  case GGUF_T_I64:
    memcpy(&kv->v.i, p, 8);
    break;
  case GGUF_T_F64:
    memcpy(&kv->v.f, p, 8);
    break;
  }
  return 0;
}

static int str_eq(eng_gguf_str s, const char *c) {
  size_t n = strlen(c);
  return s.len == n && memcmp(s.s, c, n) == 0;
}

static int parse_tensor(rd *r, eng_gguf_tensor *t, uint64_t i) {
  char what[64];
  snprintf(what, sizeof what, "tensor info %llu", (unsigned long long)i);
  if (rd_str(r, &t->name, what) || rd_u32(r, &t->n_dims, what))
    return -1;
  int nl = t->name.len > 64 ? 64 : (int)t->name.len;
  if (t->n_dims == 0 || t->n_dims > 4)
    return eng_fail(r->err, "%s: tensor %.*s has %u dimensions (1..4 allowed)",
                    r->name, nl, t->name.s, t->n_dims);
  t->nelem = 1;
  for (uint32_t d = 0; d < 4; d++) {
    t->ne[d] = 1;
    if (d < t->n_dims && rd_u64(r, &t->ne[d], what))
      return -1;
    if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 40) / t->nelem)
      return eng_fail(r->err, "%s: tensor %.*s: absurd shape (dim %u = %llu)",
                      r->name, nl, t->name.s, d, (unsigned long long)t->ne[d]);
    t->nelem *= t->ne[d];
  }
  if (rd_u32(r, &t->type, what) || rd_u64(r, &t->offset, what))
    return -1;
  size_t be, bb;
  if (!eng_ggml_block(t->type, &be, &bb))
    return eng_fail(r->err, "%s: tensor %.*s: unsupported ggml type %u",
                    r->name, nl, t->name.s, t->type);
  if (t->ne[0] % be != 0)
    return eng_fail(r->err,
                    "%s: tensor %.*s: row of %llu elements is not a multiple "
                    "of the %s block (%zu)",
                    r->name, nl, t->name.s, (unsigned long long)t->ne[0],
                    eng_ggml_name(t->type), be);
  t->nbytes = t->nelem / be * bb;
  return 0;
}

int eng_gguf_parse(unsigned char *buf, size_t size, const char *name,
                   eng_gguf *g, eng_err *err) {
  memset(g, 0, sizeof *g);
  g->buf = buf;
  g->size = size;
  snprintf(g->path, sizeof g->path, "%s", name);
  rd r = {buf, buf, buf + size, g->path, err};
  uint32_t magic;
  if (rd_u32(&r, &magic, "the magic"))
    goto fail;
  if (memcmp(buf, "GGUF", 4) != 0) {
    eng_fail(err, "%s: bad magic (not a GGUF file)", g->path);
    goto fail;
  }
  if (rd_u32(&r, &g->version, "the version"))
    goto fail;
  if (g->version != 3) {
    eng_fail(err, "%s: GGUF version %u unsupported (only v3)", g->path,
             g->version);
    goto fail;
  }
  if (rd_u64(&r, &g->n_tensors, "the tensor count") ||
      rd_u64(&r, &g->n_kv, "the key count"))
    goto fail;
  /* a key/value takes at least 12 bytes, a tensor info at least 24 */
  uint64_t left = (uint64_t)(r.end - r.p);
  if (g->n_kv > left / 12 || g->n_tensors > left / 24) {
    eng_fail(err,
             "%s: absurd counts (%llu tensors, %llu keys) for a %zu-byte file",
             g->path, (unsigned long long)g->n_tensors,
             (unsigned long long)g->n_kv, size);
    goto fail;
  }
  g->kv = calloc(g->n_kv + 1, sizeof *g->kv);
  g->tensors = calloc(g->n_tensors + 1, sizeof *g->tensors);
  if (!g->kv || !g->tensors) {
    eng_fail(err, "%s: out of memory for the GGUF index", g->path);
    goto fail;
  }
  g->alignment = 32;
  for (uint64_t i = 0; i < g->n_kv; i++) {
    eng_gguf_kv *kv = &g->kv[i];
    char key[96];
    snprintf(key, sizeof key, "#%llu", (unsigned long long)i);
    if (rd_str(&r, &kv->key, key) || rd_u32(&r, &kv->type, key))
      goto fail;
    snprintf(key, sizeof key, "%.*s", kv->key.len > 80 ? 80 : (int)kv->key.len,
             kv->key.s);
    if (rd_value(&r, kv->type, kv, 0, key))
      goto fail;
    if (str_eq(kv->key, "general.alignment")) {
      g->alignment = kv->v.u;
      if (kv->type != GGUF_T_U32 || g->alignment == 0 ||
          (g->alignment & (g->alignment - 1))) {
        eng_fail(err, "%s: general.alignment must be a power-of-two u32",
                 g->path);
        goto fail;
      }
    }
  }
  for (uint64_t i = 0; i < g->n_tensors; i++)
    if (parse_tensor(&r, &g->tensors[i], i))
      goto fail;
  size_t off = (size_t)(r.p - buf);
  g->data_off = (off + g->alignment - 1) / g->alignment * g->alignment;
  uint64_t data_size = size >= g->data_off ? size - g->data_off : 0;
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    const eng_gguf_tensor *t = &g->tensors[i];
    if (t->offset > data_size || t->nbytes > data_size - t->offset) {
      eng_fail(err,
               "%s: tensor %.*s: data [%llu, +%llu) runs past the end of the "
               "file (%llu data bytes)",
               g->path, (int)(t->name.len > 64 ? 64 : t->name.len), t->name.s,
               (unsigned long long)t->offset, (unsigned long long)t->nbytes,
               (unsigned long long)data_size);
      goto fail;
    }
  }
  return 0;
fail:
  eng_gguf_close(g);
  return -1;
}

int eng_gguf_open(const char *path, eng_gguf *g, eng_err *err) {
  unsigned char *buf;
  size_t size;
  memset(g, 0, sizeof *g);
  if (eng_read_file(path, &buf, &size, err))
    return -1;
  return eng_gguf_parse(buf, size, path, g, err);
}

void eng_gguf_close(eng_gguf *g) {
  free(g->buf);
  free(g->kv);
  free(g->tensors);
  memset(g, 0, sizeof *g);
}

const eng_gguf_kv *eng_gguf_find(const eng_gguf *g, const char *key) {
  for (uint64_t i = 0; i < g->n_kv; i++)
    if (str_eq(g->kv[i].key, key))
      return &g->kv[i];
  return NULL;
}

int eng_gguf_get_int(const eng_gguf *g, const char *key, int64_t *out,
                     eng_err *err) {
  const eng_gguf_kv *kv = eng_gguf_find(g, key);
  if (!kv)
    return eng_fail(err, "%s: missing metadata key %s", g->path, key);
  switch (kv->type) {
  case GGUF_T_U8:
  case GGUF_T_U16:
  case GGUF_T_U32:
  case GGUF_T_U64:
  case GGUF_T_BOOL:
    *out = (int64_t)kv->v.u;
    return 0;
  case GGUF_T_I8:
  case GGUF_T_I16:
  case GGUF_T_I32:
  case GGUF_T_I64:
    *out = kv->v.i;
    return 0;
  }
  return eng_fail(err, "%s: metadata key %s is not an integer (type %u)",
                  g->path, key, kv->type);
}

int eng_gguf_get_f32(const eng_gguf *g, const char *key, float *out,
                     eng_err *err) {
  const eng_gguf_kv *kv = eng_gguf_find(g, key);
  if (kv && (kv->type == GGUF_T_F32 || kv->type == GGUF_T_F64)) {
    *out = (float)kv->v.f;
    return 0;
  }
  int64_t i;
  if (eng_gguf_get_int(g, key, &i, err))
    return -1;
  *out = (float)i;
  return 0;
}

int eng_gguf_get_arr(const eng_gguf *g, const char *key, uint32_t type,
                     int optional, const eng_gguf_kv **kv, eng_err *err) {
  *kv = eng_gguf_find(g, key);
  if (!*kv) {
    if (optional)
      return 0;
    return eng_fail(err, "%s: missing metadata key %s", g->path, key);
  }
  if ((*kv)->type != GGUF_T_ARRAY || (*kv)->v.arr.type != type)
    return eng_fail(err, "%s: metadata key %s is not an array of type %u",
                    g->path, key, type);
  return 0;
}

eng_gguf_str eng_gguf_next_str(const unsigned char **p) {
  eng_gguf_str s;
  memcpy(&s.len, *p, 8);
  s.s = (const char *)*p + 8;
  *p += 8 + s.len;
  return s;
}

const eng_gguf_tensor *eng_gguf_find_tensor(const eng_gguf *g,
                                            const char *name) {
  for (uint64_t i = 0; i < g->n_tensors; i++)
    if (str_eq(g->tensors[i].name, name))
      return &g->tensors[i];
  return NULL;
}

int eng_gguf_dequant(const eng_gguf *g, const eng_gguf_tensor *t, float *out,
                     eng_err *err) {
  size_t be, bb;
  if (!eng_ggml_block(t->type, &be, &bb))
    return eng_fail(err, "%s: tensor %.*s: unsupported type %u", g->path,
                    (int)t->name.len, t->name.s, t->type);
  eng_dequant(t->type, g->buf + g->data_off + t->offset, t->nelem / be, out);
  return 0;
}
