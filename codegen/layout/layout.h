/* Distributed tile layouts (Triton-style), as pure index maps.
 *
 * A blocked layout spreads a tile over the threads of a CTA: along each dim
 * d a thread holds sizePerThread[d] contiguous elements, threadsPerWarp[d]
 * lanes and warpsPerCTA[d] warps tile the dim, and the pattern repeats when
 * the dim is longer than its coverage (more registers per thread) or wraps
 * when it is shorter (replicated copies: coords are taken modulo the shape
 * and only the copy whose raw coordinate is in range is the canonical owner).
 * `order` lists dims fastest first; lanes, warps and registers are all
 * decomposed along it.
 *
 * A slice layout is a blocked parent with some dims dropped (the result of a
 * reduction): threads that differ only along a dropped dim hold copies of the
 * same element; the copy at lane/warp coordinate 0 there is canonical.
 *
 * The lowering emits the same arithmetic at run time (see xk_layout_dim);
 * this file is the single definition of it, and needs no LLVM. */
#ifndef XK_LAYOUT_H
#define XK_LAYOUT_H

#include "ir.h"

typedef struct {
  int rank; /* rank of the distributed tile; 0 is a scalar */
  int shape[XK_MAX_RANK];
  int num_warps;
  int prank; /* rank of the blocked parent */
  int spt[XK_MAX_RANK], tpw[XK_MAX_RANK], wpc[XK_MAX_RANK];
  int order[XK_MAX_RANK]; /* parent dims, fastest first */
  unsigned dropped;       /* parent dims sliced away; 0 for blocked */
} xk_layout;

/* How tile dim `dim` of a layout is computed at run time:
 *   lane_d = (lane / lane_stride) % tpw,  warp_d = (warp / warp_stride) % wpc
 *   raw    = warp_d * spt * tpw + lane_d * spt + xk_layout_reg_off(reg)
 *   coord  = wrap ? raw % shape : raw;  canonical needs raw < shape */
typedef struct {
  int pdim; /* parent dim */
  int spt, tpw, wpc;
  int lane_stride, warp_stride;
  int nregs; /* registers along this dim: spt * reps */
  int wrap;  /* coverage exceeds the shape */
  int shape;
} xk_layout_dim_info;

/* 0, or -1 when the parameters are inconsistent (products, powers of two). */
int xk_layout_blocked(xk_layout *l, int rank, const int32_t *shape,
                      const int *spt, const int *tpw, const int *wpc,
                      const int *order, int num_warps);
/* The default chooser: vectorize the fastest dim (up to 4), lanes from the
 * fastest dim, warps on the slowest dims, no replication when the tile has
 * at least 32 * num_warps elements. A rank-0 shape gives the scalar layout. */
xk_layout xk_layout_default(const int32_t *shape, int rank, int num_warps);
/* The same with tile dim `fast` fastest (the others from the last down)
 * and up to `vec` contiguous elements per thread along it: the default is
 * (rank - 1, 4); global accesses take their proven vector width, so that
 * a warp's lanes cover consecutive addresses. */
xk_layout xk_layout_vec(const int32_t *shape, int rank, int num_warps, int fast,
                        int vec);
/* Drops tile dim `axis` (a reduction result). */
xk_layout xk_layout_slice(const xk_layout *l, int axis);
/* Inserts tile dim `axis` of size 1. When `l` is a slice whose dropped
 * parent dim sits there, the parent dim comes back (no data movement);
 * otherwise returns -1. */
int xk_layout_expand(const xk_layout *l, int axis, xk_layout *out);
/* The same distribution over another shape of the same rank (broadcast). */
xk_layout xk_layout_reshaped(const xk_layout *l, const int32_t *shape);

int xk_layout_eq(const xk_layout *a, const xk_layout *b);
int xk_layout_nregs(const xk_layout *l);
int xk_layout_threads(const xk_layout *l);
void xk_layout_dim(const xk_layout *l, int dim, xk_layout_dim_info *out);
/* The thread part of parent dim p (kept or dropped); nregs, wrap and shape
 * are 0 for a dropped dim. */
void xk_layout_pdim(const xk_layout *l, int p, xk_layout_dim_info *out);
/* Per-dim register index of flat register `reg` (tile dims), and back. */
void xk_layout_reg_split(const xk_layout *l, int reg, int *rd);
int xk_layout_reg_join(const xk_layout *l, const int *rd);
/* Compile-time part of register `reg`'s raw coordinate along tile dim. */
int xk_layout_reg_off(const xk_layout *l, int reg, int dim);
/* Lane/warp coordinate of a thread along parent dim `pdim`. */
int xk_layout_thread_pdim(const xk_layout *l, int lane, int warp, int pdim);
/* Element coordinates (tile dims) of (lane, warp, reg); returns 1 when this
 * copy is the canonical owner, 0 for a replica. */
int xk_layout_coords(const xk_layout *l, int lane, int warp, int reg,
                     int *coords);
/* "blocked{spt=[1,4] tpw=[4,8] wpc=[4,1] order=[1,0]} [64,64]" */
char *xk_layout_str(const xk_layout *l, char *buf, size_t n);

/* ---- tensor-core layouts (mma.sync m16n8k16) ----------------------------
 *
 * The accumulator of m16n8k16 gives lane l (g = l/4, t = l%4) the elements
 * (g, 2t..2t+1) and (g+8, 2t..2t+1) of a 16x8 tile. That is the blocked
 * layout spt=[1,2] tpw=[8,4] order=[1,0]: an "m16" tile of a warp is the
 * pair of its row registers (2i, 2i+1), i.e. rows r and r + 8*wpc[0], and an
 * "n8" tile is the pair of column registers (2j, 2j+1). The fragment math
 * does not care which rows a tile holds as long as A is loaded with the
 * same rows, so the accumulator is an ordinary blocked layout and every
 * conversion, reduction and store works on it unchanged. A warp holding a
 * single row register (M < 16 * wpc[0]: replicated warps) pairs the
 * register with itself and drops the duplicate half. */

/* 0, or -1 when the tile does not fit m16n8k16 (rank 2, M >= 16, N >= 8). */
int xk_layout_mma(xk_layout *l, const int32_t *shape, int num_warps);
typedef struct {
  int mtiles, ntiles; /* m16 and n8 tiles per warp */
  int row_regs;       /* row registers per thread (1 when paired with itself) */
} xk_mma_tiles;
xk_mma_tiles xk_layout_mma_tiles(const xk_layout *l);
/* Accumulator register of fragment element q (c0..c3) of warp tile (i, j). */
int xk_mma_acc_reg(const xk_layout *l, int i, int j, int q);
/* Tile coordinates of the A fragment element e (a0..a7; a row of the
 * warp's m16 tile i, k within a 16-wide step kk) and of the B fragment
 * element e (b0..b3) of n8 tile j, for a lane of a warp; per the PTX ISA
 * "Matrix Fragments for mma.m16n8k16" (f16/bf16). */
void xk_mma_a_coord(const xk_layout *l, int lane, int warp, int i, int kk,
                    int e, int *row, int *k);
void xk_mma_b_coord(const xk_layout *l, int lane, int warp, int j, int kk,
                    int e, int *k, int *col);
/* ldmatrix.x4 row addresses: the tile row/col of the 8-element chunk that
 * `lane` points at, loading A tile i at step kk (non-transposed), or B
 * n8 tiles j, j+1 at step kk (transposed, from a [K,N] row-major tile). */
void xk_mma_ldsm_a(const xk_layout *l, int lane, int warp, int i, int kk,
                   int *row, int *k);
void xk_mma_ldsm_b(const xk_layout *l, int lane, int warp, int j, int kk,
                   int *k, int *col);
/* Tile row of the accumulator's row register rr (wrapped into M). */
int xk_mma_row(const xk_layout *l, int lane, int warp, int rr);

/* ---- swizzled shared memory --------------------------------------------
 * A row-major [rows, cols] tile of 2-byte elements in 16-byte chunks,
 * chunk c of row r stored at chunk c ^ ((r / per_phase) % max_phase), so
 * the 8 rows an ldmatrix phase reads (or a warp's row-wise stores) hit
 * distinct 16-byte bank groups (Triton's shared layout, vec = 8). */
typedef struct {
  int rows, cols, vec, per_phase, max_phase;
} xk_swizzle;
/* cols * elem_bytes must be a multiple of 16; -1 otherwise. */
int xk_swizzle_make(xk_swizzle *z, int rows, int cols, int elem_bytes);
/* Element offset of (row, col). */
int xk_swizzle_offset(const xk_swizzle *z, int row, int col);

/* ---- layout conversions through shared memory ---------------------------
 * A tile of `rows` (the leading dims, row-major) x `cols` (the last dim)
 * elements; element (row, col) lives at
 *   row * (cols + pad) + ((col / vec) ^ (row / per_phase % max_phase)) * vec
 *   + col % vec.
 * xk_smem_choose picks, among padded and swizzled candidates, the map with
 * the fewest bank conflicts (as the sim target counts them) for the
 * writes of tile layout `src` and the reads of layout `dst`, whose
 * element at coordinate c is the source element at c permuted by perm
 * (dst dim t reads src dim perm[t]; NULL: the identity). */
typedef struct {
  int cols, pad, vec, per_phase, max_phase;
} xk_smem_map;
int xk_smem_offset(const xk_smem_map *z, const int32_t *shape, int rank,
                   const int *c);
int xk_smem_size(const xk_smem_map *z, const int32_t *shape, int rank);
/* Conflicts of layout l's warp-requests of `vec` contiguous esz-byte
 * elements per lane (registers r, r+1, .. along the last dim),
 * coordinates permuted by perm into the source tile of shape `shape`. */
int64_t xk_smem_conflicts(const xk_layout *l, int vec, const int *perm,
                          const xk_smem_map *z, const int32_t *shape, int esz);
/* ws, wd: the vector widths of the writes and the reads. */
xk_smem_map xk_smem_choose(const xk_layout *src, int ws, const xk_layout *dst,
                           int wd, const int *perm, int esz);

#endif
