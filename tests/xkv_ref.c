/* Plain C references for the xKV cache; see xkv_ref.h. */
#include "xkv_ref.h"

#include "../runtime/xkv_cache_int.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double xkv_ref_urand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

double xkv_ref_gauss(uint64_t *s) {
  double u = xkv_ref_urand(s) + 1e-300, w = xkv_ref_urand(s);
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * w);
}

int xkv_ref_svd(const float *x, int m, int n, int r, double *best_err,
                double *norm, double *sigma) {
  int mn = m < n ? m : n;
  float *a = malloc((size_t)m * n * 4), *s = malloc((size_t)mn * 8);
  if (!a || !s) {
    free(a);
    free(s);
    return -1;
  }
  memcpy(a, x, (size_t)m * n * 4);
  int rc = LAPACKE_sgesvd(LAPACK_ROW_MAJOR, 'N', 'N', m, n, a, n, s, NULL, 1,
                          NULL, 1, s + mn);
  double tail = 0, all = 0;
  for (int i = 0; i < mn; i++) {
    all += (double)s[i] * s[i];
    tail += i >= r ? (double)s[i] * s[i] : 0;
    if (sigma)
      sigma[i] = s[i];
  }
  *best_err = sqrt(tail);
  *norm = sqrt(all);
  free(a);
  free(s);
  return rc;
}

float *xkv_ref_fetch(xkv_cache *c, const void *dev, size_t n) {
  void *raw = malloc(n * c->elem);
  float *out = malloc(n * 4);
  if (raw && out && !xkv_copy_d2h(c->ctx, raw, dev, n * c->elem, NULL))
    xkv_cache_from_storage(c, raw, out, n);
  else {
    free(out);
    out = NULL;
  }
  free(raw);
  return out;
}

/* out [L, Hkv, d] = A [L, r] B [Hkv, r, d] from the device factors */
static int rebuild(xkv_cache *c, const void *a_dev, const void *b_dev, int L,
                   int r, float *out) {
  int hk = c->cfg.n_kv_heads, d = c->cfg.head_dim;
  float *a = xkv_ref_fetch(c, a_dev, (size_t)L * r);
  float *b = xkv_ref_fetch(c, b_dev, (size_t)hk * r * d);
  for (int n = 0; a && b && n < L; n++)
    for (int h = 0; h < hk; h++)
      for (int e = 0; e < d; e++) {
        double acc = 0;
        for (int j = 0; j < r; j++)
          acc += (double)a[(size_t)n * r + j] * b[((size_t)h * r + j) * d + e];
        out[((size_t)n * hk + h) * d + e] = (float)acc;
      }
  int rc = a && b ? 0 : -1;
  free(a);
  free(b);
  return rc;
}

int xkv_ref_reconstruct(xkv_cache *c, int layer, float *k, float *v) {
  const xkv_group *g = &c->groups[layer / c->cfg.group];
  const xkv_layer *y = &c->layers[layer];
  if (!g->rank_k)
    return -1;
  return rebuild(c, g->ak, y->bk, g->L, g->rank_k, k) ||
                 rebuild(c, g->av, y->bv, g->L, g->rank_v, v)
             ? -1
             : 0;
}

void xkv_ref_group_ranks(const xkv_cache *c, int layer, int *rank_k,
                         int *rank_v) {
  const xkv_group *g = &c->groups[layer / c->cfg.group];
  *rank_k = g->rank_k;
  *rank_v = g->rank_v;
}

void xkv_ref_rope(float *x, int d, int pos, double theta) {
  for (int i = 0; i < d / 2; i++) {
    double th = pos * pow(theta, -2.0 * i / d), a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = (float)(a * cos(th) - b * sin(th));
    x[2 * i + 1] = (float)(a * sin(th) + b * cos(th));
  }
}

void xkv_ref_attention(const float *q, const float *k, const float *v, int T,
                       int hq, int hkv, int d, int pos, double theta,
                       float *out) {
  xkv_ref_attention_sel(q, k, v, NULL, T, hq, hkv, d, pos, theta, out);
}

void xkv_ref_attention_sel(const float *q, const float *k, const float *v,
                           const int *tok, int T, int hq, int hkv, int d,
                           int pos, double theta, float *out) {
  float *qr = malloc((size_t)d * 4), *kr = malloc((size_t)d * 4);
  double *sc = malloc((size_t)T * sizeof *sc);
  for (int h = 0; h < hq; h++) {
    int kh = h / (hq / hkv);
    memcpy(qr, q + (size_t)h * d, (size_t)d * 4);
    xkv_ref_rope(qr, d, pos, theta);
    double mx = -INFINITY, sum = 0;
    for (int t = 0; t < T; t++) {
      int n = tok ? tok[(size_t)kh * T + t] : t;
      memcpy(kr, k + ((size_t)n * hkv + kh) * d, (size_t)d * 4);
      xkv_ref_rope(kr, d, n, theta);
      double s = 0;
      for (int e = 0; e < d; e++)
        s += (double)qr[e] * kr[e];
      sc[t] = s / sqrt((double)d);
      mx = fmax(mx, sc[t]);
    }
    for (int t = 0; t < T; t++)
      sum += sc[t] = exp(sc[t] - mx);
    for (int e = 0; e < d; e++) {
      double acc = 0;
      for (int t = 0; t < T; t++)
        acc +=
            sc[t] *
            v[((size_t)(tok ? tok[(size_t)kh * T + t] : t) * hkv + kh) * d + e];
      out[(size_t)h * d + e] = (float)(acc / sum);
    }
  }
  free(qr);
  free(kr);
  free(sc);
}

double xkv_ref_rel_err(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    den += (double)b[i] * b[i];
  }
  return sqrt(num / (den > 0 ? den : 1));
}

double xkv_ref_cosine(const float *a, const float *b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; i++) {
    ab += (double)a[i] * b[i];
    aa += (double)a[i] * a[i];
    bb += (double)b[i] * b[i];
  }
  return ab / sqrt(aa * bb + 1e-300);
}
