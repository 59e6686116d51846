/* The naive reference forward of tiny_model.h, in double: every position
 * recomputed, attention by explicit loops over the allowed keys. Written
 * from the architectures' definitions (Hugging Face modeling code), not
 * from the engine. */
#include "tiny_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void matvec(double *out, const float *w, const double *x, int rows,
                   int cols) {
  for (int i = 0; i < rows; i++) {
    double s = 0;
    for (int j = 0; j < cols; j++)
      s += (double)w[(size_t)i * cols + j] * x[j];
    out[i] = s;
  }
}

static void rms(double *x, const float *w, int n, double eps) {
  double ss = 0;
  for (int i = 0; i < n; i++)
    ss += x[i] * x[i];
  double r = 1.0 / sqrt(ss / n + eps);
  for (int i = 0; i < n; i++)
    x[i] *= r * w[i];
}

/* Rotates one head: NEOX pairs (j, j + hd/2), Llama GGUF pairs (2j, 2j+1). */
static void rope(double *x, int hd, int pos, double theta, int neox) {
  for (int j = 0; j < hd / 2; j++) {
    double ang = pos * pow(theta, -2.0 * j / hd);
    int a = neox ? j : 2 * j, b = neox ? j + hd / 2 : 2 * j + 1;
    double x0 = x[a], x1 = x[b];
    x[a] = x0 * cos(ang) - x1 * sin(ang);
    x[b] = x0 * sin(ang) + x1 * cos(ang);
  }
}

static double act(const tiny_model *m, double g) {
  if (m->arch == TINY_GEMMA3) /* gelu_pytorch_tanh */
    return 0.5 * g * (1 + tanh(sqrt(2 / M_PI) * (g + 0.044715 * g * g * g)));
  return g / (1 + exp(-g));
}

void tiny_ref_logits(const tiny_model *m, const int *tokens, int n,
                     float *logits) {
  int d = m->dim, f = m->hidden, hd = m->head_dim, L = m->n_layers;
  int qd = m->n_heads * hd, kvd = m->n_kv_heads * hd;
  int neox = m->arch != TINY_LLAMA, gemma = m->arch == TINY_GEMMA3;
  double *K = malloc((size_t)L * n * kvd * sizeof *K);
  double *V = malloc((size_t)L * n * kvd * sizeof *V);
  double *x = malloc(d * sizeof *x), *h = malloc(d * sizeof *h);
  double *q = malloc(qd * sizeof *q), *att = malloc(qd * sizeof *att);
  double *g = malloc(f * sizeof *g), *u = malloc(f * sizeof *u);
  double *o = malloc(d * sizeof *o), *sc = malloc(n * sizeof *sc);
  for (int p = 0; p < n; p++) {
    for (int i = 0; i < d; i++)
      x[i] = m->emb[(size_t)tokens[p] * d + i] * (gemma ? sqrt((double)d) : 1);
    for (int l = 0; l < L; l++) {
      const tiny_layer *y = &m->l[l];
      int sliding = gemma && (l + 1) % 6 != 0;
      double theta = sliding ? m->theta_swa : m->theta;
      double *k = K + ((size_t)l * n + p) * kvd,
             *v = V + ((size_t)l * n + p) * kvd;
      memcpy(h, x, d * sizeof *h);
      rms(h, y->attn_norm, d, m->eps);
      matvec(q, y->wq, h, qd, d);
      matvec(k, y->wk, h, kvd, d);
      matvec(v, y->wv, h, kvd, d);
      for (int i = 0; y->bq && i < qd; i++)
        q[i] += y->bq[i];
      for (int i = 0; y->bk && i < kvd; i++) {
        k[i] += y->bk[i];
        v[i] += y->bv[i];
      }
      for (int hh = 0; hh < m->n_heads; hh++) {
        if (y->qn)
          rms(q + hh * hd, y->qn, hd, m->eps);
        rope(q + hh * hd, hd, p, theta, neox);
      }
      for (int hh = 0; hh < m->n_kv_heads; hh++) {
        if (y->kn)
          rms(k + hh * hd, y->kn, hd, m->eps);
        rope(k + hh * hd, hd, p, theta, neox);
      }
      int lo = sliding && p >= m->window ? p - m->window + 1 : 0;
      for (int hh = 0; hh < m->n_heads; hh++) {
        int kh = hh / (m->n_heads / m->n_kv_heads);
        double mx = -INFINITY, sum = 0;
        for (int t = lo; t <= p; t++) {
          const double *kt = K + ((size_t)l * n + t) * kvd + kh * hd;
          double s = 0;
          for (int i = 0; i < hd; i++)
            s += q[hh * hd + i] * kt[i];
          sc[t] = s / sqrt((double)hd);
          mx = fmax(mx, sc[t]);
        }
        for (int t = lo; t <= p; t++)
          sum += sc[t] = exp(sc[t] - mx);
        for (int i = 0; i < hd; i++) {
          double a = 0;
          for (int t = lo; t <= p; t++)
            a += sc[t] / sum * V[((size_t)l * n + t) * kvd + kh * hd + i];
          att[hh * hd + i] = a;
        }
      }
      matvec(o, y->wo, att, d, qd);
      if (y->pa)
        rms(o, y->pa, d, m->eps);
      for (int i = 0; i < d; i++)
        x[i] += o[i];
      memcpy(h, x, d * sizeof *h);
      rms(h, y->ffn_norm, d, m->eps);
      matvec(g, y->w1, h, f, d);
      matvec(u, y->w3, h, f, d);
      for (int i = 0; i < f; i++)
        g[i] = act(m, g[i]) * u[i];
      matvec(o, y->w2, g, d, f);
      if (y->pf)
        rms(o, y->pf, d, m->eps);
      for (int i = 0; i < d; i++)
        x[i] += o[i];
    }
  }
  rms(x, m->out_norm, d, m->eps);
  for (int t = 0; t < m->vocab; t++) {
    double s = 0;
    for (int i = 0; i < d; i++)
      s += (double)m->emb[(size_t)t * d + i] * x[i];
    logits[t] = (float)s;
  }
  free(K);
  free(V);
  free(x);
  free(h);
  free(q);
  free(att);
  free(g);
  free(u);
  free(o);
  free(sc);
}
