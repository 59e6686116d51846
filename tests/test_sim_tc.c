/* The sim target's tensor-core instructions against the PTX ISA and plain
 * C: f16 conversions, mma.m16n8k16 fragments (D = A B + C for random
 * f16/bf16 matrices), ldmatrix's distribution, and a whole warp-tiled GEMM
 * run on the emulator through the mma/ldmatrix layouts of layout.c in
 * swizzled shared memory (no bank conflicts). */
#include "layout.h"
#include "sim_tc.h"

#include "check_main.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng = 12345;
static float frand(void) { /* [-1, 1) */
  rng = rng * 1664525u + 1013904223u;
  return (float)((rng >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static uint16_t to_bits(int dt, float f) {
  if (dt == XK_F16)
    return xk_tc_f32_to_f16(f);
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  return (uint16_t)(x >> 16); /* truncation: any bf16 value will do */
}

static float from_bits(int dt, uint16_t h) {
  if (dt == XK_F16)
    return xk_tc_f16_to_f32(h);
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, sizeof f);
  return f;
}

START_TEST(test_f16_conversions) {
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7c00u) == 0x7c00u && (h & 1023u))
      continue; /* NaN payloads need not survive */
    ck_assert_uint_eq(xk_tc_f32_to_f16(xk_tc_f16_to_f32((uint16_t)h)), h);
  }
  ck_assert_float_eq(xk_tc_f16_to_f32(0x3c00), 1.0f);
  ck_assert_float_eq(xk_tc_f16_to_f32(0x0001), ldexpf(1.0f, -24));
  /* ties go to even; past the largest finite value is inf */
  ck_assert_uint_eq(xk_tc_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);
  ck_assert_uint_eq(xk_tc_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
  ck_assert_uint_eq(xk_tc_f32_to_f16(65520.0f), 0x7c00);
  ck_assert_uint_eq(xk_tc_f32_to_f16(-65504.0f), 0xfbff);
  /* nearest: no representable value lies closer */
  for (int i = 0; i < 20000; i++) {
    float x = frand() * ldexpf(1.0f, (int)(rng % 40) - 26);
    uint16_t h = xk_tc_f32_to_f16(x);
    float y = xk_tc_f16_to_f32(h), err = fabsf(y - x);
    ck_assert(fabsf(xk_tc_f16_to_f32((uint16_t)(h + 1)) - x) >= err);
    if (h & 0x7fff)
      ck_assert(fabsf(xk_tc_f16_to_f32((uint16_t)(h - 1)) - x) >= err);
  }
}
END_TEST

/* The ISA's m16n8k16 fragment layout, written out independently. */
static void mma_case(int dt) {
  uint16_t A[16][16], B[16][8];
  float C[16][8];
  for (int r = 0; r < 16; r++)
    for (int k = 0; k < 16; k++)
      A[r][k] = to_bits(dt, frand());
  for (int k = 0; k < 16; k++)
    for (int n = 0; n < 8; n++)
      B[k][n] = to_bits(dt, frand());
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 8; n++)
      C[r][n] = frand();
  uint32_t a[32][4], b[32][2];
  float c[32][4];
  for (int lane = 0; lane < 32; lane++) {
    int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
      int row = g + 8 * (i & 1), k = 2 * t + 8 * (i >> 1);
      a[lane][i] = A[row][k] | (uint32_t)A[row][k + 1] << 16;
    }
    for (int i = 0; i < 2; i++)
      b[lane][i] = B[2 * t + 8 * i][g] | (uint32_t)B[2 * t + 8 * i + 1][g]
                                             << 16;
    for (int q = 0; q < 4; q++)
      c[lane][q] = C[g + 8 * (q >> 1)][2 * t + (q & 1)];
  }
  for (int lane = 0; lane < 32; lane++) {
    float d[4];
    xk_tc_mma_lane(dt, (const uint32_t(*)[4])a, (const uint32_t(*)[2])b,
                   (const float(*)[4])c, lane, d);
    int g = lane / 4, t = lane % 4;
    for (int q = 0; q < 4; q++) {
      int row = g + 8 * (q >> 1), col = 2 * t + (q & 1);
      double ref = C[row][col];
      for (int k = 0; k < 16; k++)
        ref += (double)from_bits(dt, A[row][k]) * from_bits(dt, B[k][col]);
      ck_assert_msg(fabs(d[q] - ref) <= 1e-6 * (1 + fabs(ref)),
                    "lane %d d%d: %g vs %g", lane, q, d[q], ref);
    }
  }
}

START_TEST(test_mma_fragments) {
  for (int i = 0; i < 8; i++) {
    mma_case(XK_F16);
    mma_case(XK_BF16);
  }
}
END_TEST

START_TEST(test_ldmatrix_distribution) {
  uint16_t mat[4][8][8];
  const uint16_t *rows[32];
  for (int q = 0; q < 4; q++)
    for (int r = 0; r < 8; r++) {
      for (int c = 0; c < 8; c++)
        mat[q][r][c] = (uint16_t)(q * 64 + r * 8 + c);
      rows[8 * q + r] = mat[q][r];
    }
  for (int n = 1; n <= 4; n *= 2)
    for (int trans = 0; trans < 2; trans++)
      for (int lane = 0; lane < 32; lane++) {
        uint32_t out[4];
        xk_tc_ldmatrix_lane(rows, n, trans, lane, out);
        for (int q = 0; q < n; q++)
          for (int c = 0; c < 2; c++) {
            /* lane holds (lane/4, 2*(lane%4)+c), transposed: swapped */
            int r = lane / 4, col = 2 * (lane % 4) + c;
            uint16_t want = trans ? mat[q][col][r] : mat[q][r][col];
            ck_assert_uint_eq((out[q] >> (16 * c)) & 0xffffu, want);
          }
      }
}
END_TEST

/* ---- a warp-tiled GEMM on the emulator --------------------------------- */

typedef struct {
  int M, N, K, nw, dt;
  const uint16_t *A, *B; /* [M,K], [K,N] */
  const float *C;        /* [M,N] */
  float *D;
  xk_layout lc;
  xk_swizzle za, zb;
} gemm_case;

static void gemm_thread(void **args) {
  gemm_case *g = args[0];
  int tid = xk_sim_tid(), lane = tid & 31, warp = tid >> 5;
  int threads = 32 * g->nw;
  uint16_t *sa = xk_sim_smem(), *sb = sa + g->M * g->K;
  for (int e = tid; e < g->M * g->K; e += threads)
    sa[xk_swizzle_offset(&g->za, e / g->K, e % g->K)] = g->A[e];
  for (int e = tid; e < g->K * g->N; e += threads)
    sb[xk_swizzle_offset(&g->zb, e / g->N, e % g->N)] = g->B[e];
  xk_sim_barrier();
  const xk_layout *l = &g->lc;
  int nregs = xk_layout_nregs(l);
  float acc[256];
  for (int r = 0; r < nregs; r++) {
    int c[2];
    xk_layout_coords(l, lane, warp, r, c);
    acc[r] = g->C[c[0] * g->N + c[1]];
  }
  xk_mma_tiles t = xk_layout_mma_tiles(l);
  for (int kk = 0; kk < g->K / 16; kk++) {
    uint32_t fa[8][4], fb[16][2];
    for (int i = 0; i < t.mtiles; i++) {
      int row, k;
      xk_mma_ldsm_a(l, lane, warp, i, kk, &row, &k);
      xk_sim_ldmatrix(sa + xk_swizzle_offset(&g->za, row, k), 4, 0, 0, fa[i]);
    }
    for (int j = 0; j < t.ntiles; j += 2) {
      int k, col;
      xk_mma_ldsm_b(l, lane, warp, j, kk, &k, &col);
      xk_sim_ldmatrix(sb + xk_swizzle_offset(&g->zb, k, col),
                      j + 1 < t.ntiles ? 4 : 2, 1, 1, fb[j]);
    }
    for (int i = 0; i < t.mtiles; i++)
      for (int j = 0; j < t.ntiles; j++) {
        float c[4], d[4];
        for (int q = 0; q < 4; q++)
          c[q] = acc[xk_mma_acc_reg(l, i, j, q)];
        (g->dt == XK_F16 ? xk_sim_mma_m16n8k16_f16
                         : xk_sim_mma_m16n8k16_bf16)(fa[i], fb[j], c, d);
        for (int q = 0; q < (t.row_regs > 1 ? 4 : 2); q++)
          acc[xk_mma_acc_reg(l, i, j, q)] = d[q];
      }
  }
  for (int r = 0; r < nregs; r++) {
    int c[2];
    if (xk_layout_coords(l, lane, warp, r, c))
      g->D[c[0] * g->N + c[1]] = acc[r];
  }
}

static void run_gemm(int M, int N, int K, int nw, int dt) {
  gemm_case g = {M, N, K, nw, dt, NULL, NULL, NULL, NULL, {0}, {0}, {0}};
  uint16_t *A = malloc(sizeof *A * (size_t)(M * K));
  uint16_t *B = malloc(sizeof *B * (size_t)(K * N));
  float *C = malloc(sizeof *C * (size_t)(M * N));
  float *D = calloc((size_t)(M * N), sizeof *D);
  for (int i = 0; i < M * K; i++)
    A[i] = to_bits(dt, frand());
  for (int i = 0; i < K * N; i++)
    B[i] = to_bits(dt, frand());
  for (int i = 0; i < M * N; i++)
    C[i] = frand();
  g.A = A;
  g.B = B;
  g.C = C;
  g.D = D;
  ck_assert_int_eq(xk_layout_mma(&g.lc, (int32_t[]){M, N}, nw), 0);
  ck_assert_int_eq(xk_swizzle_make(&g.za, M, K, 2), 0);
  ck_assert_int_eq(xk_swizzle_make(&g.zb, K, N, 2), 0);
  void *args[1] = {&g};
  xk_sim_counters cnt;
  xk_diag d = {{0}};
  int rc = xk_sim_launch(gemm_thread, args, (int32_t[]){1, 1, 1}, 32 * nw,
                         2 * (M * K + K * N), &cnt, &d);
  ck_assert_msg(rc == 0, "%s", d.msg);
  for (int m = 0; m < M; m++)
    for (int n = 0; n < N; n++) {
      double ref = C[m * N + n];
      for (int k = 0; k < K; k++)
        ref +=
            (double)from_bits(dt, A[m * K + k]) * from_bits(dt, B[k * N + n]);
      ck_assert_msg(fabs(D[m * N + n] - ref) <= 1e-5 * (1 + fabs(ref)),
                    "%dx%dx%d w%d: D[%d,%d] = %g, want %g", M, N, K, nw, m, n,
                    D[m * N + n], ref);
    }
  xk_mma_tiles t = xk_layout_mma_tiles(&g.lc);
  ck_assert_int_eq(cnt.inst[XK_SIM_MMA],
                   (int64_t)nw * t.mtiles * t.ntiles * (K / 16));
  ck_assert_msg(cnt.smem_conflicts == 0, "%dx%dx%d w%d: %lld bank conflicts", M,
                N, K, nw, (long long)cnt.smem_conflicts);
  free(A);
  free(B);
  free(C);
  free(D);
}

START_TEST(test_warp_gemm) {
  static const int cases[][4] = {
      {64, 64, 32, 4},  {32, 32, 32, 4}, {16, 16, 16, 4}, {32, 128, 64, 8},
      {128, 64, 16, 8}, {16, 8, 64, 1},  {64, 16, 32, 2}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    run_gemm(cases[i][0], cases[i][1], cases[i][2], cases[i][3], XK_F16);
    run_gemm(cases[i][0], cases[i][1], cases[i][2], cases[i][3], XK_BF16);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("sim_tc");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_f16_conversions);
  tcase_add_test(tc, test_mma_fragments);
  tcase_add_test(tc, test_ldmatrix_distribution);
  tcase_add_test(tc, test_warp_gemm);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
