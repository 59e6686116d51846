#include "eval.h"
#include "sample.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int eng_teacher_force(const eng_model *m, eng_kv *kv, const int *tokens, int p,
                      int n, float *logits, eng_err *err) {
  if (p <= 0 || p >= n || n > m->cfg.seq_len)
    return eng_fail(err, "teacher forcing: bad split %d of %d tokens", p, n);
  eng_state s;
  if (eng_state_init(&s, m, err))
    return -1;
  size_t V = (size_t)m->cfg.vocab_size;
  int rc = eng_prefill(&s, kv, tokens, p, logits, NULL, NULL, err);
  for (int t = p; !rc && t < n - 1; t++)
    rc =
        eng_decode(&s, kv, tokens[t], t, logits + (size_t)(t - p + 1) * V, err);
  eng_state_free(&s);
  return rc;
}

void eng_compare_logits(const float *ref, const float *test, int rows,
                        int vocab, double *kl, double *top1) {
  float *lp = malloc((size_t)vocab * sizeof(float));
  float *lq = malloc((size_t)vocab * sizeof(float));
  double k = 0, agree = 0;
  for (int r = 0; lp && lq && r < rows; r++) {
    const float *a = ref + (size_t)r * vocab, *b = test + (size_t)r * vocab;
    eng_log_softmax(a, vocab, lp);
    eng_log_softmax(b, vocab, lq);
    double row = 0;
    for (int i = 0; i < vocab; i++)
      row += exp((double)lp[i]) * (double)(lp[i] - lq[i]);
    k += row;
    agree += eng_argmax(a, vocab) == eng_argmax(b, vocab);
  }
  *kl = rows ? k / rows : 0;
  *top1 = rows ? agree / rows : 0;
  free(lp);
  free(lq);
}

typedef struct {
  eng_kv base;
  eng_kv *inner;
  int n_layers, kv_dim;
  float **k, **v;
  int *n;
} kv_rec;

static int rec_prefill(eng_kv *kv, int layer, const float *k, const float *v,
                       int n, eng_err *err) {
  kv_rec *r = (kv_rec *)kv;
  if (layer >= 0 && layer < r->n_layers && !r->k[layer]) {
    size_t bytes = (size_t)n * r->kv_dim * sizeof(float);
    r->k[layer] = malloc(bytes);
    r->v[layer] = malloc(bytes);
    if (!r->k[layer] || !r->v[layer])
      return eng_fail(err, "recorder: out of memory");
    memcpy(r->k[layer], k, bytes);
    memcpy(r->v[layer], v, bytes);
    r->n[layer] = n;
  }
  return r->inner->ops->prefill(r->inner, layer, k, v, n, err);
}

static int rec_append(eng_kv *kv, int layer, const float *k, const float *v,
                      eng_err *err) {
  eng_kv *in = ((kv_rec *)kv)->inner;
  return in->ops->append(in, layer, k, v, err);
}

static int rec_attention(eng_kv *kv, int layer, const float *q, int pos,
                         float *out, eng_err *err) {
  eng_kv *in = ((kv_rec *)kv)->inner;
  return in->ops->attention(in, layer, q, pos, out, err);
}

static int rec_stats(eng_kv *kv, eng_kv_stats *s, eng_err *err) {
  eng_kv *in = ((kv_rec *)kv)->inner;
  return in->ops->stats(in, s, err);
}

static void rec_destroy(eng_kv *kv) {
  kv_rec *r = (kv_rec *)kv;
  if (!r)
    return;
  for (int l = 0; l < r->n_layers; l++) {
    free(r->k ? r->k[l] : NULL);
    free(r->v ? r->v[l] : NULL);
  }
  free(r->k);
  free(r->v);
  free(r->n);
  if (r->inner)
    r->inner->ops->destroy(r->inner);
  free(r);
}

static const eng_kv_ops rec_ops = {rec_prefill, rec_append, rec_attention,
                                   rec_stats, rec_destroy};

int eng_kv_recorder_create(eng_kv *inner, const eng_config *c, eng_kv **out,
                           eng_err *err) {
  kv_rec *r = calloc(1, sizeof *r);
  if (!r) {
    inner->ops->destroy(inner);
    return eng_fail(err, "recorder: out of memory");
  }
  r->base.ops = &rec_ops;
  r->inner = inner;
  r->n_layers = c->n_layers;
  r->kv_dim = c->n_kv_heads * c->head_dim;
  r->k = calloc((size_t)c->n_layers, sizeof *r->k);
  r->v = calloc((size_t)c->n_layers, sizeof *r->v);
  r->n = calloc((size_t)c->n_layers, sizeof *r->n);
  if (!r->k || !r->v || !r->n) {
    rec_destroy(&r->base);
    return eng_fail(err, "recorder: out of memory");
  }
  *out = &r->base;
  return 0;
}

const float *eng_kv_recorded(const eng_kv *rec, int layer, int want_v, int *n) {
  const kv_rec *r = (const kv_rec *)rec;
  if (rec->ops != &rec_ops || layer < 0 || layer >= r->n_layers)
    return NULL;
  *n = r->n[layer];
  return want_v ? r->v[layer] : r->k[layer];
}

int eng_svd_tail_error(const float *const *layers, int w, int n, int kv_dim,
                       int rank, double *out, eng_err *err) {
  int cols = w * kv_dim, k = n < cols ? n : cols;
  float *a = malloc((size_t)n * cols * sizeof(float));
  float *s = malloc((size_t)k * sizeof(float));
  if (!a || !s) {
    free(a);
    free(s);
    return eng_fail(err, "svd: out of memory for %d x %d", n, cols);
  }
  for (int t = 0; t < n; t++)
    for (int l = 0; l < w; l++)
      memcpy(a + (size_t)t * cols + (size_t)l * kv_dim,
             layers[l] + (size_t)t * kv_dim, (size_t)kv_dim * sizeof(float));
  lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'N', n, cols, a, cols, s,
                                   NULL, 1, NULL, cols);
  double total = 0, tail = 0;
  for (int i = 0; i < k; i++) {
    total += (double)s[i] * s[i];
    if (i >= rank)
      tail += (double)s[i] * s[i];
  }
  free(a);
  free(s);
  if (info != 0)
    return eng_fail(err, "svd: LAPACKE_sgesdd failed (info %d)", (int)info);
  *out = total > 0 ? sqrt(tail / total) : 0;
  return 0;
}
