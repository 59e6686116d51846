#include "kv_capture.h"

#include "forward.h"
#include "tokenizer.h"
#include "xkv_ref.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An eng_kv that records what the forward pass hands it and answers
 * attention exactly, so later layers see the true activations. */
typedef struct {
  eng_kv base;
  kv_capture *cap;
  int *len; /* tokens held per layer */
} recorder;

static size_t row(const kv_capture *c) {
  return (size_t)c->n_kv_heads * c->head_dim;
}

static int rec_prefill(eng_kv *kv, int layer, const float *k, const float *v,
                       int n, eng_err *err) {
  recorder *r = (recorder *)kv;
  if (n != r->cap->L)
    return eng_fail(err, "capture: prefill of %d tokens, want %d", n,
                    r->cap->L);
  memcpy(kv_capture_k(r->cap, layer), k, (size_t)n * row(r->cap) * 4);
  memcpy(kv_capture_v(r->cap, layer), v, (size_t)n * row(r->cap) * 4);
  r->len[layer] = n;
  return 0;
}

static int rec_append(eng_kv *kv, int layer, const float *k, const float *v,
                      eng_err *err) {
  recorder *r = (recorder *)kv;
  if (r->len[layer] != r->cap->L)
    return eng_fail(err, "capture: only one decode step is recorded");
  size_t at = (size_t)r->len[layer]++ * row(r->cap);
  memcpy(kv_capture_k(r->cap, layer) + at, k, row(r->cap) * 4);
  memcpy(kv_capture_v(r->cap, layer) + at, v, row(r->cap) * 4);
  return 0;
}

static int rec_attention(eng_kv *kv, int layer, const float *q, int pos,
                         float *out, eng_err *err) {
  recorder *r = (recorder *)kv;
  const kv_capture *c = r->cap;
  memcpy(kv_capture_q(r->cap, layer), q, (size_t)c->n_heads * c->head_dim * 4);
  xkv_ref_attention(q, kv_capture_k(c, layer), kv_capture_v(c, layer),
                    r->len[layer], c->n_heads, c->n_kv_heads, c->head_dim, pos,
                    c->theta, out);
  (void)err;
  return 0;
}

/* The tokenizer's merges are quadratic in the text length: encode only a
 * prefix comfortably longer than L tokens (16 bytes a token, at a space). */
static const char *clip(unsigned char *txt, size_t size, int L) {
  size_t n = (size_t)L * 16;
  while (n < size && txt[n] != ' ')
    n++;
  if (n < size)
    txt[n] = 0;
  return (const char *)txt;
}

static const eng_kv_ops rec_ops = {rec_prefill, rec_append, rec_attention, NULL,
                                   NULL};

int kv_capture_run(const char *model, const char *tok, const char *text, int L,
                   kv_capture *cap, char *errbuf, size_t nerr) {
  eng_model m;
  eng_err err = {{0}};
  eng_state st = {0};
  unsigned char *txt = NULL;
  size_t size;
  int *ids = NULL, n = 0, rc = -1;
  memset(cap, 0, sizeof *cap);
  if (eng_model_open(model, tok, &m, &err))
    goto out_msg;
  const eng_config *g = &m.cfg;
  recorder r = {{&rec_ops}, cap, calloc((size_t)g->n_layers, sizeof(int))};
  *cap = (kv_capture){g->n_layers,   g->n_heads, g->n_kv_heads, g->head_dim, L,
                      g->rope_theta, NULL,       NULL,          NULL};
  size_t kvn = (size_t)g->n_layers * (L + 1) * row(cap);
  cap->k = malloc(kvn * 4);
  cap->v = malloc(kvn * 4);
  cap->q = malloc((size_t)g->n_layers * g->n_heads * g->head_dim * 4);
  if (!r.len || !cap->k || !cap->v || !cap->q) {
    eng_fail(&err, "capture: out of memory");
  } else if (!eng_read_file(text, &txt, &size, &err) &&
             !eng_tok_encode(m.tok, clip(txt, size, L), 1, &ids, &n, &err)) {
    if (n < L + 1 || L + 1 > g->seq_len)
      eng_fail(&err, "%s: %d tokens, the capture needs %d (model limit %d)",
               text, n, L + 1, g->seq_len);
    else if (!eng_state_init(&st, &m, &err) &&
             !eng_prefill(&st, &r.base, ids, L, NULL, NULL, NULL, &err) &&
             !eng_decode(&st, &r.base, ids[L], L, NULL, &err))
      rc = 0;
  }
  eng_state_free(&st);
  free(r.len);
  free(ids);
  free(txt);
  eng_model_free(&m);
out_msg:
  if (rc) {
    snprintf(errbuf, nerr, "%s", err.msg);
    kv_capture_free(cap);
  }
  return rc;
}

void kv_capture_free(kv_capture *cap) {
  free(cap->k);
  free(cap->v);
  free(cap->q);
  cap->k = cap->v = cap->q = NULL;
}
