/* Absorbed MLA decode over a layer of the xKV latent cache, flash-decoding
 * style (kernels.xk "MLA"): the compressed prompt is attended in rank
 * space (q_r = B_l q_lat; scores A q_r + K_pe q_pe; output sum p A), the
 * exact latent rows (appended tokens, or an exact group's prompt) in
 * latent space, by the same split kernel at two widths; xkv_mla_combine
 * merges both sources' splits in one softmax, and out_lat += U B_l maps
 * the rank-space part back. */
#include "xkv_cache_mla_int.h"

static int nsplits(const xkv_mla_cache *m, int T) {
  int progs = (m->cfg.n_heads + XKV_MLA_BLOCK_H - 1) / XKV_MLA_BLOCK_H;
  return xkv_cache_nsplits_wave(m->units, progs, T);
}

/* T rows C [T, w] and K_pe [T, P] into splits s0..s0+ns-1 by kernel k */
static xkv_status split(xkv_mla_cache *m, xkv_kernel *k, const void *c,
                        const void *kpe, const float *q, const float *qp, int T,
                        int w, int s0, int ns, float scale) {
  xkv_dtype dt = m->cfg.dtype;
  xkv_arg a[] = {xkv_arg_ptr(dt, (void *)c),
                 xkv_arg_ptr(dt, (void *)kpe),
                 xkv_arg_ptr(XKV_F32, (void *)q),
                 xkv_arg_ptr(XKV_F32, (void *)qp),
                 xkv_arg_ptr(XKV_F32, m->po),
                 xkv_arg_ptr(XKV_F32, m->pm),
                 xkv_arg_ptr(XKV_F32, m->pl),
                 xkv_arg_i32(T),
                 xkv_arg_i32(w),
                 xkv_arg_i32(m->cfg.n_heads),
                 xkv_arg_i32(ns),
                 xkv_arg_i32(XKV_MAX_SPLITS),
                 xkv_arg_i32(m->ldp),
                 xkv_arg_i32(s0),
                 xkv_arg_f32(scale)};
  return xkv_launch(m->ctx, k, NULL, a, 15, NULL);
}

/* C [H, n] (+)= A [H, k] op(B) with B_l [rank, R] in the storage dtype:
 * op(B) = B_l^T (sbk 1, sbn R) for the query, B_l for the output */
static xkv_status gemm_b(xkv_mla_cache *m, const float *a, int lda,
                         const void *b, int sbk, int sbn, float *c, int n,
                         int k, float beta) {
  xkv_arg args[] = {xkv_arg_ptr(XKV_F32, (void *)a),
                    xkv_arg_ptr(m->cfg.dtype, (void *)b),
                    xkv_arg_ptr(XKV_F32, c),
                    xkv_arg_i32(m->cfg.n_heads),
                    xkv_arg_i32(n),
                    xkv_arg_i32(k),
                    xkv_arg_i32(lda),
                    xkv_arg_i32(1),
                    xkv_arg_i32(sbk),
                    xkv_arg_i32(sbn),
                    xkv_arg_i32(n),
                    xkv_arg_f32(beta)};
  return xkv_launch(m->ctx, m->gemm_b, NULL, args, 12, NULL);
}

static xkv_status combine(xkv_mla_cache *m, int ns0, int ns, int rw,
                          float *out) {
  xkv_arg a[] = {xkv_arg_ptr(XKV_F32, m->po),
                 xkv_arg_ptr(XKV_F32, m->pm),
                 xkv_arg_ptr(XKV_F32, m->pl),
                 xkv_arg_ptr(XKV_F32, m->u),
                 xkv_arg_ptr(XKV_F32, out),
                 xkv_arg_i32(m->cfg.n_heads),
                 xkv_arg_i32(ns0),
                 xkv_arg_i32(ns),
                 xkv_arg_i32(XKV_MAX_SPLITS),
                 xkv_arg_i32(m->ldp),
                 xkv_arg_i32(rw),
                 xkv_arg_i32(m->cfg.kv_lora_rank),
                 xkv_arg_i32(rw ? rw : 1)};
  return xkv_launch(m->ctx, m->combine, NULL, a, 13, NULL);
}

xkv_status xkv_mla_attention(xkv_mla_cache *m, int layer, const float *q_lat,
                             const float *q_pe, float scale, float *out_lat) {
  if (!m)
    return XKV_ERR_INVALID;
  xkv_context *ctx = m->ctx;
  if (!q_lat || !q_pe || !out_lat)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_mla_attention: NULL q_lat, q_pe or out_lat");
  if (layer < 0 || layer >= m->cfg.n_layers)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_mla_attention: layer %d is out of 0..%d", layer,
                  m->cfg.n_layers - 1);
  xkv_mla_layer *y = &m->layers[layer];
  xkv_mla_group *gr = &m->groups[layer / m->cfg.group];
  if (!y->prefilled || (!gr->exact && !gr->rank))
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_mla_attention: layer %d is not ready (its prefill, or "
                  "its group's last layer's prefill, has not arrived)",
                  layer);
  int R = m->cfg.kv_lora_rank, r = gr->rank;
  int ns0 = r ? nsplits(m, gr->L) : 0, ns1 = nsplits(m, y->n_exact);
  size_t tail = (size_t)(r ? gr->L : 0) * XKV_MLA_P * m->elem;
  xkv_status s = XKV_OK;
  if (r) { /* q_r = q_lat B_l^T, then the prompt in rank space */
    s = gemm_b(m, q_lat, R, y->b, 1, R, m->qr, r, R, 0.0f);
    s = s ? s
          : split(m, gr->dec, gr->a, y->kpe, m->qr, q_pe, gr->L, r, 0, ns0,
                  scale);
  }
  if (!s && ns1)
    s = split(m, m->dec_exact, y->cx, (const char *)y->kpe + tail, q_lat, q_pe,
              y->n_exact, R, ns0, ns1, scale);
  s = s ? s : combine(m, ns0, ns0 + ns1, r, out_lat);
  return s || !r ? s : gemm_b(m, m->u, r, y->b, R, 1, out_lat, R, r, 1.0f);
}
