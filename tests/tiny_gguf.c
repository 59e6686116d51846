#include "tiny_gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { DIM = 8, HIDDEN = 16, HEADS = 2, KV_HEADS = 1, CTX = 32 };
enum { T_U32 = 4, T_I32 = 5, T_F32 = 6, T_STR = 8, T_ARR = 9 };
enum { GGML_F32 = 0, GGML_F16 = 1 };

typedef struct {
  unsigned char *b;
  size_t n, cap;
  int oom;
} wbuf;

static void put(wbuf *w, const void *p, size_t n) {
  if (w->oom)
    return;
  if (w->n + n > w->cap) {
    size_t cap = (w->n + n) * 2 + 256;
    unsigned char *b = realloc(w->b, cap);
    if (!b) {
      w->oom = 1;
      return;
    }
    w->b = b;
    w->cap = cap;
  }
  memcpy(w->b + w->n, p, n);
  w->n += n;
}
static void u32(wbuf *w, uint32_t v) {
  put(w, &v, 4);
}
static void u64(wbuf *w, uint64_t v) {
  put(w, &v, 8);
}
static void str(wbuf *w, const char *s) {
  u64(w, strlen(s));
  put(w, s, strlen(s));
}
static void key(wbuf *w, const char *k, uint32_t type) {
  str(w, k);
  u32(w, type);
}
static void kv_u32(wbuf *w, const char *k, uint32_t v) {
  key(w, k, T_U32);
  u32(w, v);
}
static void kv_strs(wbuf *w, const char *k, const char *const *s, int n) {
  key(w, k, T_ARR);
  u32(w, T_STR);
  u64(w, (uint64_t)n);
  for (int i = 0; i < n; i++)
    str(w, s[i]);
}

static const char *const tokens[] = {
    "a", "b", "ab", "\xc4\xa0", "c", "<|im_start|>", "<|im_end|>", "."};
#define NTOK ((int)(sizeof tokens / sizeof *tokens))

typedef struct {
  const char *name;
  uint32_t type;
  uint64_t in, out; /* ne = {in, out}; out 1: a vector */
} tinfo;

static const tinfo tensors[] = {
    {"token_embd.weight", GGML_F32, DIM, NTOK},
    {"output_norm.weight", GGML_F32, DIM, 1},
    {"blk.0.attn_norm.weight", GGML_F32, DIM, 1},
    {"blk.0.attn_q.weight", GGML_F32, DIM, DIM},
    {"blk.0.attn_k.weight", GGML_F16, DIM, DIM / HEADS *KV_HEADS},
    {"blk.0.attn_v.weight", GGML_F32, DIM, DIM / HEADS *KV_HEADS},
    {"blk.0.attn_output.weight", GGML_F16, DIM, DIM},
    {"blk.0.ffn_norm.weight", GGML_F32, DIM, 1},
    {"blk.0.ffn_gate.weight", GGML_F32, DIM, HIDDEN},
    {"blk.0.ffn_down.weight", GGML_F32, HIDDEN, DIM},
    {"blk.0.ffn_up.weight", GGML_F32, DIM, HIDDEN},
};
#define NT ((int)(sizeof tensors / sizeof *tensors))

static size_t tbytes(const tinfo *t) {
  return t->in * t->out * (t->type == GGML_F16 ? 2 : 4);
}

static void pad(wbuf *w) {
  while (!w->oom && w->n % 32)
    put(w, "", 1);
}

unsigned char *xk_tiny_gguf(size_t *size) {
  wbuf w = {0};
  u32(&w, 0x46554747u); /* "GGUF" */
  u32(&w, 3);
  u64(&w, NT);
  u64(&w, 13); /* key/values below */
  key(&w, "general.architecture", T_STR);
  str(&w, "llama");
  kv_u32(&w, "llama.embedding_length", DIM);
  kv_u32(&w, "llama.feed_forward_length", HIDDEN);
  kv_u32(&w, "llama.block_count", 1);
  kv_u32(&w, "llama.attention.head_count", HEADS);
  kv_u32(&w, "llama.attention.head_count_kv", KV_HEADS);
  kv_u32(&w, "llama.context_length", CTX);
  key(&w, "llama.rope.freq_base", T_F32);
  float theta = 10000.0f;
  put(&w, &theta, 4);
  key(&w, "tokenizer.ggml.model", T_STR);
  str(&w, "gpt2");
  kv_strs(&w, "tokenizer.ggml.tokens", tokens, NTOK);
  key(&w, "tokenizer.ggml.token_type", T_ARR);
  u32(&w, T_I32);
  u64(&w, NTOK);
  for (int i = 0; i < NTOK; i++)
    u32(&w, i == 5 || i == 6 ? 3 : 1); /* 3: control */
  static const char *const merges[] = {"a b"};
  kv_strs(&w, "tokenizer.ggml.merges", merges, 1);
  kv_u32(&w, "tokenizer.ggml.eos_token_id", 6);
  uint64_t off = 0;
  for (int i = 0; i < NT; i++) {
    const tinfo *t = &tensors[i];
    str(&w, t->name);
    u32(&w, t->out > 1 ? 2 : 1);
    u64(&w, t->in);
    if (t->out > 1)
      u64(&w, t->out);
    u32(&w, t->type);
    u64(&w, off);
    off += (tbytes(t) + 31) / 32 * 32;
  }
  pad(&w);
  unsigned seed = 7;
  for (int i = 0; i < NT; i++) {
    const tinfo *t = &tensors[i];
    for (uint64_t e = 0; e < t->in * t->out; e++) {
      seed = seed * 1103515245u + 12345u;
      int v = (int)(seed >> 16 & 7) - 4; /* small values in [-0.5, 0.375] */
      if (t->type == GGML_F16) {
        /* f16 of v / 8: sign, exponent and mantissa built by hand */
        static const uint16_t h8[] = {0xb800, 0xb600, 0xb400, 0xb000,
                                      0x0000, 0x3000, 0x3400, 0x3600};
        put(&w, &h8[v + 4], 2);
      } else {
        float f = t->out == 1 ? 1.0f : (float)v / 8.0f;
        put(&w, &f, 4);
      }
    }
    pad(&w);
  }
  if (w.oom) {
    free(w.b);
    return NULL;
  }
  *size = w.n;
  return w.b;
}
