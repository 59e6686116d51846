#include "ir_hash.h"

#include "compile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(uint64_t h, const char *s) {
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

int xk_kernel_ir_hash(xk_dsl *dsl, int k, const xk_func *f, char *buf, size_t n,
                      xk_diag *d) {
  const xk_kernel_spec *spec = xk_dsl_kernel(dsl, k);
  xk_constexpr keyc[16];
  int nkeyc = 0;
  for (int i = 0; f && i < spec->nkey && nkeyc < 16; i++)
    for (int j = 0; j < f->nconsts; j++)
      if (!strcmp(f->consts[j].name, spec->key[i]))
        keyc[nkeyc++] = (xk_constexpr){spec->key[i], f->consts[j].value};
  xk_func *dflt;
  if (xk_compile_ir(dsl, k, keyc, nkeyc, &dflt, d))
    return -1;
  char *ir = xk_func_print(dflt), num[32];
  xk_func_free(dflt);
  if (!ir)
    return xk_diag_set(d, "out of memory");
  uint64_t h = fnv(0xcbf29ce484222325ull, ir);
  free(ir);
  for (int i = 0; i < spec->ntune; i++) {
    h = fnv(h, spec->tune[i].name);
    for (int j = 0; j < spec->tune[i].n; j++) {
      snprintf(num, sizeof num, ",%lld", (long long)spec->tune[i].vals[j]);
      h = fnv(h, num);
    }
  }
  h = fnv(h, XK_TUNE_COMPILER);
  snprintf(buf, n, "%016llx", (unsigned long long)h);
  return 0;
}
