/* Layout index maps: ownership, slices, the default chooser. */
#include "layout.h"

#include "check_main.h"
#include <stdlib.h>
#include <string.h>

static int64_t numel_of(const int32_t *s, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++)
    n *= s[i];
  return n;
}

static int lin(const int *c, const int32_t *s, int rank) {
  int x = 0;
  for (int i = 0; i < rank; i++)
    x = x * s[i] + c[i];
  return x;
}

/* Every element owned canonically exactly once, every copy in range; the
 * number of (thread, reg) pairs equals threads * nregs. */
static void check_ownership(const xk_layout *l) {
  int64_t n = numel_of(l->shape, l->rank);
  int *own = calloc((size_t)n, sizeof *own);
  int nregs = xk_layout_nregs(l), nw = l->num_warps;
  char buf[256];
  for (int w = 0; w < nw; w++)
    for (int lane = 0; lane < 32; lane++)
      for (int r = 0; r < nregs; r++) {
        int c[XK_MAX_RANK];
        int canon = xk_layout_coords(l, lane, w, r, c);
        for (int t = 0; t < l->rank; t++)
          ck_assert_msg(c[t] >= 0 && c[t] < l->shape[t], "%s",
                        xk_layout_str(l, buf, sizeof buf));
        own[lin(c, l->shape, l->rank)] += canon;
      }
  for (int64_t i = 0; i < n; i++)
    ck_assert_msg(own[i] == 1, "%s: element %lld owned %d times",
                  xk_layout_str(l, buf, sizeof buf), (long long)i, own[i]);
  free(own);
}

static const int32_t shapes[][4] = {
    /* rank, dims */
    {1, 1},         {1, 4},         {1, 32},      {1, 128},      {1, 1024},
    {1, 4096},      {2, 1, 1},      {2, 1, 64},   {2, 64, 1},    {2, 4, 4},
    {2, 16, 16},    {2, 32, 64},    {2, 64, 64},  {2, 128, 32},  {2, 64, 128},
    {2, 128, 128},  {2, 2, 256},    {3, 2, 4, 8}, {3, 4, 64, 2}, {3, 8, 8, 8},
    {3, 1, 32, 64}, {3, 16, 16, 16}};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

START_TEST(test_default_owns_each_once) {
  for (int i = 0; i < NSHAPES; i++)
    for (int nw = 1; nw <= 8; nw *= 2) {
      int rank = shapes[i][0];
      xk_layout l = xk_layout_default(&shapes[i][1], rank, nw);
      xk_layout chk;
      ck_assert_int_eq(xk_layout_blocked(&chk, rank, l.shape, l.spt, l.tpw,
                                         l.wpc, l.order, nw),
                       0);
      check_ownership(&l);
      int64_t n = numel_of(l.shape, rank);
      /* no replication when there is enough work for every thread */
      ck_assert_int_eq(xk_layout_nregs(&l) * 32 * nw,
                       n >= 32 * nw ? n : xk_layout_nregs(&l) * 32 * nw);
      if (n >= 32 * nw) {
        for (int t = 0; t < rank; t++) {
          xk_layout_dim_info di;
          xk_layout_dim(&l, t, &di);
          ck_assert_int_eq(di.wrap, 0);
        }
      }
    }
}
END_TEST

START_TEST(test_default_vectorizes_fastest) {
  int32_t s[2] = {64, 64};
  xk_layout l = xk_layout_default(s, 2, 4);
  ck_assert_int_eq(l.spt[1], 4);
  ck_assert_int_eq(l.spt[0], 1);
  ck_assert_int_eq(l.order[0], 1);
  ck_assert_int_eq(xk_layout_nregs(&l), 32);
  /* consecutive registers are consecutive columns */
  int c0[2], c1[2];
  xk_layout_coords(&l, 5, 2, 0, c0);
  xk_layout_coords(&l, 5, 2, 1, c1);
  ck_assert_int_eq(c0[0], c1[0]);
  ck_assert_int_eq(c0[1] + 1, c1[1]);
  int32_t v[1] = {1024};
  xk_layout lv = xk_layout_default(v, 1, 4);
  ck_assert_int_eq(lv.spt[0], 4);
  ck_assert_int_eq(xk_layout_nregs(&lv), 8);
  /* 128 elements over 128 threads: one each */
  int32_t w[1] = {128};
  xk_layout lw = xk_layout_default(w, 1, 4);
  ck_assert_int_eq(xk_layout_nregs(&lw), 1);
}
END_TEST

START_TEST(test_explicit_blocked) {
  /* [8,8] with 2x16 lanes and 2 warps along dim 0: both dims wrap or
   * repeat; ownership must still be exact */
  int32_t s[2] = {8, 8};
  int spt[2] = {1, 2}, tpw[2] = {2, 16}, wpc[2] = {2, 1}, order[2] = {1, 0};
  xk_layout l;
  ck_assert_int_eq(xk_layout_blocked(&l, 2, s, spt, tpw, wpc, order, 2), 0);
  check_ownership(&l);
  int32_t s2[2] = {64, 16};
  int spt2[2] = {2, 1}, tpw2[2] = {8, 4}, wpc2[2] = {1, 4}, ord2[2] = {0, 1};
  ck_assert_int_eq(xk_layout_blocked(&l, 2, s2, spt2, tpw2, wpc2, ord2, 4), 0);
  check_ownership(&l);
  ck_assert_int_eq(xk_layout_nregs(&l), 64 * 16 / 128);
  int bad_tpw[2] = {2, 8};
  ck_assert_int_eq(xk_layout_blocked(&l, 2, s, spt, bad_tpw, wpc, order, 2),
                   -1);
}
END_TEST

/* Each slice element a thread holds is an element of its parent tile (with
 * the axis at any position) held by the same thread; ownership is exact. */
START_TEST(test_slice_consistent) {
  for (int i = 0; i < NSHAPES; i++)
    for (int nw = 1; nw <= 8; nw *= 2) {
      int rank = shapes[i][0];
      xk_layout p = xk_layout_default(&shapes[i][1], rank, nw);
      for (int axis = 0; axis < rank; axis++) {
        xk_layout s = xk_layout_slice(&p, axis);
        ck_assert_int_eq(s.rank, rank - 1);
        if (s.rank)
          check_ownership(&s);
        int canon_threads = 0;
        for (int w = 0; w < nw; w++)
          for (int lane = 0; lane < 32; lane++) {
            for (int r = 0; r < xk_layout_nregs(&s); r++) {
              int cs[XK_MAX_RANK], found = 0;
              int cn = xk_layout_coords(&s, lane, w, r, cs);
              if (s.rank == 0)
                canon_threads += cn;
              for (int q = 0; q < xk_layout_nregs(&p) && !found; q++) {
                int cp[XK_MAX_RANK], k = 0, eq = 1;
                xk_layout_coords(&p, lane, w, q, cp);
                for (int t = 0; t < rank; t++)
                  if (t != axis && cp[t] != cs[k++])
                    eq = 0;
                found = eq;
              }
              ck_assert(found);
            }
          }
        if (s.rank == 0)
          ck_assert_int_eq(canon_threads, 1);
        /* expanding the axis back restores the parent distribution */
        xk_layout e;
        ck_assert_int_eq(xk_layout_expand(&s, axis, &e), 0);
        int32_t sh[XK_MAX_RANK];
        memcpy(sh, p.shape, sizeof sh);
        xk_layout back = xk_layout_reshaped(&e, sh);
        ck_assert(xk_layout_eq(&back, &p));
      }
    }
}
END_TEST

START_TEST(test_reg_split_join) {
  int32_t s[3] = {4, 64, 2};
  xk_layout l = xk_layout_default(s, 3, 2);
  for (int r = 0; r < xk_layout_nregs(&l); r++) {
    int rd[3];
    xk_layout_reg_split(&l, r, rd);
    ck_assert_int_eq(xk_layout_reg_join(&l, rd), r);
  }
  /* the run-time formula (dim info) reproduces xk_layout_coords */
  for (int w = 0; w < 2; w++)
    for (int lane = 0; lane < 32; lane++)
      for (int r = 0; r < xk_layout_nregs(&l); r++) {
        int c[3];
        xk_layout_coords(&l, lane, w, r, c);
        for (int t = 0; t < 3; t++) {
          xk_layout_dim_info di;
          xk_layout_dim(&l, t, &di);
          int raw = (w / di.warp_stride % di.wpc) * di.spt * di.tpw +
                    (lane / di.lane_stride % di.tpw) * di.spt +
                    xk_layout_reg_off(&l, r, t);
          ck_assert_int_eq(di.wrap ? raw % di.shape : raw, c[t]);
        }
      }
}
END_TEST

/* The run-time canonical test the lowering emits (raw < shape on wrapped
 * dims, thread part 0 on dropped dims) matches xk_layout_coords. */
START_TEST(test_runtime_canonical) {
  for (int i = 0; i < NSHAPES; i++)
    for (int nw = 1; nw <= 8; nw *= 4) {
      int rank = shapes[i][0];
      xk_layout p = xk_layout_default(&shapes[i][1], rank, nw);
      for (int axis = -1; axis < rank; axis++) {
        xk_layout l = axis < 0 ? p : xk_layout_slice(&p, axis);
        for (int w = 0; w < nw; w++)
          for (int lane = 0; lane < 32; lane++)
            for (int r = 0; r < xk_layout_nregs(&l); r++) {
              int c[XK_MAX_RANK], canon = 1;
              for (int q = 0; q < l.prank; q++) {
                xk_layout_dim_info di;
                xk_layout_pdim(&l, q, &di);
                int part = (w / di.warp_stride % di.wpc) * di.spt * di.tpw +
                           (lane / di.lane_stride % di.tpw) * di.spt;
                if ((l.dropped & (1u << q)) && part)
                  canon = 0;
              }
              for (int t = 0; t < l.rank; t++) {
                xk_layout_dim_info di;
                xk_layout_dim(&l, t, &di);
                int raw = xk_layout_thread_pdim(&l, lane, w, di.pdim) +
                          xk_layout_reg_off(&l, r, t);
                if (di.wrap && raw >= di.shape)
                  canon = 0;
              }
              ck_assert_int_eq(canon, xk_layout_coords(&l, lane, w, r, c));
            }
      }
    }
}
END_TEST

/* ---- tensor-core layouts ---------------------------------------------- */

static const int32_t mma_shapes[][2] = {{16, 8},   {16, 16}, {32, 32},
                                        {64, 64},  {64, 32}, {32, 128},
                                        {128, 64}, {16, 64}, {128, 128}};
#define NMMA (int)(sizeof mma_shapes / sizeof mma_shapes[0])

/* The accumulator owns every element once, each warp holds whole m16n8
 * tiles (or one replicated 8-row half), and fragment element q of tile
 * (i, j) sits where the PTX ISA puts it: row g (+8 for q >= 2) of the A
 * rows, column 2t + q%2 of the B columns. */
START_TEST(test_mma_acc_layout) {
  for (int s = 0; s < NMMA; s++)
    for (int nw = 1; nw <= 8; nw *= 2) {
      xk_layout l;
      ck_assert_int_eq(xk_layout_mma(&l, mma_shapes[s], nw), 0);
      check_ownership(&l);
      xk_mma_tiles t = xk_layout_mma_tiles(&l);
      ck_assert_int_eq(t.mtiles * t.ntiles * 4 / (t.row_regs == 1 ? 2 : 1),
                       xk_layout_nregs(&l));
      for (int w = 0; w < nw; w++)
        for (int lane = 0; lane < 32; lane++)
          for (int i = 0; i < t.mtiles; i++)
            for (int j = 0; j < t.ntiles; j++)
              for (int q = 0; q < 4; q++) {
                int c[2], row, k, kb, col;
                xk_layout_coords(&l, lane, w, xk_mma_acc_reg(&l, i, j, q), c);
                xk_mma_a_coord(&l, lane, w, i, 0, (q >> 1) * 2, &row, &k);
                ck_assert_int_eq(c[0], row);
                int src = 4 * (2 * (lane % 4) + (q & 1)); /* holds col */
                xk_mma_b_coord(&l, src, w, j, 0, 0, &kb, &col);
                ck_assert_int_eq(c[1], col);
              }
    }
  xk_layout l;
  ck_assert_int_eq(xk_layout_mma(&l, (int32_t[]){8, 64}, 4), -1);
  ck_assert_int_eq(xk_layout_mma(&l, (int32_t[]){64, 4}, 4), -1);
}
END_TEST

/* ldmatrix.x4 delivers, in register q of lane L, elements (L/4, 2(L%4)+c)
 * of the 8x8 matrix whose rows lanes 8q..8q+7 address ((2(L%4)+c, L/4)
 * with .trans); that must be A fragment a_{2q+c} and B fragment b_{2(q%2)+c}
 * of n8 tile j + q/2. */
START_TEST(test_mma_ldmatrix_addresses) {
  for (int s = 0; s < NMMA; s++)
    for (int nw = 1; nw <= 8; nw *= 2) {
      xk_layout l;
      xk_layout_mma(&l, mma_shapes[s], nw);
      xk_mma_tiles t = xk_layout_mma_tiles(&l);
      for (int w = 0; w < nw; w++)
        for (int lane = 0; lane < 32; lane++)
          for (int q = 0; q < 4; q++)
            for (int c = 0; c < 2; c++) {
              int src = 8 * q + lane / 4, row, k, er, ek;
              xk_mma_ldsm_a(&l, src, w, 0, 1, &row, &k);
              xk_mma_a_coord(&l, lane, w, 0, 1, 2 * q + c, &er, &ek);
              ck_assert_int_eq(row, er);
              ck_assert_int_eq(k + 2 * (lane % 4) + c, ek);
              if (t.ntiles < 2 && q >= 2)
                continue; /* an x2 load */
              int bk, bc, ebk, ebc;
              xk_mma_ldsm_b(&l, 8 * q + 2 * (lane % 4) + c, w, 0, 0, &bk, &bc);
              xk_mma_b_coord(&l, lane, w, q / 2, 0, 2 * (q % 2) + c, &ebk,
                             &ebc);
              ck_assert_int_eq(bk, ebk);
              ck_assert_int_eq(bc + lane / 4, ebc);
            }
    }
}
END_TEST

/* Swizzling permutes 16-byte chunks within a row (a bijection that keeps
 * chunks whole), and any 8 consecutive rows read at one logical chunk
 * (an ldmatrix phase) land in 8 distinct 16-byte bank groups. */
START_TEST(test_swizzle) {
  static const int dims[][2] = {{16, 16},  {64, 32}, {32, 64},
                                {16, 128}, {64, 8},  {128, 256}};
  for (size_t s = 0; s < sizeof dims / sizeof *dims; s++) {
    xk_swizzle z;
    int rows = dims[s][0], cols = dims[s][1];
    ck_assert_int_eq(xk_swizzle_make(&z, rows, cols, 2), 0);
    char *seen = calloc((size_t)(rows * cols), 1);
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < cols; c++) {
        int o = xk_swizzle_offset(&z, r, c);
        ck_assert(o >= r * cols && o < (r + 1) * cols);
        ck_assert_int_eq(o % 8, c % 8);
        ck_assert(!seen[o]);
        seen[o] = 1;
      }
    free(seen);
    for (int r0 = 0; r0 + 8 <= rows; r0 += 8)
      for (int c = 0; c < cols; c += 8) {
        unsigned groups = 0;
        for (int r = r0; r < r0 + 8; r++)
          groups |= 1u << (xk_swizzle_offset(&z, r, c) * 2 / 16 % 8);
        ck_assert_uint_eq(groups, 0xffu);
      }
  }
  xk_swizzle z;
  ck_assert_int_eq(xk_swizzle_make(&z, 16, 4, 2), -1);
  ck_assert_int_eq(xk_swizzle_make(&z, 16, 16, 3), -1);
}
END_TEST

int main(void) {
  Suite *s = suite_create("layout");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, test_default_owns_each_once);
  tcase_add_test(tc, test_default_vectorizes_fastest);
  tcase_add_test(tc, test_explicit_blocked);
  tcase_add_test(tc, test_slice_consistent);
  tcase_add_test(tc, test_reg_split_join);
  tcase_add_test(tc, test_runtime_canonical);
  tcase_add_test(tc, test_mma_acc_layout);
  tcase_add_test(tc, test_mma_ldmatrix_addresses);
  tcase_add_test(tc, test_swizzle);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
