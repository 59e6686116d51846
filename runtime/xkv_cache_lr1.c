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

xkv_kernel *xkv_cache_lr1_find(xkv_cache *c, xkv_group *gr) {
  if (gr->lr1_rk == gr->rank_k && gr->lr1_rv == gr->rank_v)
    return gr->lr1;
  gr->lr1 = NULL;
  gr->lr1_rk = gr->rank_k;
  gr->lr1_rv = gr->rank_v;
  int G = c->cfg.n_heads / c->cfg.n_kv_heads, best = -1;
  if (c->cfg.dtype == XKV_F32 || XKV_LR1_HB * G > XKV_DECODE_BLOCK_G)
    return NULL;
  for (int i = 0; i < NTABLES; i++)
    if (tables[i].gpu == (c->kind != XKV_DEVICE_CPU) &&
        tables[i].d == c->cfg.head_dim && tables[i].rk >= gr->rank_k &&
        tables[i].rv >= gr->rank_v &&
        (best < 0 ||
         tables[i].rk * tables[i].rv < tables[best].rk * tables[best].rv))
      best = i;
  if (best < 0)
    return NULL;
  xkv_const k[4] = {{"D", c->cfg.head_dim},
                    {"RK", tables[best].rk},
                    {"RV", tables[best].rv},
                    {"HB", XKV_LR1_HB}};
  char name[32];
  snprintf(name, sizeof name, "xkv_decode_lr1_%s",
           c->cfg.dtype == XKV_F16 ? "f16" : "bf16");
  /* registered with the head dim's table: found unless memory ran out,
   * when this call takes the three-sweep kernel and the next one retries */
  if (xkv_kernel_find(c->ctx, name, k, 4, &gr->lr1) != XKV_OK) {
    gr->lr1 = NULL;
    gr->lr1_rk = -1;
  }
  return gr->lr1;
}
