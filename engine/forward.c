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

static void swiglu(float *h1, const float *h3, size_t n) {
  for (size_t i = 0; i < n; i++)
    h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
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

int eng_state_init(eng_state *s, const eng_model *m, eng_err *err) {
  memset(s, 0, sizeof *s);
  s->m = m;
  const eng_config *c = &m->cfg;
  size_t qd = (size_t)c->n_heads * c->head_dim;
  size_t kvd = (size_t)c->n_kv_heads * c->head_dim;
  s->x = malloc((size_t)c->dim * sizeof(float));
  s->xb = malloc((qd > (size_t)c->dim ? qd : (size_t)c->dim) * sizeof(float));
  s->xb2 = malloc((size_t)c->dim * sizeof(float));
  s->hb = malloc((size_t)c->hidden_dim * sizeof(float));
  s->hb2 = malloc((size_t)c->hidden_dim * sizeof(float));
  s->q = malloc(qd * sizeof(float));
  s->k = malloc(kvd * sizeof(float));
  s->v = malloc(kvd * sizeof(float));
  s->att = malloc(qd * sizeof(float));
  if (!s->x || !s->xb || !s->xb2 || !s->hb || !s->hb2 || !s->q || !s->k ||
      !s->v || !s->att) {
    eng_state_free(s);
    return eng_fail(err, "forward: out of memory for the decode state");
  }
  return 0;
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

static void residual(float *x, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] += y[i];
}

/* Exact causal attention of the rotated prompt, ATT_BLOCK query rows at a
 * time so that the score block stays small at long contexts. */
static void causal_attention(const eng_config *c, const float *Q,
                             const float *K, const float *V, int n, float *att,
                             float *S) {
  int hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
  int rep = c->n_heads / c->n_kv_heads;
  float scale = 1.0f / sqrtf((float)hd);
  for (int h = 0; h < c->n_heads; h++) {
    int g = h / rep;
    for (int r0 = 0; r0 < n; r0 += ATT_BLOCK) {
      int bm = n - r0 < ATT_BLOCK ? n - r0 : ATT_BLOCK, cols = r0 + bm;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bm, cols, hd, scale,
                  Q + (size_t)r0 * qd + h * hd, qd, K + g * hd, kvd, 0.0f, S,
                  cols);
      for (int i = 0; i < bm; i++) {
        float *row = S + (size_t)i * cols;
        int last = r0 + i; /* causal: keys 0..last */
        float mx = row[0], sum = 0;
        for (int j = 1; j <= last; j++)
          mx = fmaxf(mx, row[j]);
        for (int j = 0; j <= last; j++)
          sum += row[j] = expf(row[j] - mx);
        for (int j = 0; j <= last; j++)
          row[j] /= sum;
        for (int j = last + 1; j < cols; j++)
          row[j] = 0;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bm, hd, cols, 1.0f,
                  S, cols, V + g * hd, kvd, 0.0f,
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
    memcpy(X + t * d, m->tok_emb + (size_t)tokens[t] * d, d * sizeof(float));
  }
  for (int l = 0; l < c->n_layers; l++) {
    const eng_layer *y = &m->layers[l];
    for (size_t t = 0; t < N; t++)
      rmsnorm(XB + t * d, X + t * d, y->rms_att, (int)d, c->norm_eps);
    mm(Q, XB, y->wq, n, (int)qd, (int)d);
    mm(K, XB, y->wk, n, (int)kvd, (int)d);
    mm(V, XB, y->wv, n, (int)kvd, (int)d);
    if (kv->ops->prefill(kv, l, K, V, n, err))
      goto done;
    memcpy(KR, K, N * kvd * sizeof(float));
    for (int t = 0; t < n; t++) {
      eng_rope(Q + t * qd, c->n_heads, (int)hd, t, c->rope_theta);
      eng_rope(KR + t * kvd, c->n_kv_heads, (int)hd, t, c->rope_theta);
    }
    causal_attention(c, Q, KR, V, n, ATT, S);
    mm(XB, ATT, y->wo, n, (int)d, (int)qd);
    residual(X, XB, N * d);
    for (size_t t = 0; t < N; t++)
      rmsnorm(XB + t * d, X + t * d, y->rms_ffn, (int)d, c->norm_eps);
    mm(H1, XB, y->w1, n, (int)f, (int)d);
    mm(H3, XB, y->w3, n, (int)f, (int)d);
    swiglu(H1, H3, N * f);
    mm(XB, H1, y->w2, n, (int)d, (int)f);
    residual(X, XB, N * d);
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

int eng_decode(eng_state *s, eng_kv *kv, int token, int pos, float *logits,
               eng_err *err) {
  const eng_model *m = s->m;
  const eng_config *c = &m->cfg;
  if (token < 0 || token >= c->vocab_size)
    return eng_fail(err, "decode: token %d outside the vocabulary", token);
  if (pos < 0 || pos >= c->seq_len)
    return eng_fail(err, "decode: position %d past the model's %d", pos,
                    c->seq_len);
  double t0 = eng_now();
  int d = c->dim, f = c->hidden_dim, hd = c->head_dim;
  int qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
  memcpy(s->x, m->tok_emb + (size_t)token * d, (size_t)d * sizeof(float));
  for (int l = 0; l < c->n_layers; l++) {
    const eng_layer *y = &m->layers[l];
    rmsnorm(s->xb, s->x, y->rms_att, d, c->norm_eps);
    mm(s->q, s->xb, y->wq, 1, qd, d);
    mm(s->k, s->xb, y->wk, 1, kvd, d);
    mm(s->v, s->xb, y->wv, 1, kvd, d);
    double ta = eng_now();
    if (kv->ops->append(kv, l, s->k, s->v, err) ||
        kv->ops->attention(kv, l, s->q, pos, s->att, err))
      return -1;
    s->t_attn += eng_now() - ta;
    mm(s->xb2, s->att, y->wo, 1, d, qd);
    residual(s->x, s->xb2, (size_t)d);
    rmsnorm(s->xb, s->x, y->rms_ffn, d, c->norm_eps);
    mm(s->hb, s->xb, y->w1, 1, f, d);
    mm(s->hb2, s->xb, y->w3, 1, f, d);
    swiglu(s->hb, s->hb2, (size_t)f);
    mm(s->xb2, s->hb, y->w2, 1, d, f);
    residual(s->x, s->xb2, (size_t)d);
  }
  if (logits)
    logits_of(m, s->x, s->xb, logits);
  s->t_decode += eng_now() - t0;
  return 0;
}
