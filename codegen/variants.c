#include "variants.h"

#include <stdlib.h>
#include <string.h>

#define XK_MAX_VARIANTS 4096

static int is_fixed(const char *name, const xk_constexpr *fixed, int n) {
  for (int i = 0; i < n; i++)
    if (!strcmp(fixed[i].name, name))
      return 1;
  return 0;
}

int xk_variants_enumerate(const xk_kernel_spec *spec, const xk_constexpr *fixed,
                          int nfixed, int all, xk_override_set **out,
                          int *count, xk_diag *d) {
  int dims[64], nd = 0;
  long total = 1;
  for (int i = 0; all && i < spec->ntune && nd < 64; i++)
    if (!is_fixed(spec->tune[i].name, fixed, nfixed) && spec->tune[i].n > 0) {
      dims[nd++] = i;
      total *= spec->tune[i].n;
      if (total > XK_MAX_VARIANTS)
        return xk_diag_set(d,
                           "kernel '%s': tune space has more than %d "
                           "points; fix some with -D",
                           spec->name, XK_MAX_VARIANTS);
    }
  xk_override_set *v = calloc((size_t)total, sizeof *v);
  if (!v)
    return xk_diag_set(d, "out of memory");
  for (long k = 0; k < total; k++) {
    v[k].n = nfixed + nd;
    v[k].over = malloc(sizeof(xk_constexpr) * (size_t)(v[k].n ? v[k].n : 1));
    if (!v[k].over) {
      xk_variants_free(v, (int)total);
      return xk_diag_set(d, "out of memory");
    }
    /* names are borrowed from the spec and the caller's overrides */
    if (nfixed) /* fixed may be NULL, which memcpy must not get */
      memcpy(v[k].over, fixed, sizeof(xk_constexpr) * (size_t)nfixed);
    long r = k;
    for (int j = nd - 1; j >= 0; j--) {
      const xk_tune_dim *t = &spec->tune[dims[j]];
      v[k].over[nfixed + j] =
          (xk_constexpr){.name = t->name, .value = t->vals[r % t->n]};
      r /= t->n;
    }
  }
  *out = v;
  *count = (int)total;
  return 0;
}

void xk_variants_free(xk_override_set *v, int count) {
  for (int i = 0; v && i < count; i++)
    free(v[i].over);
  free(v);
}
