/* The single-pass dense decode kernel (kernels.xk xkv_decode_lr1_<dt>): its
 * embedded tables, one per target, head dim and rank bucket RK x RV
 * (runtime/CMakeLists.txt), and the choice of one for a group. A bucket
 * serves any ranks up to its own (the kernel masks the padding), so the
 * smallest that holds both ranks is the one to run. */
#include "xkv_cache_int.h"
#include "xkv_lr1_tables.h"

#include <stdio.h>

#define DECL(gpu, d, rk, rv, n) extern const xkv_embedded n;
XKV_LR1_TABLES(DECL)
#define ENTRY(gpu, d, rk, rv, n) {gpu, d, rk, rv, &n},
static const struct {
  int gpu, d, rk, rv;
  const xkv_embedded *t;
} tables[] = {XKV_LR1_TABLES(ENTRY)};
#define NTABLES (int)(sizeof tables / sizeof *tables)

xkv_status xkv_cache_lr1_register(xkv_context *ctx, int gpu, int d) {
  xkv_status s = XKV_OK;
  for (int i = 0; i < NTABLES && !s; i++)
    if (tables[i].gpu == gpu && tables[i].d == d)
      s = xkv_registry_add_embedded(ctx, tables[i].t);
  return s;
}

/* the smallest table of the cache's target and head dim holding ranks rk,
 * rv; -1 when none does or the cache's dtype or GQA group has none */
static int bucket(const xkv_cache *c, int rk, int rv) {
  int G = c->cfg.n_heads / c->cfg.n_kv_heads, best = -1;
  if (c->cfg.dtype == XKV_F32 || XKV_LR1_HB * G > XKV_DECODE_BLOCK_G)
    return -1;
  for (int i = 0; i < NTABLES; i++)
    if (tables[i].gpu == (c->kind != XKV_DEVICE_CPU) &&
        tables[i].d == c->cfg.head_dim && tables[i].rk >= rk &&
        tables[i].rv >= rv &&
        (best < 0 ||
         tables[i].rk * tables[i].rv < tables[best].rk * tables[best].rv))
      best = i;
  return best;
}

/* kernel `base`_<dtype> of table i (NULL when the lookup fails: it is
 * registered with the head dim's table, so only out of memory) */
static xkv_kernel *lookup(xkv_cache *c, int i, const char *base) {
  xkv_const k[4] = {{"D", c->cfg.head_dim},
                    {"RK", tables[i].rk},
                    {"RV", tables[i].rv},
                    {"HB", XKV_LR1_HB}};
  char name[48];
  snprintf(name, sizeof name, "%s_%s", base,
           c->cfg.dtype == XKV_F16 ? "f16" : "bf16");
  xkv_kernel *out;
  return xkv_kernel_find(c->ctx, name, k, 4, &out) == XKV_OK ? out : NULL;
}

xkv_kernel *xkv_cache_lr1_find(xkv_cache *c, xkv_group *gr) {
  if (gr->lr1_rk == gr->rank_k && gr->lr1_rv == gr->rank_v)
    return gr->lr1;
  int best = bucket(c, gr->rank_k, gr->rank_v);
  gr->lr1 = best < 0 ? NULL : lookup(c, best, "xkv_decode_lr1");
  /* a failed lookup takes the three-sweep kernel and the next call retries */
  gr->lr1_rk = best >= 0 && !gr->lr1 ? -1 : gr->rank_k;
  gr->lr1_rv = gr->rank_v;
  return gr->lr1;
}

xkv_kernel *xkv_cache_lr1_batch_find(xkv_cache *c, int rk, int rv) {
  int best = bucket(c, rk, rv);
  return best < 0 ? NULL : lookup(c, best, "xkv_decode_lr1_batch");
}
