/* Random weights and the GGUF writer of tiny_model.h. */
#include "tiny_model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SP "\xe2\x96\x81"
const char *const tiny_pieces[] = {
    "<pad>", "<eos>", "<bos>", "<unk>",  SP,       "a",  "b",
    "c",     "d",     "e",     "h",      "n",      "o",  "s",
    "t",     "th",    "he",    "the",    SP "c",   "at", SP "cat",
    "on",    "no",    SP "a",  SP "the", "<0x21>", "  "};
const int tiny_n_pieces = sizeof tiny_pieces / sizeof *tiny_pieces;
/* merge scores: "th" and "at" tie, "the" and "▁cat" beat both */
static const float scores[] = {
    0,  0,  0,  0,     -5,    -6, -6,    -6, -6, -6,    -6,    -6, -6, -6,
    -6, -1, -2, -0.5f, -1.5f, -1, -0.2f, -3, -3, -2.5f, -0.1f, -7, 0};

static const char *arch_name[] = {"llama", "qwen2", "gemma3"};

static float rnd(unsigned *s, float a) {
  *s = *s * 1664525u + 1013904223u;
  return a * ((float)(*s >> 8) / 8388608.0f - 1.0f);
}

void tiny_model_init(tiny_model *m, tiny_arch arch, unsigned seed) {
  memset(m, 0, sizeof *m);
  m->arch = arch;
  m->dim = 16;
  m->hidden = 40;
  m->n_layers = arch == TINY_GEMMA3 ? 6 : 3; /* gemma3: layer 5 is global */
  m->n_heads = 4;
  m->n_kv_heads = 2;
  m->head_dim = arch == TINY_GEMMA3 ? 8 : 4; /* gemma3: heads * hd != dim */
  m->vocab = tiny_n_pieces;
  m->window = arch == TINY_GEMMA3 ? 5 : 0;
  m->theta = arch == TINY_GEMMA3 ? 1e6f : 10000.0f;
  m->theta_swa = 10000.0f;
  m->eps = 1e-6f;
  size_t d = (size_t)m->dim, f = (size_t)m->hidden, hd = (size_t)m->head_dim;
  size_t qd = m->n_heads * hd, kvd = m->n_kv_heads * hd;
  size_t per = d + qd * d + 2 * kvd * d + d * qd + d + 3 * f * d + qd +
               2 * kvd + 2 * hd + 2 * d;
  m->pool = malloc((m->vocab * d + d + m->n_layers * per) * sizeof(float));
  m->l = calloc((size_t)m->n_layers, sizeof *m->l);
  float *p = m->pool;
#define TAKE(dst, n, base, a)                                                  \
  do {                                                                         \
    (dst) = p;                                                                 \
    for (size_t i_ = 0; i_ < (n); i_++)                                        \
      p[i_] = (base) + rnd(&seed, (a));                                        \
    p += (n);                                                                  \
  } while (0)
  TAKE(m->emb, m->vocab * d, 0.0f, 1.0f);
  TAKE(m->out_norm, d, 1.0f, 0.2f);
  for (int l = 0; l < m->n_layers; l++) {
    tiny_layer *y = &m->l[l];
    TAKE(y->attn_norm, d, 1.0f, 0.2f);
    TAKE(y->wq, qd * d, 0.0f, 0.5f);
    TAKE(y->wk, kvd * d, 0.0f, 0.5f);
    TAKE(y->wv, kvd * d, 0.0f, 0.5f);
    TAKE(y->wo, d * qd, 0.0f, 0.5f);
    TAKE(y->ffn_norm, d, 1.0f, 0.2f);
    TAKE(y->w1, f * d, 0.0f, 0.4f);
    TAKE(y->w2, d * f, 0.0f, 0.3f);
    TAKE(y->w3, f * d, 0.0f, 0.4f);
    if (arch == TINY_QWEN2) {
      TAKE(y->bq, qd, 0.0f, 0.5f);
      TAKE(y->bk, kvd, 0.0f, 0.5f);
      TAKE(y->bv, kvd, 0.0f, 0.5f);
    }
    if (arch == TINY_GEMMA3) {
      TAKE(y->qn, hd, 1.0f, 0.3f);
      TAKE(y->kn, hd, 1.0f, 0.3f);
      TAKE(y->pa, d, 1.0f, 0.3f);
      TAKE(y->pf, d, 1.0f, 0.3f);
    }
  }
#undef TAKE
}

void tiny_model_free(tiny_model *m) {
  free(m->pool);
  free(m->l);
  memset(m, 0, sizeof *m);
}

/* ---- the GGUF writer ---------------------------------------------------- */
typedef struct {
  unsigned char *b;
  size_t n, cap;
} wbuf;

static void put(wbuf *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 4096;
    b->b = realloc(b->b, b->cap);
  }
  memcpy(b->b + b->n, p, n);
  b->n += n;
}
static void u32(wbuf *b, uint32_t v) {
  put(b, &v, 4);
}
static void u64(wbuf *b, uint64_t v) {
  put(b, &v, 8);
}
static void str(wbuf *b, const char *s) {
  u64(b, strlen(s));
  put(b, s, strlen(s));
}
enum { T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STR = 8, T_ARR = 9 };
static void kv_u32(wbuf *b, const char *arch, const char *key, uint32_t v) {
  char k[96];
  snprintf(k, sizeof k, "%s%s%s", arch ? arch : "", arch ? "." : "", key);
  str(b, k);
  u32(b, T_U32);
  u32(b, v);
}
static void kv_f32(wbuf *b, const char *arch, const char *key, float v) {
  char k[96];
  snprintf(k, sizeof k, "%s.%s", arch, key);
  str(b, k);
  u32(b, T_F32);
  put(b, &v, 4);
}
static void kv_str(wbuf *b, const char *key, const char *v) {
  str(b, key);
  u32(b, T_STR);
  str(b, v);
}
static void kv_bool(wbuf *b, const char *key, int v) {
  unsigned char c = (unsigned char)v;
  str(b, key);
  u32(b, T_BOOL);
  put(b, &c, 1);
}

typedef struct {
  char name[64];
  const float *data;
  uint64_t ne0, ne1; /* ne1 0: a vector */
} wt;

static void add(wt *ts, int *n, const char *name, int layer, const float *p,
                uint64_t ne0, uint64_t ne1) {
  if (!p)
    return;
  wt *t = &ts[(*n)++];
  if (layer >= 0)
    snprintf(t->name, sizeof t->name, "blk.%d.%s", layer, name);
  else
    snprintf(t->name, sizeof t->name, "%s", name);
  t->data = p;
  t->ne0 = ne0;
  t->ne1 = ne1;
}

unsigned char *tiny_gguf_write(const tiny_model *m, size_t *size) {
  const char *a = arch_name[m->arch];
  uint64_t d = (uint64_t)m->dim, f = (uint64_t)m->hidden,
           hd = (uint64_t)m->head_dim;
  uint64_t qd = m->n_heads * hd, kvd = m->n_kv_heads * hd;
  wt *ts = calloc(2 + 16 * (size_t)m->n_layers, sizeof *ts);
  int nt = 0;
  add(ts, &nt, "token_embd.weight", -1, m->emb, d, (uint64_t)m->vocab);
  add(ts, &nt, "output_norm.weight", -1, m->out_norm, d, 0);
  for (int l = 0; l < m->n_layers; l++) {
    const tiny_layer *y = &m->l[l];
    add(ts, &nt, "attn_norm.weight", l, y->attn_norm, d, 0);
    add(ts, &nt, "attn_q.weight", l, y->wq, d, qd);
    add(ts, &nt, "attn_k.weight", l, y->wk, d, kvd);
    add(ts, &nt, "attn_v.weight", l, y->wv, d, kvd);
    add(ts, &nt, "attn_output.weight", l, y->wo, qd, d);
    add(ts, &nt, "ffn_norm.weight", l, y->ffn_norm, d, 0);
    add(ts, &nt, "ffn_gate.weight", l, y->w1, d, f);
    add(ts, &nt, "ffn_down.weight", l, y->w2, f, d);
    add(ts, &nt, "ffn_up.weight", l, y->w3, d, f);
    add(ts, &nt, "attn_q.bias", l, y->bq, qd, 0);
    add(ts, &nt, "attn_k.bias", l, y->bk, kvd, 0);
    add(ts, &nt, "attn_v.bias", l, y->bv, kvd, 0);
    add(ts, &nt, "attn_q_norm.weight", l, y->qn, hd, 0);
    add(ts, &nt, "attn_k_norm.weight", l, y->kn, hd, 0);
    add(ts, &nt, "post_attention_norm.weight", l, y->pa, d, 0);
    add(ts, &nt, "post_ffw_norm.weight", l, y->pf, d, 0);
  }
  wbuf b = {0};
  u32(&b, 0x46554747u); /* "GGUF" */
  u32(&b, 3);
  u64(&b, (uint64_t)nt);
  u64(&b, m->window ? 21 : 20);
  kv_str(&b, "general.architecture", a);
  kv_u32(&b, a, "context_length", 256);
  kv_u32(&b, a, "embedding_length", (uint32_t)d);
  kv_u32(&b, a, "feed_forward_length", (uint32_t)f);
  kv_u32(&b, a, "block_count", (uint32_t)m->n_layers);
  kv_u32(&b, a, "attention.head_count", (uint32_t)m->n_heads);
  kv_u32(&b, a, "attention.head_count_kv", (uint32_t)m->n_kv_heads);
  kv_u32(&b, a, "attention.key_length", (uint32_t)hd);
  kv_u32(&b, a, "attention.value_length", (uint32_t)hd);
  kv_f32(&b, a, "rope.freq_base", m->theta);
  kv_f32(&b, a, "attention.layer_norm_rms_epsilon", m->eps);
  if (m->window)
    kv_u32(&b, a, "attention.sliding_window", (uint32_t)m->window);
  kv_str(&b, "tokenizer.ggml.model", "llama");
  str(&b, "tokenizer.ggml.tokens");
  u32(&b, T_ARR);
  u32(&b, T_STR);
  u64(&b, (uint64_t)tiny_n_pieces);
  for (int i = 0; i < tiny_n_pieces; i++)
    str(&b, tiny_pieces[i]);
  str(&b, "tokenizer.ggml.scores");
  u32(&b, T_ARR);
  u32(&b, T_F32);
  u64(&b, (uint64_t)tiny_n_pieces);
  put(&b, scores, sizeof scores);
  str(&b, "tokenizer.ggml.token_type");
  u32(&b, T_ARR);
  u32(&b, T_I32);
  u64(&b, (uint64_t)tiny_n_pieces);
  for (int i = 0; i < tiny_n_pieces; i++) {
    /* control, normal, byte, and a user-defined run of spaces */
    int32_t ty = i < 4 ? 3 : i == 25 ? 6 : i == 26 ? 4 : 1;
    put(&b, &ty, 4);
  }
  kv_u32(&b, NULL, "tokenizer.ggml.bos_token_id", 2);
  kv_u32(&b, NULL, "tokenizer.ggml.eos_token_id", 1);
  kv_u32(&b, NULL, "tokenizer.ggml.unknown_token_id", 3);
  kv_bool(&b, "tokenizer.ggml.add_bos_token", 1);
  kv_bool(&b, "tokenizer.ggml.add_space_prefix", 0);
  uint64_t off = 0;
  for (int i = 0; i < nt; i++) {
    str(&b, ts[i].name);
    u32(&b, ts[i].ne1 ? 2 : 1);
    u64(&b, ts[i].ne0);
    if (ts[i].ne1)
      u64(&b, ts[i].ne1);
    u32(&b, 0); /* F32 */
    u64(&b, off);
    off += (ts[i].ne0 * (ts[i].ne1 ? ts[i].ne1 : 1) * 4 + 31) / 32 * 32;
  }
  static const unsigned char zeros[32];
  put(&b, zeros, (32 - b.n % 32) % 32);
  for (int i = 0; i < nt; i++) {
    size_t bytes = ts[i].ne0 * (ts[i].ne1 ? ts[i].ne1 : 1) * 4;
    put(&b, ts[i].data, bytes);
    put(&b, zeros, (32 - bytes % 32) % 32);
  }
  free(ts);
  *size = b.n;
  return b.b;
}
