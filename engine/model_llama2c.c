/* llama2.c checkpoints: 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size (negative: unshared classifier), seq_len), then
 * f32 tensors in a fixed order (see ../shared/data/README.md). */
#include "model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int check_config(const char *path, const int32_t h[7], eng_err *err) {
  static const char *names[7] = {"dim",     "hidden_dim", "n_layers",
                                 "n_heads", "n_kv_heads", "vocab_size",
                                 "seq_len"};
  for (int i = 0; i < 7; i++) {
    int64_t v = i == 5 ? (h[i] < 0 ? -(int64_t)h[i] : h[i]) : h[i];
    if (v <= 0 || v > (1 << 20))
      return eng_fail(err, "%s: not a llama2.c checkpoint (%s = %d)", path,
                      names[i], (int)h[i]);
  }
  if (h[0] % h[3] != 0 || h[3] % h[4] != 0 || (h[0] / h[3]) % 2 != 0)
    return eng_fail(err,
                    "%s: inconsistent heads (dim %d, n_heads %d, "
                    "n_kv_heads %d): need dim %% n_heads == 0, an even "
                    "head size and n_heads %% n_kv_heads == 0",
                    path, (int)h[0], (int)h[3], (int)h[4]);
  return 0;
}

int eng_model_parse_llama2c(const unsigned char *buf, size_t size,
                            const char *path, eng_model *m, eng_err *err) {
  memset(m, 0, sizeof *m);
  int32_t h[7];
  if (size < sizeof h)
    return eng_fail(err, "%s: truncated llama2.c header (%zu bytes)", path,
                    size);
  memcpy(h, buf, sizeof h);
  if (check_config(path, h, err))
    return -1;
  eng_config *c = &m->cfg;
  c->dim = h[0];
  c->hidden_dim = h[1];
  c->n_layers = h[2];
  c->n_heads = h[3];
  c->n_kv_heads = h[4];
  c->vocab_size = h[5] < 0 ? -h[5] : h[5];
  c->seq_len = h[6];
  c->head_dim = c->dim / c->n_heads;
  c->rope_theta = 10000.0f;
  c->norm_eps = 1e-5f;
  int shared = h[5] > 0;

  size_t L = (size_t)c->n_layers, d = (size_t)c->dim, hd = c->head_dim;
  size_t q = (size_t)c->n_heads * hd, kv = (size_t)c->n_kv_heads * hd;
  size_t f = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
  size_t per_layer = d + d * q + 2 * d * kv + q * d + d + 3 * f * d;
  size_t need = V * d + L * per_layer + d + (size_t)c->seq_len * hd +
                (shared ? 0 : V * d);
  size_t have = (size - sizeof h) / sizeof(float);
  if (have < need)
    return eng_fail(err,
                    "%s: truncated checkpoint: %zu floats after the header, "
                    "the config needs %zu",
                    path, have, need);
  m->arena = malloc(need * sizeof(float));
  m->layers = calloc(L, sizeof *m->layers);
  if (!m->arena || !m->layers) {
    eng_model_free(m);
    return eng_fail(err, "%s: out of memory for %zu weights", path, need);
  }
  memcpy(m->arena, buf + sizeof h, need * sizeof(float));

  /* The file stores each tensor for all layers contiguously. */
  const float *p = m->arena;
  m->tok_emb = p;
  p += V * d;
  const float *rms_att = p, *wq = rms_att + L * d, *wk = wq + L * d * q;
  const float *wv = wk + L * d * kv, *wo = wv + L * d * kv;
  const float *rms_ffn = wo + L * q * d, *w1 = rms_ffn + L * d;
  const float *w2 = w1 + L * f * d, *w3 = w2 + L * f * d;
  for (size_t l = 0; l < L; l++) {
    eng_layer *y = &m->layers[l];
    y->rms_att = rms_att + l * d;
    y->wq = wq + l * d * q;
    y->wk = wk + l * d * kv;
    y->wv = wv + l * d * kv;
    y->wo = wo + l * q * d;
    y->rms_ffn = rms_ffn + l * d;
    y->w1 = w1 + l * f * d;
    y->w2 = w2 + l * f * d;
    y->w3 = w3 + l * f * d;
  }
  p = w3 + L * f * d;
  m->rms_final = p;
  p += d + (size_t)c->seq_len * hd; /* skip the unused RoPE tables */
  m->wcls = shared ? m->tok_emb : p;
  strcpy(m->format, "llama2c");
  return 0;
}

int eng_model_load_llama2c(const char *path, eng_model *m, eng_err *err) {
  memset(m, 0, sizeof *m);
  unsigned char *buf;
  size_t size;
  if (eng_read_file(path, &buf, &size, err))
    return -1;
  int rc = eng_model_parse_llama2c(buf, size, path, m, err);
  free(buf);
  return rc;
}
