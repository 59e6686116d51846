/* Blocked and slice layouts: the index maps every GPU-style lowering uses. */
#include "layout.h"

#include <stdio.h>
#include <string.h>

static int is_pow2(int x) {
  return x > 0 && (x & (x - 1)) == 0;
}

/* Parent dim of tile dim `t`: the kept parent dims in increasing order. */
static int pdim_of(const xk_layout *l, int t) {
  for (int p = 0, k = 0; p < l->prank; p++) {
    if (l->dropped & (1u << p))
      continue;
    if (k++ == t)
      return p;
  }
  return -1;
}

static int tdim_of(const xk_layout *l, int p) {
  if (l->dropped & (1u << p))
    return -1;
  int k = 0;
  for (int q = 0; q < p; q++)
    k += !(l->dropped & (1u << q));
  return k;
}

static int coverage(const xk_layout *l, int p) {
  return l->spt[p] * l->tpw[p] * l->wpc[p];
}

/* Strides of the lane (or warp) decomposition along `order`. */
static int lane_stride(const xk_layout *l, int p) {
  int s = 1;
  for (int i = 0; i < l->prank && l->order[i] != p; i++)
    s *= l->tpw[l->order[i]];
  return s;
}

static int warp_stride(const xk_layout *l, int p) {
  int s = 1;
  for (int i = 0; i < l->prank && l->order[i] != p; i++)
    s *= l->wpc[l->order[i]];
  return s;
}

static int dim_nregs(const xk_layout *l, int t) {
  int p = pdim_of(l, t), c = coverage(l, p);
  int reps = l->shape[t] > c ? l->shape[t] / c : 1;
  return l->spt[p] * reps;
}

int xk_layout_blocked(xk_layout *l, int rank, const int32_t *shape,
                      const int *spt, const int *tpw, const int *wpc,
                      const int *order, int num_warps) {
  if (rank < 1 || rank > XK_MAX_RANK || !is_pow2(num_warps))
    return -1;
  memset(l, 0, sizeof *l);
  l->rank = l->prank = rank;
  l->num_warps = num_warps;
  int lanes = 1, warps = 1;
  unsigned seen = 0;
  for (int d = 0; d < rank; d++) {
    if (!is_pow2(shape[d]) || !is_pow2(spt[d]) || !is_pow2(tpw[d]) ||
        !is_pow2(wpc[d]) || order[d] < 0 || order[d] >= rank)
      return -1;
    l->shape[d] = shape[d];
    l->spt[d] = spt[d];
    l->tpw[d] = tpw[d];
    l->wpc[d] = wpc[d];
    l->order[d] = order[d];
    lanes *= tpw[d];
    warps *= wpc[d];
    seen |= 1u << order[d];
  }
  if (lanes != 32 || warps != num_warps || seen != (1u << rank) - 1)
    return -1;
  return 0;
}

xk_layout xk_layout_default(const int32_t *shape, int rank, int num_warps) {
  return xk_layout_vec(shape, rank, num_warps, rank - 1, 4);
}

xk_layout xk_layout_vec(const int32_t *shape, int rank, int num_warps, int fast,
                        int vec) {
  xk_layout l;
  memset(&l, 0, sizeof l);
  if (rank == 0) {
    /* A rank-1 parent with its only dim dropped: every thread holds the
     * value, lane 0 of warp 0 canonically. */
    l.prank = 1;
    l.spt[0] = 1;
    l.tpw[0] = 32;
    l.wpc[0] = num_warps;
    l.dropped = 1;
    l.num_warps = num_warps;
    return l;
  }
  l.rank = l.prank = rank;
  l.num_warps = num_warps;
  int64_t numel = 1;
  /* `fast` first, then the others from the last dim down */
  l.order[0] = fast;
  for (int d = rank - 1, i = 1; d >= 0; d--)
    if (d != fast)
      l.order[i++] = d;
  for (int d = 0; d < rank; d++) {
    l.shape[d] = shape[d];
    l.spt[d] = l.tpw[d] = l.wpc[d] = 1;
    numel *= shape[d];
  }
  int64_t threads = 32 * (int64_t)num_warps;
  int d0 = l.order[0];
  int v = vec;
  while (v > 1 && (v > shape[d0] || numel / v < threads))
    v /= 2;
  l.spt[d0] = v;
  int rem = 32;
  for (int i = 0; i < rank; i++) {
    int d = l.order[i], cap = shape[d] / l.spt[d];
    int t = rem < cap ? rem : cap;
    l.tpw[d] = t;
    rem /= t;
  }
  l.tpw[d0] *= rem; /* too few elements: lanes replicate the fastest dim */
  rem = num_warps;
  for (int i = rank - 1; i >= 0; i--) {
    int d = l.order[i], cap = shape[d] / (l.spt[d] * l.tpw[d]);
    if (cap < 1)
      cap = 1;
    int w = rem < cap ? rem : cap;
    l.wpc[d] = w;
    rem /= w;
  }
  l.wpc[l.order[rank - 1]] *= rem;
  return l;
}

xk_layout xk_layout_slice(const xk_layout *l, int axis) {
  xk_layout s = *l;
  int p = pdim_of(l, axis);
  s.dropped |= 1u << p;
  for (int t = axis; t + 1 < l->rank; t++)
    s.shape[t] = l->shape[t + 1];
  s.rank = l->rank - 1;
  s.shape[s.rank] = 0;
  return s;
}

int xk_layout_expand(const xk_layout *l, int axis, xk_layout *out) {
  for (int p = 0; p < l->prank; p++) {
    if (!(l->dropped & (1u << p)))
      continue;
    int below = 0;
    for (int q = 0; q < p; q++)
      below += !(l->dropped & (1u << q));
    if (below != axis)
      continue;
    *out = *l;
    out->dropped &= ~(1u << p);
    for (int t = l->rank; t > axis; t--)
      out->shape[t] = l->shape[t - 1];
    out->shape[axis] = 1;
    out->rank = l->rank + 1;
    return 0;
  }
  return -1;
}

xk_layout xk_layout_reshaped(const xk_layout *l, const int32_t *shape) {
  xk_layout r = *l;
  for (int t = 0; t < l->rank; t++)
    r.shape[t] = shape[t];
  return r;
}

int xk_layout_eq(const xk_layout *a, const xk_layout *b) {
  if (a->rank != b->rank || a->prank != b->prank || a->dropped != b->dropped ||
      a->num_warps != b->num_warps)
    return 0;
  for (int t = 0; t < a->rank; t++)
    if (a->shape[t] != b->shape[t])
      return 0;
  for (int p = 0; p < a->prank; p++)
    if (a->spt[p] != b->spt[p] || a->tpw[p] != b->tpw[p] ||
        a->wpc[p] != b->wpc[p] || a->order[p] != b->order[p])
      return 0;
  return 1;
}

int xk_layout_nregs(const xk_layout *l) {
  int n = 1;
  for (int t = 0; t < l->rank; t++)
    n *= dim_nregs(l, t);
  return n;
}

int xk_layout_threads(const xk_layout *l) {
  return 32 * l->num_warps;
}

void xk_layout_pdim(const xk_layout *l, int p, xk_layout_dim_info *o) {
  memset(o, 0, sizeof *o);
  o->pdim = p;
  o->spt = l->spt[p];
  o->tpw = l->tpw[p];
  o->wpc = l->wpc[p];
  o->lane_stride = lane_stride(l, p);
  o->warp_stride = warp_stride(l, p);
}

void xk_layout_dim(const xk_layout *l, int dim, xk_layout_dim_info *o) {
  int p = pdim_of(l, dim);
  xk_layout_pdim(l, p, o);
  o->nregs = dim_nregs(l, dim);
  o->wrap = coverage(l, p) > l->shape[dim];
  o->shape = l->shape[dim];
}

/* Registers are numbered along `order` (kept dims only), fastest first. */
void xk_layout_reg_split(const xk_layout *l, int reg, int *rd) {
  for (int i = 0; i < l->prank; i++) {
    int t = tdim_of(l, l->order[i]);
    if (t < 0)
      continue;
    int n = dim_nregs(l, t);
    rd[t] = reg % n;
    reg /= n;
  }
}

int xk_layout_reg_join(const xk_layout *l, const int *rd) {
  int reg = 0, stride = 1;
  for (int i = 0; i < l->prank; i++) {
    int t = tdim_of(l, l->order[i]);
    if (t < 0)
      continue;
    reg += rd[t] * stride;
    stride *= dim_nregs(l, t);
  }
  return reg;
}

int xk_layout_reg_off(const xk_layout *l, int reg, int dim) {
  int rd[XK_MAX_RANK];
  xk_layout_reg_split(l, reg, rd);
  int p = pdim_of(l, dim);
  return rd[dim] / l->spt[p] * coverage(l, p) + rd[dim] % l->spt[p];
}

int xk_layout_thread_pdim(const xk_layout *l, int lane, int warp, int p) {
  int ld = lane / lane_stride(l, p) % l->tpw[p];
  int wd = warp / warp_stride(l, p) % l->wpc[p];
  return wd * l->spt[p] * l->tpw[p] + ld * l->spt[p];
}

int xk_layout_coords(const xk_layout *l, int lane, int warp, int reg,
                     int *coords) {
  int canon = 1;
  for (int p = 0; p < l->prank; p++)
    if ((l->dropped & (1u << p)) && xk_layout_thread_pdim(l, lane, warp, p))
      canon = 0;
  for (int t = 0; t < l->rank; t++) {
    int p = pdim_of(l, t);
    int raw =
        xk_layout_thread_pdim(l, lane, warp, p) + xk_layout_reg_off(l, reg, t);
    if (raw >= l->shape[t])
      canon = 0;
    coords[t] = raw & (l->shape[t] - 1);
  }
  return canon;
}

static int put_list(char *buf, size_t n, int k, const char *name, const int *v,
                    int cnt) {
  for (int i = 0; i < cnt && k >= 0 && (size_t)k < n; i++)
    k += snprintf(buf + k, n - (size_t)k, "%s%d", i ? "," : name, v[i]);
  if (k >= 0 && (size_t)k < n)
    k += snprintf(buf + k, n - (size_t)k, "]");
  return k;
}

char *xk_layout_str(const xk_layout *l, char *buf, size_t n) {
  int k = snprintf(buf, n, "%s{", l->dropped ? "slice" : "blocked");
  k = put_list(buf, n, k, "spt=[", l->spt, l->prank);
  k = put_list(buf, n, k, " tpw=[", l->tpw, l->prank);
  k = put_list(buf, n, k, " wpc=[", l->wpc, l->prank);
  k = put_list(buf, n, k, " order=[", l->order, l->prank);
  if (k >= 0 && (size_t)k < n && l->dropped)
    k += snprintf(buf + k, n - (size_t)k, " dropped=0x%x", l->dropped);
  if (k >= 0 && (size_t)k < n)
    k += snprintf(buf + k, n - (size_t)k, "} ");
  if (l->rank == 0 && k >= 0 && (size_t)k < n)
    snprintf(buf + k, n - (size_t)k, "[]");
  else
    put_list(buf, n, k, "[", l->shape, l->rank);
  return buf;
}

/* ---- tensor-core layouts ------------------------------------------------ */

/* Warps go to the dim whose per-warp tile is larger while both keep whole
 * m16/n8 tiles (fewer shared-memory fragment loads per mma); warps left
 * over replicate rows. */
int xk_layout_mma(xk_layout *l, const int32_t *shape, int num_warps) {
  if (shape[0] < 16 || shape[1] < 8 || !is_pow2(num_warps))
    return -1;
  int w[2] = {1, 1}, rem = num_warps;
  while (rem > 1) {
    int m_ok = shape[0] / (2 * w[0]) >= 16, n_ok = shape[1] / (2 * w[1]) >= 8;
    if (m_ok && (shape[0] / w[0] >= shape[1] / w[1] || !n_ok))
      w[0] *= 2;
    else if (n_ok)
      w[1] *= 2;
    else
      break;
    rem /= 2;
  }
  w[0] *= rem;
  static const int spt[2] = {1, 2}, tpw[2] = {8, 4}, order[2] = {1, 0};
  return xk_layout_blocked(l, 2, shape, spt, tpw, w, order, num_warps);
}

xk_mma_tiles xk_layout_mma_tiles(const xk_layout *l) {
  xk_mma_tiles t;
  t.row_regs = dim_nregs(l, 0);
  t.mtiles = t.row_regs > 1 ? t.row_regs / 2 : 1;
  t.ntiles = dim_nregs(l, 1) / 2;
  return t;
}

static int row_reg(const xk_layout *l, int i, int half) {
  return dim_nregs(l, 0) > 1 ? 2 * i + half : 0;
}

int xk_mma_acc_reg(const xk_layout *l, int i, int j, int q) {
  int rd[2] = {row_reg(l, i, q >> 1), 2 * j + (q & 1)};
  return xk_layout_reg_join(l, rd);
}

int xk_mma_row(const xk_layout *l, int lane, int warp, int rr) {
  return (xk_layout_thread_pdim(l, lane, warp, 0) + rr * coverage(l, 0)) &
         (l->shape[0] - 1);
}

/* First column of the warp's n8 tile j. */
static int ntile_col(const xk_layout *l, int warp, int j) {
  return xk_layout_thread_pdim(l, 0, warp, 1) + j * coverage(l, 1);
}

void xk_mma_a_coord(const xk_layout *l, int lane, int warp, int i, int kk,
                    int e, int *row, int *k) {
  *row = xk_mma_row(l, lane, warp, row_reg(l, i, (e >> 1) & 1));
  *k = kk * 16 + (e >> 2) * 8 + (lane % 4) * 2 + (e & 1);
}

void xk_mma_b_coord(const xk_layout *l, int lane, int warp, int j, int kk,
                    int e, int *k, int *col) {
  *k = kk * 16 + (e >> 1) * 8 + (lane % 4) * 2 + (e & 1);
  *col = ntile_col(l, warp, j) + lane / 4;
}

/* ldmatrix.x4: lanes 8q..8q+7 address the rows of matrix q, and a lane
 * receives in register q the pair (row lane/4, cols 2*(lane%4)..+1) of
 * matrix q (transposed: rows and cols swap). */
void xk_mma_ldsm_a(const xk_layout *l, int lane, int warp, int i, int kk,
                   int *row, int *k) {
  int q = lane >> 3;
  *row = (xk_layout_thread_pdim(l, 0, warp, 0) + (lane & 7) +
          row_reg(l, i, q & 1) * coverage(l, 0)) &
         (l->shape[0] - 1);
  *k = kk * 16 + (q >> 1) * 8;
}

void xk_mma_ldsm_b(const xk_layout *l, int lane, int warp, int j, int kk,
                   int *k, int *col) {
  int q = lane >> 3, jj = j + (q >> 1);
  if (jj >= dim_nregs(l, 1) / 2)
    jj = j; /* an x2 load: lanes 16..31 only need a valid address */
  *k = kk * 16 + (q & 1) * 8 + (lane & 7);
  *col = ntile_col(l, warp, jj);
}

int xk_swizzle_make(xk_swizzle *z, int rows, int cols, int elem_bytes) {
  if (elem_bytes <= 0 || 16 % elem_bytes || cols * elem_bytes % 16)
    return -1;
  z->rows = rows;
  z->cols = cols;
  z->vec = 16 / elem_bytes;
  int chunks = cols / z->vec;
  z->per_phase = chunks >= 8 ? 1 : 8 / chunks;
  z->max_phase = chunks >= 8 ? 8 : chunks;
  return 0;
}

int xk_swizzle_offset(const xk_swizzle *z, int row, int col) {
  int phase = row / z->per_phase % z->max_phase;
  return row * z->cols + ((col / z->vec) ^ phase) * z->vec + col % z->vec;
}

/* ---- layout conversions through shared memory --------------------------- */

int xk_smem_offset(const xk_smem_map *z, const int32_t *shape, int rank,
                   const int *c) {
  int row = 0;
  for (int t = 0; t + 1 < rank; t++)
    row = row * shape[t] + c[t];
  int col = rank ? c[rank - 1] : 0;
  int phase = row / z->per_phase % z->max_phase;
  return row * (z->cols + z->pad) + ((col / z->vec) ^ phase) * z->vec +
         col % z->vec;
}

int xk_smem_size(const xk_smem_map *z, const int32_t *shape, int rank) {
  int rows = 1;
  for (int t = 0; t + 1 < rank; t++)
    rows *= shape[t];
  return rows * (z->cols + z->pad);
}

/* The sim's count for one warp-request (sim_rt.c, shared_group): lanes
 * access `bytes` bytes each at byte[lane]. */
static int request_conflicts(const int64_t *byte, int bytes) {
  int64_t w[32 * 4];
  int n = 0, per_bank[32] = {0}, worst = 0;
  for (int l = 0; l < 32; l++)
    for (int64_t x = byte[l] / 4; x <= (byte[l] + bytes - 1) / 4; x++) {
      int seen = 0;
      for (int k = 0; k < n && !seen; k++)
        seen = w[k] == x;
      if (!seen && n < 32 * 4) {
        w[n++] = x;
        worst = ++per_bank[x & 31] > worst ? per_bank[x & 31] : worst;
      }
    }
  int ideal = (n + 31) / 32;
  return worst > ideal ? worst - ideal : 0;
}

int64_t xk_smem_conflicts(const xk_layout *l, int vec, const int *perm,
                          const xk_smem_map *z, const int32_t *shape, int esz) {
  int64_t total = 0;
  int n = xk_layout_nregs(l);
  for (int w = 0; w < l->num_warps; w++)
    for (int r = 0; r < n; r += vec) {
      int64_t byte[32];
      for (int lane = 0; lane < 32; lane++) {
        int c[XK_MAX_RANK], o[XK_MAX_RANK];
        xk_layout_coords(l, lane, w, r, c);
        for (int t = 0; t < l->rank; t++)
          o[perm ? perm[t] : t] = c[t];
        byte[lane] = (int64_t)xk_smem_offset(z, shape, l->rank, o) * esz;
      }
      total += request_conflicts(byte, vec * esz);
    }
  return total;
}

xk_smem_map xk_smem_choose(const xk_layout *src, int ws, const xk_layout *dst,
                           int wd, const int *perm, int esz) {
  int rank = src->rank, cols = rank ? src->shape[rank - 1] : 1;
  int w = ws > wd ? ws : wd;
  xk_smem_map best = {cols, 0, 1, 1, 1}, z = best;
  if (rank < 2 || esz > 4)
    return best;
  int64_t cost = xk_smem_conflicts(src, ws, NULL, &best, src->shape, esz) +
                 xk_smem_conflicts(dst, wd, perm, &best, src->shape, esz);
  /* one word of padding per row (when vectors stay aligned), then
   * swizzles whose chunks hold whole vectors */
  for (int vec = 0; vec <= 16 / esz && cost; vec = vec ? 2 * vec : w)
    for (int pp = 1; pp <= 8 && cost; pp *= 2)
      for (int mp = 2; mp <= 32 && cost; mp *= 2) {
        if (vec) {
          if (vec * mp > cols)
            continue;
          z.pad = 0;
          z.vec = vec;
          z.per_phase = pp;
          z.max_phase = mp;
        } else if (pp > 1 || mp > 2 || w * esz > 4) {
          continue; /* the padded candidate once */
        } else {
          z.pad = 4 / esz;
        }
        int64_t c = xk_smem_conflicts(src, ws, NULL, &z, src->shape, esz);
        if (c < cost)
          c += xk_smem_conflicts(dst, wd, perm, &z, src->shape, esz);
        if (c < cost) {
          cost = c;
          best = z;
        }
      }
  return best;
}
