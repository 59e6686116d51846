/* Byte-level BPE as GGUF "gpt2" tokenizers store it: bytes map to printable
 * code points (GPT-2's bytes_to_unicode), text is pre-split GPT-2 style
 * (digits one by one, as SmolLM's pre-tokenizer does; letters are ASCII
 * letters plus any non-ASCII byte), then each piece is merged by rank. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

static int byte_to_cp(int b) {
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174))
    return b;
  int n = 0; /* the k-th byte outside those ranges maps to 256 + k */
  for (int x = 0; x < b; x++)
    if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174)))
      n++;
  return 256 + n;
}

static size_t put_utf8(int cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  out[0] = (char)(0xc0 | (cp >> 6));
  out[1] = (char)(0x80 | (cp & 0x3f));
  return 2; /* byte code points stay below 0x800 */
}

static int is_letter(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}
static int is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

/* Length of the pre-token starting at s (n bytes left). */
static size_t pretoken(const unsigned char *s, size_t n) {
  static const char *contractions[] = {"'s", "'t",  "'re", "'ve",
                                       "'m", "'ll", "'d"};
  if (s[0] == '\'')
    for (size_t i = 0; i < 7; i++) {
      size_t l = strlen(contractions[i]);
      if (l <= n && memcmp(s, contractions[i], l) == 0)
        return l;
    }
  if (is_digit(s[0]))
    return 1;
  size_t i = (s[0] == ' ' && n > 1 && !is_space(s[1]) && !is_digit(s[1]));
  if (i < n && is_letter(s[i])) {
    while (i < n && is_letter(s[i]))
      i++;
    return i;
  }
  if (i < n && !is_space(s[i])) {
    while (i < n && !is_space(s[i]) && !is_letter(s[i]) && !is_digit(s[i]))
      i++;
    return i;
  }
  /* whitespace: \s+(?!\S) leaves the last one for the next token */
  size_t j = 0;
  while (j < n && is_space(s[j]))
    j++;
  if (j < n && j > 1)
    return j - 1;
  return j;
}

typedef struct {
  char *s;
  size_t len;
} sym;

/* BPE over one pre-token: symbols are the mapped code points. */
static int bpe_piece(const eng_tokenizer *t, const unsigned char *p, size_t n,
                     int *ids, int *k, eng_err *err) {
  char *mapped = malloc(2 * n + 1), *pair = malloc(4 * n + 2);
  sym *syms = malloc(n * sizeof *syms);
  if (!mapped || !pair || !syms) {
    free(mapped);
    free(pair);
    free(syms);
    return eng_fail(err, "out of memory tokenizing");
  }
  size_t m = 0, ns = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = put_utf8(byte_to_cp(p[i]), mapped + m);
    syms[ns++] = (sym){mapped + m, l};
    m += l;
  }
  for (;;) {
    int best = -1;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
      size_t a = syms[i].len, b = syms[i + 1].len;
      memcpy(pair, syms[i].s, a);
      pair[a] = ' ';
      memcpy(pair + a + 1, syms[i + 1].s, b);
      int r = eng_strmap_get(&t->merges, pair, a + 1 + b);
      if (r >= 0 && (best < 0 || r < best)) {
        best = r;
        bi = i;
      }
    }
    if (best < 0)
      break;
    syms[bi].len += syms[bi + 1].len; /* adjacent in `mapped` */
    memmove(syms + bi + 1, syms + bi + 2, (ns - bi - 2) * sizeof *syms);
    ns--;
  }
  int rc = 0;
  for (size_t i = 0; i < ns; i++) {
    int id = eng_strmap_get(&t->vocab, syms[i].s, syms[i].len);
    if (id < 0) {
      rc = eng_fail(err, "tokenizer: no token for the piece \"%.*s\"",
                    (int)syms[i].len, syms[i].s);
      break;
    }
    ids[(*k)++] = id;
  }
  free(mapped);
  free(pair);
  free(syms);
  return rc;
}

/* The longest control token starting at s (n bytes left), or -1. */
static int special_at(const eng_tokenizer *t, const unsigned char *s,
                      size_t n) {
  int special = -1;
  for (int j = 0; j < t->n_specials; j++) {
    int id = t->specials[j];
    if (t->lens[id] <= n && memcmp(s, t->tokens[id], t->lens[id]) == 0 &&
        (special < 0 || t->lens[id] > t->lens[special]))
      special = id;
  }
  return special;
}

int eng_tok_encode_bpe(const eng_tokenizer *t, const char *text, int *ids,
                       int *n, eng_err *err) {
  const unsigned char *s = (const unsigned char *)text;
  size_t len = strlen(text), i = 0;
  int k = 0;
  while (i < len) {
    int special = special_at(t, s + i, len - i);
    if (special >= 0) {
      ids[k++] = special;
      i += t->lens[special];
      continue;
    }
    size_t end = i; /* up to the next control token */
    while (end < len && (end == i || special_at(t, s + end, len - end) < 0))
      end++;
    size_t l = pretoken(s + i, end - i);
    if (bpe_piece(t, s + i, l, ids, &k, err))
      return -1;
    i += l;
  }
  *n = k;
  return 0;
}

size_t eng_tok_decode_bpe(const eng_tokenizer *t, int id, char *buf,
                          size_t cap) {
  const unsigned char *p = (const unsigned char *)t->tokens[id];
  size_t n = t->lens[id], k = 0;
  if (t->types && t->types[id] == 3) { /* control tokens print as is */
    n = n < cap ? n : cap;
    memcpy(buf, p, n);
    return n;
  }
  for (size_t i = 0; i < n && k < cap;) {
    int cp = p[i++];
    if (cp >= 0xc0 && i < n) {
      cp = ((cp & 0x1f) << 6) | (p[i++] & 0x3f);
    }
    int b = cp;
    if (cp >= 256) { /* invert byte_to_cp */
      for (b = 0; b < 256 && byte_to_cp(b) != cp; b++)
        ;
    }
    buf[k++] = (char)b;
  }
  return k;
}

int eng_tok_copy_strings(const eng_gguf *g, const eng_gguf_kv *kv,
                         eng_tokenizer *t, eng_err *err) {
  int n = (int)kv->v.arr.n;
  t->tokens = calloc((size_t)n, sizeof *t->tokens);
  t->lens = calloc((size_t)n, sizeof *t->lens);
  if (!t->tokens || !t->lens)
    return eng_fail(err, "%s: out of memory for %d tokens", g->path, n);
  const unsigned char *p = kv->v.arr.data;
  for (int i = 0; i < n; i++) {
    eng_gguf_str s = eng_gguf_next_str(&p);
    t->tokens[i] = malloc(s.len + 1);
    if (!t->tokens[i]) {
      t->n_vocab = i;
      return eng_fail(err, "%s: out of memory for token %d", g->path, i);
    }
    memcpy(t->tokens[i], s.s, s.len);
    t->tokens[i][s.len] = 0;
    t->lens[i] = s.len;
  }
  return 0;
}

static int load_merges(const eng_gguf *g, eng_tokenizer *t, eng_err *err) {
  const eng_gguf_kv *kv;
  if (eng_gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_T_STRING, 0, &kv, err))
    return -1;
  if (eng_strmap_init(&t->merges, kv->v.arr.n))
    return eng_fail(err, "%s: out of memory for merges", g->path);
  const unsigned char *p = kv->v.arr.data;
  for (uint64_t i = 0; i < kv->v.arr.n; i++) {
    eng_gguf_str s = eng_gguf_next_str(&p);
    if (eng_strmap_put(&t->merges, s.s, s.len, (int)i))
      return eng_fail(err, "%s: out of memory for merges", g->path);
  }
  return 0;
}

static int load_bpe(const eng_gguf *g, eng_tokenizer *t, eng_err *err) {
  const eng_gguf_kv *tokens, *types;
  if (eng_gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_T_STRING, 0, &tokens,
                       err) ||
      eng_gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_T_I32, 1, &types,
                       err))
    return -1;
  if (tokens->v.arr.n == 0 || tokens->v.arr.n > (1u << 24))
    return eng_fail(err, "%s: bad vocabulary size %llu", g->path,
                    (unsigned long long)tokens->v.arr.n);
  int n = (int)tokens->v.arr.n;
  if (eng_tok_copy_strings(g, tokens, t, err))
    return -1;
  t->n_vocab = n;
  if (types && types->v.arr.n == (uint64_t)n) {
    t->types = malloc((size_t)n * sizeof *t->types);
    t->specials = malloc((size_t)n * sizeof *t->specials);
    if (!t->types || !t->specials)
      return eng_fail(err, "%s: out of memory", g->path);
    memcpy(t->types, types->v.arr.data, (size_t)n * sizeof *t->types);
    for (int i = 0; i < n; i++)
      if ((t->types[i] == 3 || t->types[i] == 4) && t->lens[i] > 0)
        t->specials[t->n_specials++] = i;
  }
  int64_t bos = -1, eos = -1;
  eng_err ignore;
  if (eng_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos, &ignore))
    bos = -1;
  if (eng_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &eos, &ignore))
    eos = -1;
  int64_t add_bos = 0; /* llama.cpp's default for gpt2 vocabularies */
  if (eng_gguf_get_int(g, "tokenizer.ggml.add_bos_token", &add_bos, &ignore))
    add_bos = 0;
  t->add_bos = add_bos != 0;
  t->bos = bos >= 0 && bos < n ? (int)bos : -1;
  t->eos = eos >= 0 && eos < n ? (int)eos : -1;
  const eng_gguf_kv *tpl = eng_gguf_find(g, "tokenizer.chat_template");
  if (tpl && tpl->type == GGUF_T_STRING) {
    t->chat_template = malloc(tpl->v.str.len + 1);
    if (!t->chat_template)
      return eng_fail(err, "%s: out of memory", g->path);
    memcpy(t->chat_template, tpl->v.str.s, tpl->v.str.len);
    t->chat_template[tpl->v.str.len] = 0;
  }
  return 0;
}

int eng_tok_from_gguf(const eng_gguf *g, eng_tokenizer **out, eng_err *err) {
  *out = NULL;
  const eng_gguf_kv *model = eng_gguf_find(g, "tokenizer.ggml.model");
  if (model && model->type == GGUF_T_STRING && model->v.str.len == 5 &&
      memcmp(model->v.str.s, "llama", 5) == 0)
    return eng_tok_spm_from_gguf(g, out, err);
  if (!model || model->type != GGUF_T_STRING || model->v.str.len != 4 ||
      memcmp(model->v.str.s, "gpt2", 4) != 0)
    return eng_fail(err,
                    "%s: tokenizer.ggml.model is not \"gpt2\" (byte-level BPE) "
                    "or \"llama\" (SentencePiece)",
                    g->path);
  eng_tokenizer *t = calloc(1, sizeof *t);
  if (!t)
    return eng_fail(err, "%s: out of memory", g->path);
  t->kind = ENG_TOK_BPE;
  t->eot = -1;
  if (load_bpe(g, t, err) || eng_tok_set_vocab(t, t->n_vocab, g->path, err) ||
      load_merges(g, t, err)) {
    eng_tok_free(t);
    return -1;
  }
  t->eot = eng_strmap_get(&t->vocab, "<|im_end|>", 10);
  *out = t;
  return 0;
}
