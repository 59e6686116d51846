/* Decode attention for a batch of sequences of different lengths, each its
 * own cache (xkv_attention_batch), the way a serving engine calls it: the
 * queries are rotated and SR's selection runs per sequence (both are small
 * and per cache), then each source of the layer is one launch for the
 * whole batch (kernels xkv_decode_lr1_batch_<dt>, xkv_decode_exact_batch_
 * <dt>): the compressed prompts, SR's rebuilt rows, the exact tails, each
 * in its own range of partial columns, since one batch may mix sequences
 * whose prompts decode each way (a short prompt stays exact, a prompt
 * within SR's budget decodes densely). A sequence without a source has an
 * empty entry in that launch, whose splits store max -inf and sum 0, so
 * one combine over every column and the batch's rows finishes. The kernels
 * reach each sequence's tensors as element offsets from the first's
 * (tables uploaded once per call): the DSL has no pointer loads. */
#include "xkv_cache_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WHERE "xkv_attention_batch"

/* the launches, in partial-column order; CLEAR writes empty splits over
 * the compressed prompts' columns for the sequences that have none, when
 * the per-sequence three-sweep kernel serves the prompts */
enum { SRC_LR, SRC_SR, SRC_TAIL, SRC_CLEAR, NSRC };
/* per sequence, each launch's i64 offsets (the kernels' Off) and i32
 * sizes (Seq): lr1 Ak, Bk, Av, Bv, Q and L, rk, rv, NS; exact K, V, Q and
 * T, NS */
static const int n_off[NSRC] = {5, 3, 3, 3}, n_int[NSRC] = {4, 2, 2, 2};
#define TAB_BYTES_PER_SEQ ((5 + 3 + 3 + 3) * 8 + (4 + 2 + 2 + 2) * 4)

typedef struct {
  int64_t *off[NSRC];
  int32_t *seq[NSRC];
  size_t off_at[NSRC], seq_at[NSRC]; /* their byte offsets in btab */
  const void *base[NSRC][5];         /* the pointers the offsets start at */
  int nsg[NSRC];                     /* the launch's grid splits; 0: none */
  int bad_align;
} plan;

static xkv_status bad(xkv_context *ctx, const char *what, int b) {
  return rt_err(ctx, XKV_ERR_INVALID, WHERE ": sequence %d: %s", b, what);
}

/* The caches must share what the kernels take once for the batch. */
static xkv_status check(xkv_cache *const *cs, int n, int layer,
                        const int *pos) {
  const xkv_cache_config *f = &cs[0]->cfg;
  for (int b = 0; b < n; b++) {
    if (!cs[b])
      return bad(cs[0]->ctx, "its cache is NULL", b);
    const xkv_cache_config *g = &cs[b]->cfg;
    if (cs[b]->ctx != cs[0]->ctx)
      return bad(cs[0]->ctx, "its cache belongs to another context", b);
    if (g->n_layers != f->n_layers || g->n_heads != f->n_heads ||
        g->n_kv_heads != f->n_kv_heads || g->head_dim != f->head_dim ||
        g->dtype != f->dtype || g->rope_style != f->rope_style ||
        g->rope_theta != f->rope_theta)
      return bad(cs[0]->ctx,
                 "its cache's layers, heads, head_dim, dtype or RoPE differ "
                 "from sequence 0's",
                 b);
    for (int i = 0; i < b; i++)
      if (cs[i] == cs[b])
        return bad(cs[0]->ctx, "its cache is also an earlier sequence's", b);
    xkv_status s = xkv_cache_attn_ready(cs[b], layer, pos[b], WHERE);
    if (s)
      return s;
  }
  return XKV_OK;
}

/* Scratch in the batch's first cache for n sequences. */
static xkv_status reserve(xkv_cache *c, int n) {
  if (n <= c->bcap)
    return XKV_OK;
  float **f[] = {&c->bpo, &c->bpm, &c->bpl};
  for (int i = 0; i < 3; i++) {
    xkv_free(c->ctx, *f[i]);
    *f[i] = NULL;
  }
  xkv_free(c->ctx, c->btab_dev);
  c->btab_dev = NULL;
  c->bcap = 0;
  size_t np = (size_t)n * c->cfg.n_heads * XKV_BATCH_LDO;
  size_t tab = (size_t)n * TAB_BYTES_PER_SEQ;
  void *h = realloc(c->btab, tab);
  if (!h)
    return rt_err(c->ctx, XKV_ERR_OUT_OF_MEMORY, WHERE ": out of memory");
  c->btab = h;
  xkv_status s = xkv_alloc(c->ctx, np * c->cfg.head_dim * 4, (void **)&c->bpo);
  s = s ? s : xkv_alloc(c->ctx, np * 4, (void **)&c->bpm);
  s = s ? s : xkv_alloc(c->ctx, np * 4, (void **)&c->bpl);
  s = s ? s : xkv_alloc(c->ctx, tab, &c->btab_dev);
  c->bcap = s ? 0 : n;
  return s;
}

static void plan_init(plan *p, void *tab, int n) {
  memset(p, 0, sizeof *p);
  size_t at = 0;
  for (int i = 0; i < NSRC; i++) {
    p->off_at[i] = at;
    p->off[i] = (int64_t *)((char *)tab + at);
    at += (size_t)n * n_off[i] * 8;
  }
  for (int i = 0; i < NSRC; i++) {
    p->seq_at[i] = at;
    p->seq[i] = (int32_t *)((char *)tab + at);
    at += (size_t)n * n_int[i] * 4;
  }
  /* every entry empty until set: no rows, one split, ranks 0 */
  memset(tab, 0, at);
  for (int i = 0; i < NSRC; i++)
    for (int b = 0; b < n; b++)
      p->seq[i][(size_t)b * n_int[i] + n_int[i] - 1] = 1;
}

/* Entry b of launch i: the pointers ptr (each at its offset from the
 * launch's first entry's, in elements of esz bytes) and the sizes. */
static void plan_set(plan *p, int i, int b, const void *const *ptr,
                     const size_t *esz, const int32_t *ints) {
  int first = !p->base[i][0];
  for (int j = 0; j < n_off[i]; j++) {
    if (first)
      p->base[i][j] = ptr[j];
    intptr_t d = (intptr_t)ptr[j] - (intptr_t)p->base[i][j];
    p->bad_align |= d % (intptr_t)esz[j] != 0;
    p->off[i][(size_t)b * n_off[i] + j] = (int64_t)(d / (intptr_t)esz[j]);
  }
  memcpy(p->seq[i] + (size_t)b * n_int[i], ints, (size_t)n_int[i] * 4);
  int ns = ints[n_int[i] - 1];
  p->nsg[i] = ns > p->nsg[i] ? ns : p->nsg[i];
}

static int at_least_1(int ns) {
  return ns > 0 ? ns : 1;
}

/* One exact-rows launch (SRC_SR, SRC_TAIL or SRC_CLEAR) at columns s0.. */
static xkv_status launch_exact(xkv_cache *c0, const plan *p, int i, int n,
                               int s0) {
  const xkv_cache_config *f = &c0->cfg;
  xkv_dtype dt = f->dtype;
  char *tab = c0->btab_dev;
  xkv_arg a[] = {xkv_arg_ptr(dt, (void *)p->base[i][0]),
                 xkv_arg_ptr(dt, (void *)p->base[i][1]),
                 xkv_arg_ptr(XKV_F32, (void *)p->base[i][2]),
                 xkv_arg_ptr(XKV_F32, c0->bpo),
                 xkv_arg_ptr(XKV_F32, c0->bpm),
                 xkv_arg_ptr(XKV_F32, c0->bpl),
                 xkv_arg_i32(f->n_kv_heads),
                 xkv_arg_i32(f->n_heads / f->n_kv_heads),
                 xkv_arg_i32(XKV_BATCH_LDO),
                 xkv_arg_i32(s0),
                 xkv_arg_ptr(XKV_I64, tab + p->off_at[i]),
                 xkv_arg_ptr(XKV_I32, tab + p->seq_at[i]),
                 xkv_arg_i32(n),
                 xkv_arg_i32(p->nsg[i])};
  return xkv_launch(c0->ctx, c0->k.decode_exact_batch, NULL, a, 14, NULL);
}

/* The compressed prompts in one launch of the single-pass kernel k, RoPE
 * tables from cache ct (the longest: the tables agree where both exist). */
static xkv_status launch_lr1(xkv_cache *c0, const xkv_cache *ct, xkv_kernel *k,
                             const plan *p, int n) {
  const xkv_cache_config *f = &c0->cfg;
  xkv_dtype dt = f->dtype;
  char *tab = c0->btab_dev;
  xkv_arg a[18];
  int m = 0;
  for (int j = 0; j < 4; j++)
    a[m++] = xkv_arg_ptr(dt, (void *)p->base[SRC_LR][j]);
  a[m++] = xkv_arg_ptr(XKV_F32, (void *)p->base[SRC_LR][4]);
  a[m++] = xkv_arg_ptr(XKV_F32, ct->cos);
  a[m++] = xkv_arg_ptr(XKV_F32, ct->sin);
  a[m++] = xkv_arg_ptr(XKV_F32, c0->bpo);
  a[m++] = xkv_arg_ptr(XKV_F32, c0->bpm);
  a[m++] = xkv_arg_ptr(XKV_F32, c0->bpl);
  a[m++] = xkv_arg_i32(f->n_kv_heads);
  a[m++] = xkv_arg_i32(f->n_heads / f->n_kv_heads);
  a[m++] = xkv_arg_i32(XKV_BATCH_LDO);
  a[m++] = xkv_arg_i32(0);
  a[m++] = xkv_arg_ptr(XKV_I64, tab + p->off_at[SRC_LR]);
  a[m++] = xkv_arg_ptr(XKV_I32, tab + p->seq_at[SRC_LR]);
  a[m++] = xkv_arg_i32(n);
  a[m++] = xkv_arg_i32(p->nsg[SRC_LR]);
  return xkv_launch(c0->ctx, k, NULL, a, m, NULL);
}

/* Sequence b's partials in the batch's (its rows b Hq..). */
static xkv_partials rows_of(const xkv_cache *c0, int b) {
  size_t r = (size_t)b * c0->cfg.n_heads * XKV_BATCH_LDO;
  return (xkv_partials){c0->bpo + r * c0->cfg.head_dim, c0->bpm + r,
                        c0->bpl + r, XKV_BATCH_LDO};
}

/* Queries, SR selections and the launches' entries of every sequence. */
static xkv_status prepare(xkv_cache *const *cs, int n, int layer,
                          const float *q, const int *pos, plan *p,
                          xkv_kernel **lr1) {
  xkv_cache *c0 = cs[0];
  const xkv_cache_config *f = &c0->cfg;
  int hq = f->n_heads, hk = f->n_kv_heads, rk = 0, rv = 0, any_lr = 0;
  /* the batch shares the device: each sequence's splits fill its share */
  int u = c0->units / n > 0 ? c0->units / n : 1;
  size_t e = c0->elem, qe = 4;
  for (int b = 0; b < n; b++) {
    const xkv_group *gr = &cs[b]->groups[layer / cs[b]->cfg.group];
    if (!cs[b]->layers[layer].sr.lm && !gr->exact) {
      any_lr = 1;
      rk = gr->rank_k > rk ? gr->rank_k : rk;
      rv = gr->rank_v > rv ? gr->rank_v : rv;
    }
  }
  *lr1 = any_lr ? xkv_cache_lr1_batch_find(c0, rk, rv) : NULL;
  xkv_status s = XKV_OK;
  for (int b = 0; !s && b < n; b++) {
    xkv_cache *c = cs[b];
    const xkv_layer *y = &c->layers[layer];
    const xkv_group *gr = &c->groups[layer / c->cfg.group];
    s = xkv_cache_load_query(c, q + (size_t)b * hq * f->head_dim, pos[b]);
    if (!s && y->sr.lm) {
      s = xkv_cache_sr_select(c, layer);
      int lp = y->sr.nfix + y->sr.nsel * XKV_SR_CHUNK;
      const void *ptr[] = {y->sr.kr, y->sr.vr, c->q};
      size_t sz[] = {e, e, qe};
      int32_t in[] = {lp, at_least_1(xkv_cache_nsplits(u, hq, hk, lp))};
      plan_set(p, SRC_SR, b, ptr, sz, in);
    } else if (!s && !gr->exact) {
      const void *ptr[] = {gr->ak, y->bk, gr->av, y->bv, c->q};
      size_t sz[] = {e, e, e, e, qe};
      int ns = *lr1 ? xkv_cache_nsplits_lr1(u, hk, XKV_LR1_HB, gr->L)
                    : xkv_cache_nsplits(u, hq, hk, gr->L);
      int32_t in[] = {gr->L, gr->rank_k, gr->rank_v, at_least_1(ns)};
      plan_set(p, SRC_LR, b, ptr, sz, in);
    }
    const void *ptr[] = {y->kx, y->vx, c->q};
    size_t sz[] = {e, e, qe};
    int32_t in[] = {y->n_exact,
                    at_least_1(xkv_cache_nsplits(u, hq, hk, y->n_exact))};
    plan_set(p, SRC_TAIL, b, ptr, sz, in);
  }
  return s;
}

xkv_status xkv_attention_batch(xkv_cache *const *caches, int n, int layer,
                               const float *q, const int *pos, float *out) {
  if (!caches || n < 1 || !caches[0])
    return XKV_ERR_INVALID;
  xkv_cache *c0 = caches[0];
  xkv_context *ctx = c0->ctx;
  if (!q || !pos || !out)
    return rt_err(ctx, XKV_ERR_INVALID, WHERE ": NULL q, pos or out");
  xkv_status s = check(caches, n, layer, pos);
  s = s ? s : reserve(c0, n);
  if (s)
    return s;
  plan p;
  xkv_kernel *lr1;
  plan_init(&p, c0->btab, n);
  s = prepare(caches, n, layer, q, pos, &p, &lr1);
  if (!s && p.bad_align)
    return rt_err(ctx, XKV_ERR_INVALID,
                  WHERE ": the caches' buffers are not aligned to their "
                        "elements");
  int lr_cols = p.nsg[SRC_LR], sr_cols = p.nsg[SRC_SR];
  if (!s && lr_cols && !lr1) {
    /* the three-sweep kernel, a launch per sequence, writes only its own
     * sequence's columns: the others get empty splits first */
    p.nsg[SRC_CLEAR] = lr_cols;
    for (int b = 0; b < n; b++)
      p.seq[SRC_CLEAR][2 * b + 1] = lr_cols;
    p.base[SRC_CLEAR][0] = c0->layers[layer].kx;
    p.base[SRC_CLEAR][1] = c0->layers[layer].vx;
    p.base[SRC_CLEAR][2] = c0->q;
  }
  s = s ? s
        : xkv_copy_h2d(ctx, c0->btab_dev, c0->btab,
                       (size_t)n * TAB_BYTES_PER_SEQ, NULL);
  if (!s && lr_cols && lr1) {
    const xkv_cache *ct = c0;
    for (int b = 1; b < n; b++)
      ct = caches[b]->cfg.max_tokens > ct->cfg.max_tokens ? caches[b] : ct;
    s = launch_lr1(c0, ct, lr1, &p, n);
  } else if (!s && lr_cols) {
    s = launch_exact(c0, &p, SRC_CLEAR, n, 0);
    for (int b = 0; !s && b < n; b++) {
      xkv_cache *c = caches[b];
      const xkv_group *gr = &c->groups[layer / c->cfg.group];
      xkv_partials r = rows_of(c0, b);
      if (p.seq[SRC_LR][4 * b]) /* its prompt: L > 0 */
        s = xkv_cache_split_lr(c, gr, &c->layers[layer], c->k.decode_lr,
                               lr_cols, &r);
    }
  }
  if (!s && sr_cols)
    s = launch_exact(c0, &p, SRC_SR, n, lr_cols);
  s = s ? s : launch_exact(c0, &p, SRC_TAIL, n, lr_cols + sr_cols);
  xkv_partials all = rows_of(c0, 0);
  return s ? s
           : xkv_cache_combine(c0, &all, n * c0->cfg.n_heads,
                               lr_cols + sr_cols + p.nsg[SRC_TAIL], out);
}
