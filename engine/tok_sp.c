/* llama2.c's encoder: a dummy-prefix space, one token per UTF-8 code point
 * (bytes + 3 as fallback), then greedy merging of the adjacent pair whose
 * concatenation is the highest-scored vocabulary entry. */
#include "tok_internal.h"

#include <string.h>

static int lookup(const eng_tokenizer *t, const char *s, size_t n) {
  return eng_strmap_get(&t->vocab, s, n);
}

void eng_tok_encode_sp(const eng_tokenizer *t, const char *text, int *ids,
                       int *n) {
  int k = 0;
  if (text[0]) {
    int sp = lookup(t, " ", 1);
    if (sp >= 0)
      ids[k++] = sp;
  }
  for (const char *c = text; *c;) {
    size_t len = 1;
    while (len < 4 && (c[len] & 0xc0) == 0x80)
      len++;
    int id = lookup(t, c, len);
    if (id >= 0) {
      ids[k++] = id;
    } else {
      for (size_t i = 0; i < len; i++)
        ids[k++] = (unsigned char)c[i] + 3;
    }
    c += len;
  }
  char buf[512];
  for (;;) {
    float best = -1e10f;
    int best_id = -1, best_i = -1;
    for (int i = 0; i + 1 < k; i++) {
      size_t a = t->lens[ids[i]], b = t->lens[ids[i + 1]];
      if (a + b > sizeof buf)
        continue;
      memcpy(buf, t->tokens[ids[i]], a);
      memcpy(buf + a, t->tokens[ids[i + 1]], b);
      int id = lookup(t, buf, a + b);
      if (id >= 0 && t->scores[id] > best) {
        best = t->scores[id];
        best_id = id;
        best_i = i;
      }
    }
    if (best_i < 0)
      break;
    ids[best_i] = best_id;
    memmove(ids + best_i + 1, ids + best_i + 2,
            (size_t)(k - best_i - 2) * sizeof *ids);
    k--;
  }
  *n = k;
}
