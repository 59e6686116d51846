#include "model.h"
#include "tok_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

int eng_strmap_init(eng_strmap *m, size_t expected) {
  memset(m, 0, sizeof *m);
  m->cap = 16;
  while (m->cap < 2 * expected + 1)
    m->cap *= 2;
  m->keys = calloc(m->cap, sizeof *m->keys);
  m->lens = calloc(m->cap, sizeof *m->lens);
  m->vals = calloc(m->cap, sizeof *m->vals);
  return m->keys && m->lens && m->vals ? 0 : -1;
}

int eng_strmap_put(eng_strmap *m, const char *key, size_t len, int val) {
  if (2 * (m->n + 1) > m->cap)
    return -1; /* sized at init: never grows */
  size_t i = hash(key, len) & (m->cap - 1);
  while (m->keys[i]) {
    if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0)
      return 0; /* first one wins, like a vocab's first occurrence */
    i = (i + 1) & (m->cap - 1);
  }
  char *k = malloc(len + 1);
  if (!k)
    return -1;
  memcpy(k, key, len);
  k[len] = 0;
  m->keys[i] = k;
  m->lens[i] = len;
  m->vals[i] = val;
  m->n++;
  return 0;
}

int eng_strmap_get(const eng_strmap *m, const char *key, size_t len) {
  if (!m->cap)
    return -1;
  size_t i = hash(key, len) & (m->cap - 1);
  while (m->keys[i]) {
    if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0)
      return m->vals[i];
    i = (i + 1) & (m->cap - 1);
  }
  return -1;
}

void eng_strmap_free(eng_strmap *m) {
  for (size_t i = 0; m->keys && i < m->cap; i++) /* keys NULL: init failed */
    free(m->keys[i]);
  free(m->keys);
  free(m->lens);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

int eng_tok_set_vocab(eng_tokenizer *t, int n, const char *where,
                      eng_err *err) {
  t->n_vocab = n;
  if (eng_strmap_init(&t->vocab, (size_t)n))
    return eng_fail(err, "%s: out of memory for a %d-token vocabulary", where,
                    n);
  for (int i = 0; i < n; i++)
    if (eng_strmap_put(&t->vocab, t->tokens[i], t->lens[i], i))
      return eng_fail(err, "%s: out of memory for a %d-token vocabulary", where,
                      n);
  return 0;
}

void eng_tok_free(eng_tokenizer *t) {
  if (!t)
    return;
  for (int i = 0; i < t->n_vocab; i++)
    free(t->tokens ? t->tokens[i] : NULL);
  free(t->tokens);
  free(t->lens);
  free(t->scores);
  free(t->types);
  free(t->specials);
  free(t->chat_template);
  eng_strmap_free(&t->vocab);
  eng_strmap_free(&t->merges);
  free(t);
}

int eng_tok_load_llama2c(const char *path, int vocab_size, eng_tokenizer **out,
                         eng_err *err) {
  unsigned char *buf;
  size_t size;
  *out = NULL;
  if (eng_read_file(path, &buf, &size, err))
    return -1;
  if (size < 4 || vocab_size <= 0) {
    free(buf);
    return eng_fail(err, "%s: not a llama2.c tokenizer (%zu bytes, vocab %d)",
                    path, size, vocab_size);
  }
  eng_tokenizer *t = calloc(1, sizeof *t);
  if (!t) {
    free(buf);
    return eng_fail(err, "%s: out of memory", path);
  }
  t->kind = ENG_TOK_SP;
  t->bos = 1;
  t->add_bos = 1;
  t->eos = 2;
  t->eot = -1;
  t->tokens = calloc((size_t)vocab_size, sizeof *t->tokens);
  t->lens = calloc((size_t)vocab_size, sizeof *t->lens);
  t->scores = calloc((size_t)vocab_size, sizeof *t->scores);
  size_t off = 4; /* int max_token_length, unused */
  int ok = t->tokens && t->lens && t->scores;
  if (!ok)
    eng_fail(err, "%s: out of memory", path);
  for (int i = 0; ok && i < vocab_size; i++) {
    int32_t len;
    if (size - off < 8) {
      eng_fail(err, "%s: truncated at token %d of %d", path, i, vocab_size);
      ok = 0;
      break;
    }
    memcpy(&t->scores[i], buf + off, 4);
    memcpy(&len, buf + off + 4, 4);
    off += 8;
    if (len < 0 || (size_t)len > size - off) {
      eng_fail(err, "%s: token %d has a bad length %d", path, i, (int)len);
      ok = 0;
      break;
    }
    t->tokens[i] = malloc((size_t)len + 1);
    if (!t->tokens[i]) {
      eng_fail(err, "%s: out of memory", path);
      ok = 0;
      break;
    }
    memcpy(t->tokens[i], buf + off, (size_t)len);
    t->tokens[i][len] = 0;
    t->lens[i] = (size_t)len;
    off += (size_t)len;
    t->n_vocab = i + 1;
  }
  free(buf);
  if (!ok || eng_tok_set_vocab(t, vocab_size, path, err)) {
    eng_tok_free(t);
    return -1;
  }
  *out = t;
  return 0;
}

int eng_tok_encode(const eng_tokenizer *t, const char *text, int start,
                   int **ids, int *n, eng_err *err) {
  size_t len = strlen(text);
  /* at most one token per byte, plus BOS and SP's dummy prefix; SPM's
   * byte fallback can spell an escaped space as its 3 bytes */
  size_t cap = t->kind == ENG_TOK_SPM ? 3 * len + 6 : len + 3;
  int *out = malloc(cap * sizeof *out);
  if (!out)
    return eng_fail(err, "out of memory encoding %zu bytes", len);
  int k = 0;
  if (start && t->add_bos && t->bos >= 0)
    out[k++] = t->bos;
  int m = 0;
  if (t->kind == ENG_TOK_SP)
    eng_tok_encode_sp(t, text, out + k, &m);
  else if ((t->kind == ENG_TOK_SPM ? eng_tok_encode_spm : eng_tok_encode_bpe)(
               t, text, out + k, &m, err)) {
    free(out);
    return -1;
  }
  *ids = out;
  *n = k + m;
  return 0;
}

size_t eng_tok_decode(const eng_tokenizer *t, int prev, int id, char *buf,
                      size_t cap) {
  if (id < 0 || id >= t->n_vocab || cap == 0)
    return 0;
  if (t->kind == ENG_TOK_BPE)
    return eng_tok_decode_bpe(t, id, buf, cap);
  if (t->kind == ENG_TOK_SPM)
    return eng_tok_decode_spm(t, id, buf, cap);
  const char *p = t->tokens[id];
  size_t n = t->lens[id];
  if (prev == t->bos && n > 0 && p[0] == ' ') { /* SP's dummy prefix */
    p++;
    n--;
  }
  unsigned char byte;
  if (n == 6 && sscanf(p, "<0x%02hhX>", &byte) == 1) {
    buf[0] = (char)byte;
    return 1;
  }
  if (n > cap)
    n = cap;
  memcpy(buf, p, n);
  return n;
}

int eng_tok_vocab_size(const eng_tokenizer *t) {
  return t->n_vocab;
}

int eng_tok_bos(const eng_tokenizer *t) {
  return t->bos;
}

int eng_tok_is_stop(const eng_tokenizer *t, int id) {
  return id == t->eos || (t->eot >= 0 && id == t->eot);
}

char *eng_tok_chat(const eng_tokenizer *t, const char *prompt) {
  const char *tpl = t->chat_template;
  if (!tpl || !strstr(tpl, "<|im_start|>"))
    return NULL;
  /* ChatML; a default system message written in the template is kept */
  const char *sys = strstr(tpl, "<|im_start|>system\n"), *end = NULL;
  int sys_len = 0;
  if (sys) {
    sys += strlen("<|im_start|>system\n");
    end = strstr(sys, "<|im_end|>");
    sys_len = end ? (int)(end - sys) : 0;
  }
  size_t n = strlen(prompt) + (size_t)sys_len + 128;
  char *s = malloc(n);
  if (!s)
    return NULL;
  int k = 0;
  if (sys_len)
    k = snprintf(s, n, "<|im_start|>system\n%.*s<|im_end|>\n", sys_len, sys);
  snprintf(s + k, n - (size_t)k,
           "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", prompt);
  return s;
}
