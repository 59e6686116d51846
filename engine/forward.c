#include "forward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ATT_BLOCK = 64 }; /* query rows per block of prefill attention */

static void rmsnorm(float *out, const float *x, const float *w, int n,
                    float eps) {
  float ss = 0;
  for (int i = 0; i < n; i++)
    ss += x[i] * x[i];
  float r = 1.0f / sqrtf(ss / (float)n + eps);
  for (int i = 0; i < n; i++)
    out[i] = w[i] * (x[i] * r);
}

/* h1 = act(h1) * h3: SiLU (SwiGLU) or tanh-approximated GELU (GeGLU) */
static void glu(int gelu, float *h1, const float *h3, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float x = h1[i];
    float a =
        gelu ? 0.5f * x *
                   (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)))
             : x / (1.0f + expf(-x));
    h1[i] = a * h3[i];
  }
}

/* out[n, rows] = X[n, cols] . W[rows, cols]^T */
static void mm(float *out, const float *X, const float *W, int n, int rows,
               int cols) {
  if (n == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, cols, 1.0f, W, cols, X, 1,
                0.0f, out, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, rows, cols, 1.0f, X,
                cols, W, cols, 0.0f, out, rows);
}

int eng_state_init_rows(eng_state *s, const eng_model *m, int rows,
                        eng_err *err) {
  memset(s, 0, sizeof *s);
  if (rows < 1)
    return eng_fail(err, "forward: a decode state for %d rows (at least 1)",
                    rows);
  s->m = m;
  s->rows = rows;
  const eng_config *c = &m->cfg;
  size_t n = (size_t)rows, d = (size_t)c->dim;
  size_t qd = (size_t)c->n_heads * c->head_dim;
  size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
  s->x = malloc(n * d * sizeof(float));
  s->xb = malloc(n * (qd > d ? qd : d) * sizeof(float));
  s->xb2 = malloc(n * d * sizeof(float));
  s->hb = malloc(n * c->hidden_dim * sizeof(float));
  s->hb2 = malloc(n * c->hidden_dim * sizeof(float));
  s->q = malloc(n * qd * sizeof(float));
  s->k = malloc(n * kvd * sizeof(float));
  s->v = malloc(n * kvd * sizeof(float));
  s->att = malloc(n * qd * sizeof(float));
  if (!s->x || !s->xb || !s->xb2 || !s->hb || !s->hb2 || !s->q || !s->k ||
      !s->v || !s->att) {
    eng_state_free(s);
    return eng_fail(err, "forward: out of memory for the decode state");
  }
  return 0;
}

int eng_state_init(eng_state *s, const eng_model *m, eng_err *err) {
  return eng_state_init_rows(s, m, 1, err);
}

void eng_state_free(eng_state *s) {
  free(s->x);
  free(s->xb);
  free(s->xb2);
  free(s->hb);
  free(s->hb2);
  free(s->q);
  free(s->k);
  free(s->v);
  free(s->att);
  memset(s, 0, sizeof *s);
}

/* X[n, dim] += Y, Y first normed row by row when the layer has a norm
 * after its sublayer (Gemma 3). */
static void residual(const eng_config *c, const float *post, float *X, float *Y,
                     int n, int dim) {
  for (size_t t = 0; post && t < (size_t)n; t++)
    rmsnorm(Y + t * dim, Y + t * dim, post, dim, c->norm_eps);
  for (size_t i = 0; i < (size_t)n * dim; i++)
    X[i] += Y[i];
}

static void embed(const eng_model *m, int token, float *x) {
  size_t d = (size_t)m->cfg.dim;
  float sc = m->cfg.embed_scale > 0 ? m->cfg.embed_scale : 1.0f;
  const float *e = m->tok_emb + (size_t)token * d;
  for (size_t i = 0; i < d; i++)
    x[i] = e[i] * sc;
}

static void add_bias(float *X, const float *b, int n, int dim) {
  for (size_t t = 0; b && t < (size_t)n; t++)
    for (int i = 0; i < dim; i++)
      X[t * dim + i] += b[i];
}

/* n rows of heads vectors of head_dim, each RMS-normed by w (QK-norm). */
static void head_norm(const eng_config *c, float *X, const float *w, int n,
                      int heads) {
  for (size_t i = 0; w && i < (size_t)n * heads; i++)
    rmsnorm(X + i * c->head_dim, X + i * c->head_dim, w, c->head_dim,
            c->norm_eps);
}

/* Q, K, V of n normed rows XB: projections, biases, QK-norm (pre-RoPE). */
static void project_qkv(const eng_config *c, const eng_layer *y,
                        const float *XB, float *Q, float *K, float *V, int n) {
  int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
  mm(Q, XB, y->wq, n, qd, c->dim);
  mm(K, XB, y->wk, n, kvd, c->dim);
  mm(V, XB, y->wv, n, kvd, c->dim);
  add_bias(Q, y->bq, n, qd);
  add_bias(K, y->bk, n, kvd);
  add_bias(V, y->bv, n, kvd);
  head_norm(c, Q, y->q_norm, n, c->n_heads);
  head_norm(c, K, y->k_norm, n, c->n_kv_heads);
}

/* The feed-forward sublayer on n rows of X (XB, H1, H3 scratch). */
static void ffn(const eng_config *c, const eng_layer *y, float *X, float *XB,
                float *H1, float *H3, int n) {
  size_t d = (size_t)c->dim;
  for (size_t t = 0; t < (size_t)n; t++)
    rmsnorm(XB + t * d, X + t * d, y->rms_ffn, c->dim, c->norm_eps);
  mm(H1, XB, y->w1, n, c->hidden_dim, c->dim);
  mm(H3, XB, y->w3, n, c->hidden_dim, c->dim);
  glu(c->gelu, H1, H3, (size_t)n * c->hidden_dim);
  mm(XB, H1, y->w2, n, c->dim, c->hidden_dim);
  residual(c, y->post_ffn, X, XB, n, c->dim);
}

/* Exact causal attention of the rotated prompt, ATT_BLOCK query rows at a
 * time so that the score block stays small at long contexts; a
 * sliding-window layer (window > 0) sees only the last `window` keys, and
 * only their columns are computed. */
static void causal_attention(const eng_config *c, int window, const float *Q,
                             const float *K, const float *V, int n, float *att,
                             float *S) {
  int hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
  int rep = c->n_heads / c->n_kv_heads;
  float scale = 1.0f / sqrtf((float)hd);
  for (int h = 0; h < c->n_heads; h++) {
    int g = h / rep;
    for (int r0 = 0; r0 < n; r0 += ATT_BLOCK) {
      int bm = n - r0 < ATT_BLOCK ? n - r0 : ATT_BLOCK;
      int c0 = window > 0 && r0 >= window ? r0 - window + 1 : 0;
      int cols = r0 + bm - c0; /* key columns c0 .. r0 + bm - 1 */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bm, cols, hd, scale,
                  Q + (size_t)r0 * qd + h * hd, qd,
                  K + (size_t)c0 * kvd + g * hd, kvd, 0.0f, S, cols);
      for (int i = 0; i < bm; i++) {
        float *row = S + (size_t)i * cols;
        int last = r0 + i - c0; /* causal: keys first..last */
        int first = window > 0 && last >= window ? last - window + 1 : 0;
        float mx = row[first], sum = 0;
        for (int j = first + 1; j <= last; j++)
          mx = fmaxf(mx, row[j]);
        for (int j = 0; j < first; j++)
          row[j] = 0;
        for (int j = first; j <= last; j++)
          sum += row[j] = expf(row[j] - mx);
        for (int j = first; j <= last; j++)
          row[j] /= sum;
        for (int j = last + 1; j < cols; j++)
          row[j] = 0;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bm, hd, cols, 1.0f,
                  S, cols, V + (size_t)c0 * kvd + g * hd, kvd, 0.0f,
                  att + (size_t)r0 * qd + h * hd, qd);
    }
  }
}

static void logits_of(const eng_model *m, const float *x, float *xb,
                      float *logits) {
  const eng_config *c = &m->cfg;
  rmsnorm(xb, x, m->rms_final, c->dim, c->norm_eps);
  mm(logits, xb, m->wcls, 1, c->vocab_size, c->dim);
}

int eng_prefill(eng_state *s, eng_kv *kv, const int *tokens, int n,
                float *logits, eng_progress_fn progress, void *user,
                eng_err *err) {
  const eng_model *m = s->m;
  const eng_config *c = &m->cfg;
  if (n <= 0 || n > c->seq_len)
    return eng_fail(err, "prefill: %d tokens (the model allows 1..%d)", n,
                    c->seq_len);
  size_t d = c->dim, f = c->hidden_dim, hd = c->head_dim;
  size_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, N = (size_t)n;
  size_t wide = qd > d ? qd : d;
  float *X = malloc(N * d * sizeof(float)), *XB = malloc(N * wide * 4);
  float *Q = malloc(N * qd * 4), *K = malloc(N * kvd * 4);
  float *KR = malloc(N * kvd * 4), *V = malloc(N * kvd * 4);
  float *ATT = malloc(N * qd * 4), *H1 = malloc(N * f * 4);
  float *H3 = malloc(N * f * 4), *S = malloc(ATT_BLOCK * N * 4);
  int rc = -1;
  if (!X || !XB || !Q || !K || !KR || !V || !ATT || !H1 || !H3 || !S) {
    eng_fail(err, "prefill: out of memory for %d tokens", n);
    goto done;
  }
  for (int t = 0; t < n; t++) {
    if (tokens[t] < 0 || tokens[t] >= c->vocab_size) {
      eng_fail(err, "prefill: token %d at %d outside the vocabulary", tokens[t],
               t);
      goto done;
    }
    embed(m, tokens[t], X + t * d);
  }
  for (int l = 0; l < c->n_layers; l++) {
    const eng_layer *y = &m->layers[l];
    for (size_t t = 0; t < N; t++)
      rmsnorm(XB + t * d, X + t * d, y->rms_att, (int)d, c->norm_eps);
    project_qkv(c, y, XB, Q, K, V, n);
    if (kv->ops->prefill(kv, l, K, V, n, err))
      goto done;
    memcpy(KR, K, N * kvd * sizeof(float));
    for (int t = 0; t < n; t++) {
      eng_rope_layer(c, l, Q + t * qd, c->n_heads, t);
      eng_rope_layer(c, l, KR + t * kvd, c->n_kv_heads, t);
    }
    causal_attention(c, eng_layer_window(c, l), Q, KR, V, n, ATT, S);
    mm(XB, ATT, y->wo, n, (int)d, (int)qd);
    residual(c, y->post_att, X, XB, n, (int)d);
    ffn(c, y, X, XB, H1, H3, n);
    if (progress)
      progress(user, l + 1, c->n_layers);
  }
  if (logits)
    logits_of(m, X + (N - 1) * d, s->xb, logits);
  rc = 0;
done:
  free(X);
  free(XB);
  free(Q);
  free(K);
  free(KR);
  free(V);
  free(ATT);
  free(H1);
  free(H3);
  free(S);
  return rc;
}

int eng_decode_batch(eng_state *s, eng_kv *const *kvs, const int *tokens,
                     const int *pos, int n, float *logits, eng_err *err) {
  const eng_model *m = s->m;
  const eng_config *c = &m->cfg;
  if (n < 1 || n > s->rows)
    return eng_fail(err, "decode: %d sequences (the state holds 1..%d)", n,
                    s->rows);
  for (int b = 0; b < n; b++) {
    if (tokens[b] < 0 || tokens[b] >= c->vocab_size)
      return eng_fail(err,
                      "decode: sequence %d: token %d outside the "
                      "vocabulary",
                      b, tokens[b]);
    if (pos[b] < 0 || pos[b] >= c->seq_len)
      return eng_fail(err,
                      "decode: sequence %d: position %d past the "
                      "model's %d",
                      b, pos[b], c->seq_len);
  }
  double t0 = eng_now();
  int d = c->dim, qd = c->n_heads * c->head_dim;
  size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
  for (int b = 0; b < n; b++)
    embed(m, tokens[b], s->x + (size_t)b * d);
  for (int l = 0; l < c->n_layers; l++) {
    const eng_layer *y = &m->layers[l];
    for (int b = 0; b < n; b++)
      rmsnorm(s->xb + (size_t)b * d, s->x + (size_t)b * d, y->rms_att, d,
              c->norm_eps);
    project_qkv(c, y, s->xb, s->q, s->k, s->v, n);
    double ta = eng_now();
    for (int b = 0; b < n; b++)
      if (kvs[b]->ops->append(kvs[b], l, s->k + b * kvd, s->v + b * kvd, err))
        return -1;
    if (eng_kv_attention_batch(c, kvs, n, l, s->q, pos, s->att, err))
      return -1;
    s->t_attn += eng_now() - ta;
    mm(s->xb2, s->att, y->wo, n, d, qd);
    residual(c, y->post_att, s->x, s->xb2, n, d);
    ffn(c, y, s->x, s->xb, s->hb, s->hb2, n);
  }
  for (int b = 0; logits && b < n; b++)
    logits_of(m, s->x + (size_t)b * d, s->xb,
              logits + (size_t)b * c->vocab_size);
  s->t_decode += eng_now() - t0;
  return 0;
}

int eng_decode(eng_state *s, eng_kv *kv, int token, int pos, float *logits,
               eng_err *err) {
  return eng_decode_batch(s, &kv, &token, &pos, 1, logits, err);
}
