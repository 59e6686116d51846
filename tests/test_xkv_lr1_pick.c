/* Which dense decode kernel xkv_attention runs for a group
 * (runtime/xkv_cache_lr1.c): the single-pass xkv_decode_lr1_* of the
 * smallest embedded rank bucket holding both ranks, or none (the
 * three-sweep xkv_decode_lr_*) for f32 factors, GQA groups wider than the
 * kernel's columns, ranks above every bucket and head dims without tables.
 * Attention through both is checked against the reference in
 * test_xkv_decode. */
#include "../runtime/xkv_cache_int.h"

#include "check_main.h"
#include <string.h>

typedef struct {
  int d, hq, hkv, rk, rv;
  xkv_dtype dt;
  int RK, RV; /* the bucket picked; 0: none */
} pcase;

static const pcase cases[] = {
    {64, 8, 2, 40, 56, XKV_F16, 128, 192},     /* GQA 4 */
    {64, 9, 3, 96, 160, XKV_BF16, 128, 192},   /* SmolLM2's shapes */
    {128, 32, 8, 384, 576, XKV_F16, 384, 576}, /* Llama-3.1-8B's */
    {128, 8, 2, 100, 200, XKV_F16, 384, 576},  /* rank_v past 192 */
    {128, 8, 8, 400, 577, XKV_F16, 0, 0},      /* above every bucket */
    {64, 16, 2, 40, 56, XKV_F16, 0, 0},        /* GQA 8: 16 columns */
    {64, 8, 2, 40, 56, XKV_F32, 0, 0},         /* f32 factors */
    {8, 8, 2, 4, 4, XKV_F16, 0, 0},            /* no head-dim-8 tables */
};

START_TEST(test_pick) {
  const pcase *t = &cases[_i];
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  xkv_cache_config f = {.n_layers = 1,
                        .n_heads = t->hq,
                        .n_kv_heads = t->hkv,
                        .head_dim = t->d,
                        .max_tokens = 16,
                        .group = 1,
                        .policy = XKV_RANK_FIXED,
                        .rank_k = t->rk,
                        .rank_v = t->rv,
                        .dtype = t->dt,
                        .rope_theta = 10000};
  xkv_cache *c;
  ck_assert_msg(xkv_cache_create(ctx, &f, &c) == XKV_OK, "%s",
                xkv_last_error(ctx));
  xkv_group *g = &c->groups[0];
  g->rank_k = t->rk;
  g->rank_v = t->rv;
  xkv_kernel *k = xkv_cache_lr1_find(c, g);
  ck_assert_int_eq(k != NULL, t->RK != 0);
  if (k) { /* the handle's variant is the bucket's */
    const rt_variant *v = k->v[0];
    int64_t rk = -1, rv = -1;
    for (int i = 0; i < v->nconsts; i++) {
      if (!strcmp(v->consts[i].name, "RK"))
        rk = v->consts[i].value;
      if (!strcmp(v->consts[i].name, "RV"))
        rv = v->consts[i].value;
    }
    ck_assert_int_eq(rk, t->RK);
    ck_assert_int_eq(rv, t->RV);
    ck_assert_ptr_eq(xkv_cache_lr1_find(c, g), k); /* looked up once */
  }
  xkv_cache_destroy(c);
  xkv_close(ctx);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("xkv_lr1_pick");
  TCase *k = tcase_create("pick");
  tcase_add_loop_test(k, test_pick, 0, (int)(sizeof cases / sizeof *cases));
  suite_add_tcase(s, k);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
