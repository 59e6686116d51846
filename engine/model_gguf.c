/* Llama-architecture GGUF files (llama.cpp's tensor names and <arch>.*
 * metadata): llama, qwen2 and gemma3. Every tensor is dequantized to f32 at
 * load into one arena. llama.cpp's converter permutes Q/K rows so that its
 * "normal" RoPE (pairs 2i, 2i+1) applies: the same convention as llama2.c. */
#include "gguf.h"
#include "model.h"
#include "tok_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What an architecture changes in a Llama layer. Gemma 3: llama.cpp
 * hard-codes its pattern (every 6th layer global) and the sliding-window
 * layers' RoPE base (10000); its converter stores the norm weights as
 * 1 + w, so plain RMSNorm applies. Neither Gemma 3 nor Qwen2 permutes Q/K
 * rows, hence NEOX RoPE. */
static const struct {
  const char *name;
  int neox, swa_period, gelu, scale_embed;
  float theta_swa;
} archs[] = {
    {"llama", 0, 0, 0, 0, 0},
    {"qwen2", 1, 0, 0, 0, 0},
    {"gemma3", 1, 6, 1, 1, 10000.0f},
};

static int hparams(const eng_gguf *g, eng_config *c, eng_err *err) {
  const eng_gguf_kv *a = eng_gguf_find(g, "general.architecture");
  int ai = -1;
  for (int i = 0;
       a && a->type == GGUF_T_STRING && i < (int)(sizeof archs / sizeof *archs);
       i++)
    if (a->v.str.len == strlen(archs[i].name) &&
        memcmp(a->v.str.s, archs[i].name, a->v.str.len) == 0)
      ai = i;
  if (ai < 0)
    return eng_fail(err,
                    "%s: general.architecture is not \"llama\", \"qwen2\" "
                    "or \"gemma3\"",
                    g->path);
  const char *p = archs[ai].name;
  static const char *keys[] = {
      "embedding_length",     "feed_forward_length",     "block_count",
      "attention.head_count", "attention.head_count_kv", "context_length"};
  int *dst[] = {&c->dim,     &c->hidden_dim, &c->n_layers,
                &c->n_heads, &c->n_kv_heads, &c->seq_len};
  char key[96];
  for (int i = 0; i < 6; i++) {
    int64_t v;
    snprintf(key, sizeof key, "%s.%s", p, keys[i]);
    if (eng_gguf_get_int(g, key, &v, err))
      return -1;
    if (v <= 0 || v > (1 << 20))
      return eng_fail(err, "%s: %s = %lld is out of range", g->path, key,
                      (long long)v);
    *dst[i] = (int)v;
  }
  eng_err ignore;
  int64_t hd = 0, vd = 0;
  snprintf(key, sizeof key, "%s.attention.key_length", p);
  if (eng_gguf_get_int(g, key, &hd, &ignore))
    hd = c->dim % c->n_heads ? 0 : c->dim / c->n_heads;
  snprintf(key, sizeof key, "%s.attention.value_length", p);
  if (eng_gguf_get_int(g, key, &vd, &ignore))
    vd = hd;
  if (hd <= 0 || hd > 4096 || hd % 2 || vd != hd || c->n_heads % c->n_kv_heads)
    return eng_fail(err,
                    "%s: inconsistent heads (dim %d, %d heads, %d KV heads, "
                    "key/value length %lld/%lld)",
                    g->path, c->dim, c->n_heads, c->n_kv_heads, (long long)hd,
                    (long long)vd);
  c->head_dim = (int)hd;
  snprintf(key, sizeof key, "%s.rope.freq_base", p);
  if (eng_gguf_get_f32(g, key, &c->rope_theta, &ignore))
    c->rope_theta = 10000.0f;
  snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", p);
  if (eng_gguf_get_f32(g, key, &c->norm_eps, &ignore))
    c->norm_eps = 1e-5f;
  int64_t rd;
  snprintf(key, sizeof key, "%s.rope.dimension_count", p);
  if (!eng_gguf_get_int(g, key, &rd, &ignore) && rd != c->head_dim)
    return eng_fail(err, "%s: partial RoPE (%lld of %d dims) unsupported",
                    g->path, (long long)rd, c->head_dim);
  c->rope_neox = archs[ai].neox;
  c->gelu = archs[ai].gelu;
  c->embed_scale = archs[ai].scale_embed ? sqrtf((float)c->dim) : 0.0f;
  if (archs[ai].swa_period) {
    int64_t w;
    snprintf(key, sizeof key, "%s.attention.sliding_window", p);
    if (eng_gguf_get_int(g, key, &w, err))
      return -1;
    if (w <= 0 || w > (1 << 20))
      return eng_fail(err, "%s: %s = %lld is out of range", g->path, key,
                      (long long)w);
    c->sliding_window = (int)w;
    c->swa_period = archs[ai].swa_period;
    c->rope_theta_swa = archs[ai].theta_swa;
  }
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

/* Per-layer tensors; from T_OPT on they are optional (architecture). */
enum {
  T_NORM,
  T_Q,
  T_K,
  T_V,
  T_O,
  T_FNORM,
  T_GATE,
  T_DOWN,
  T_UP,
  T_OPT,
  T_QB = T_OPT,
  T_KB,
  T_VB,
  T_QN,
  T_KN,
  T_PA,
  T_PF,
  T_N
};

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
  uint64_t hd = (uint64_t)c->head_dim, kv = (uint64_t)c->n_kv_heads * hd;
  uint64_t qd = (uint64_t)c->n_heads * hd;
  const eng_gguf_tensor *emb, *norm, *out;
  if (want(&g, "token_embd.weight", d, (uint64_t)m->tok->n_vocab, 0, &emb,
           err) ||
      want(&g, "output_norm.weight", d, 1, 0, &norm, err) ||
      want(&g, "output.weight", d, (uint64_t)m->tok->n_vocab, 1, &out, err))
    goto done;
  c->vocab_size = m->tok->n_vocab;
  static const char *names[T_N] = {
      "attn_norm.weight",    "attn_q.weight",      "attn_k.weight",
      "attn_v.weight",       "attn_output.weight", "ffn_norm.weight",
      "ffn_gate.weight",     "ffn_down.weight",    "ffn_up.weight",
      "attn_q.bias",         "attn_k.bias",        "attn_v.bias",
      "attn_q_norm.weight",  "attn_k_norm.weight", "post_attention_norm.weight",
      "post_ffw_norm.weight"};
  const uint64_t shape[T_N][2] = {
      {d, 1}, {d, qd}, {d, kv}, {d, kv}, {qd, d}, {d, 1},  {d, f}, {f, d},
      {d, f}, {qd, 1}, {kv, 1}, {kv, 1}, {hd, 1}, {hd, 1}, {d, 1}, {d, 1}};
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
      snprintf(name, sizeof name, "blk.%zu.%s", l, names[i]);
      if (want(&g, name, shape[i][0], shape[i][1], i >= T_OPT, &ts[l * T_N + i],
               err))
        goto done;
      total += ts[l * T_N + i] ? ts[l * T_N + i]->nelem : 0;
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
    const float **opt[] = {&y->bq,     &y->bk,       &y->bv,      &y->q_norm,
                           &y->k_norm, &y->post_att, &y->post_ffn};
    for (int i = T_OPT; i < T_N; i++)
      if (t[i])
        TAKE(*opt[i - T_OPT], t[i]);
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
