#include "variants_tuned.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int suits(const rt_tune_record *r, const char *target) {
  if (!strcmp(target, "host"))
    return !strncmp(r->fingerprint, "cpu:", 4);
  char model[32], cuda[32];
  snprintf(model, sizeof model, "model:%s:", target);
  snprintf(cuda, sizeof cuda, "cuda:%s:", target);
  return !strncmp(r->fingerprint, model, strlen(model)) ||
         !strncmp(r->fingerprint, cuda, strlen(cuda));
}

/* The value the build gives name: an override, else the const's default
 * (-1 when name is no const: an argument key, which any build serves). */
static int64_t build_value(const xk_kernel_spec *s, const xk_constexpr *fixed,
                           int nfixed, const char *name) {
  for (int i = 0; i < nfixed; i++)
    if (!strcmp(fixed[i].name, name))
      return fixed[i].value;
  for (int i = 0; i < s->nconsts; i++)
    if (!strcmp(s->consts[i].name, name))
      return s->consts[i].value;
  return -1;
}

static int agrees(const xk_kernel_spec *s, const rt_tune_record *r,
                  const xk_constexpr *fixed, int nfixed) {
  for (int i = 0; i < r->nkey; i++) {
    int64_t v = build_value(s, fixed, nfixed, r->key[i].name);
    if (v >= 0 && v != r->key[i].value)
      return 0;
  }
  for (int i = 0; i < r->nconf; i++)
    for (int j = 0; j < nfixed; j++)
      if (!strcmp(fixed[j].name, r->conf[i].name) &&
          fixed[j].value != r->conf[i].value)
        return 0;
  return 1;
}

static int same_conf(const rt_tune_record *a, const rt_tune_record *b) {
  if (a->nconf != b->nconf)
    return 0;
  for (int i = 0; i < a->nconf; i++)
    if (strcmp(a->conf[i].name, b->conf[i].name) ||
        a->conf[i].value != b->conf[i].value)
      return 0;
  return 1;
}

int xk_variants_tuned(const xk_kernel_spec *spec, const char *target,
                      const rt_tune_cache *c, const xk_constexpr *fixed,
                      int nfixed, xk_override_set **out, int *count,
                      xk_diag *d) {
  const rt_tune_record **pick = calloc((size_t)c->n + 1, sizeof *pick);
  xk_override_set *v = calloc((size_t)c->n + 1, sizeof *v);
  if (!pick || !v) {
    free(pick);
    free(v);
    return xk_diag_set(d, "out of memory");
  }
  int n = 0;
  for (int i = 0; i < c->n; i++) {
    const rt_tune_record *r = &c->r[i];
    int seen = 0;
    if (!r->winner || strcmp(r->kernel, spec->name) || !suits(r, target) ||
        !agrees(spec, r, fixed, nfixed))
      continue;
    for (int j = 0; j < n && !seen; j++)
      seen = same_conf(pick[j], r);
    if (!seen)
      pick[n++] = r;
  }
  int rc = 0;
  for (int k = 0; k <= n && !rc; k++) {
    int m = nfixed + (k ? pick[k - 1]->nconf : 0);
    v[k].over = malloc(sizeof(xk_constexpr) * (size_t)(m ? m : 1));
    if (!v[k].over) {
      rc = xk_diag_set(d, "out of memory");
      break;
    }
    memcpy(v[k].over, fixed, sizeof(xk_constexpr) * (size_t)nfixed);
    v[k].n = nfixed;
    for (int i = 0; k && i < pick[k - 1]->nconf; i++) {
      int have = 0;
      for (int j = 0; j < nfixed; j++)
        have |= !strcmp(fixed[j].name, pick[k - 1]->conf[i].name);
      if (!have)
        v[k].over[v[k].n++] =
            (xk_constexpr){.name = pick[k - 1]->conf[i].name,
                           .value = pick[k - 1]->conf[i].value};
    }
  }
  free(pick);
  if (rc) {
    xk_variants_free(v, n + 1);
    return -1;
  }
  *out = v;
  *count = n + 1;
  return 0;
}
