/* Selective reconstruction (DESIGN.md "xKV operations", SR; xKV v2,
 * ShadowKV): at compression the layer's prompt keys/values are rebuilt
 * once (kernel xkv_sr_rebuild) to derive the landmarks (chunk means of the
 * post-RoPE keys), the outlier chunks (lowest min-cosine of their keys to
 * the landmark) and the local window, the last two kept exact. Per decode
 * step each KV head's chunks are ranked by the landmark probabilities
 * softmax(q LM^T / sqrt(d)) summed over its GQA group; the top nsel are
 * kept in a reuse cache of rebuilt chunks and only the misses are rebuilt.
 * The scores and the rebuild are kernels; on a GPU the top-k and the
 * cache's bookkeeping are too (xkv_cache_sr_dev.c, kernel xkv_sr_select),
 * on the CPU device (or with XKV_SR_SELECT=host) the host code here runs
 * them, following the same rules so the two agree: keys summed in f32 over
 * the group in order, ties to the lower chunk, misses taken in chunk order
 * into the free slots in slot order. */
#include "xkv_cache_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CH XKV_SR_CHUNK

static xkv_status oom(xkv_cache *c, const char *where) {
  return rt_err(c->ctx, XKV_ERR_OUT_OF_MEMORY, "%s: out of memory", where);
}

/* Room for n (head, chunk, slot) entries on the host and the device. */
static xkv_status reserve_list(xkv_cache *c, int n, const char *where) {
  if (n <= c->sr_cap)
    return XKV_OK;
  int *h = realloc(c->sr_list, (size_t)n * 3 * sizeof *h);
  if (!h)
    return oom(c, where);
  c->sr_list = h;
  xkv_free(c->ctx, c->sr_list_dev);
  c->sr_cap = 0;
  xkv_status s =
      xkv_alloc(c->ctx, (size_t)n * 3 * sizeof *h, (void **)&c->sr_list_dev);
  c->sr_cap = s ? 0 : n;
  return s;
}

/* Rebuilds the n listed chunks of layer l into ko/vo from row row0 on. */
static xkv_status rebuild(xkv_cache *c, int l, int n, void *ko, void *vo,
                          int row0) {
  const xkv_group *gr = &c->groups[l / c->cfg.group];
  const xkv_layer *y = &c->layers[l];
  xkv_dtype dt = c->cfg.dtype;
  xkv_status s = xkv_copy_h2d(c->ctx, c->sr_list_dev, c->sr_list,
                              (size_t)n * 3 * sizeof *c->sr_list, NULL);
  xkv_arg a[] = {xkv_arg_ptr(dt, gr->ak),
                 xkv_arg_ptr(dt, y->bk),
                 xkv_arg_ptr(dt, gr->av),
                 xkv_arg_ptr(dt, y->bv),
                 xkv_arg_ptr(XKV_F32, c->cos),
                 xkv_arg_ptr(XKV_F32, c->sin),
                 xkv_arg_ptr(XKV_I32, c->sr_list_dev),
                 xkv_arg_ptr(dt, ko),
                 xkv_arg_ptr(dt, vo),
                 xkv_arg_i32(gr->L),
                 xkv_arg_i32(gr->rank_k),
                 xkv_arg_i32(gr->rank_v),
                 xkv_arg_i32(c->cfg.n_kv_heads),
                 xkv_arg_i32(row0),
                 xkv_arg_i32(n)};
  return s ? s : xkv_launch(c->ctx, c->k.sr_rebuild, NULL, a, 15, NULL);
}

void xkv_cache_sr_free(xkv_cache *c, xkv_layer *y) {
  xkv_free(c->ctx, y->sr.lm);
  xkv_free(c->ctx, y->sr.kr);
  xkv_free(c->ctx, y->sr.vr);
  xkv_free(c->ctx, y->sr.tot);
  free(y->sr.outliers);
  free(y->sr.slot_chunk);
  free(y->sr.chunk_slot);
  memset(&y->sr, 0, sizeof y->sr);
}

/* Landmarks lm [nsc, Hkv, d] of the post-RoPE keys k [L, Hkv, d] and each
 * chunk's min-cosine of its keys to its landmark, mc [Hkv, nsc]. */
static void landmarks(const xkv_cache *c, const float *k, int nsc, float *lm,
                      double *mc) {
  int hk = c->cfg.n_kv_heads, d = c->cfg.head_dim;
  for (int ch = 0; ch < nsc; ch++)
    for (int h = 0; h < hk; h++) {
      float *m = lm + ((size_t)ch * hk + h) * d;
      double mm = 0, worst = INFINITY;
      for (int e = 0; e < d; e++) {
        double acc = 0;
        for (int t = 0; t < CH; t++)
          acc += k[(((size_t)ch * CH + t) * hk + h) * d + e];
        m[e] = (float)(acc / CH);
        mm += (double)m[e] * m[e];
      }
      for (int t = 0; t < CH; t++) {
        const float *x = k + (((size_t)ch * CH + t) * hk + h) * d;
        double xm = 0, xx = 0;
        for (int e = 0; e < d; e++) {
          xm += (double)x[e] * m[e];
          xx += (double)x[e] * x[e];
        }
        double cs = xm / sqrt(xx * mm + 1e-30);
        worst = cs < worst ? cs : worst;
      }
      mc[(size_t)h * nsc + ch] = worst;
    }
}

/* The n chunks of the smallest key[0..m) (ties: the lower index) into
 * out, through a max-heap of the n kept so far. */
static void lowest(const double *key, int m, int n, int *out) {
  int size = 0;
  if (n < 1)
    return;
#define WORSE(a, b) (key[a] > key[b] || (key[a] == key[b] && (a) > (b)))
  for (int i = 0; i < m; i++) {
    int at;
    if (size < n) {
      at = size++;
      while (at > 0 && WORSE(i, out[(at - 1) / 2])) {
        out[at] = out[(at - 1) / 2];
        at = (at - 1) / 2;
      }
      out[at] = i;
      continue;
    }
    if (!WORSE(out[0], i))
      continue;
    for (at = 0;;) { /* sift i down from the root */
      int ch = 2 * at + 1;
      if (ch >= n)
        break;
      if (ch + 1 < n && WORSE(out[ch + 1], out[ch]))
        ch++;
      if (!WORSE(out[ch], i))
        break;
      out[at] = out[ch];
      at = ch;
    }
    out[at] = i;
  }
#undef WORSE
}

/* Copies the exact rows (local window, then each head's outlier chunks)
 * from the rebuilt k/v [L, Hkv, d] (storage dtype) to the layer's kr/vr. */
static xkv_status exact_rows(xkv_cache *c, xkv_sr_layer *sr, const char *k,
                             const char *v, int local0, int L) {
  int hk = c->cfg.n_kv_heads, d = c->cfg.head_dim;
  size_t row = (size_t)hk * d * c->elem, el = (size_t)d * c->elem;
  char *hk_rows = malloc((size_t)sr->nfix * row * 2 + 1);
  if (!hk_rows)
    return rt_err(c->ctx, XKV_ERR_OUT_OF_MEMORY,
                  "xkv_cache_prefill: out of memory for the selective "
                  "reconstruction state");
  char *hv_rows = hk_rows + (size_t)sr->nfix * row;
  int nloc = L - local0;
  memcpy(hk_rows, k + (size_t)local0 * row, (size_t)nloc * row);
  memcpy(hv_rows, v + (size_t)local0 * row, (size_t)nloc * row);
  for (int h = 0; h < hk; h++)
    for (int o = 0; o < sr->nout; o++)
      for (int t = 0; t < CH; t++) {
        size_t src = ((size_t)sr->outliers[h * sr->nout + o] * CH + t) * row +
                     h * el,
               dst = ((size_t)nloc + (size_t)o * CH + t) * row + h * el;
        memcpy(hk_rows + dst, k + src, el);
        memcpy(hv_rows + dst, v + src, el);
      }
  xkv_status s = xkv_copy_h2d(c->ctx, sr->kr, hk_rows, sr->nfix * row, NULL);
  s = s ? s : xkv_copy_h2d(c->ctx, sr->vr, hv_rows, sr->nfix * row, NULL);
  free(hk_rows);
  return s;
}

/* Sizes, host bookkeeping and device rows of the layer's SR state. */
static xkv_status layout(xkv_cache *c, xkv_sr_layer *sr, int L, int local0,
                         const char *where) {
  const xkv_cache_config *f = &c->cfg;
  int hk = f->n_kv_heads, hd = hk * f->head_dim;
  sr->nsc = local0 / CH;
  sr->nout = (int)ceil(f->sr_outlier_frac * sr->nsc);
  int left = sr->nsc - sr->nout, want = f->sr_budget / CH;
  sr->nsel = want < left ? want : left;
  sr->nfix = L - local0 + sr->nout * CH;
  size_t rows = (size_t)sr->nfix + (size_t)sr->nsel * CH;
  sr->outliers = malloc(((size_t)hk * sr->nout + 1) * sizeof(int));
  sr->slot_chunk = malloc(((size_t)hk * sr->nsel + 1) * sizeof(int));
  sr->chunk_slot = malloc(((size_t)hk * sr->nsc + 1) * sizeof(int));
  if (!sr->outliers || !sr->slot_chunk || !sr->chunk_slot)
    return oom(c, where);
  for (size_t i = 0; i < (size_t)hk * sr->nsel; i++)
    sr->slot_chunk[i] = -1;
  for (size_t i = 0; i < (size_t)hk * sr->nsc; i++)
    sr->chunk_slot[i] = -1;
  xkv_status s = xkv_alloc(c->ctx, (size_t)sr->nsc * hd * c->elem + 1, &sr->lm);
  s = s ? s : xkv_alloc(c->ctx, rows * hd * c->elem, &sr->kr);
  s = s ? s : xkv_alloc(c->ctx, rows * hd * c->elem, &sr->vr);
  return s ? s : reserve_list(c, hk * sr->nsel, where);
}

/* Landmarks, outliers and exact rows from the whole prompt rebuilt once
 * (k, v: device [chunks * CH, Hkv, d]; hkv: host scratch for both). */
static xkv_status derive(xkv_cache *c, int l, void *k, void *v, char *hkv,
                         int local0, const char *where) {
  xkv_sr_layer *sr = &c->layers[l].sr;
  int L = c->groups[l / c->cfg.group].L, hk = c->cfg.n_kv_heads;
  size_t hd = (size_t)hk * c->cfg.head_dim, bytes = (size_t)L * hd * c->elem;
  size_t nlm = (size_t)sr->nsc * hd;
  xkv_status s = xkv_copy_d2h(c->ctx, hkv, k, bytes, NULL);
  s = s ? s : xkv_copy_d2h(c->ctx, hkv + bytes, v, bytes, NULL);
  double *mc = malloc(((size_t)hk * sr->nsc + 1) * sizeof *mc);
  float *kf = malloc((nlm * CH + 1) * sizeof *kf);
  float *lm = malloc((nlm + 1) * sizeof *lm);
  char *lms = malloc(nlm * c->elem + 1);
  if (!s && (!mc || !kf || !lm || !lms))
    s = oom(c, where);
  if (!s) {
    xkv_cache_from_storage(c, hkv, kf, nlm * CH);
    landmarks(c, kf, sr->nsc, lm, mc);
    for (int h = 0; h < hk; h++) {
      int *o = sr->outliers + h * sr->nout;
      lowest(mc + (size_t)h * sr->nsc, sr->nsc, sr->nout, o);
      for (int i = 0; i < sr->nout; i++)
        sr->chunk_slot[(size_t)h * sr->nsc + o[i]] = -2;
    }
    xkv_cache_to_storage(c, lm, lms, nlm);
    s = xkv_copy_h2d(c->ctx, sr->lm, lms, nlm * c->elem, NULL);
  }
  s = s ? s : exact_rows(c, sr, hkv, hkv + bytes, local0, L);
  free(mc);
  free(kf);
  free(lm);
  free(lms);
  return s;
}

xkv_status xkv_cache_sr_prepare(xkv_cache *c, int l, const char *where) {
  const xkv_group *gr = &c->groups[l / c->cfg.group];
  int L = gr->L, hk = c->cfg.n_kv_heads;
  if (c->cfg.sr_budget >= L)
    return XKV_OK; /* the budget covers the prompt: dense decode */
  int local0 = L > c->cfg.sr_local_window ? L - c->cfg.sr_local_window : 0;
  local0 -= local0 % CH;
  xkv_sr_layer *sr = &c->layers[l].sr;
  xkv_status s = layout(c, sr, L, local0, where);
  int nch = (L + CH - 1) / CH;
  size_t hd = (size_t)hk * c->cfg.head_dim,
         bytes = (size_t)nch * CH * hd * c->elem;
  void *k = NULL, *v = NULL;
  char *hkv = malloc(bytes * 2);
  if (!s && !hkv)
    s = oom(c, where);
  s = s ? s : xkv_alloc(c->ctx, bytes, &k);
  s = s ? s : xkv_alloc(c->ctx, bytes, &v);
  s = s ? s : reserve_list(c, hk * nch, where);
  for (int i = 0; !s && i < hk * nch; i++) { /* every chunk in place */
    c->sr_list[3 * i] = i / nch;
    c->sr_list[3 * i + 1] = c->sr_list[3 * i + 2] = i % nch;
  }
  s = s ? s : rebuild(c, l, hk * nch, k, v, 0);
  s = s ? s : derive(c, l, k, v, hkv, local0, where);
  s = s || c->sr_host ? s : xkv_cache_sr_dev_init(c, l);
  xkv_free(c->ctx, k);
  xkv_free(c->ctx, v);
  free(hkv);
  if (s)
    xkv_cache_sr_free(c, &c->layers[l]);
  return s;
}

/* Head h's top nsel chunks by summed landmark probability (outliers
 * excluded) into sel: the lowest of the negated sums. The sum is f32 in
 * g order, as kernel xkv_sr_select sums, so both pick the same chunks. */
static void top_chunks(const xkv_cache *c, const xkv_sr_layer *sr, int h,
                       double *key, int *sel) {
  int G = c->cfg.n_heads / c->cfg.n_kv_heads;
  for (int ch = 0; ch < sr->nsc; ch++) {
    float p = 0;
    for (int g = 0; g < G; g++)
      p += c->sr_probs[(size_t)(h * G + g) * sr->nsc + ch];
    key[ch] = sr->chunk_slot[(size_t)h * sr->nsc + ch] == -2 ? INFINITY : -p;
  }
  lowest(key, sr->nsc, sr->nsel, sel);
}

/* Keeps the selected chunks that the reuse cache holds, moves the others
 * (in chunk order) into the slots of chunks no longer selected (in slot
 * order) and lists them (from entry *n on) for the rebuild; returns the
 * hits. */
static int reuse(xkv_sr_layer *sr, int h, const int *sel, char *want, int *n,
                 int *list) {
  int *slots = sr->slot_chunk + (size_t)h * sr->nsel;
  int *where = sr->chunk_slot + (size_t)h * sr->nsc, hits = 0, free_at = 0;
  for (int i = 0; i < sr->nsel; i++)
    want[sel[i]] = 1;
  for (int ch = 0; ch < sr->nsc; ch++) {
    if (!want[ch])
      continue;
    if (where[ch] >= 0) {
      hits++;
      continue;
    }
    while (slots[free_at] >= 0 && want[slots[free_at]])
      free_at++; /* a free slot exists: nsel selected, nsel slots */
    if (slots[free_at] >= 0)
      where[slots[free_at]] = -1;
    slots[free_at] = ch;
    where[ch] = free_at;
    int *e = list + 3 * (*n)++;
    e[0] = h;
    e[1] = ch;
    e[2] = free_at;
  }
  for (int i = 0; i < sr->nsel; i++)
    want[sel[i]] = 0;
  return hits;
}

/* The selection and rebuild of one step on the host, from the landmark
 * probabilities in c->s. */
static xkv_status host_select(xkv_cache *c, int l) {
  xkv_sr_layer *sr = &c->layers[l].sr;
  int hq = c->cfg.n_heads, hk = c->cfg.n_kv_heads;
  size_t np = (size_t)hq * sr->nsc;
  if (np > c->sr_probs_cap) {
    float *p = realloc(c->sr_probs, np * sizeof *p);
    if (!p)
      return oom(c, "xkv_attention");
    c->sr_probs = p;
    c->sr_probs_cap = np;
  }
  xkv_status s = xkv_copy_d2h(c->ctx, c->sr_probs, c->s, np * 4, NULL);
  double *key = malloc((size_t)sr->nsc * sizeof *key);
  int *sel = malloc((size_t)sr->nsel * sizeof *sel);
  char *want = calloc((size_t)sr->nsc, 1);
  if (!s && (!key || !sel || !want))
    s = oom(c, "xkv_attention");
  int n = 0, hits = 0;
  for (int h = 0; !s && h < hk; h++) {
    top_chunks(c, sr, h, key, sel);
    hits += reuse(sr, h, sel, want, &n, c->sr_list);
  }
  free(key);
  free(sel);
  free(want);
  if (!s && n)
    s = rebuild(c, l, n, sr->kr, sr->vr, sr->nfix);
  if (s)
    return s;
  c->sr_hit += (uint64_t)hits;
  c->sr_rebuilt += (uint64_t)n;
  c->sr_last_hit = hits;
  c->sr_last_rebuilt = n;
  return XKV_OK;
}

xkv_status xkv_cache_sr_forget(xkv_cache *c, int l) {
  xkv_sr_layer *sr = &c->layers[l].sr;
  int hk = c->cfg.n_kv_heads;
  for (size_t i = 0; i < (size_t)hk * sr->nsel; i++)
    sr->slot_chunk[i] = -1;
  for (size_t i = 0; i < (size_t)hk * sr->nsc; i++)
    sr->chunk_slot[i] = sr->chunk_slot[i] == -2 ? -2 : -1;
  if (c->sr_host || !sr->tot)
    return XKV_OK;
  xkv_status s = xkv_copy_h2d(c->ctx, sr->sc_dev, sr->slot_chunk,
                              (size_t)hk * sr->nsel * sizeof(int), NULL);
  return s ? s
           : xkv_copy_h2d(c->ctx, sr->cs_dev, sr->chunk_slot,
                          (size_t)hk * sr->nsc * sizeof(int), NULL);
}

xkv_status xkv_cache_sr_slots(xkv_cache *c, int l, int *slot_chunk) {
  const xkv_sr_layer *sr = &c->layers[l].sr;
  size_t n = (size_t)c->cfg.n_kv_heads * sr->nsel;
  if (c->sr_host || !sr->tot) {
    memcpy(slot_chunk, sr->slot_chunk, n * sizeof *slot_chunk);
    return XKV_OK;
  }
  return xkv_copy_d2h(c->ctx, slot_chunk, sr->sc_dev, n * sizeof *slot_chunk,
                      NULL);
}

xkv_status xkv_cache_sr_select(xkv_cache *c, int l) {
  xkv_sr_layer *sr = &c->layers[l].sr;
  if (!sr->nsel)
    return XKV_OK;
  xkv_status s = xkv_cache_scores_exact(c, sr->lm, sr->nsc, c->s, sr->nsc);
  s = s ? s : xkv_cache_softmax(c, c->s, c->cfg.n_heads, sr->nsc);
  s = s ? s : c->sr_host ? host_select(c, l) : xkv_cache_sr_dev_select(c, l);
  if (s) { /* the slots may not hold what they claim: start over */
    xkv_cache_sr_forget(c, l);
    return s;
  }
  c->sr_steps++;
  return XKV_OK;
}
