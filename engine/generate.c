#include "generate.h"

#include <stdlib.h>
#include <string.h>

int eng_generate(const eng_model *m, eng_kv *kv, const int *prompt, int n,
                 const eng_gen_opts *o, eng_gen_result *res, eng_err *err) {
  memset(res, 0, sizeof *res);
  const eng_config *c = &m->cfg;
  if (n + o->max_new > c->seq_len)
    return eng_fail(err,
                    "%d prompt tokens + %d new exceed the model's context of "
                    "%d",
                    n, o->max_new, c->seq_len);
  eng_state s;
  if (eng_state_init(&s, m, err))
    return -1;
  float *logits = malloc((size_t)c->vocab_size * sizeof(float));
  char piece[512];
  int rc = -1;
  if (!logits) {
    eng_fail(err, "out of memory for logits");
    goto done;
  }
  double t0 = eng_now();
  if (eng_prefill(&s, kv, prompt, n, logits, o->progress, o->user, err))
    goto done;
  res->t_prefill = eng_now() - t0;
  res->n_prompt = n;
  int prev = prompt[n - 1];
  for (int i = 0; i < o->max_new; i++) {
    int next = o->sampler ? eng_sample(o->sampler, logits)
                          : eng_argmax(logits, c->vocab_size);
    if (o->out)
      o->out[i] = next;
    res->n_gen = i + 1;
    if (o->stop_at_eos && o->tok && eng_tok_is_stop(o->tok, next))
      break;
    if (o->emit && o->tok)
      o->emit(o->user, piece,
              eng_tok_decode(o->tok, prev, next, piece, sizeof piece));
    if (i + 1 < o->max_new && eng_decode(&s, kv, next, n + i, logits, err))
      goto done;
    prev = next;
  }
  res->t_decode = s.t_decode;
  res->t_attn = s.t_attn;
  rc = 0;
done:
  free(logits);
  eng_state_free(&s);
  return rc;
}
