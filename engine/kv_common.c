/* Helpers shared by both caches and the forward pass. */
#include "kvcache.h"

#include <math.h>
#include <string.h>

void eng_rope(float *x, int n_heads, int head_dim, int pos, float theta) {
  for (int i = 0; i < head_dim; i += 2) {
    float freq = powf(theta, -(float)i / (float)head_dim);
    float a = (float)pos * freq, cs = cosf(a), sn = sinf(a);
    for (int h = 0; h < n_heads; h++) {
      float *p = x + h * head_dim + i, x0 = p[0], x1 = p[1];
      p[0] = x0 * cs - x1 * sn;
      p[1] = x0 * sn + x1 * cs;
    }
  }
}

int eng_rank_for_ratio(int n, int features, float ratio) {
  double r = (double)n * features / (ratio * ((double)n + features));
  int k = (int)r, cap = n < features ? n : features;
  return k < 1 ? 1 : k > cap ? cap : k;
}

int eng_kv_create(const char *kind, const eng_config *c, int max_tokens,
                  const eng_xkv_opts *o, eng_kv **out, eng_err *err) {
  if (strcmp(kind, "exact") == 0)
    return eng_kv_exact_create(c, max_tokens, out, err);
  if (strcmp(kind, "xkv") == 0)
    return eng_kv_xkv_create(c, max_tokens, o, out, err);
  *out = NULL;
  return eng_fail(err, "unknown cache \"%s\" (exact or xkv)", kind);
}
