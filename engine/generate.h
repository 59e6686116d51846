/* Prompt -> prefill -> decode loop, shared by xkv-run, xkv-eval, the bench
 * and the tests. */
#ifndef ENG_GENERATE_H
#define ENG_GENERATE_H

#include "forward.h"
#include "sample.h"
#include "tokenizer.h"

/* Text of sequence `seq` (0 outside a batch) as it is generated. */
typedef void (*eng_emit_fn)(void *user, int seq, const char *bytes, size_t n);

typedef struct {
  int n_prompt, n_gen;
  double t_prefill, t_decode, t_attn; /* seconds; t_attn within t_decode */
} eng_gen_result;

typedef struct {
  int max_new;
  int stop_at_eos;
  eng_sampler *sampler;     /* NULL: greedy */
  const eng_tokenizer *tok; /* for emit and stop tokens; may be NULL */
  eng_emit_fn emit;
  void *user;
  eng_progress_fn progress;
  int *out; /* the generated tokens (max_new), may be NULL */
} eng_gen_opts;

/* One sequence of a batch. */
typedef struct {
  const int *prompt;
  int n;                /* prompt tokens */
  eng_sampler *sampler; /* NULL: greedy */
  int *out;             /* the generated tokens (max_new), may be NULL */
  int n_gen;            /* set: tokens generated */
} eng_gen_seq;

int eng_generate(const eng_model *m, eng_kv *kv, const int *prompt, int n,
                 const eng_gen_opts *o, eng_gen_result *res, eng_err *err);
/* n sequences, each its own cache (eng_kv_create_batch), prefilled one by
 * one and decoded together, one eng_decode_batch per step for those still
 * generating (a sequence stops at its stop token or after o->max_new).
 * o's sampler and out are ignored (the sequences' own are used); res sums
 * the sequences' tokens. eng_generate is the batch of one. */
int eng_generate_batch(const eng_model *m, eng_kv *const *kvs,
                       eng_gen_seq *seqs, int n, const eng_gen_opts *o,
                       eng_gen_result *res, eng_err *err);

#endif
