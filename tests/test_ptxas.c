/* The NVPTX lowering, checked by ptxas: hand-built IR kernels that cover
 * every lowering path, and every kernel of kernels.xk over its tune space,
 * for sm_80 and sm_90. No GPU is needed; without ptxas the test only checks
 * that lowering, O3 and PTX emission succeed. */
#include "compile.h"
#include "dsl.h"
#include "lower.h"
#include "ptxas.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const sms[] = {"sm_80", "sm_90"};

typedef struct {
  int registers, spill_bytes, shared_bytes, ran_ptxas;
  double ms;       /* lower + O3 + PTX */
  double lower_ms; /* xk_lower_nvptx alone */
  char *ptx;
} result;

static const char *ptxas_path(void) {
  static const char *p = XK_PTXAS;
  return p[0] && access(p, X_OK) == 0 ? p : NULL;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Lowers, optimizes and emits; runs ptxas when present. 0 or -1 + d. */
static int compile(const xk_func *f, const char *sm, result *r, xk_diag *d) {
  memset(r, 0, sizeof *r);
  LLVMTargetMachineRef tm;
  if (xk_target_machine(sm, &tm, d))
    return -1;
  double t0 = now_ms();
  LLVMModuleRef m = xk_module_new(f->name, sm, tm);
  xk_nvptx_info info;
  size_t len;
  int rc = xk_lower_nvptx(f, m, f->name, sm, &info, d);
  r->lower_ms = now_ms() - t0;
  if (!rc && getenv("XK_DUMP_LL")) {
    char *ir = LLVMPrintModuleToString(m);
    fprintf(stderr, "%s\n", ir);
    LLVMDisposeMessage(ir);
  }
  if (!rc)
    rc = xk_optimize(m, tm, d);
  if (!rc)
    rc = xk_target_emit(m, tm, 0, &r->ptx, &len, d);
  r->ms = now_ms() - t0;
  LLVMDisposeModule(m);
  LLVMDisposeTargetMachine(tm);
  if (rc)
    return -1;
  ck_assert_int_eq(info.threads, 32 * f->num_warps);
  r->shared_bytes = info.shared_bytes;
  if (getenv("XK_DUMP_PTX"))
    fprintf(stderr, "%s\n", r->ptx);
  const char *px = ptxas_path();
  if (!px)
    return 0;
  xk_ptxas_info pi;
  if (xk_ptxas_run_text(px, sm, r->ptx, len, &pi, d))
    return -1;
  r->ran_ptxas = 1;
  r->registers = pi.registers;
  r->spill_bytes = pi.spill_bytes;
  return 0;
}

static void report(const xk_func *f, const char *sm, const char *what,
                   const result *r) {
  fprintf(stderr,
          "  %-10s %-5s %-28s regs %3d spill %4d smem %6d lower %5.1f ms, "
          "+O3+PTX %6.1f ms\n",
          f->name, sm, what, r->registers, r->spill_bytes, r->shared_bytes,
          r->lower_ms, r->ms);
}

/* ---- hand-built kernels ------------------------------------------------- */

static xk_loc L0 = {1};

static int v1(xk_func *f, int blk, int code, int a, xk_type t) {
  xk_attr at = {0};
  return xk_emit(f, blk, code, &a, 1, t, at, L0);
}
static int v2(xk_func *f, int blk, int code, int a, int b) {
  xk_attr at = {0};
  int o[2] = {a, b};
  return xk_emit(f, blk, code, o, 2, xk_vtype(f, a), at, L0);
}
static int vcmp(xk_func *f, int blk, int pred, int a, int b) {
  xk_attr at = {0};
  at.pred = pred;
  int o[2] = {a, b};
  xk_type t = xk_vtype(f, a);
  t.dtype = XK_I1;
  return xk_emit(f, blk, XK_OP_CMP, o, 2, t, at, L0);
}
static int vptradd(xk_func *f, int blk, int p, int off) {
  xk_attr at = {0};
  int o[2] = {p, off};
  xk_type t = xk_vtype(f, off);
  t.dtype = XK_PTR;
  t.elem = xk_vtype(f, p).elem;
  return xk_emit(f, blk, XK_OP_ADD, o, 2, t, at, L0);
}
static int vconst_i(xk_func *f, int blk, int dt, int64_t v, int rank,
                    const int32_t *sh) {
  xk_attr at = {0};
  at.i = v;
  return xk_emit(f, blk, XK_OP_CONST, NULL, 0, xk_type_tile(dt, rank, sh), at,
                 L0);
}
static int vconst_f(xk_func *f, int blk, int dt, double v, int rank,
                    const int32_t *sh) {
  xk_attr at = {0};
  at.f = v;
  return xk_emit(f, blk, XK_OP_CONST, NULL, 0, xk_type_tile(dt, rank, sh), at,
                 L0);
}
static int varange(xk_func *f, int blk, int n) {
  xk_attr at = {0};
  at.hi = n;
  int32_t sh[1] = {n};
  return xk_emit(f, blk, XK_OP_ARANGE, NULL, 0, xk_type_tile(XK_I32, 1, sh), at,
                 L0);
}
static int vpid(xk_func *f, int blk, int axis) {
  xk_attr at = {0};
  at.axis = axis;
  return xk_emit(f, blk, XK_OP_PROGRAM_ID, NULL, 0, xk_type_scalar(XK_I32), at,
                 L0);
}
static int vbcast(xk_func *f, int blk, int a, int rank, const int32_t *sh) {
  xk_type t = xk_type_tile(xk_vtype(f, a).dtype, rank, sh);
  t.elem = xk_vtype(f, a).elem;
  return v1(f, blk, XK_OP_BROADCAST, a, t);
}
/* x[:, None] (axis 1) or x[None, :] (axis 0) */
static int vexpand(xk_func *f, int blk, int a, int axis) {
  xk_type t = xk_vtype(f, a);
  for (int i = t.rank; i > axis; i--)
    t.shape[i] = t.shape[i - 1];
  t.shape[axis] = 1;
  t.rank++;
  xk_attr at = {0};
  at.axis = axis;
  return xk_emit(f, blk, XK_OP_EXPAND_DIMS, &a, 1, t, at, L0);
}
static int vbcast2(xk_func *f, int blk, int a, int m, int n) {
  int32_t sh[2] = {m, n};
  return vbcast(f, blk, a, 2, sh);
}
/* program_id(axis) * n + arange(n) */
static int vprog_range(xk_func *f, int blk, int axis, int n) {
  int base = v2(f, blk, XK_OP_MUL, vpid(f, blk, axis),
                vconst_i(f, blk, XK_I32, n, 0, NULL));
  return v2(f, blk, XK_OP_ADD, vbcast(f, blk, base, 1, (int32_t[]){n}),
            varange(f, blk, n));
}
/* rows[:, None] * stride + cols[None, :] over [m, n]; stride a scalar */
static int voff2(xk_func *f, int blk, int rows, int stride, int cols, int m,
                 int n) {
  int r = v2(f, blk, XK_OP_MUL, vexpand(f, blk, rows, 1),
             vbcast(f, blk, stride, 2, (int32_t[]){m, 1}));
  return v2(f, blk, XK_OP_ADD, vbcast2(f, blk, r, m, n),
            vbcast2(f, blk, vexpand(f, blk, cols, 0), m, n));
}
/* (rows[:, None] < nr) & (cols[None, :] < nc) over [m, n] */
static int vmask2(xk_func *f, int blk, int rows, int nr, int cols, int nc,
                  int m, int n) {
  int r = vcmp(f, blk, XK_LT, vexpand(f, blk, rows, 1),
               vbcast(f, blk, nr, 2, (int32_t[]){m, 1}));
  int c = vcmp(f, blk, XK_LT, vexpand(f, blk, cols, 0),
               vbcast(f, blk, nc, 2, (int32_t[]){1, n}));
  return v2(f, blk, XK_OP_AND, vbcast2(f, blk, r, m, n),
            vbcast2(f, blk, c, m, n));
}
static int vreduce(xk_func *f, int blk, int a, int axis, int red) {
  xk_type t = xk_vtype(f, a);
  for (int i = axis; i + 1 < t.rank; i++)
    t.shape[i] = t.shape[i + 1];
  t.rank--;
  xk_attr at = {0};
  at.axis = axis;
  at.red = red;
  return xk_emit(f, blk, XK_OP_REDUCE, &a, 1, t, at, L0);
}
static int vload(xk_func *f, int blk, int p, int mask, int other) {
  xk_attr at = {0};
  int o[3] = {p, mask, other}, n = 1;
  if (mask >= 0) {
    at.has_mask = 1;
    n++;
  }
  if (other >= 0) {
    at.has_other = 1;
    o[n++] = other;
  }
  xk_type t = xk_vtype(f, p);
  t.dtype = t.elem;
  t.elem = 0;
  return xk_emit(f, blk, XK_OP_LOAD, o, n, t, at, L0);
}
static void vstore(xk_func *f, int blk, int p, int v, int mask) {
  xk_attr at = {0};
  int o[3] = {p, v, mask};
  at.has_mask = mask >= 0;
  xk_op_new(f, blk, XK_OP_STORE, o, mask >= 0 ? 3 : 2, NULL, 0, at, L0);
}

static xk_func *k_vadd(int block, int nw) {
  xk_func *f = xk_func_new("vadd", "hand");
  f->num_warps = nw;
  int X = xk_func_add_arg(f, "X", xk_type_ptr(XK_F32));
  int Y = xk_func_add_arg(f, "Y", xk_type_ptr(XK_F32));
  int Z = xk_func_add_arg(f, "Z", xk_type_ptr(XK_F32));
  int N = xk_func_add_arg(f, "N", xk_type_scalar(XK_I32));
  int32_t sh[1] = {block};
  int offs = vprog_range(f, 0, 0, block);
  int mask = vcmp(f, 0, XK_LT, offs, vbcast(f, 0, N, 1, sh));
  int x = vload(f, 0, vptradd(f, 0, vbcast(f, 0, X, 1, sh), offs), mask, -1);
  int y = vload(f, 0, vptradd(f, 0, vbcast(f, 0, Y, 1, sh), offs), mask, -1);
  vstore(f, 0, vptradd(f, 0, vbcast(f, 0, Z, 1, sh), offs),
         v2(f, 0, XK_OP_ADD, x, y), mask);
  return f;
}

/* one row per program; single block of BLOCK_N columns */
static xk_func *k_softmax_row(int bn, int nw) {
  xk_func *f = xk_func_new("softmax1", "hand");
  f->num_warps = nw;
  int X = xk_func_add_arg(f, "X", xk_type_ptr(XK_F32));
  int Y = xk_func_add_arg(f, "Y", xk_type_ptr(XK_F32));
  int N = xk_func_add_arg(f, "N", xk_type_scalar(XK_I32));
  int32_t sh[1] = {bn};
  int rowoff = v2(f, 0, XK_OP_MUL, vpid(f, 0, 0), N);
  int cols = varange(f, 0, bn);
  int offs = v2(f, 0, XK_OP_ADD, vbcast(f, 0, rowoff, 1, sh), cols);
  int mask = vcmp(f, 0, XK_LT, cols, vbcast(f, 0, N, 1, sh));
  int x = vload(f, 0, vptradd(f, 0, vbcast(f, 0, X, 1, sh), offs), mask,
                vconst_f(f, 0, XK_F32, -1e30, 1, sh));
  int m = vreduce(f, 0, x, 0, XK_RED_MAX);
  int e = v1(f, 0, XK_OP_EXP, v2(f, 0, XK_OP_SUB, x, vbcast(f, 0, m, 1, sh)),
             xk_vtype(f, x));
  int ssum = vreduce(f, 0, e, 0, XK_RED_SUM);
  int y = v2(f, 0, XK_OP_DIV, e, vbcast(f, 0, ssum, 1, sh));
  vstore(f, 0, vptradd(f, 0, vbcast(f, 0, Y, 1, sh), offs), y, mask);
  return f;
}

/* [BM, BN] tile: subtract each row's max (slice -> expand -> broadcast),
 * then column sums (a reduction across warps), transposed store. */
static xk_func *k_rows(int bm, int bn, int nw) {
  xk_func *f = xk_func_new("rows", "hand");
  f->num_warps = nw;
  int X = xk_func_add_arg(f, "X", xk_type_ptr(XK_F32));
  int Y = xk_func_add_arg(f, "Y", xk_type_ptr(XK_F32));
  int S = xk_func_add_arg(f, "S", xk_type_ptr(XK_F32));
  int rm = varange(f, 0, bm), rn = varange(f, 0, bn);
  int32_t sh[2] = {bm, bn};
  int offs = voff2(f, 0, rm, vconst_i(f, 0, XK_I32, bn, 0, NULL), rn, bm, bn);
  int x = vload(f, 0, vptradd(f, 0, vbcast(f, 0, X, 2, sh), offs), -1, -1);
  int mx = vreduce(f, 0, x, 1, XK_RED_MAX);
  int d = v2(f, 0, XK_OP_SUB, x, vbcast2(f, 0, vexpand(f, 0, mx, 1), bm, bn));
  int cs = vreduce(f, 0, d, 0, XK_RED_SUM);
  /* a loaded [bn] (blocked) plus the column sums (slice): a conversion */
  int sp = vptradd(f, 0, vbcast(f, 0, S, 1, (int32_t[]){bn}), rn);
  vstore(f, 0, sp, v2(f, 0, XK_OP_ADD, vload(f, 0, sp, -1, -1), cs), -1);
  xk_attr at = {0};
  at.perm[0] = 1;
  at.perm[1] = 0;
  int32_t tsh[2] = {bn, bm};
  int xt =
      xk_emit(f, 0, XK_OP_TRANS, &d, 1, xk_type_tile(XK_F32, 2, tsh), at, L0);
  /* store xt with row-major offsets of the transposed tile: the offsets are
   * pure, xt's layout is the permuted one */
  int toffs = voff2(f, 0, rn, vconst_i(f, 0, XK_I32, bm, 0, NULL), rm, bn, bm);
  int xtp = v2(f, 0, XK_OP_ADD, xt, vconst_f(f, 0, XK_F32, 1.0, 2, tsh));
  vstore(f, 0, vptradd(f, 0, vbcast(f, 0, Y, 2, tsh), toffs), xtp, -1);
  /* a reshape through shared memory, stored flat */
  int32_t flat[1] = {bm * bn};
  int xr = v1(f, 0, XK_OP_RESHAPE, d, xk_type_tile(XK_F32, 1, flat));
  vstore(f, 0, vptradd(f, 0, vbcast(f, 0, X, 1, flat), varange(f, 0, bm * bn)),
         xr, -1);
  return f;
}

static xk_func *k_gemm(int dt, int bm, int bn, int bk, int nw) {
  xk_func *f = xk_func_new(dt == XK_F32 ? "gemm_f32" : "gemm_f16", "hand");
  f->num_warps = nw;
  int A = xk_func_add_arg(f, "A", xk_type_ptr(dt));
  int B = xk_func_add_arg(f, "B", xk_type_ptr(dt));
  int C = xk_func_add_arg(f, "C", xk_type_ptr(dt));
  int M = xk_func_add_arg(f, "M", xk_type_scalar(XK_I32));
  int N = xk_func_add_arg(f, "N", xk_type_scalar(XK_I32));
  int K = xk_func_add_arg(f, "K", xk_type_scalar(XK_I32));
  int rm = vprog_range(f, 0, 0, bm), rn = vprog_range(f, 0, 1, bn);
  int32_t csh[2] = {bm, bn};
  int acc0 = vconst_f(f, 0, XK_F32, 0.0, 2, csh);
  int opnd[4] = {vconst_i(f, 0, XK_I32, 0, 0, NULL), K,
                 vconst_i(f, 0, XK_I32, bk, 0, NULL), acc0};
  xk_attr at = {0};
  xk_type accty = xk_type_tile(XK_F32, 2, csh);
  int fop = xk_op_new(f, 0, XK_OP_FOR, opnd, 4, &accty, 1, at, L0);
  int body = xk_block_new(f, fop);
  f->ops[fop].body = body;
  int k0 = xk_block_add_arg(f, body, xk_type_scalar(XK_I32));
  int acc = xk_block_add_arg(f, body, accty);
  int rk = v2(f, body, XK_OP_ADD, vbcast(f, body, k0, 1, (int32_t[]){bk}),
              varange(f, body, bk));
  /* a: [bm, bk] */
  int aoff = voff2(f, body, rm, K, rk, bm, bk);
  int amask = vmask2(f, body, rm, M, rk, K, bm, bk);
  int a =
      vload(f, body,
            vptradd(f, body, vbcast(f, body, A, 2, (int32_t[]){bm, bk}), aoff),
            amask, vconst_f(f, body, dt, 0.0, 2, (int32_t[]){bm, bk}));
  int boff = voff2(f, body, rk, N, rn, bk, bn);
  int bmask = vmask2(f, body, rk, K, rn, N, bk, bn);
  int b =
      vload(f, body,
            vptradd(f, body, vbcast(f, body, B, 2, (int32_t[]){bk, bn}), boff),
            bmask, -1);
  int dop[3] = {a, b, acc};
  xk_attr z = {0};
  int nacc = xk_emit(f, body, XK_OP_DOT, dop, 3, accty, z, L0);
  xk_op_new(f, body, XK_OP_YIELD, &nacc, 1, NULL, 0, z, L0);
  int res = f->ops[fop].res[0];
  int coff = voff2(f, 0, rm, N, rn, bm, bn);
  int cmask = vmask2(f, 0, rm, M, rn, N, bm, bn);
  int out =
      dt == XK_F32 ? res : v1(f, 0, XK_OP_CAST, res, xk_type_tile(dt, 2, csh));
  vstore(f, 0, vptradd(f, 0, vbcast(f, 0, C, 2, csh), coff), out, cmask);
  return f;
}

/* A loop that stages X[k + i] in S and reads it back reversed, so each
 * thread reads what others stored: with `sync`, a barrier in between. No
 * other op needs one, so bar.sync in the PTX comes from the BARRIER. */
static xk_func *k_barrier(int block, int nw, int sync) {
  xk_func *f = xk_func_new("restage", "hand");
  f->num_warps = nw;
  int X = xk_func_add_arg(f, "X", xk_type_ptr(XK_F32));
  int S = xk_func_add_arg(f, "S", xk_type_ptr(XK_F32));
  int N = xk_func_add_arg(f, "N", xk_type_scalar(XK_I32));
  int32_t sh[1] = {block};
  xk_attr z = {0};
  int opnd[3] = {vconst_i(f, 0, XK_I32, 0, 0, NULL), N,
                 vconst_i(f, 0, XK_I32, block, 0, NULL)};
  int fop = xk_op_new(f, 0, XK_OP_FOR, opnd, 3, NULL, 0, z, L0);
  int body = xk_block_new(f, fop);
  f->ops[fop].body = body;
  int k = xk_block_add_arg(f, body, xk_type_scalar(XK_I32));
  int r = varange(f, body, block);
  int offs = v2(f, body, XK_OP_ADD, vbcast(f, body, k, 1, sh), r);
  int rev = v2(f, body, XK_OP_SUB,
               vbcast(f, body,
                      v2(f, body, XK_OP_ADD, k,
                         vconst_i(f, body, XK_I32, block - 1, 0, NULL)),
                      1, sh),
               r);
  vstore(
      f, body, vptradd(f, body, vbcast(f, body, S, 1, sh), offs),
      vload(f, body, vptradd(f, body, vbcast(f, body, X, 1, sh), offs), -1, -1),
      -1);
  if (sync)
    xk_op_new(f, body, XK_OP_BARRIER, NULL, 0, NULL, 0, z, L0);
  vstore(
      f, body, vptradd(f, body, vbcast(f, body, X, 1, sh), offs),
      vload(f, body, vptradd(f, body, vbcast(f, body, S, 1, sh), rev), -1, -1),
      -1);
  xk_op_new(f, body, XK_OP_YIELD, NULL, 0, NULL, 0, z, L0);
  return f;
}

/* Every elementwise op and cast on one dtype, plus atomics: checks that
 * NVPTX can select what the lowering emits for each dtype. */
static xk_func *k_ops(int dt, int nw) {
  xk_func *f = xk_func_new("ops", "hand");
  f->num_warps = nw;
  int X = xk_func_add_arg(f, "X", xk_type_ptr(dt));
  int Y = xk_func_add_arg(f, "Y", xk_type_ptr(dt));
  int I = xk_func_add_arg(f, "I", xk_type_ptr(XK_I32));
  int32_t sh[1] = {256};
  int r = varange(f, 0, 256);
  int x = vload(f, 0, vptradd(f, 0, vbcast(f, 0, X, 1, sh), r), -1, -1);
  int acc = x;
  static const int bin[] = {XK_OP_ADD, XK_OP_SUB, XK_OP_MUL,
                            XK_OP_DIV, XK_OP_MIN, XK_OP_MAX};
  for (size_t i = 0; i < sizeof bin / sizeof *bin; i++)
    acc = v2(f, 0, bin[i], acc, x);
  int fl = xk_dtype_is_float(dt);
  if (fl) {
    static const int un[] = {XK_OP_EXP,  XK_OP_EXP2,  XK_OP_LOG,
                             XK_OP_SQRT, XK_OP_RSQRT, XK_OP_SIN,
                             XK_OP_COS,  XK_OP_ABS,   XK_OP_NEG};
    for (size_t i = 0; i < sizeof un / sizeof *un; i++)
      acc = v2(f, 0, XK_OP_ADD, acc, v1(f, 0, un[i], x, xk_vtype(f, x)));
  } else {
    static const int ib[] = {XK_OP_REM, XK_OP_AND, XK_OP_OR,
                             XK_OP_XOR, XK_OP_SHL, XK_OP_SHR};
    for (size_t i = 0; i < sizeof ib / sizeof *ib; i++)
      acc = v2(f, 0, ib[i], acc, x);
    acc = v1(f, 0, XK_OP_NOT, v1(f, 0, XK_OP_ABS, acc, xk_vtype(f, acc)),
             xk_vtype(f, acc));
  }
  static const int dts[] = {XK_I1, XK_I32, XK_I64, XK_F16, XK_BF16, XK_F32};
  for (size_t i = 0; i < sizeof dts / sizeof *dts; i++) {
    int c = v1(f, 0, XK_OP_CAST, acc, xk_type_tile(dts[i], 1, sh));
    acc = v2(f, 0, XK_OP_ADD, acc,
             v1(f, 0, XK_OP_CAST, c, xk_type_tile(dt, 1, sh)));
  }
  int m = vcmp(f, 0, XK_GT, acc, x);
  acc = xk_emit(f, 0, XK_OP_SELECT, (int[]){m, acc, x}, 3, xk_vtype(f, x),
                (xk_attr){0}, L0);
  int rs = vreduce(f, 0, acc, 0, XK_RED_SUM);
  int rmx = vreduce(f, 0, acc, 0, XK_RED_MIN);
  vstore(f, 0, vptradd(f, 0, vbcast(f, 0, Y, 1, sh), r), acc, m);
  vstore(f, 0, Y, v2(f, 0, XK_OP_ADD, rs, rmx), -1);
  xk_attr z = {0};
  xk_op_new(f, 0, XK_OP_ATOMIC_ADD,
            (int[]){vptradd(f, 0, vbcast(f, 0, I, 1, sh), r),
                    v1(f, 0, XK_OP_CAST, acc, xk_type_tile(XK_I32, 1, sh)), m},
            3, NULL, 0, z, L0);
  if (dt == XK_F32)
    xk_op_new(f, 0, XK_OP_ATOMIC_ADD, (int[]){X, rs}, 2, NULL, 0, z, L0);
  return f;
}

static void check_hand(xk_func *f, const char *what, const char *must) {
  for (size_t i = 0; i < sizeof sms / sizeof *sms; i++) {
    result r;
    xk_diag d = {{0}};
    int rc = compile(f, sms[i], &r, &d);
    ck_assert_msg(rc == 0, "%s %s: %s", f->name, sms[i], d.msg);
    report(f, sms[i], what, &r);
    char entry[256];
    snprintf(entry, sizeof entry, ".entry %s(", f->name);
    ck_assert_msg(strstr(r.ptx, entry), "%s: no %s", f->name, entry);
    if (must)
      ck_assert_msg(strstr(r.ptx, must), "%s: PTX lacks %s", f->name, must);
    char ntid[64];
    snprintf(ntid, sizeof ntid, ".maxntid %d, 1, 1", 32 * f->num_warps);
    ck_assert_msg(strstr(r.ptx, ntid), "%s: no %s", f->name, ntid);
    ck_assert_msg(!r.ran_ptxas || r.spill_bytes == 0, "%s %s spills %d bytes",
                  f->name, sms[i], r.spill_bytes);
    free(r.ptx);
  }
  xk_func_free(f);
}

START_TEST(test_hand_kernels) {
  if (!ptxas_path())
    fprintf(stderr, "ptxas not found, skipping the ptxas checks\n");
  check_hand(k_vadd(1024, 4), "BLOCK=1024 w4", "ld.global");
  check_hand(k_vadd(128, 8), "BLOCK=128 w8 (replicated)", "st.global");
  check_hand(k_softmax_row(128, 4), "BLOCK_N=128 w4", "shfl.sync.bfly");
  check_hand(k_softmax_row(1024, 8), "BLOCK_N=1024 w8", "bar.sync");
  check_hand(k_rows(32, 64, 4), "32x64 w4", "shfl.sync.bfly");
  check_hand(k_rows(8, 8, 2), "8x8 w2 (replicated)", NULL);
  check_hand(k_gemm(XK_F32, 64, 64, 16, 4), "64x64x16 w4", "fma.rn.f32");
  check_hand(k_gemm(XK_F16, 64, 64, 32, 4), "64x64x32 w4",
             "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32");
  check_hand(k_gemm(XK_BF16, 128, 64, 32, 8), "bf16 128x64x32 w8",
             "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32");
  check_hand(k_gemm(XK_F16, 16, 16, 16, 8), "16x16x16 w8 (replicated)",
             "ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16");
  check_hand(k_gemm(XK_F32, 32, 32, 32, 2), "32x32x32 w2", "bar.sync");
  check_hand(k_barrier(512, 4, 1), "barrier in a loop", "bar.sync");
  static const int dts[] = {XK_F32, XK_F16, XK_BF16, XK_I32, XK_I64};
  for (size_t i = 0; i < sizeof dts / sizeof *dts; i++)
    check_hand(k_ops(dts[i], 2), xk_dtype_name(dts[i]), NULL);
}
END_TEST

/* The bar.sync of k_barrier is the BARRIER's: none without it. */
START_TEST(test_barrier_only_from_op) {
  for (size_t i = 0; i < sizeof sms / sizeof *sms; i++) {
    xk_func *f = k_barrier(512, 4, 0);
    result r;
    xk_diag d = {{0}};
    ck_assert_msg(compile(f, sms[i], &r, &d) == 0, "%s", d.msg);
    ck_assert_msg(strstr(r.ptx, "ld.global") && !strstr(r.ptx, "bar.sync"),
                  "%s: %s", sms[i], r.ptx);
    free(r.ptx);
    xk_func_free(f);
  }
}
END_TEST

/* ---- kernels.xk --------------------------------------------------------- */

/* Variants checked per kernel: the default plus an even stride through the
 * tune space (the whole space, thousands of variants, takes ~10 minutes;
 * XK_PTXAS_ALL=1 checks it). */
#define MAX_VARIANTS 8

/* Enumerates the tune space (cartesian product, capped, with the defaults
 * first) and checks each variant. */
static void check_kernel(xk_dsl *dsl, int k) {
  const xk_kernel_spec *sp = xk_dsl_kernel(dsl, k);
  int total = 1;
  for (int i = 0; i < sp->ntune; i++)
    total *= sp->tune[i].n > 0 ? sp->tune[i].n : 1;
  int stride = total > MAX_VARIANTS && !getenv("XK_PTXAS_ALL")
                   ? (total + MAX_VARIANTS - 1) / MAX_VARIANTS
                   : 1;
  for (int v = -1; v < total; v += (v < 0 ? 1 : stride)) {
    xk_constexpr over[16];
    int nover = 0, x = v;
    char what[256] = "default";
    size_t wl = 0;
    for (int i = 0; v >= 0 && i < sp->ntune && nover < 16; i++) {
      int n = sp->tune[i].n > 0 ? sp->tune[i].n : 1;
      over[nover] = (xk_constexpr){.name = sp->tune[i].name,
                                   .value = sp->tune[i].vals[x % n]};
      x /= n;
      wl += (size_t)snprintf(what + wl, sizeof what - wl, "%s%s=%lld",
                             nover ? " " : "", over[nover].name,
                             (long long)over[nover].value);
      if (wl >= sizeof what)
        wl = sizeof what - 1;
      nover++;
    }
    xk_func *f = NULL;
    xk_diag d = {{0}};
    /* what xkvgen ships: traced, then folded/CSE'd/DCE'd */
    ck_assert_msg(xk_compile_ir(dsl, k, over, nover, &f, &d) == 0, "%s: %s",
                  sp->name, d.msg);
    for (size_t i = 0; i < sizeof sms / sizeof *sms; i++) {
      result r;
      int rc = compile(f, sms[i], &r, &d);
      if (rc && v >= 0 && strstr(d.msg, "static limit")) {
        fprintf(stderr, "  %-10s %-5s %-28s skipped: %s\n", sp->name, sms[i],
                what, d.msg);
        continue;
      }
      ck_assert_msg(rc == 0, "%s [%s] %s: %s", sp->name, what, sms[i], d.msg);
      report(f, sms[i], what, &r);
      char entry[256];
      snprintf(entry, sizeof entry, ".entry %s(", f->name);
      ck_assert_msg(strstr(r.ptx, entry), "%s: no %s", f->name, entry);
      /* structural facts: reductions shuffle, dots run FMAs on tiles
       * staged in shared memory behind barriers */
      static const char *const facts[][2] = {
          {"softmax", "shfl.sync.bfly"},
          {"softmax", "ex2.approx"},
          {"gemm_f32", "fma.rn.f32"},
          {"gemm_f32", "bar.sync"},
          {"gemm_f16", "mma.sync.aligned.m16n8k16"},
          {"gemm_f16", "ldmatrix.sync.aligned.m8n8.x4.shared.b16"},
          {"rebuild_k", "mma.sync.aligned.m16n8k16"},
          {"vadd", "ld.global"}};
      for (size_t q = 0; q < sizeof facts / sizeof *facts; q++)
        if (!strcmp(sp->name, facts[q][0]))
          ck_assert_msg(strstr(r.ptx, facts[q][1]), "%s [%s]: PTX lacks %s",
                        sp->name, what, facts[q][1]);
      if (v < 0 && !getenv("XK_SPILL_OK"))
        ck_assert_msg(!r.ran_ptxas || r.spill_bytes == 0,
                      "%s default config spills %d bytes on %s", sp->name,
                      r.spill_bytes, sms[i]);
      free(r.ptx);
    }
    xk_func_free(f);
  }
}

START_TEST(test_kernels_xk) {
  const char *path = XK_SRC "/kernels.xk";
  if (access(path, R_OK) != 0) {
    fprintf(stderr, "%s not present yet, skipping\n", path);
    return;
  }
  xk_dsl *dsl = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(xk_dsl_open(path, &dsl, &d) == 0, "%s", d.msg);
  for (int k = 0; k < xk_dsl_nkernels(dsl); k++)
    check_kernel(dsl, k);
  xk_dsl_close(dsl);
}
END_TEST

/* The axis ops (argmax, scans, sort, topk) of tests/data/ops_kernels.xk:
 * ptxas accepts every kernel without spills. */
START_TEST(test_ops_kernels) {
  xk_dsl *dsl = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(xk_dsl_open(XK_SRC "/tests/data/ops_kernels.xk", &dsl, &d) == 0,
                "%s", d.msg);
  for (int k = 0; k < xk_dsl_nkernels(dsl); k++)
    check_kernel(dsl, k);
  xk_dsl_close(dsl);
}
END_TEST

/* Software pipelining (num_stages > 1) of the default GEMM tiles, plain
 * and specialized for 16-byte aligned buffers and dims divisible by 16:
 * the K loop waits on cp.async groups, the copies are cp.async (16-byte
 * .cg for aligned f16 rows, 4-byte .ca for f32 elements; unaligned f16
 * elements are 2 bytes, below cp.async's minimum, and load and store),
 * ptxas accepts it without spills, and shared memory holds one buffer per
 * stage. */
static int64_t const_of(const xk_func *f, const char *name) {
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, name))
      return f->consts[i].value;
  return -1;
}

/* Bytes of one pipeline stage: the A and B blocks, swizzled (f16) or with
 * rows padded by a word (f32). */
static int64_t stage_bytes(const xk_func *f, int f16) {
  int64_t bm = const_of(f, "BLOCK_M"), bn = const_of(f, "BLOCK_N");
  int64_t bk = const_of(f, "BLOCK_K"), pad = !f16;
  return (bm * (bk + pad) + bk * (bn + pad)) * (f16 ? 2 : 4);
}

START_TEST(test_pipelined_gemm) {
  xk_dsl *dsl = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(xk_dsl_open(XK_SRC "/kernels.xk", &dsl, &d) == 0, "%s", d.msg);
  static const int spec[6] = {XK_SPEC_ALIGN16, XK_SPEC_ALIGN16, XK_SPEC_ALIGN16,
                              XK_SPEC_DIV16,   XK_SPEC_DIV16,   XK_SPEC_DIV16};
  static const char *const names[] = {"gemm_f16", "gemm_f32"};
  for (int n = 0; n < 2; n++)
    for (int stages = 1; stages <= 3; stages++)
      for (int aligned = 0; aligned < 2; aligned++) {
        int k = xk_dsl_find(dsl, names[n]);
        xk_constexpr over = {"num_stages", stages};
        xk_func *f;
        ck_assert_msg(xk_compile_ir_spec(dsl, k, &over, 1,
                                         aligned ? spec : NULL, &f, &d) == 0,
                      "%s", d.msg);
        const char *copy = n         ? "cp.async.ca.shared.global"
                           : aligned ? "cp.async.cg.shared.global"
                                     : NULL;
        char what[64];
        snprintf(what, sizeof what, "num_stages=%d%s", stages,
                 aligned ? " aligned" : "");
        for (size_t i = 0; i < sizeof sms / sizeof *sms; i++) {
          result r;
          ck_assert_msg(compile(f, sms[i], &r, &d) == 0, "%s", d.msg);
          report(f, sms[i], what, &r);
          int piped = strstr(r.ptx, "cp.async.wait_group") != NULL;
          ck_assert_msg(piped == (stages > 1),
                        "%s [%s]: cp.async.wait_group %s", f->name, what,
                        piped ? "present" : "missing");
          if (stages > 1 && copy)
            ck_assert_msg(strstr(r.ptx, copy), "%s [%s]: PTX lacks %s", f->name,
                          what, copy);
          ck_assert_msg(!r.ran_ptxas || r.spill_bytes == 0,
                        "%s [%s] spills %d bytes on %s", f->name, what,
                        r.spill_bytes, sms[i]);
          if (stages > 1)
            ck_assert_int_ge(r.shared_bytes, stages * stage_bytes(f, n == 0));
          free(r.ptx);
        }
        xk_func_free(f);
      }
  xk_dsl_close(dsl);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ptxas");
  TCase *tc = tcase_create("nvptx");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_hand_kernels);
  tcase_add_test(tc, test_barrier_only_from_op);
  tcase_add_test(tc, test_kernels_xk);
  tcase_add_test(tc, test_pipelined_gemm);
  suite_add_tcase(s, tc);
  TCase *ops = tcase_create("ops");
  tcase_set_timeout(ops, 600);
  tcase_add_test(ops, test_ops_kernels);
  suite_add_tcase(s, ops);
  return xk_check_run(s);
}
