#include "sample.h"

#include <math.h>
#include <stdlib.h>

int eng_sampler_init(eng_sampler *s, int vocab, float temp, float top_p,
                     uint64_t seed) {
  s->temp = temp;
  s->top_p = top_p > 0 && top_p <= 1 ? top_p : 1.0f;
  s->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
  s->n = vocab;
  s->probs = malloc((size_t)vocab * sizeof *s->probs);
  s->idx = malloc((size_t)vocab * sizeof *s->idx);
  return s->probs && s->idx ? 0 : -1;
}

void eng_sampler_free(eng_sampler *s) {
  free(s->probs);
  free(s->idx);
  s->probs = NULL;
  s->idx = NULL;
}

int eng_argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best])
      best = i;
  return best;
}

void eng_log_softmax(const float *logits, int n, float *out) {
  float mx = logits[eng_argmax(logits, n)];
  double sum = 0;
  for (int i = 0; i < n; i++)
    sum += exp((double)(logits[i] - mx));
  float lse = mx + (float)log(sum);
  for (int i = 0; i < n; i++)
    out[i] = logits[i] - lse;
}

static float uniform(uint64_t *state) { /* xorshift64* */
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return (float)((*state * 0x2545f4914f6cdd1dull) >> 40) / 16777216.0f;
}

static const float *sort_key;
static int by_prob_desc(const void *a, const void *b) {
  float x = sort_key[*(const int *)a], y = sort_key[*(const int *)b];
  return (x < y) - (x > y);
}

int eng_sample(eng_sampler *s, const float *logits) {
  if (s->temp <= 0)
    return eng_argmax(logits, s->n);
  float mx = logits[eng_argmax(logits, s->n)], sum = 0;
  for (int i = 0; i < s->n; i++)
    sum += s->probs[i] = expf((logits[i] - mx) / s->temp);
  for (int i = 0; i < s->n; i++) {
    s->probs[i] /= sum;
    s->idx[i] = i;
  }
  int n = s->n;
  if (s->top_p < 1.0f) { /* the smallest prefix of mass >= top_p */
    sort_key = s->probs;
    qsort(s->idx, (size_t)n, sizeof *s->idx, by_prob_desc);
    float cum = 0;
    for (int i = 0; i < n; i++)
      if ((cum += s->probs[s->idx[i]]) >= s->top_p) {
        n = i + 1;
        break;
      }
    sum = cum;
  } else {
    sum = 1.0f;
  }
  float r = uniform(&s->rng) * sum, cum = 0;
  for (int i = 0; i < n; i++)
    if ((cum += s->probs[s->idx[i]]) > r)
      return s->idx[i];
  return s->idx[n - 1];
}
