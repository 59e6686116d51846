/* Llama-architecture GGUF files (llama.cpp's tensor names and llama.*
 * metadata). Every tensor is dequantized to f32 at load into one arena.
 * llama.cpp's converter permutes Q/K rows so that its "normal" RoPE (pairs
 * 2i, 2i+1) applies: the same convention as llama2.c. */
#include "gguf.h"
#include "model.h"
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hparams(const eng_gguf *g, eng_config *c, eng_err *err) {
  const eng_gguf_kv *arch = eng_gguf_find(g, "general.architecture");
  if (!arch || arch->type != GGUF_T_STRING || arch->v.str.len != 5 ||
      memcmp(arch->v.str.s, "llama", 5) != 0)
    return eng_fail(err, "%s: general.architecture is not \"llama\"", g->path);
  static const char *keys[] = {"llama.embedding_length",
                               "llama.feed_forward_length",
                               "llama.block_count",
                               "llama.attention.head_count",
                               "llama.attention.head_count_kv",
                               "llama.context_length"};
  int *dst[] = {&c->dim,     &c->hidden_dim, &c->n_layers,
                &c->n_heads, &c->n_kv_heads, &c->seq_len};
  for (int i = 0; i < 6; i++) {
    int64_t v;
    if (eng_gguf_get_int(g, keys[i], &v, err))
      return -1;
    if (v <= 0 || v > (1 << 20))
      return eng_fail(err, "%s: %s = %lld is out of range", g->path, keys[i],
                      (long long)v);
    *dst[i] = (int)v;
  }
  if (c->dim % c->n_heads || c->n_heads % c->n_kv_heads ||
      (c->dim / c->n_heads) % 2)
    return eng_fail(err,
                    "%s: inconsistent head counts (dim %d, %d heads, %d "
                    "KV heads)",
                    g->path, c->dim, c->n_heads, c->n_kv_heads);
  c->head_dim = c->dim / c->n_heads;
  eng_err ignore;
  if (eng_gguf_get_f32(g, "llama.rope.freq_base", &c->rope_theta, &ignore))
    c->rope_theta = 10000.0f;
  if (eng_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon",
                       &c->norm_eps, &ignore))
    c->norm_eps = 1e-5f;
  int64_t rd;
  if (!eng_gguf_get_int(g, "llama.rope.dimension_count", &rd, &ignore) &&
      rd != c->head_dim)
    return eng_fail(err, "%s: partial RoPE (%lld of %d dims) unsupported",
                    g->path, (long long)rd, c->head_dim);
  return 0;
}

/* A tensor by name with the expected [out, in] shape (ne = {in, out}). */
static int want(const eng_gguf *g, const char *name, uint64_t in, uint64_t out,
                int optional, const eng_gguf_tensor **t, eng_err *err) {
  *t = eng_gguf_find_tensor(g, name);
  if (!*t)
    return optional ? 0 : eng_fail(err, "%s: missing tensor %s", g->path, name);
  if ((*t)->ne[0] != in || (*t)->nelem != in * out)
    return eng_fail(err,
                    "%s: tensor %s has shape [%llu, %llu], expected [%llu, "
                    "%llu]",
                    g->path, name, (unsigned long long)(*t)->ne[0],
                    (unsigned long long)((*t)->nelem / (*t)->ne[0]),
                    (unsigned long long)in, (unsigned long long)out);
  return 0;
}

enum { T_NORM, T_Q, T_K, T_V, T_O, T_FNORM, T_GATE, T_DOWN, T_UP, T_N };

int eng_model_parse_gguf(unsigned char *buf, size_t size, const char *path,
                         eng_model *m, eng_err *err) {
  memset(m, 0, sizeof *m);
  eng_gguf g;
  if (eng_gguf_parse(buf, size, path, &g, err))
    return -1;
  eng_config *c = &m->cfg;
  int rc = -1;
  const eng_gguf_tensor **ts = NULL;
  if (hparams(&g, c, err) || eng_tok_from_gguf(&g, &m->tok, err))
    goto done;
  uint64_t d = (uint64_t)c->dim, f = (uint64_t)c->hidden_dim;
  uint64_t kv = (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim;
  const eng_gguf_tensor *emb, *norm, *out;
  if (want(&g, "token_embd.weight", d, (uint64_t)m->tok->n_vocab, 0, &emb,
           err) ||
      want(&g, "output_norm.weight", d, 1, 0, &norm, err) ||
      want(&g, "output.weight", d, (uint64_t)m->tok->n_vocab, 1, &out, err))
    goto done;
  c->vocab_size = m->tok->n_vocab;
  static const char *names[T_N] = {"attn_norm", "attn_q",      "attn_k",
                                   "attn_v",    "attn_output", "ffn_norm",
                                   "ffn_gate",  "ffn_down",    "ffn_up"};
  const uint64_t shape[T_N][2] = {{d, 1}, {d, d}, {d, kv}, {d, kv}, {d, d},
                                  {d, 1}, {d, f}, {f, d},  {d, f}};
  size_t L = (size_t)c->n_layers;
  ts = calloc(L * T_N, sizeof *ts);
  m->layers = calloc(L, sizeof *m->layers);
  if (!ts || !m->layers) {
    eng_fail(err, "%s: out of memory", path);
    goto done;
  }
  uint64_t total = emb->nelem + norm->nelem + (out ? out->nelem : 0);
  for (size_t l = 0; l < L; l++)
    for (int i = 0; i < T_N; i++) {
      char name[64];
      snprintf(name, sizeof name, "blk.%zu.%s.weight", l, names[i]);
      if (want(&g, name, shape[i][0], shape[i][1], 0, &ts[l * T_N + i], err))
        goto done;
      total += ts[l * T_N + i]->nelem;
    }
  m->arena = malloc(total * sizeof(float));
  if (!m->arena) {
    eng_fail(err, "%s: out of memory for %llu f32 weights", path,
             (unsigned long long)total);
    goto done;
  }
  float *p = m->arena;
#define TAKE(dst, t)                                                           \
  do {                                                                         \
    if (eng_gguf_dequant(&g, (t), p, err))                                     \
      goto done;                                                               \
    (dst) = p;                                                                 \
    p += (t)->nelem;                                                           \
  } while (0)
  TAKE(m->tok_emb, emb);
  TAKE(m->rms_final, norm);
  m->wcls = m->tok_emb; /* tied embeddings unless output.weight exists */
  if (out)
    TAKE(m->wcls, out);
  for (size_t l = 0; l < L; l++) {
    eng_layer *y = &m->layers[l];
    const eng_gguf_tensor **t = ts + l * T_N;
    TAKE(y->rms_att, t[T_NORM]);
    TAKE(y->wq, t[T_Q]);
    TAKE(y->wk, t[T_K]);
    TAKE(y->wv, t[T_V]);
    TAKE(y->wo, t[T_O]);
    TAKE(y->rms_ffn, t[T_FNORM]);
    TAKE(y->w1, t[T_GATE]);
    TAKE(y->w2, t[T_DOWN]);
    TAKE(y->w3, t[T_UP]);
  }
#undef TAKE
  strcpy(m->format, "gguf");
  rc = 0;
done:
  free(ts);
  eng_gguf_close(&g);
  if (rc)
    eng_model_free(m);
  return rc;
}

int eng_model_load_gguf(const char *path, eng_model *m, eng_err *err) {
  memset(m, 0, sizeof *m);
  unsigned char *buf;
  size_t size;
  if (eng_read_file(path, &buf, &size, err))
    return -1;
  return eng_model_parse_gguf(buf, size, path, m, err);
}
