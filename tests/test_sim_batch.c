/* The batched decode kernels xkv_attention_batch launches
 * (xkv_decode_lr1_batch_<dt> over the compressed prompts, then
 * xkv_decode_exact_batch_<dt> over the exact tails, then one
 * xkv_decode_combine over every sequence's rows) through the sim target,
 * so their per-sequence tables (offsets Off, sizes Seq) are read as a GPU
 * reads them, and on the host; each sequence's output against plain C
 * attention over its reconstructed keys and values (xkv_dsim_reference).
 * The sequences of a batch are ragged: prompt lengths, ranks within the
 * bucket, tails (one empty) and split counts below the grid's (those
 * splits see no token). f16 and bf16, GQA 1, 4 and 8. */
#include "xkv_dsim.h"
#include "xkv_ref.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXB 3

static xk_dsl *kernels;

static void open_kernels(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/kernels.xk", &kernels, &d))
    fprintf(stderr, "test_sim_batch: kernels.xk not usable: %s\n", d.msg);
}

static void close_kernels(void) {
  xk_dsl_close(kernels);
  kernels = NULL;
}

typedef struct {
  int L, rk, rv, tail, ns_lr, ns_ex;
} bseq;

typedef struct {
  xkv_dsim_dtype dt;
  int d, hkv, g, RK, RV, HB, n;
  bseq s[MAXB];
} bcase;

static const bcase cases[] = {
    /* GQA 4, two KV heads per program; an empty tail */
    {XKV_DSIM_F16,
     64,
     2,
     4,
     64,
     64,
     2,
     3,
     {{90, 40, 56, 3, 3, 1}, {37, 64, 30, 0, 1, 1}, {70, 21, 64, 5, 2, 2}}},
    /* GQA 8, one KV head per program, bf16 */
    {XKV_DSIM_BF16,
     64,
     2,
     8,
     32,
     64,
     1,
     2,
     {{50, 32, 48, 2, 2, 1}, {81, 17, 64, 4, 3, 2}}},
    /* GQA 1, Hkv 3: the second program's second head is masked */
    {XKV_DSIM_F16,
     64,
     3,
     1,
     32,
     32,
     2,
     2,
     {{45, 30, 20, 1, 1, 1}, {60, 12, 32, 3, 2, 1}}},
};
#define NCASES ((int)(sizeof cases / sizeof *cases))

static const char *dt_name(xkv_dsim_dtype dt) {
  return dt == XKV_DSIM_F16 ? "f16" : "bf16";
}

static void build(const bcase *c, int host, const char *name, int lr,
                  xkv_dsim_kernel *k) {
  xk_constexpr over[5] = {{"D", c->d}, {"num_warps", 4}};
  int n = 2;
  if (lr) {
    over[n++] = (xk_constexpr){"RK", c->RK};
    over[n++] = (xk_constexpr){"RV", c->RV};
    over[n++] = (xk_constexpr){"HB", c->HB};
  }
  xk_diag d;
  int rc = host ? xkv_dsim_kernel_build_host(kernels, name, over, n, k, &d)
                : xkv_dsim_kernel_build(kernels, name, over, n, k, &d);
  ck_assert_msg(rc == 0, "%s: %s", name, d.msg);
}

/* One tensor of every sequence packed into one buffer, each sequence's
 * part 128-byte aligned like an allocation of its own; off[b] its start in
 * elements. */
typedef struct {
  char *base;
  int64_t off[MAXB];
} packed;

static void pack(packed *pk, xkv_dsim *p, int n, size_t esz,
                 void *(*part)(xkv_dsim *, size_t *)) {
  size_t total = 0, bytes[MAXB];
  for (int b = 0; b < n; b++) {
    part(&p[b], &bytes[b]);
    total += (bytes[b] + 127) / 128 * 128;
  }
  pk->base = aligned_alloc(128, total ? total : 128);
  ck_assert_ptr_nonnull(pk->base);
  for (int b = 0, at = 0; b < n; b++) {
    memcpy(pk->base + at, part(&p[b], &bytes[b]), bytes[b]);
    pk->off[b] = (int64_t)(at / esz);
    at += (int)((bytes[b] + 127) / 128 * 128);
  }
}

#define PART(field, count, elem)                                               \
  static void *part_##field(xkv_dsim *p, size_t *bytes) {                      \
    const xkv_dsim_shape *s = &p->s;                                           \
    *bytes = (size_t)(count) * (elem);                                         \
    return p->field;                                                           \
  }
PART(ak, s->L * s->rk, p->esz)
PART(bk, s->hkv * s->rk * s->d, p->esz)
PART(av, s->L * s->rv, p->esz)
PART(bv, s->hkv * s->rv * s->d, p->esz)
PART(q, s->hkv * s->g * s->d, sizeof(float))
PART(kx, s->tail * s->hkv * s->d, p->esz)
PART(vx, s->tail * s->hkv * s->d, p->esz)
#undef PART

static void run(const bcase *c, int host, int seed) {
  ck_assert_msg(kernels != NULL, "kernels.xk did not load");
  char lr_name[64], ex_name[64];
  snprintf(lr_name, sizeof lr_name, "xkv_decode_lr1_batch_%s", dt_name(c->dt));
  snprintf(ex_name, sizeof ex_name, "xkv_decode_exact_batch_%s",
           dt_name(c->dt));
  xkv_dsim_kernel lr, ex, cb;
  build(c, host, lr_name, 1, &lr);
  build(c, host, ex_name, 0, &ex);
  build(c, host, "xkv_decode_combine", 0, &cb);
  int32_t B = c->n, hkv = c->hkv, G = c->g, hq = hkv * G;
  int32_t nsg_lr = 0, nsg_ex = 0; /* the grids' splits: the largest */
  for (int b = 0; b < B; b++) {
    nsg_lr = c->s[b].ns_lr > nsg_lr ? c->s[b].ns_lr : nsg_lr;
    nsg_ex = c->s[b].ns_ex > nsg_ex ? c->s[b].ns_ex : nsg_ex;
  }
  int32_t ldo = nsg_lr + nsg_ex, s0_lr = 0, s0_ex = nsg_lr;
  xkv_dsim p[MAXB];
  xk_diag d;
  int longest = 0;
  for (int b = 0; b < B; b++) {
    const bseq *q = &c->s[b];
    xkv_dsim_shape s = {.dt = c->dt,
                        .hkv = hkv,
                        .g = G,
                        .d = c->d,
                        .L = q->L,
                        .rk = q->rk,
                        .rv = q->rv,
                        .tail = q->tail,
                        .ns_lr = q->ns_lr,
                        .ns_ex = q->ns_ex,
                        .ldo = ldo,
                        .theta = 10000.0,
                        .seed = 0xba7c0000u + (uint64_t)(seed * MAXB + b)};
    ck_assert_msg(xkv_dsim_init(&p[b], &s, &d) == 0, "%s", d.msg);
    longest = q->L > c->s[longest].L ? b : longest;
  }
  size_t esz = p[0].esz;
  packed ak, bk, av, bv, q, kx, vx;
  pack(&ak, p, B, esz, part_ak);
  pack(&bk, p, B, esz, part_bk);
  pack(&av, p, B, esz, part_av);
  pack(&bv, p, B, esz, part_bv);
  pack(&q, p, B, 4, part_q);
  pack(&kx, p, B, esz, part_kx);
  pack(&vx, p, B, esz, part_vx);
  /* the tables, as xkv_cache_batch.c's plan builds them */
  int64_t off_lr[MAXB * 5], off_ex[MAXB * 3];
  int32_t seq_lr[MAXB * 4], seq_ex[MAXB * 2];
  for (int b = 0; b < B; b++) {
    const bseq *s = &c->s[b];
    int64_t o5[5] = {ak.off[b], bk.off[b], av.off[b], bv.off[b], q.off[b]};
    int64_t o3[3] = {kx.off[b], vx.off[b], q.off[b]};
    memcpy(off_lr + 5 * b, o5, sizeof o5);
    memcpy(off_ex + 3 * b, o3, sizeof o3);
    int32_t i4[4] = {s->L, s->rk, s->rv, s->ns_lr}, i2[2] = {s->tail, s->ns_ex};
    memcpy(seq_lr + 4 * b, i4, sizeof i4);
    memcpy(seq_ex + 2 * b, i2, sizeof i2);
  }
  size_t cols = (size_t)B * hq * ldo;
  float *O = malloc(cols * c->d * sizeof(float));
  float *M = malloc(cols * sizeof(float)), *Ls = malloc(cols * sizeof(float));
  float *out = malloc((size_t)B * hq * c->d * sizeof(float));
  ck_assert(O && M && Ls && out);
  for (size_t i = 0; i < cols * c->d; i++) /* a column no one writes shows */
    O[i] = NAN;
  for (size_t i = 0; i < cols; i++)
    M[i] = Ls[i] = NAN;
  float *cs = p[longest].cos, *sn = p[longest].sin;
  int64_t *olr = off_lr, *oex = off_ex;
  int32_t *slr = seq_lr, *sex = seq_ex;
  void *a_lr[18] = {&ak.base, &bk.base, &av.base, &bv.base, &q.base, &cs,
                    &sn,      &O,       &M,       &Ls,      &hkv,    &G,
                    &ldo,     &s0_lr,   &olr,     &slr,     &B,      &nsg_lr};
  int64_t hb = xkv_dsim_const(&lr, "HB"), bg = xkv_dsim_const(&ex, "BLOCK_G");
  int32_t g_lr[3] = {nsg_lr, (int32_t)((hkv + hb - 1) / hb), B};
  ck_assert_msg(!xkv_dsim_launch(&lr, a_lr, g_lr, NULL, &d), "lr1: %s", d.msg);
  void *a_ex[14] = {&kx.base, &vx.base, &q.base, &O,   &M,   &Ls, &hkv,
                    &G,       &ldo,     &s0_ex,  &oex, &sex, &B,  &nsg_ex};
  int32_t g_ex[3] = {nsg_ex, hkv, B * (int32_t)((G + bg - 1) / bg)};
  ck_assert_msg(!xkv_dsim_launch(&ex, a_ex, g_ex, NULL, &d), "exact: %s",
                d.msg);
  int32_t rows = B * hq;
  void *a_cb[7] = {&O, &M, &Ls, &out, &rows, &ldo, &ldo};
  int32_t g_cb[3] = {rows, 1, 1};
  ck_assert_msg(!xkv_dsim_launch(&cb, a_cb, g_cb, NULL, &d), "combine: %s",
                d.msg);
  float *ref = malloc((size_t)hq * c->d * sizeof(float));
  ck_assert_ptr_nonnull(ref);
  for (int b = 0; b < B; b++) {
    xkv_dsim_reference(&p[b], ref);
    size_t n = (size_t)hq * c->d;
    const float *got = out + (size_t)b * n;
    double err = xkv_ref_rel_err(got, ref, n);
    double cosine = xkv_ref_cosine(got, ref, n);
    const bseq *s = &c->s[b];
    printf("%s batch %-4s Hkv=%d G=%d seq %d/%d: L=%-3d rk=%-2d/%d "
           "rv=%-2d/%d tail %d splits %d/%d + %d/%d: rel err %.2e cosine "
           "%.6f\n",
           host ? "host" : "sim ", dt_name(c->dt), hkv, G, b, B, s->L, s->rk,
           c->RK, s->rv, c->RV, s->tail, s->ns_lr, nsg_lr, s->ns_ex, nsg_ex,
           err, cosine);
    double tol = c->dt == XKV_DSIM_F16 ? 2e-3 : 1e-2;
    ck_assert_msg(err < tol, "sequence %d: rel err %g >= %g", b, err, tol);
    ck_assert_msg(cosine > 0.99, "sequence %d: cosine %f", b, cosine);
  }
  packed *all[] = {&ak, &bk, &av, &bv, &q, &kx, &vx};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++)
    free(all[i]->base);
  for (int b = 0; b < B; b++)
    xkv_dsim_free(&p[b]);
  free(O);
  free(M);
  free(Ls);
  free(out);
  free(ref);
  xkv_dsim_kernel_free(&lr);
  xkv_dsim_kernel_free(&ex);
  xkv_dsim_kernel_free(&cb);
}

START_TEST(test_sim) {
  run(&cases[_i], 0, _i);
}
END_TEST

START_TEST(test_host) {
  run(&cases[_i], 1, _i);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("sim_batch");
  TCase *k = tcase_create("decode");
  tcase_set_timeout(k, 300);
  tcase_add_unchecked_fixture(k, open_kernels, close_kernels);
  tcase_add_loop_test(k, test_host, 0, NCASES);
  tcase_add_loop_test(k, test_sim, 0, NCASES);
  suite_add_tcase(s, k);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
