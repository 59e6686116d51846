/* A GGUF SentencePiece vocabulary (tokenizer.ggml.model "llama", as Gemma
 * uses): spaces become U+2581, the text splits into UTF-8 characters, and
 * the adjacent pair whose concatenation is the best-scored piece merges
 * first (ties: the leftmost), as llama.cpp's SPM tokenizer does; a
 * character left outside the vocabulary becomes its <0xXX> byte pieces.
 * A heap of candidate pairs makes it O(n log n): long texts are the point. */
#include "model.h"
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char space_mark[] = "\xe2\x96\x81"; /* U+2581 */

typedef struct {
  int prev, next;
  size_t at, len; /* bytes of the escaped text; len 0: merged away */
} sym;

typedef struct {
  float score;
  int left;
  size_t len; /* stale once the symbols changed */
} pair;

static int better(const pair *a, const pair *b) {
  return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(pair *h, int *n, pair p) {
  int i = (*n)++;
  while (i > 0 && better(&p, &h[(i - 1) / 2])) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = p;
}

static pair heap_pop(pair *h, int *n) {
  pair top = h[0], last = h[--*n];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= *n)
      break;
    if (c + 1 < *n && better(&h[c + 1], &h[c]))
      c++;
    if (!better(&h[c], &last))
      break;
    h[i] = h[c];
    i = c;
  }
  if (*n)
    h[i] = last;
  return top;
}

static void try_pair(const eng_tokenizer *t, const char *s, const sym *y,
                     int left, pair *h, int *nh) {
  if (left < 0 || y[left].next < 0)
    return;
  size_t len = y[left].len + y[y[left].next].len;
  int id = eng_strmap_get(&t->vocab, s + y[left].at, len);
  if (id >= 0)
    heap_push(h, nh, (pair){t->scores[id], left, len});
}

/* Merges one fragment of tl bytes (no user-defined piece inside) into
 * ids; `space`: the fragment gets the dummy space prefix. */
static int merge_fragment(const eng_tokenizer *t, const char *text, size_t tl,
                          int space, int *ids, int *n, eng_err *err) {
  size_t cap = 3 * (tl + 1) + 1, k = 0;
  char *s = malloc(cap);
  sym *y = malloc((tl + 2) * sizeof *y);
  pair *h = malloc((3 * tl + 4) * sizeof *h);
  *n = 0;
  if (!s || !y || !h) {
    free(s);
    free(y);
    free(h);
    return eng_fail(err, "out of memory tokenizing %zu bytes", tl);
  }
  if (space && tl) {
    memcpy(s, space_mark, 3);
    k = 3;
  }
  for (const char *c = text; c < text + tl; c++)
    if (*c == ' ') {
      memcpy(s + k, space_mark, 3);
      k += 3;
    } else {
      s[k++] = *c;
    }
  int ns = 0;
  for (size_t i = 0; i < k; ns++) {
    size_t len = 1;
    while (i + len < k && len < 4 && (s[i + len] & 0xc0) == 0x80)
      len++;
    y[ns] = (sym){ns - 1, -1, i, len};
    if (ns)
      y[ns - 1].next = ns;
    i += len;
  }
  int nh = 0; /* pushes: one per first pair, two per merge */
  for (int i = 0; i + 1 < ns; i++)
    try_pair(t, s, y, i, h, &nh);
  while (nh) {
    pair p = heap_pop(h, &nh);
    sym *l = &y[p.left];
    if (!l->len || l->next < 0 || l->len + y[l->next].len != p.len)
      continue;
    sym *r = &y[l->next];
    l->len += r->len;
    r->len = 0;
    l->next = r->next;
    if (r->next >= 0)
      y[r->next].prev = p.left;
    try_pair(t, s, y, l->prev, h, &nh);
    try_pair(t, s, y, p.left, h, &nh);
  }
  int m = 0;
  for (int i = ns ? 0 : -1; i >= 0; i = y[i].next) {
    int id = eng_strmap_get(&t->vocab, s + y[i].at, y[i].len);
    if (id >= 0) {
      ids[m++] = id;
      continue;
    }
    for (size_t b = 0; b < y[i].len; b++) {
      char piece[8];
      snprintf(piece, sizeof piece, "<0x%02X>", (unsigned char)s[y[i].at + b]);
      int bid = eng_strmap_get(&t->vocab, piece, 6);
      ids[m++] = bid >= 0 ? bid : t->unk >= 0 ? t->unk : 0;
    }
  }
  *n = m;
  free(s);
  free(y);
  free(h);
  return 0;
}

/* User-defined pieces (token type 4: Gemma's runs of spaces, tabs and
 * newlines, its HTML tags) are cut out of the raw text before merging, as
 * llama.cpp does, else "  And" merges to "_" "_And" where llama.cpp has
 * "  " "And". llama.cpp matches the longest pieces first over the whole
 * text; the longest match at each position from the left gives the same
 * split unless two pieces overlap. A fragment after a piece gets the space
 * prefix again, as in llama.cpp. */
typedef struct {
  unsigned char first;
  size_t len;
  int id;
} ud_piece;

/* By first byte, then longest first. */
static int ud_order(const void *a, const void *b) {
  const ud_piece *x = a, *y = b;
  if (x->first != y->first)
    return x->first - y->first;
  return (x->len < y->len) - (x->len > y->len);
}

/* The user-defined pieces sorted by ud_order, and at[c]..at[c + 1] the run
 * of those starting with byte c. */
static int ud_table(const eng_tokenizer *t, ud_piece **out, int *at,
                    eng_err *err) {
  int n = 0;
  for (int i = 0; t->types && i < t->n_vocab; i++)
    n += t->types[i] == 4 && t->lens[i] > 0;
  ud_piece *p = n ? malloc((size_t)n * sizeof *p) : NULL;
  if (n && !p)
    return eng_fail(err, "out of memory for %d user-defined pieces", n);
  n = 0;
  for (int i = 0; t->types && i < t->n_vocab; i++)
    if (t->types[i] == 4 && t->lens[i] > 0)
      p[n++] = (ud_piece){(unsigned char)t->tokens[i][0], t->lens[i], i};
  if (n)
    qsort(p, n, sizeof *p, ud_order);
  for (int c = 0, j = 0; c <= 256; c++) {
    while (j < n && p[j].first < c)
      j++;
    at[c] = j;
  }
  *out = p;
  return 0;
}

int eng_tok_encode_spm(const eng_tokenizer *t, const char *text, int *ids,
                       int *n, eng_err *err) {
  ud_piece *ud = NULL;
  int at[257];
  if (ud_table(t, &ud, at, err))
    return -1;
  size_t tl = strlen(text), from = 0;
  int m = 0, space = t->add_space, rc = 0;
  for (size_t i = 0; i <= tl && !rc; i++) {
    const ud_piece *hit = NULL;
    unsigned char c = i < tl ? (unsigned char)text[i] : 0;
    for (int j = at[c]; i < tl && j < at[c + 1] && !hit; j++)
      if (ud[j].len <= tl - i &&
          memcmp(text + i, t->tokens[ud[j].id], ud[j].len) == 0)
        hit = &ud[j];
    if (!hit && i < tl)
      continue;
    int k = 0;
    if (i > from)
      rc = merge_fragment(t, text + from, i - from, space, ids + m, &k, err);
    m += k;
    if (hit) {
      ids[m++] = hit->id;
      space = t->add_space;
      from = i + hit->len;
      i = from - 1;
    }
  }
  free(ud);
  *n = m;
  return rc;
}

size_t eng_tok_decode_spm(const eng_tokenizer *t, int id, char *buf,
                          size_t cap) {
  if (t->types && t->types[id] == 3) /* control: <bos>, <eos>, ... */
    return 0;
  const char *p = t->tokens[id];
  size_t n = t->lens[id], k = 0;
  unsigned char byte;
  if (n == 6 && sscanf(p, "<0x%02hhX>", &byte) == 1) {
    buf[0] = (char)byte;
    return 1;
  }
  for (size_t i = 0; i < n && k < cap;) {
    if (n - i >= 3 && memcmp(p + i, space_mark, 3) == 0) {
      buf[k++] = ' ';
      i += 3;
    } else {
      buf[k++] = p[i++];
    }
  }
  return k;
}

static int special_id(const eng_gguf *g, const char *key, int n) {
  int64_t v;
  eng_err ignore;
  return eng_gguf_get_int(g, key, &v, &ignore) || v < 0 || v >= n ? -1 : (int)v;
}

int eng_tok_spm_from_gguf(const eng_gguf *g, eng_tokenizer **out,
                          eng_err *err) {
  *out = NULL;
  const eng_gguf_kv *tokens, *scores, *types;
  if (eng_gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_T_STRING, 0, &tokens,
                       err) ||
      eng_gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_T_F32, 0, &scores,
                       err) ||
      eng_gguf_get_arr(g, "tokenizer.ggml.token_type", GGUF_T_I32, 1, &types,
                       err))
    return -1;
  uint64_t nv = tokens->v.arr.n;
  if (nv == 0 || nv > (1u << 24) || scores->v.arr.n != nv ||
      (types && types->v.arr.n != nv))
    return eng_fail(err,
                    "%s: SentencePiece vocabulary of %llu tokens with %llu "
                    "scores",
                    g->path, (unsigned long long)nv,
                    (unsigned long long)scores->v.arr.n);
  int n = (int)nv;
  eng_tokenizer *t = calloc(1, sizeof *t);
  if (!t)
    return eng_fail(err, "%s: out of memory", g->path);
  t->kind = ENG_TOK_SPM;
  t->eot = -1;
  if (eng_tok_copy_strings(g, tokens, t, err))
    goto fail;
  t->n_vocab = n;
  t->scores = malloc((size_t)n * sizeof *t->scores);
  t->types = types ? malloc((size_t)n * sizeof *t->types) : NULL;
  if (!t->scores || (types && !t->types)) {
    eng_fail(err, "%s: out of memory for %d tokens", g->path, n);
    goto fail;
  }
  memcpy(t->scores, scores->v.arr.data, (size_t)n * sizeof *t->scores);
  if (types)
    memcpy(t->types, types->v.arr.data, (size_t)n * sizeof *t->types);
  if (eng_tok_set_vocab(t, n, g->path, err))
    goto fail;
  t->bos = special_id(g, "tokenizer.ggml.bos_token_id", n);
  t->eos = special_id(g, "tokenizer.ggml.eos_token_id", n);
  t->unk = special_id(g, "tokenizer.ggml.unknown_token_id", n);
  t->eot = eng_strmap_get(&t->vocab, "<end_of_turn>", 13);
  int64_t v;
  eng_err ignore;
  t->add_bos =
      eng_gguf_get_int(g, "tokenizer.ggml.add_bos_token", &v, &ignore) ||
      v != 0; /* llama.cpp's default for SentencePiece: on */
  t->add_space =
      eng_gguf_get_int(g, "tokenizer.ggml.add_space_prefix", &v, &ignore) ||
      v != 0;
  *out = t;
  return 0;
fail:
  eng_tok_free(t);
  return -1;
}
