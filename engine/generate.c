#include "generate.h"

#include <stdlib.h>
#include <string.h>

/* The batch's working arrays: the live sequences in order, the token and
 * position each decodes next and its cache. */
typedef struct {
  int *live, *next_live, *tok, *pos, *prev;
  eng_kv **kvs;
  float *logits; /* [n, vocab], row j the j-th live sequence's */
} gen_work;

static void work_free(gen_work *w) {
  free(w->live);
  free(w->next_live);
  free(w->tok);
  free(w->pos);
  free(w->prev);
  free(w->kvs);
  free(w->logits);
}

static int work_init(gen_work *w, int n, int vocab, eng_err *err) {
  size_t b = (size_t)n * sizeof(int);
  *w = (gen_work){malloc(b),
                  malloc(b),
                  malloc(b),
                  malloc(b),
                  malloc(b),
                  malloc((size_t)n * sizeof(eng_kv *)),
                  malloc((size_t)n * vocab * sizeof(float))};
  if (!w->live || !w->next_live || !w->tok || !w->pos || !w->prev || !w->kvs ||
      !w->logits) {
    work_free(w);
    return eng_fail(err, "out of memory for a batch of %d sequences", n);
  }
  return 0;
}

/* Samples the next token of each live sequence from its logits row, emits
 * it, and lists the sequences that decode it (step i of max_new).
 * Returns how many do. */
static int step(eng_gen_seq *seqs, const eng_gen_opts *o, gen_work *w, int n,
                int vocab, int i) {
  char piece[512];
  int nd = 0;
  for (int j = 0; j < n; j++) {
    int b = w->live[j];
    eng_gen_seq *q = &seqs[b];
    const float *lg = w->logits + (size_t)j * vocab;
    int next = q->sampler ? eng_sample(q->sampler, lg) : eng_argmax(lg, vocab);
    if (q->out)
      q->out[i] = next;
    q->n_gen = i + 1;
    if (o->stop_at_eos && o->tok && eng_tok_is_stop(o->tok, next))
      continue;
    if (o->emit && o->tok)
      o->emit(o->user, b, piece,
              eng_tok_decode(o->tok, w->prev[b], next, piece, sizeof piece));
    w->prev[b] = next;
    if (i + 1 < o->max_new) {
      w->next_live[nd] = b;
      w->tok[nd] = next;
      w->pos[nd++] = q->n + i;
    }
  }
  return nd;
}

int eng_generate_batch(const eng_model *m, eng_kv *const *kvs,
                       eng_gen_seq *seqs, int n, const eng_gen_opts *o,
                       eng_gen_result *res, eng_err *err) {
  memset(res, 0, sizeof *res);
  if (n < 1)
    return eng_fail(err, "generate: a batch of %d sequences (at least 1)", n);
  const eng_config *c = &m->cfg;
  int vocab = c->vocab_size;
  for (int b = 0; b < n; b++) {
    seqs[b].n_gen = 0;
    if (seqs[b].n + o->max_new > c->seq_len)
      return eng_fail(err,
                      "sequence %d: %d prompt tokens + %d new exceed the "
                      "model's context of %d",
                      b, seqs[b].n, o->max_new, c->seq_len);
  }
  eng_state s;
  gen_work w;
  if (work_init(&w, n, vocab, err))
    return -1;
  if (eng_state_init_rows(&s, m, n, err)) {
    work_free(&w);
    return -1;
  }
  int rc = -1;
  for (int b = 0; b < n; b++) {
    double t0 = eng_now();
    if (eng_prefill(&s, kvs[b], seqs[b].prompt, seqs[b].n,
                    w.logits + (size_t)b * vocab, o->progress, o->user, err))
      goto done;
    res->t_prefill += eng_now() - t0;
    res->n_prompt += seqs[b].n;
    w.live[b] = b;
    w.prev[b] = seqs[b].prompt[seqs[b].n - 1];
  }
  for (int i = 0, live = n; i < o->max_new && live; i++) {
    live = step(seqs, o, &w, live, vocab, i);
    for (int j = 0; j < live; j++)
      w.kvs[j] = kvs[w.live[j] = w.next_live[j]];
    if (live && eng_decode_batch(&s, w.kvs, w.tok, w.pos, live, w.logits, err))
      goto done;
  }
  for (int b = 0; b < n; b++)
    res->n_gen += seqs[b].n_gen;
  res->t_decode = s.t_decode;
  res->t_attn = s.t_attn;
  rc = 0;
done:
  work_free(&w);
  eng_state_free(&s);
  return rc;
}

int eng_generate(const eng_model *m, eng_kv *kv, const int *prompt, int n,
                 const eng_gen_opts *o, eng_gen_result *res, eng_err *err) {
  eng_gen_seq q = {
      .prompt = prompt, .n = n, .sampler = o->sampler, .out = o->out};
  return eng_generate_batch(m, &kv, &q, 1, o, res, err);
}
