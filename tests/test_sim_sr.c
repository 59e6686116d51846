/* Selective reconstruction's device selection (kernel xkv_sr_select)
 * through the sim target, so its barriers and the exchanges between its
 * threads run as on a GPU: over several steps of landmark probabilities
 * (random, the same again, perturbed, with ties) the slot tables, counts,
 * totals and rebuild lists equal a plain C model of the rules the runtime's
 * host path follows (runtime/xkv_cache_sr.c): keys summed in f32 over the
 * GQA group, the nsel largest with ties to the lower chunk (here through
 * qsort, not a heap or a bit search), outliers never, misses in chunk order
 * into the free slots in slot order. Shapes cover several blocks of chunks
 * and slots and counts that are not multiples of the block. */
#include "xkv_dsim.h"
#include "xkv_ref.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_dsl *kernels;

static void open_kernels(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/kernels.xk", &kernels, &d))
    fprintf(stderr, "test_sim_sr: kernels.xk not usable: %s\n", d.msg);
}

static void close_kernels(void) {
  xk_dsl_close(kernels);
  kernels = NULL;
}

typedef struct {
  int hkv, g, nsc, nsel, nout, block, warps;
} scase;

static const scase cases[] = {
    {2, 4, 700, 96, 7, 256, 4},  /* 3 blocks of chunks, 1 of slots */
    {1, 8, 300, 260, 3, 128, 2}, /* slots past one block */
    {4, 1, 64, 16, 1, 0, 0},     /* one partial block, the defaults */
};

/* the tables of one head-set: the state the kernel carries across steps */
typedef struct {
  int *cs, *sc, *cnt, *list;
  int64_t *tot;
} tables;

typedef struct {
  double key;
  int ch;
} ranked;

static int by_key(const void *a, const void *b) {
  const ranked *x = a, *y = b; /* larger key first, then lower chunk */
  if (x->key != y->key)
    return x->key < y->key ? 1 : -1;
  return (x->ch > y->ch) - (x->ch < y->ch);
}

/* One step of the rules on t for probabilities p [hkv * g, nsc]. */
static void model_step(const scase *s, const float *p, tables *t) {
  ranked *r = malloc((size_t)s->nsc * sizeof *r);
  char *want = malloc((size_t)s->nsc);
  for (int h = 0; h < s->hkv; h++) {
    int *cs = t->cs + (size_t)h * s->nsc, *sc = t->sc + (size_t)h * s->nsel;
    for (int ch = 0; ch < s->nsc; ch++) {
      float k = 0;
      for (int g = 0; g < s->g; g++)
        k += p[(size_t)(h * s->g + g) * s->nsc + ch];
      r[ch] = (ranked){cs[ch] == -2 ? -1.0 : k, ch};
    }
    qsort(r, (size_t)s->nsc, sizeof *r, by_key);
    for (int ch = 0; ch < s->nsc; ch++)
      want[ch] = 0;
    for (int i = 0; i < s->nsel; i++)
      want[r[i].ch] = 1;
    int hits = 0, miss = 0, next = 0;
    for (int ch = 0; ch < s->nsc; ch++) {
      if (!want[ch])
        continue;
      if (cs[ch] >= 0) {
        hits++;
        continue;
      }
      while (sc[next] >= 0 && want[sc[next]])
        next++;
      if (sc[next] >= 0)
        cs[sc[next]] = -1;
      sc[next] = ch;
      cs[ch] = next;
      int *e = t->list + ((size_t)h * s->nsel + miss++) * 3;
      e[0] = h;
      e[1] = ch;
      e[2] = next;
    }
    t->cnt[h] = miss;
    t->cnt[s->hkv + h] = hits;
    t->tot[2 * h] += hits;
    t->tot[2 * h + 1] += miss;
  }
  free(r);
  free(want);
}

static void tables_init(const scase *s, tables *t, const int *outliers) {
  size_t hk = (size_t)s->hkv;
  t->cs = malloc(hk * s->nsc * sizeof *t->cs);
  t->sc = malloc(hk * s->nsel * sizeof *t->sc);
  t->cnt = calloc(2 * hk, sizeof *t->cnt);
  t->list = calloc(hk * s->nsel * 3, sizeof *t->list);
  t->tot = calloc(2 * hk, sizeof *t->tot);
  for (size_t i = 0; i < hk * s->nsc; i++)
    t->cs[i] = -1;
  for (size_t i = 0; i < hk * s->nsel; i++)
    t->sc[i] = -1;
  for (size_t h = 0; h < hk; h++)
    for (int o = 0; o < s->nout; o++)
      t->cs[h * s->nsc + outliers[h * s->nout + o]] = -2;
}

static void tables_free(tables *t) {
  free(t->cs);
  free(t->sc);
  free(t->cnt);
  free(t->list);
  free(t->tot);
}

/* probabilities for step `step`: random, the same, perturbed, then all
 * equal for head 0's group and in pairs elsewhere (ties) */
static void probs(const scase *s, int step, float *p, uint64_t *rng) {
  size_t n = (size_t)s->hkv * s->g * s->nsc;
  for (size_t i = 0; i < n; i++) {
    float u = (float)(0.5 + 0.1 * xkv_ref_gauss(rng));
    if (step == 0 || step == 4)
      p[i] = u * u / s->nsc;
    else if (step == 2)
      p[i] *= 1.0f + 0.3f * (float)xkv_ref_gauss(rng);
    else if (step == 3)
      p[i] = i < (size_t)s->g * s->nsc ? 1.0f / s->nsc : p[i - i % 2];
    p[i] = p[i] < 0 ? -p[i] : p[i];
  }
}

START_TEST(test_select) {
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  const scase *s = &cases[_i];
  xk_constexpr over[2] = {{"BLOCK", s->block}, {"num_warps", s->warps}};
  xkv_dsim_kernel k;
  xk_diag d;
  ck_assert_msg(xkv_dsim_kernel_build(kernels, "xkv_sr_select", over,
                                      s->block ? 2 : 0, &k, &d) == 0,
                "%s", d.msg);
  size_t hk = (size_t)s->hkv;
  int *outliers = malloc(hk * s->nout * sizeof *outliers);
  for (size_t i = 0; i < hk * s->nout; i++) /* distinct per head */
    outliers[i] = (int)((i % s->nout) * 37 + 5 + i / s->nout) % s->nsc;
  tables model, dev;
  tables_init(s, &model, outliers);
  tables_init(s, &dev, outliers);
  float *p = calloc(hk * s->g * s->nsc, sizeof *p);
  int *key = malloc(hk * s->nsc * sizeof *key);
  int *fre = malloc(hk * s->nsel * sizeof *fre);
  int *hist = malloc(hk * 256 * sizeof *hist);
  int32_t nsc = s->nsc, nsel = s->nsel, G = s->g, H = s->hkv;
  int32_t grid[3] = {H, 1, 1};
  uint64_t rng = 3;
  for (int step = 0; step < 5; step++) {
    probs(s, step, p, &rng);
    model_step(s, p, &model);
    void *args[14] = {&p,   &key,      &key,     &dev.cs,  &dev.sc,
                      &fre, &dev.list, &dev.cnt, &dev.tot, &hist,
                      &nsc, &nsel,     &G,       &H};
    ck_assert_msg(xk_sim_launch(k.fn, args, grid, k.info.threads,
                                k.info.shared_bytes, NULL, &d) == 0,
                  "%s", d.msg);
    printf("sim SR select Hkv=%d G=%d nsc=%d nsel=%d step %d: %d misses, "
           "%d hits (head 0)\n",
           s->hkv, s->g, s->nsc, s->nsel, step, model.cnt[0],
           model.cnt[s->hkv]);
    ck_assert_int_eq(memcmp(model.cs, dev.cs, hk * s->nsc * sizeof(int)), 0);
    ck_assert_int_eq(memcmp(model.sc, dev.sc, hk * s->nsel * sizeof(int)), 0);
    ck_assert_int_eq(memcmp(model.cnt, dev.cnt, 2 * hk * sizeof(int)), 0);
    ck_assert_int_eq(memcmp(model.tot, dev.tot, 2 * hk * sizeof(int64_t)), 0);
    for (size_t h = 0; h < hk; h++)
      ck_assert_int_eq(memcmp(model.list + h * s->nsel * 3,
                              dev.list + h * s->nsel * 3,
                              (size_t)model.cnt[h] * 3 * sizeof(int)),
                       0);
    if (step == 1)
      ck_assert_int_eq(model.cnt[0], 0);
    if (step == 2)
      ck_assert(model.cnt[0] > 0 && model.cnt[s->hkv] > 0);
  }
  free(p);
  free(key);
  free(fre);
  free(hist);
  free(outliers);
  tables_free(&model);
  tables_free(&dev);
  xkv_dsim_kernel_free(&k);
}
END_TEST

static Suite *suite(void) {
  Suite *su = suite_create("sim_sr");
  TCase *k = tcase_create("select");
  tcase_set_timeout(k, 300);
  tcase_add_unchecked_fixture(k, open_kernels, close_kernels);
  tcase_add_loop_test(k, test_select, 0, (int)(sizeof cases / sizeof *cases));
  suite_add_tcase(su, k);
  return su;
}

int main(void) {
  return xk_check_run(suite());
}
