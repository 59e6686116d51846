/* Next-token choice: greedy, or temperature + top-p with a seeded RNG. */
#ifndef ENG_SAMPLE_H
#define ENG_SAMPLE_H

#include <stdint.h>

typedef struct {
  float temp, top_p; /* temp <= 0: greedy */
  uint64_t rng;
  int n;
  float *probs;
  int *idx;
} eng_sampler;

int eng_sampler_init(eng_sampler *s, int vocab, float temp, float top_p,
                     uint64_t seed);
void eng_sampler_free(eng_sampler *s);
int eng_sample(eng_sampler *s, const float *logits);
int eng_argmax(const float *x, int n);
/* log-softmax of logits[n] into out[n] */
void eng_log_softmax(const float *logits, int n, float *out);

#endif
