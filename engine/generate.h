/* Prompt -> prefill -> decode loop, shared by xkv-run, xkv-eval, the bench
 * and the tests. */
#ifndef ENG_GENERATE_H
#define ENG_GENERATE_H

#include "forward.h"
#include "sample.h"
#include "tokenizer.h"

typedef void (*eng_emit_fn)(void *user, const char *bytes, size_t n);

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

int eng_generate(const eng_model *m, eng_kv *kv, const int *prompt, int n,
                 const eng_gen_opts *o, eng_gen_result *res, eng_err *err);

#endif
