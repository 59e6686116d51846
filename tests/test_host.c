/* Host lowering: JIT every kernels.xk kernel in several configs against the
 * C references in kernel_cases.c, plus hand-built IR for the tricky parts
 * (loop-carried swaps, masked loads of unmapped memory, bf16 rounding). */
#include "dsl.h"
#include "jit_util.h"
#include "kernel_cases.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* f, JIT-compiled, on every test size of kernel_cases.c's `kernel` */
static void check_cases(const char *kernel, const xk_func *f) {
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s: %s", kernel, d.msg);
  for (int s = 0; s < xk_case_nsizes(kernel); s++) {
    xk_case c;
    double err;
    ck_assert_msg(xk_case_setup(kernel, f, s, &c, &d) == 0, "%s", d.msg);
    xk_case_run_host(&c, j.fn);
    int rc = xk_case_check(&c, &err, &d);
    printf("host %-9s %-60s err %.2e\n", kernel, c.desc, err);
    ck_assert_msg(rc == 0, "%s", d.msg);
    xk_case_free(&c);
  }
  xk_jit_free(j.jit);
}

static void run1(xk_test_host *j, void **args) {
  int32_t pid[3] = {0, 0, 0}, np[3] = {1, 1, 1};
  j->fn(args, pid, np);
}

/* ---- a tiny IR builder for hand-written kernels ---- */

static const xk_loc L0 = {7};

static xk_attr at0(void) {
  xk_attr a;
  memset(&a, 0, sizeof a);
  return a;
}

static xk_type ty1(int dt, int n) {
  int32_t s[1] = {n};
  return xk_type_tile(dt, 1, s);
}

static xk_type ty2(int dt, int m, int n) {
  int32_t s[2] = {m, n};
  return xk_type_tile(dt, 2, s);
}

static xk_type ptrt(int elem, xk_type shape) {
  shape.elem = (uint8_t)elem;
  shape.dtype = XK_PTR;
  return shape;
}

static int op1(xk_func *f, int blk, int code, int a, xk_type t) {
  return xk_emit(f, blk, code, &a, 1, t, at0(), L0);
}

static int op2(xk_func *f, int blk, int code, int a, int b, xk_type t) {
  int o[2] = {a, b};
  return xk_emit(f, blk, code, o, 2, t, at0(), L0);
}

static int cst(xk_func *f, int blk, xk_type t, double v) {
  xk_attr a = at0();
  a.i = (int64_t)v;
  a.f = v;
  return xk_emit(f, blk, XK_OP_CONST, NULL, 0, t, a, L0);
}

static int arange(xk_func *f, int blk, int n) {
  xk_attr a = at0();
  a.hi = n;
  return xk_emit(f, blk, XK_OP_ARANGE, NULL, 0, ty1(XK_I32, n), a, L0);
}

static int bcast(xk_func *f, int blk, int v, xk_type t) {
  xk_type vt = xk_vtype(f, v);
  t.dtype = vt.dtype;
  t.elem = vt.elem;
  return op1(f, blk, XK_OP_BROADCAST, v, t);
}

static int cmp(xk_func *f, int blk, int pred, int a, int b) {
  xk_type t = xk_vtype(f, a);
  t.dtype = XK_I1;
  t.elem = 0;
  int o[2] = {a, b};
  xk_attr at = at0();
  at.pred = pred;
  return xk_emit(f, blk, XK_OP_CMP, o, 2, t, at, L0);
}

static int cast(xk_func *f, int blk, int v, int dt) {
  xk_type t = xk_vtype(f, v);
  t.dtype = (uint8_t)dt;
  return op1(f, blk, XK_OP_CAST, v, t);
}

/* ptr (scalar) + offs tile */
static int padd(xk_func *f, int blk, int p, int offs) {
  xk_type ot = xk_vtype(f, offs);
  xk_type pt = ptrt(xk_vtype(f, p).elem, ot);
  return op2(f, blk, XK_OP_ADD, bcast(f, blk, p, ot), offs, pt);
}

static int load(xk_func *f, int blk, int ptr, int mask, int other) {
  xk_type t = xk_vtype(f, ptr);
  t.dtype = t.elem;
  t.elem = 0;
  int o[3] = {ptr}, n = 1;
  xk_attr a = at0();
  if (mask >= 0) {
    o[n++] = mask;
    a.has_mask = 1;
  }
  if (other >= 0) {
    o[n++] = other;
    a.has_other = 1;
  }
  return xk_emit(f, blk, XK_OP_LOAD, o, n, t, a, L0);
}

static void store(xk_func *f, int blk, int ptr, int v, int mask) {
  int o[3] = {ptr, v, mask};
  xk_op_new(f, blk, XK_OP_STORE, o, mask >= 0 ? 3 : 2, NULL, 0, at0(), L0);
}

static int reduce(xk_func *f, int blk, int v, int axis, int red) {
  xk_type t = xk_vtype(f, v), r = t;
  r.rank--;
  for (int d = axis; d < r.rank; d++)
    r.shape[d] = t.shape[d + 1];
  xk_attr a = at0();
  a.axis = axis;
  a.red = red;
  return xk_emit(f, blk, XK_OP_REDUCE, &v, 1, r, a, L0);
}

static int expand(xk_func *f, int blk, int v, int axis) {
  xk_type t = xk_vtype(f, v), r = t;
  r.rank++;
  for (int d = r.rank - 1; d > axis; d--)
    r.shape[d] = t.shape[d - 1];
  r.shape[axis] = 1;
  xk_attr a = at0();
  a.axis = axis;
  return xk_emit(f, blk, XK_OP_EXPAND_DIMS, &v, 1, r, a, L0);
}

/* offsets i*n + j of an [m, n] row-major tile */
static int offs2(xk_func *f, int blk, int m, int n, int ld) {
  xk_type t = ty2(XK_I32, m, n);
  int r = expand(f, blk, arange(f, blk, m), 1);
  r = op2(f, blk, XK_OP_MUL, r, cst(f, blk, ty2(XK_I32, m, 1), ld),
          ty2(XK_I32, m, 1));
  int c = expand(f, blk, arange(f, blk, n), 0);
  return op2(f, blk, XK_OP_ADD, bcast(f, blk, r, t), bcast(f, blk, c, t), t);
}

/* vadd as kernels.xk spells it, for the harness before the DSL exists */
static xk_func *hand_vadd(int block) {
  xk_func *f = xk_func_new("vadd", "hand.xk");
  xk_func_add_const(f, "BLOCK", block);
  int x = xk_func_add_arg(f, "X", xk_type_ptr(XK_F32));
  int y = xk_func_add_arg(f, "Y", xk_type_ptr(XK_F32));
  int z = xk_func_add_arg(f, "Z", xk_type_ptr(XK_F32));
  int n = xk_func_add_arg(f, "N", xk_type_scalar(XK_I32));
  xk_type s = xk_type_scalar(XK_I32), t = ty1(XK_I32, block);
  int pid = xk_emit(f, 0, XK_OP_PROGRAM_ID, NULL, 0, s, at0(), L0);
  int base = op2(f, 0, XK_OP_MUL, pid, cst(f, 0, s, block), s);
  int offs = op2(f, 0, XK_OP_ADD, bcast(f, 0, base, t), arange(f, 0, block), t);
  int m = cmp(f, 0, XK_LT, offs, bcast(f, 0, n, t));
  int xv = load(f, 0, padd(f, 0, x, offs), m, -1);
  int yv = load(f, 0, padd(f, 0, y, offs), m, -1);
  store(f, 0, padd(f, 0, z, offs),
        op2(f, 0, XK_OP_ADD, xv, yv, ty1(XK_F32, block)), m);
  return f;
}

/* ---- tests ---- */

START_TEST(test_targets) {
  xk_diag d;
  LLVMTargetMachineRef tm;
  ck_assert_int_eq(xk_target_machine("host", &tm, &d), 0);
  LLVMDisposeTargetMachine(tm);
  ck_assert_int_eq(xk_target_machine("sm_90a", &tm, &d), 0);
  char *triple = LLVMGetTargetMachineTriple(tm);
  ck_assert_str_eq(triple, "nvptx64-nvidia-cuda");
  LLVMDisposeMessage(triple);
  LLVMDisposeTargetMachine(tm);
  ck_assert(xk_target_is_gpu("sm_86") && !xk_target_is_gpu("host"));
  ck_assert_int_eq(xk_target_machine("sm_70", &tm, &d), -1);
  ck_assert_ptr_nonnull(strstr(d.msg, "sm_70"));
}
END_TEST

START_TEST(test_object_emission) {
  xk_diag d;
  xk_func *f = hand_vadd(256);
  LLVMTargetMachineRef tm;
  ck_assert_int_eq(xk_target_machine("host", &tm, &d), 0);
  LLVMModuleRef m = xk_module_new("vadd", "host", tm);
  ck_assert_msg(xk_lower_host(f, m, "vadd_obj", &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_optimize(m, tm, &d) == 0, "%s", d.msg);
  char *buf;
  size_t len;
  ck_assert_msg(xk_target_emit(m, tm, 1, &buf, &len, &d) == 0, "%s", d.msg);
  ck_assert_uint_gt(len, 64);
  ck_assert(memcmp(buf,
                   "\x7f"
                   "ELF",
                   4) == 0);
  free(buf);
  ck_assert_int_eq(xk_target_emit(m, tm, 0, &buf, &len, &d), 0);
  ck_assert_ptr_nonnull(strstr(buf, "vadd_obj"));
  free(buf);
  LLVMDisposeModule(m);
  LLVMDisposeTargetMachine(tm);
  xk_func_free(f);
}
END_TEST

START_TEST(test_vadd_handbuilt) {
  static const int blocks[] = {16, 128, 1024};
  for (int b = 0; b < 3; b++) {
    xk_func *f = hand_vadd(blocks[b]);
    check_cases("vadd", f);
    xk_func_free(f);
  }
}
END_TEST

/* for i in [0, n): (a, b, c, s) <- (reshape(b), a, c + a, s + i) */
START_TEST(test_for_swap) {
  xk_func *f = xk_func_new("swap", "hand.xk");
  int out = xk_func_add_arg(f, "OUT", xk_type_ptr(XK_F32));
  int oi = xk_func_add_arg(f, "OI", xk_type_ptr(XK_I32));
  int n = xk_func_add_arg(f, "n", xk_type_scalar(XK_I32));
  xk_type t = ty1(XK_F32, 4), s = xk_type_scalar(XK_I32);
  int ar = arange(f, 0, 4);
  int a0 = cast(f, 0, ar, XK_F32);
  int b0 = cst(f, 0, t, 10);
  int c0 = cst(f, 0, t, 0);
  int s0 = cst(f, 0, s, 0);
  int ops[7] = {cst(f, 0, s, 0), n, cst(f, 0, s, 1), a0, b0, c0, s0};
  xk_type rt[4] = {t, t, t, s};
  int fo = xk_op_new(f, 0, XK_OP_FOR, ops, 7, rt, 4, at0(), L0);
  int body = xk_block_new(f, fo);
  f->ops[fo].body = body;
  int iv = xk_block_add_arg(f, body, s);
  int a = xk_block_add_arg(f, body, t);
  int b = xk_block_add_arg(f, body, t);
  int c = xk_block_add_arg(f, body, t);
  int sc = xk_block_add_arg(f, body, s);
  int y[4] = {op1(f, body, XK_OP_RESHAPE, b, t), a,
              op2(f, body, XK_OP_ADD, c, a, t),
              op2(f, body, XK_OP_ADD, sc, iv, s)};
  xk_op_new(f, body, XK_OP_YIELD, y, 4, NULL, 0, at0(), L0);
  int *res = f->ops[fo].res;
  store(f, 0, padd(f, 0, out, ar), res[0], -1);
  int ar4 =
      op2(f, 0, XK_OP_ADD, ar, cst(f, 0, ty1(XK_I32, 4), 4), ty1(XK_I32, 4));
  store(f, 0, padd(f, 0, out, ar4), res[1], -1);
  int ar8 =
      op2(f, 0, XK_OP_ADD, ar, cst(f, 0, ty1(XK_I32, 4), 8), ty1(XK_I32, 4));
  store(f, 0, padd(f, 0, out, ar8), res[2], -1);
  store(f, 0, oi, res[3], -1);
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  for (int nn = 0; nn <= 5; nn++) {
    float o[12], ra[4], rb[4], rc[4] = {0};
    int32_t os = -1, rs = 0;
    for (int i = 0; i < 4; i++) {
      ra[i] = (float)i;
      rb[i] = 10;
    }
    for (int it = 0; it < nn; it++) {
      for (int i = 0; i < 4; i++) {
        float ta = ra[i];
        rc[i] += ra[i];
        ra[i] = rb[i];
        rb[i] = ta;
      }
      rs += it;
    }
    void *po = o, *pi = &os;
    void *args[3] = {&po, &pi, &nn};
    run1(&j, args);
    for (int i = 0; i < 4; i++) {
      ck_assert_float_eq(o[i], ra[i]);
      ck_assert_float_eq(o[4 + i], rb[i]);
      ck_assert_float_eq(o[8 + i], rc[i]);
    }
    ck_assert_int_eq(os, rs);
  }
  xk_jit_free(j.jit);
  xk_func_free(f);
}
END_TEST

/* for j in [0,3): acc = 1 + (for i in [0, j+1): t = t + i)(acc) */
START_TEST(test_nested_for) {
  xk_func *f = xk_func_new("nested", "hand.xk");
  int out = xk_func_add_arg(f, "OUT", xk_type_ptr(XK_F32));
  xk_type t = ty1(XK_F32, 8), s = xk_type_scalar(XK_I32);
  int ar = arange(f, 0, 8);
  int o1[4] = {cst(f, 0, s, 0), cst(f, 0, s, 3), cst(f, 0, s, 1),
               cast(f, 0, ar, XK_F32)};
  int outer = xk_op_new(f, 0, XK_OP_FOR, o1, 4, &t, 1, at0(), L0);
  int ob = xk_block_new(f, outer);
  f->ops[outer].body = ob;
  int jv = xk_block_add_arg(f, ob, s);
  int acc = xk_block_add_arg(f, ob, t);
  int hi = op2(f, ob, XK_OP_ADD, jv, cst(f, ob, s, 1), s);
  int o2[4] = {cst(f, ob, s, 0), hi, cst(f, ob, s, 1), acc};
  int inner = xk_op_new(f, ob, XK_OP_FOR, o2, 4, &t, 1, at0(), L0);
  int ib = xk_block_new(f, inner);
  f->ops[inner].body = ib;
  int iv = xk_block_add_arg(f, ib, s);
  int tv = xk_block_add_arg(f, ib, t);
  int inc = bcast(f, ib, cast(f, ib, iv, XK_F32), t);
  int ny = op2(f, ib, XK_OP_ADD, tv, inc, t);
  xk_op_new(f, ib, XK_OP_YIELD, &ny, 1, NULL, 0, at0(), L0);
  int oy = op2(f, ob, XK_OP_ADD, f->ops[inner].res[0], cst(f, ob, t, 1), t);
  xk_op_new(f, ob, XK_OP_YIELD, &oy, 1, NULL, 0, at0(), L0);
  store(f, 0, padd(f, 0, out, ar), f->ops[outer].res[0], -1);
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  float o[8];
  void *po = o;
  void *args[1] = {&po};
  run1(&j, args);
  for (int k = 0; k < 8; k++) {
    float r = (float)k;
    for (int jj = 0; jj < 3; jj++) {
      for (int i = 0; i < jj + 1; i++)
        r += (float)i;
      r += 1;
    }
    ck_assert_float_eq(o[k], r);
  }
  xk_jit_free(j.jit);
  xk_func_free(f);
}
END_TEST

/* Masked lanes point into a PROT_NONE page: touching them faults. */
START_TEST(test_masked_oob) {
  long pg = sysconf(_SC_PAGESIZE);
  char *mem = mmap(NULL, (size_t)pg * 2, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert(mem != MAP_FAILED);
  ck_assert_int_eq(mprotect(mem + pg, (size_t)pg, PROT_NONE), 0);
  float *p = (float *)(mem + pg) - 1; /* the last float before the hole */
  *p = 3.5f;
  xk_func *f = xk_func_new("oob", "hand.xk");
  int pa = xk_func_add_arg(f, "P", xk_type_ptr(XK_F32));
  int oa = xk_func_add_arg(f, "OUT", xk_type_ptr(XK_F32));
  int ha = xk_func_add_arg(f, "H", xk_type_ptr(XK_F32));
  xk_type t = ty1(XK_F32, 16), ti = ty1(XK_I32, 16);
  int ar = arange(f, 0, 16);
  int m = cmp(f, 0, XK_LT, ar, cst(f, 0, ti, 1));
  int x = load(f, 0, padd(f, 0, pa, ar), m, cst(f, 0, t, -1));
  store(f, 0, padd(f, 0, oa, ar), x, -1);
  /* masked store: only P[0] is written */
  store(f, 0, padd(f, 0, pa, ar), op2(f, 0, XK_OP_MUL, x, cst(f, 0, t, 2), t),
        m);
  /* a uniform load of an unmapped address under an all-false mask */
  int z = load(f, 0, bcast(f, 0, ha, ti), cst(f, 0, ty1(XK_I1, 16), 0), -1);
  int ar16 = op2(f, 0, XK_OP_ADD, ar, cst(f, 0, ti, 16), ti);
  store(f, 0, padd(f, 0, oa, ar16), z, -1);
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  float o[32];
  void *pp = p, *po = o, *ph = mem + pg + 64;
  void *args[3] = {&pp, &po, &ph};
  run1(&j, args);
  ck_assert_float_eq(o[0], 3.5f);
  for (int i = 1; i < 16; i++)
    ck_assert_float_eq(o[i], -1.0f);
  for (int i = 16; i < 32; i++)
    ck_assert_float_eq(o[i], 0.0f);
  ck_assert_float_eq(*p, 7.0f);
  xk_jit_free(j.jit);
  xk_func_free(f);
  munmap(mem, (size_t)pg * 2);
}
END_TEST

START_TEST(test_f16_converters) {
  /* the harness's converters against the compiler's _Float16 */
  uint64_t s = 1;
  for (int i = 0; i < 200000; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t bits = (uint32_t)(s >> 32);
    if (i < 64)
      bits = (uint32_t[]){
          0,           0x80000000u, 0x7f800000u, 0x477ff000u,
          0x477fefffu, 0x33000000u, 0x33000001u, 0x387fc000u,
          0x38800000u, 0x7f7fffffu, 0x00000001u, 0x3f800000u}[i % 12];
    float x;
    memcpy(&x, &bits, 4);
    if (isnan(x))
      continue;
    _Float16 h = (_Float16)x;
    uint16_t hb;
    memcpy(&hb, &h, 2);
    ck_assert_msg(xk_f32_to_f16(x) == hb, "%08x: %04x vs %04x", bits,
                  xk_f32_to_f16(x), hb);
    ck_assert(xk_f16_to_f32(hb) == (float)h);
  }
}
END_TEST

/* f32 -> bf16 and f32 -> f16 casts in the JIT against C. */
START_TEST(test_casts) {
  enum { N = 64 };
  xk_func *f = xk_func_new("casts", "hand.xk");
  int in = xk_func_add_arg(f, "IN", xk_type_ptr(XK_F32));
  int ob = xk_func_add_arg(f, "OB", xk_type_ptr(XK_BF16));
  int of = xk_func_add_arg(f, "OF", xk_type_ptr(XK_F32));
  int oh = xk_func_add_arg(f, "OH", xk_type_ptr(XK_F16));
  int oi = xk_func_add_arg(f, "OI", xk_type_ptr(XK_I32));
  int ar = arange(f, 0, N);
  int x = load(f, 0, padd(f, 0, in, ar), -1, -1);
  int b = cast(f, 0, x, XK_BF16);
  store(f, 0, padd(f, 0, ob, ar), b, -1);
  store(f, 0, padd(f, 0, of, ar), cast(f, 0, b, XK_F32), -1);
  store(f, 0, padd(f, 0, oh, ar), cast(f, 0, x, XK_F16), -1);
  store(f, 0, padd(f, 0, oi, ar), cast(f, 0, x, XK_I32), -1);
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  static const uint32_t special[] = {
      0x3f808000u, /* tie, even below: 1.0 */
      0x3f818000u, /* tie, odd below: up */
      0x3f808001u, 0x3f807fffu, 0xbf818000u, 0x7f7fffffu, /* -> inf */
      0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, /* sNaN */
      0xffc00001u, 0x00000001u, 0x80000000u, 0x00800000u,
      0x4f000000u, 0xcf000001u, 0x477ff000u, 0x33000001u};
  float x_in[N];
  uint64_t s = 42;
  for (int i = 0; i < N; i++) {
    uint32_t bits;
    if (i < (int)(sizeof special / sizeof *special)) {
      bits = special[i];
    } else {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      bits = (uint32_t)(s >> 32);
    }
    memcpy(&x_in[i], &bits, 4);
  }
  uint16_t o_b[N], o_h[N];
  float o_f[N];
  int32_t o_i[N];
  void *p[5] = {x_in, o_b, o_f, o_h, o_i};
  void *args[5] = {&p[0], &p[1], &p[2], &p[3], &p[4]};
  run1(&j, args);
  for (int i = 0; i < N; i++) {
    float xv = x_in[i];
    uint16_t want = xk_f32_to_bf16(xv);
    if (isnan(xv))
      ck_assert_msg(isnan(xk_bf16_to_f32(o_b[i])), "lane %d: NaN lost", i);
    else
      ck_assert_msg(o_b[i] == want, "lane %d (%a): bf16 %04x want %04x", i,
                    (double)xv, o_b[i], want);
    float back = xk_bf16_to_f32(o_b[i]);
    ck_assert(isnan(xv) ? isnan(o_f[i]) : memcmp(&o_f[i], &back, 4) == 0);
    if (!isnan(xv))
      ck_assert_msg(o_h[i] == xk_f32_to_f16(xv), "lane %d: f16 %04x want %04x",
                    i, o_h[i], xk_f32_to_f16(xv));
    /* saturating, NaN -> 0, like PTX cvt.rzi */
    int32_t wi = isnan(xv)              ? 0
                 : xv >= 2147483648.0f  ? INT32_MAX
                 : xv <= -2147483648.0f ? INT32_MIN
                                        : (int32_t)xv;
    ck_assert_int_eq(o_i[i], wi);
  }
  xk_jit_free(j.jit);
  xk_func_free(f);
}
END_TEST

/* trans, reductions along both axes and to a scalar, on [4, 8] */
START_TEST(test_trans_reduce) {
  xk_func *f = xk_func_new("tr", "hand.xk");
  int in = xk_func_add_arg(f, "IN", xk_type_ptr(XK_F32));
  int oc = xk_func_add_arg(f, "OC", xk_type_ptr(XK_F32));
  int om = xk_func_add_arg(f, "OM", xk_type_ptr(XK_F32));
  int os = xk_func_add_arg(f, "OS", xk_type_ptr(XK_F32));
  int x = load(f, 0, padd(f, 0, in, offs2(f, 0, 4, 8, 8)), -1, -1);
  xk_attr a = at0();
  a.perm[0] = 1;
  a.perm[1] = 0;
  int t = xk_emit(f, 0, XK_OP_TRANS, &x, 1, ty2(XK_F32, 8, 4), a, L0);
  int cs = reduce(f, 0, t, 1, XK_RED_SUM);
  store(f, 0, padd(f, 0, oc, arange(f, 0, 8)), cs, -1);
  int mn = reduce(f, 0, t, 0, XK_RED_MIN); /* row minima of x */
  store(f, 0, padd(f, 0, om, arange(f, 0, 4)), mn, -1);
  store(f, 0, os, reduce(f, 0, cs, 0, XK_RED_MAX), -1);
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  float xi[32], o_c[8], o_m[4], o_s;
  for (int i = 0; i < 32; i++)
    xi[i] = (float)((i * 37) % 23) - 11.0f;
  void *p[4] = {xi, o_c, o_m, &o_s};
  void *args[4] = {&p[0], &p[1], &p[2], &p[3]};
  run1(&j, args);
  float mx = -INFINITY;
  for (int c = 0; c < 8; c++) {
    float sum = 0;
    for (int r = 0; r < 4; r++)
      sum += xi[r * 8 + c];
    ck_assert_float_eq_tol(o_c[c], sum, 1e-5);
    mx = fmaxf(mx, sum);
  }
  for (int r = 0; r < 4; r++) {
    float m = INFINITY;
    for (int c = 0; c < 8; c++)
      m = fminf(m, xi[r * 8 + c]);
    ck_assert_float_eq(o_m[r], m);
  }
  ck_assert_float_eq_tol(o_s, mx, 1e-5);
  xk_jit_free(j.jit);
  xk_func_free(f);
}
END_TEST

/* f16 dot [8,16]x[16,4] + splat acc, and a [128,128] exp-rowsum whose
 * tiles exceed the stack budget (heap buffers). */
START_TEST(test_dot_and_big_tiles) {
  xk_func *f = xk_func_new("dotbig", "hand.xk");
  int pa = xk_func_add_arg(f, "A", xk_type_ptr(XK_F16));
  int pb = xk_func_add_arg(f, "B", xk_type_ptr(XK_F16));
  int pc = xk_func_add_arg(f, "C", xk_type_ptr(XK_F32));
  int px = xk_func_add_arg(f, "X", xk_type_ptr(XK_F32));
  int py = xk_func_add_arg(f, "Y", xk_type_ptr(XK_F32));
  int a = load(f, 0, padd(f, 0, pa, offs2(f, 0, 8, 16, 16)), -1, -1);
  int b = load(f, 0, padd(f, 0, pb, offs2(f, 0, 16, 4, 4)), -1, -1);
  int o3[3] = {a, b, cst(f, 0, ty2(XK_F32, 8, 4), 0.5)};
  int c = xk_emit(f, 0, XK_OP_DOT, o3, 3, ty2(XK_F32, 8, 4), at0(), L0);
  store(f, 0, padd(f, 0, pc, offs2(f, 0, 8, 4, 4)), c, -1);
  int x = load(f, 0, padd(f, 0, px, offs2(f, 0, 128, 128, 128)), -1, -1);
  int e = op1(f, 0, XK_OP_EXP, x, ty2(XK_F32, 128, 128));
  store(f, 0, padd(f, 0, py, arange(f, 0, 128)), reduce(f, 0, e, 1, 0), -1);
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  uint16_t ah[128], bh[64];
  float o_c[32], *xi = malloc(128 * 128 * 4), o_y[128];
  ck_assert_ptr_nonnull(xi);
  for (int i = 0; i < 128; i++)
    ah[i] = xk_f32_to_f16((float)(i % 7) * 0.25f - 0.5f);
  for (int i = 0; i < 64; i++)
    bh[i] = xk_f32_to_f16((float)(i % 5) * 0.5f - 1.0f);
  for (int i = 0; i < 128 * 128; i++)
    xi[i] = (float)((i * 13) % 17) * 0.1f - 0.8f;
  void *p[5] = {ah, bh, o_c, xi, o_y};
  void *args[5] = {&p[0], &p[1], &p[2], &p[3], &p[4]};
  run1(&j, args);
  for (int i = 0; i < 8; i++)
    for (int n = 0; n < 4; n++) {
      double r = 0.5;
      for (int k = 0; k < 16; k++)
        r += (double)xk_f16_to_f32(ah[i * 16 + k]) *
             xk_f16_to_f32(bh[k * 4 + n]);
      ck_assert_float_eq_tol(o_c[i * 4 + n], r, 1e-5);
    }
  for (int r = 0; r < 128; r++) {
    double s = 0;
    for (int k = 0; k < 128; k++)
      s += exp(xi[r * 128 + k]);
    ck_assert_float_eq_tol(o_y[r], s, 1e-4 * s);
  }
  free(xi);
  xk_jit_free(j.jit);
  xk_func_free(f);
}
END_TEST

/* exp and exp2 (a polynomial, not libm) against double precision */
START_TEST(test_exp_accuracy) {
  enum { N = 4096 };
  xk_func *f = xk_func_new("expacc", "hand.xk");
  int in = xk_func_add_arg(f, "IN", xk_type_ptr(XK_F32));
  int oe = xk_func_add_arg(f, "OE", xk_type_ptr(XK_F32));
  int o2 = xk_func_add_arg(f, "O2", xk_type_ptr(XK_F32));
  int ar = arange(f, 0, N);
  int x = load(f, 0, padd(f, 0, in, ar), -1, -1);
  store(f, 0, padd(f, 0, oe, ar), op1(f, 0, XK_OP_EXP, x, ty1(XK_F32, N)), -1);
  store(f, 0, padd(f, 0, o2, ar), op1(f, 0, XK_OP_EXP2, x, ty1(XK_F32, N)), -1);
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  static float xi[N], r_e[N], r_2[N];
  static const float special[] = {-INFINITY, INFINITY, NAN,    0.0f,    -0.0f,
                                  88.7f,     88.73f,   -87.3f, -103.0f, -150.0f,
                                  127.99f,   128.0f,   1e-8f};
  int ns = (int)(sizeof special / sizeof *special);
  for (int i = 0; i < N; i++)
    xi[i] = i < ns ? special[i] : -110.0f + 220.0f * (float)(i - ns) / N;
  void *p[3] = {xi, r_e, r_2};
  void *args[3] = {&p[0], &p[1], &p[2]};
  run1(&j, args);
  for (int i = 0; i < N; i++) {
    double we = exp((double)xi[i]), w2 = exp2((double)xi[i]);
    const float got[2] = {r_e[i], r_2[i]};
    const double want[2] = {we, w2};
    for (int k = 0; k < 2; k++) {
      if (isnan(xi[i])) {
        ck_assert(isnan(got[k]));
        continue;
      }
      double wf = (double)(float)want[k]; /* inf past FLT_MAX */
      double tol = fmax(3e-7 * fabs(wf), 3e-45);
      ck_assert_msg(isinf(wf) ? got[k] == wf : fabs(got[k] - wf) <= tol,
                    "%s(%a) = %a, want %a", k ? "exp2" : "exp", (double)xi[i],
                    (double)got[k], wf);
    }
  }
  xk_jit_free(j.jit);
  xk_func_free(f);
}
END_TEST

/* Allocas of [n x float] (tile buffers) in f's unoptimized host lowering */
static int f32_buffers(const xk_func *f, int n) {
  LLVMTargetMachineRef tm;
  xk_diag d;
  ck_assert_msg(xk_target_machine("host", &tm, &d) == 0, "%s", d.msg);
  LLVMModuleRef m = xk_module_new(f->name, "host", tm);
  ck_assert_msg(xk_lower_host(f, m, f->name, &d) == 0, "%s", d.msg);
  LLVMTypeRef want = LLVMArrayType2(
      LLVMFloatTypeInContext(LLVMGetModuleContext(m)), (uint64_t)n);
  int count = 0;
  LLVMValueRef fn = LLVMGetNamedFunction(m, f->name);
  for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(fn); b;
       b = LLVMGetNextBasicBlock(b))
    for (LLVMValueRef i = LLVMGetFirstInstruction(b); i;
         i = LLVMGetNextInstruction(i))
      count += LLVMIsAAllocaInst(i) && LLVMGetAllocatedType(i) == want;
  LLVMDisposeModule(m);
  LLVMDisposeTargetMachine(tm);
  return count;
}

/* y = exp(x * s - 1) / (x + 2): the chain's float ops are fused into the
 * loop of the divide (its one stored buffer besides x's), with the
 * results of the unfused ops; x is read by two of them. A chain whose use
 * is past a for_range keeps its buffer (fused ops are recomputed where
 * they are read, and a loop is where that stops being free). */
START_TEST(test_fused_chain) {
  enum { N = 64 };
  xk_func *f = xk_func_new("chain", "hand.xk");
  int in = xk_func_add_arg(f, "IN", xk_type_ptr(XK_F32));
  int out = xk_func_add_arg(f, "OUT", xk_type_ptr(XK_F32));
  int sc = xk_func_add_arg(f, "s", xk_type_scalar(XK_F32));
  int n = xk_func_add_arg(f, "n", xk_type_scalar(XK_I32));
  xk_type t = ty1(XK_F32, N), si = xk_type_scalar(XK_I32);
  int ar = arange(f, 0, N);
  int x = load(f, 0, padd(f, 0, in, ar), -1, -1);
  int m = op2(f, 0, XK_OP_MUL, x, bcast(f, 0, sc, t), t);
  int e = op1(f, 0, XK_OP_EXP, op2(f, 0, XK_OP_SUB, m, cst(f, 0, t, 1), t), t);
  int q =
      op2(f, 0, XK_OP_DIV, e, op2(f, 0, XK_OP_ADD, x, cst(f, 0, t, 2), t), t);
  /* late = x + 3, used after a loop that sums q n times */
  int late = op2(f, 0, XK_OP_ADD, x, cst(f, 0, t, 3), t);
  int ops[4] = {cst(f, 0, si, 0), n, cst(f, 0, si, 1), q};
  int fo = xk_op_new(f, 0, XK_OP_FOR, ops, 4, &t, 1, at0(), L0);
  int body = xk_block_new(f, fo);
  f->ops[fo].body = body;
  xk_block_add_arg(f, body, si);
  int acc = xk_block_add_arg(f, body, t);
  int y = op2(f, body, XK_OP_ADD, acc, q, t);
  xk_op_new(f, body, XK_OP_YIELD, &y, 1, NULL, 0, at0(), L0);
  int r = op2(f, 0, XK_OP_MUL, f->ops[fo].res[0], late, t);
  store(f, 0, padd(f, 0, out, ar), r, -1);
  /* x, q, late, the loop's carried buffer and its yield, r (unfused: 10) */
  ck_assert_int_eq(f32_buffers(f, N), 6);
  xk_diag d;
  xk_test_host j;
  ck_assert_msg(xk_test_jit_host(f, &j, &d) == 0, "%s", d.msg);
  float xi[N], o[N], s = 0.5f;
  int32_t trips = 3;
  for (int i = 0; i < N; i++)
    xi[i] = (float)i / 8 - 4.0625f; /* never -2 */
  void *p[2] = {xi, o};
  void *args[4] = {&p[0], &p[1], &s, &trips};
  run1(&j, args);
  for (int i = 0; i < N; i++) {
    float qi = expf(xi[i] * s - 1) / (xi[i] + 2);
    float want = (qi + (qi + (qi + qi))) * (xi[i] + 3);
    ck_assert_float_eq_tol(o[i], want, 1e-5f * fmaxf(1, fabsf(want)));
  }
  xk_jit_free(j.jit);
  xk_func_free(f);
}
END_TEST

START_TEST(test_unsupported_op_error) {
  xk_func *f = xk_func_new("bad", "bad.xk");
  int o = xk_func_add_arg(f, "O", xk_type_ptr(XK_I32));
  int ar = arange(f, 0, 8);
  xk_loc at42 = {42};
  int e = xk_emit(f, 0, XK_OP_EXP, &ar, 1, ty1(XK_I32, 8), at0(), at42);
  store(f, 0, padd(f, 0, o, ar), e, -1);
  xk_diag d;
  LLVMTargetMachineRef tm;
  ck_assert_int_eq(xk_target_machine("host", &tm, &d), 0);
  LLVMModuleRef m = xk_module_new("bad", "host", tm);
  ck_assert_int_eq(xk_lower_host(f, m, "bad", &d), -1);
  ck_assert_msg(strstr(d.msg, "bad.xk:42") && strstr(d.msg, "exp"), "%s",
                d.msg);
  ck_assert_ptr_null(LLVMGetNamedFunction(m, "bad"));
  LLVMDisposeModule(m);
  LLVMDisposeTargetMachine(tm);
  xk_func_free(f);
}
END_TEST

/* ---- kernels.xk ---- */

typedef struct {
  const char *kernel;
  int n;
  xk_constexpr over[4];
} config;

static const config configs[] = {
    {"vadd", 1, {{"BLOCK", 16}}},
    {"vadd", 1, {{"BLOCK", 128}}},
    {"vadd", 1, {{"BLOCK", 1024}}},
    {"softmax", 1, {{"BLOCK_N", 16}}},
    {"softmax", 1, {{"BLOCK_N", 64}}},
    {"softmax", 1, {{"BLOCK_N", 256}}},
    {"gemm_f32", 3, {{"BLOCK_M", 16}, {"BLOCK_N", 16}, {"BLOCK_K", 16}}},
    {"gemm_f32", 3, {{"BLOCK_M", 32}, {"BLOCK_N", 64}, {"BLOCK_K", 8}}},
    {"gemm_f32", 3, {{"BLOCK_M", 128}, {"BLOCK_N", 128}, {"BLOCK_K", 32}}},
    {"gemm_f16", 3, {{"BLOCK_M", 16}, {"BLOCK_N", 16}, {"BLOCK_K", 16}}},
    {"gemm_f16", 3, {{"BLOCK_M", 64}, {"BLOCK_N", 32}, {"BLOCK_K", 32}}},
    {"gemm_f16", 3, {{"BLOCK_M", 32}, {"BLOCK_N", 128}, {"BLOCK_K", 16}}},
    {"rebuild_k", 2, {{"BLOCK_N", 16}, {"BLOCK_R", 16}}},
    {"rebuild_k", 2, {{"BLOCK_N", 32}, {"BLOCK_R", 64}}},
    {"rebuild_k", 3, {{"BLOCK_N", 64}, {"BLOCK_R", 32}, {"R", 40}}},
};
#define NCONFIGS ((int)(sizeof configs / sizeof *configs))

static xk_dsl *dsl;

static void open_kernels(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/kernels.xk", &dsl, &d))
    fprintf(stderr, "test_host: kernels.xk not usable: %s\n", d.msg);
}

static void close_kernels(void) {
  xk_dsl_close(dsl);
  dsl = NULL;
}

START_TEST(test_kernel_config) {
  const config *cf = &configs[_i];
  ck_assert_msg(dsl != NULL, "kernels.xk did not load");
  xk_diag d;
  int k = xk_dsl_find(dsl, cf->kernel);
  ck_assert_msg(k >= 0, "kernels.xk has no kernel %s", cf->kernel);
  xk_func *f;
  ck_assert_msg(xk_dsl_trace(dsl, k, cf->over, cf->n, &f, &d) == 0, "%s",
                d.msg);
  check_cases(cf->kernel, f);
  xk_func_free(f);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("host");
  TCase *t = tcase_create("lowering");
  tcase_set_timeout(t, 300);
  tcase_add_test(t, test_targets);
  tcase_add_test(t, test_object_emission);
  tcase_add_test(t, test_vadd_handbuilt);
  tcase_add_test(t, test_for_swap);
  tcase_add_test(t, test_nested_for);
  tcase_add_test(t, test_masked_oob);
  tcase_add_test(t, test_f16_converters);
  tcase_add_test(t, test_casts);
  tcase_add_test(t, test_trans_reduce);
  tcase_add_test(t, test_dot_and_big_tiles);
  tcase_add_test(t, test_exp_accuracy);
  tcase_add_test(t, test_fused_chain);
  tcase_add_test(t, test_unsupported_op_error);
  suite_add_tcase(s, t);
  TCase *k = tcase_create("kernels");
  tcase_set_timeout(k, 600);
  tcase_add_unchecked_fixture(k, open_kernels, close_kernels);
  tcase_add_loop_test(k, test_kernel_config, 0, NCONFIGS);
  suite_add_tcase(s, k);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
