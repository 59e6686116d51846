/* IR core: verifier rules, passes, printer goldens, grid rules. */
#include "dsl.h"
#include "grid.h"
#include "passes.h"
#include "text.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const xk_loc L7 = {7};

static int cst_i(xk_func *f, int b, xk_type t, int64_t v) {
  xk_attr a = {0};
  a.i = v;
  return xk_emit(f, b, XK_OP_CONST, NULL, 0, t, a, L7);
}

static int bin(xk_func *f, int b, xk_opcode c, int x, int y) {
  int o[2] = {x, y};
  return xk_emit(f, b, c, o, 2, xk_vtype(f, x), (xk_attr){0}, L7);
}

static int count_live(const xk_func *f, int code) {
  int n = 0;
  for (int i = 0; i < f->nops; i++)
    n += !f->ops[i].dead && f->ops[i].code == code;
  return n;
}

START_TEST(fold_chain_and_identities) {
  xk_func *f = xk_func_new("k", "t.xk");
  xk_type i32 = xk_type_scalar(XK_I32);
  int p = xk_func_add_arg(f, "P", xk_type_ptr(XK_F32));
  int n = xk_func_add_arg(f, "N", i32);
  /* (3 * 4 - 2) / 5 = 2 ; N * 1 + 0 = N */
  int a = bin(f, 0, XK_OP_MUL, cst_i(f, 0, i32, 3), cst_i(f, 0, i32, 4));
  int b = bin(f, 0, XK_OP_SUB, a, cst_i(f, 0, i32, 2));
  int c = bin(f, 0, XK_OP_DIV, b, cst_i(f, 0, i32, 5));
  int m = bin(f, 0, XK_OP_ADD, bin(f, 0, XK_OP_MUL, n, cst_i(f, 0, i32, 1)),
              cst_i(f, 0, i32, 0));
  int off = bin(f, 0, XK_OP_ADD, m, c);
  int pp = bin(f, 0, XK_OP_ADD, p, off);
  /* division by zero must not fold */
  int z = bin(f, 0, XK_OP_DIV, n, cst_i(f, 0, i32, 0));
  int st[2] = {pp, xk_emit(f, 0, XK_OP_CAST, &z, 1, xk_type_scalar(XK_F32),
                           (xk_attr){0}, L7)};
  xk_op_new(f, 0, XK_OP_STORE, st, 2, NULL, 0, (xk_attr){0}, L7);
  xk_diag d;
  ck_assert_int_eq(xk_func_verify(f, &d), 0);
  ck_assert_int_eq(xk_passes_run(f, &d), 0);
  const xk_op *cop = &f->ops[f->values[c].def_op];
  ck_assert_int_eq(cop->code, XK_OP_CONST);
  ck_assert_int_eq(cop->attr.i, 2);
  const xk_op *add = &f->ops[f->values[off].def_op];
  ck_assert_int_eq(add->opnd[0], n); /* N*1+0 folded to N */
  ck_assert_int_eq(count_live(f, XK_OP_DIV), 1);
  ck_assert_int_eq(count_live(f, XK_OP_MUL), 0);
  xk_func_free(f);
}
END_TEST

START_TEST(fold_wraps_i32_and_float_compare) {
  xk_func *f = xk_func_new("k", "t.xk");
  xk_type i32 = xk_type_scalar(XK_I32), f32 = xk_type_scalar(XK_F32);
  int p = xk_func_add_arg(f, "P", xk_type_ptr(XK_I32));
  int big = bin(f, 0, XK_OP_MUL, cst_i(f, 0, i32, 65536),
                cst_i(f, 0, i32, 65536)); /* wraps to 0 in i32 */
  xk_attr fa = {0};
  fa.f = 1.5;
  int x = xk_emit(f, 0, XK_OP_CONST, NULL, 0, f32, fa, L7);
  xk_attr ca = {0};
  ca.pred = XK_LT;
  int cmp_o[2] = {x, x};
  int lt = xk_emit(f, 0, XK_OP_CMP, cmp_o, 2, xk_type_scalar(XK_I1), ca, L7);
  int li = xk_emit(f, 0, XK_OP_CAST, &lt, 1, i32, (xk_attr){0}, L7);
  int s = bin(f, 0, XK_OP_ADD, big, li);
  int st[2] = {bin(f, 0, XK_OP_ADD, p, s), s};
  xk_op_new(f, 0, XK_OP_STORE, st, 2, NULL, 0, (xk_attr){0}, L7);
  xk_diag d;
  ck_assert_int_eq(xk_passes_run(f, &d), 0);
  const xk_op *o = &f->ops[f->values[f->ops[f->nops - 1].opnd[1]].def_op];
  ck_assert_int_eq(o->code, XK_OP_CONST);
  ck_assert_int_eq(o->attr.i, 0); /* 65536*65536 wraps, 1.5 < 1.5 false */
  xk_func_free(f);
}
END_TEST

START_TEST(cse_merges_across_scopes_only_downward) {
  xk_func *f = xk_func_new("k", "t.xk");
  xk_type i32 = xk_type_scalar(XK_I32);
  int p = xk_func_add_arg(f, "P", xk_type_ptr(XK_I32));
  int n = xk_func_add_arg(f, "N", i32);
  int a1 = bin(f, 0, XK_OP_MUL, n, n);
  int a2 = bin(f, 0, XK_OP_MUL, n, n); /* same as a1 */
  int init[4] = {cst_i(f, 0, i32, 0), n, cst_i(f, 0, i32, 1), a1};
  xk_type rt = i32;
  int fo = xk_op_new(f, 0, XK_OP_FOR, init, 4, &rt, 1, (xk_attr){0}, L7);
  int body = xk_block_new(f, fo);
  f->ops[fo].body = body;
  int iv = xk_block_add_arg(f, body, i32);
  int acc = xk_block_add_arg(f, body, i32);
  int in1 = bin(f, body, XK_OP_MUL, n, n); /* merges with a1 (outer) */
  int in2 = bin(f, body, XK_OP_ADD, n, n); /* body-local */
  int y = bin(f, body, XK_OP_ADD, acc, bin(f, body, XK_OP_ADD, iv, in1));
  y = bin(f, body, XK_OP_ADD, y, in2);
  xk_op_new(f, body, XK_OP_YIELD, &y, 1, NULL, 0, (xk_attr){0}, L7);
  /* the same expression after the loop must not reuse the body's value */
  int after = bin(f, 0, XK_OP_ADD, n, n);
  int sum = bin(f, 0, XK_OP_ADD, f->ops[fo].res[0], after);
  sum = bin(f, 0, XK_OP_ADD, sum, a2);
  int st[2] = {bin(f, 0, XK_OP_ADD, p, sum), sum};
  xk_op_new(f, 0, XK_OP_STORE, st, 2, NULL, 0, (xk_attr){0}, L7);
  xk_diag d;
  ck_assert_msg(xk_func_verify(f, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(xk_passes_run(f, &d), 0);
  ck_assert(f->ops[f->values[a2].def_op].dead);
  ck_assert(f->ops[f->values[in1].def_op].dead);
  ck_assert_int_eq(count_live(f, XK_OP_MUL), 1);
  ck_assert(!f->ops[f->values[in2].def_op].dead);
  ck_assert(!f->ops[f->values[after].def_op].dead);
  xk_func_free(f);
}
END_TEST

/* Barriers have no uses and no operands: DCE must keep them like stores,
 * CSE must not merge two of them, and fold leaves them alone. */
START_TEST(barriers_survive_passes) {
  xk_func *f = xk_func_new("k", "t.xk");
  xk_type i32 = xk_type_scalar(XK_I32);
  int p = xk_func_add_arg(f, "P", xk_type_ptr(XK_I32));
  int n = xk_func_add_arg(f, "N", i32);
  int st[2] = {p, n};
  xk_op_new(f, 0, XK_OP_STORE, st, 2, NULL, 0, (xk_attr){0}, L7);
  xk_op_new(f, 0, XK_OP_BARRIER, NULL, 0, NULL, 0, (xk_attr){0}, L7);
  xk_op_new(f, 0, XK_OP_BARRIER, NULL, 0, NULL, 0, (xk_attr){0}, L7);
  int init[3] = {cst_i(f, 0, i32, 0), n, cst_i(f, 0, i32, 1)};
  int fo = xk_op_new(f, 0, XK_OP_FOR, init, 3, NULL, 0, (xk_attr){0}, L7);
  int body = xk_block_new(f, fo);
  f->ops[fo].body = body;
  xk_block_add_arg(f, body, i32);
  xk_op_new(f, body, XK_OP_BARRIER, NULL, 0, NULL, 0, (xk_attr){0}, L7);
  xk_op_new(f, body, XK_OP_YIELD, NULL, 0, NULL, 0, (xk_attr){0}, L7);
  xk_diag d;
  ck_assert_msg(xk_func_verify(f, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_passes_run(f, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(count_live(f, XK_OP_BARRIER), 3);
  char *txt = xk_func_print(f);
  ck_assert_msg(strstr(txt, "  store %0, %1\n  barrier\n  barrier\n"), "%s",
                txt);
  ck_assert_msg(strstr(txt, "    barrier\n    yield\n"), "%s", txt);
  free(txt);
  xk_func_free(f);
}
END_TEST

/* Each case builds a small broken function; the verifier must reject it
 * with a message naming the file, line and op. */
static xk_func *broken(int which) {
  xk_func *f = xk_func_new("bad", "t.xk");
  xk_type i32 = xk_type_scalar(XK_I32), f32 = xk_type_scalar(XK_F32);
  int p = xk_func_add_arg(f, "P", xk_type_ptr(XK_F32));
  int n = xk_func_add_arg(f, "N", i32);
  int32_t s3[1] = {3}, s4[1] = {4}, s44[2] = {4, 4}, s48[2] = {4, 8};
  xk_attr a = {0};
  switch (which) {
  case 0: /* mixed operand types */
    bin(f, 0, XK_OP_ADD, n, cst_i(f, 0, f32, 1));
    break;
  case 1: /* non power-of-two tile */
    a.lo = 0, a.hi = 3;
    xk_emit(f, 0, XK_OP_ARANGE, NULL, 0, xk_type_tile(XK_I32, 1, s3), a, L7);
    break;
  case 2: { /* dot inner dims differ */
    int x = cst_i(f, 0, xk_type_tile(XK_F32, 2, s48), 0);
    int o[3] = {x, x, cst_i(f, 0, xk_type_tile(XK_F32, 2, s44), 0)};
    xk_emit(f, 0, XK_OP_DOT, o, 3, xk_type_tile(XK_F32, 2, s44), a, L7);
    break;
  }
  case 3: { /* store through a non-pointer */
    int o[2] = {n, n};
    xk_op_new(f, 0, XK_OP_STORE, o, 2, NULL, 0, a, L7);
    break;
  }
  case 4: /* reduce over a missing axis */
    a.axis = 1;
    xk_emit(f, 0, XK_OP_REDUCE, &n, 1, i32, a, L7);
    break;
  case 5: { /* use before definition */
    int later = f->nvalues + 1;
    int o[2] = {n, later};
    xk_emit(f, 0, XK_OP_ADD, o, 2, i32, a, L7);
    cst_i(f, 0, i32, 1);
    break;
  }
  case 6: { /* load mask of the wrong shape */
    int pt = xk_emit(f, 0, XK_OP_BROADCAST, &p, 1,
                     (xk_type){XK_PTR, XK_F32, 1, {4}}, a, L7);
    int m = cst_i(f, 0, xk_type_scalar(XK_I1), 1);
    int o[2] = {pt, m};
    a.has_mask = 1;
    xk_emit(f, 0, XK_OP_LOAD, o, 2, xk_type_tile(XK_F32, 1, s4), a, L7);
    break;
  }
  case 7: /* a barrier with an operand */
    xk_op_new(f, 0, XK_OP_BARRIER, &n, 1, NULL, 0, a, L7);
    break;
  default: { /* loop body yields the wrong type */
    int init[4] = {n, n, n, cst_i(f, 0, f32, 0)};
    int fo = xk_op_new(f, 0, XK_OP_FOR, init, 4, &f32, 1, a, L7);
    int body = xk_block_new(f, fo);
    f->ops[fo].body = body;
    xk_block_add_arg(f, body, i32);
    xk_block_add_arg(f, body, f32);
    xk_op_new(f, body, XK_OP_YIELD, &n, 1, NULL, 0, a, L7);
  }
  }
  return f;
}

START_TEST(verifier_rejects_with_location) {
  static const char *const why[] = {
      "operand types differ", "powers of two",
      "inner dimensions",     "first operand must be a pointer",
      "reduction axis",       "before its definition",
      "mask must be i1",      "barrier takes no operands",
      "yielded type"};
  xk_func *f = broken(_i);
  xk_diag d = {{0}};
  ck_assert_int_eq(xk_func_verify(f, &d), -1);
  ck_assert_msg(strstr(d.msg, "t.xk:7: in kernel 'bad'"), "%s", d.msg);
  ck_assert_msg(strstr(d.msg, why[_i]), "case %d: %s", _i, d.msg);
  xk_func_free(f);
}
END_TEST

/* The axis exchanges, fma and atomics: the verifier's rules, and an
 * atomic whose old value nobody reads survives the passes. */
static xk_func *broken_new_op(int which) {
  xk_func *f = xk_func_new("bad", "t.xk");
  int p = xk_func_add_arg(f, "P", xk_type_ptr(XK_F32));
  int32_t s8[1] = {8};
  xk_type t8 = xk_type_tile(XK_I32, 1, s8), f8 = xk_type_tile(XK_F32, 1, s8);
  int x = cst_i(f, 0, t8, 1);
  xk_attr a = {0};
  switch (which) {
  case 0: /* xorperm mask not a power of two */
    a.i = 3;
    xk_emit(f, 0, XK_OP_XORPERM, &x, 1, t8, a, L7);
    break;
  case 1: /* shift by the whole axis */
    a.i = 8;
    xk_emit(f, 0, XK_OP_SHIFT, &x, 1, t8, a, L7);
    break;
  case 2: { /* fma on integers */
    int o[3] = {x, x, x};
    xk_emit(f, 0, XK_OP_FMA, o, 3, t8, a, L7);
    break;
  }
  case 3: { /* f16 accumulation of f32 inputs */
    int32_t s88[2] = {8, 8};
    xk_type m = xk_type_tile(XK_F32, 2, s88);
    int y = cst_i(f, 0, m, 0);
    int o[3] = {y, y, y};
    a.i = XK_DOT_ACC_F16;
    xk_emit(f, 0, XK_OP_DOT, o, 3, m, a, L7);
    break;
  }
  default: { /* atomic max on f32 memory */
    int pt = xk_emit(f, 0, XK_OP_BROADCAST, &p, 1,
                     (xk_type){XK_PTR, XK_F32, 1, {8}}, a, L7);
    int o[2] = {pt, cst_i(f, 0, f8, 0)};
    a.rmw = XK_RMW_MAX;
    xk_emit(f, 0, XK_OP_ATOMIC, o, 2, f8, a, L7);
  }
  }
  return f;
}

START_TEST(verifier_rejects_new_ops) {
  static const char *const why[] = {"xorperm mask", "shift amount",
                                    "fma operands", "f16 accumulation needs",
                                    "atomics on i32"};
  xk_func *f = broken_new_op(_i);
  xk_diag d = {{0}};
  ck_assert_int_eq(xk_func_verify(f, &d), -1);
  ck_assert_msg(strstr(d.msg, "t.xk:7: in kernel 'bad'"), "%s", d.msg);
  ck_assert_msg(strstr(d.msg, why[_i]), "case %d: %s", _i, d.msg);
  xk_func_free(f);
}
END_TEST

START_TEST(unused_atomic_survives_passes) {
  xk_func *f = xk_func_new("k", "t.xk");
  int p = xk_func_add_arg(f, "P", xk_type_ptr(XK_I32));
  int o[2] = {p, cst_i(f, 0, xk_type_scalar(XK_I32), 1)};
  xk_attr a = {0};
  a.rmw = XK_RMW_XCHG;
  a.sem = XK_SEM_RELAXED;
  a.scope = XK_SCOPE_CTA;
  xk_emit(f, 0, XK_OP_ATOMIC, o, 2, xk_type_scalar(XK_I32), a, L7);
  xk_diag d;
  ck_assert_msg(xk_func_verify(f, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_passes_run(f, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(count_live(f, XK_OP_ATOMIC), 1);
  char *txt = xk_func_print(f);
  ck_assert_msg(strstr(txt, "= atomic xchg relaxed cta %0, %1 : i32"), "%s",
                txt);
  free(txt);
  xk_func_free(f);
}
END_TEST

static int lookup(void *ctx, const char *name, int64_t *v) {
  (void)ctx;
  if (!strcmp(name, "N"))
    return *v = 1000, 0;
  if (!strcmp(name, "BLOCK"))
    return *v = 128, 0;
  return -1;
}

START_TEST(grid_rules) {
  int64_t v;
  xk_diag d;
  ck_assert_int_eq(xk_grid_eval("cdiv(N, BLOCK)", lookup, NULL, &v, &d), 0);
  ck_assert_int_eq(v, 8);
  ck_assert_int_eq(
      xk_grid_eval(" (N + 24) / 8 * 2 - max(1, 3)", lookup, NULL, &v, &d), 0);
  ck_assert_int_eq(v, 253);
  ck_assert_int_eq(xk_grid_eval(NULL, lookup, NULL, &v, &d), 0);
  ck_assert_int_eq(v, 1);
  static const char *const bad[] = {"cdiv(N, 0)",
                                    "M",
                                    "N +",
                                    "foo(1, 2)",
                                    "N N",
                                    "-N",
                                    "9999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ck_assert_int_eq(xk_grid_eval(bad[i], lookup, NULL, &v, &d), -1);
    ck_assert_msg(strstr(d.msg, bad[i]), "%s", d.msg);
  }
}
END_TEST

/* Golden text of traced + optimized kernels: tests/golden/NAME.ir. Set
 * XK_UPDATE_GOLDEN=1 to rewrite them after an intended change. */
static const char *const golden_kernels[] = {"vadd", "softmax", "gemm_f16",
                                             "rebuild_k"};

START_TEST(printer_golden) {
  xk_dsl *dsl;
  xk_diag d;
  ck_assert_msg(xk_dsl_open(XK_SRC "/kernels.xk", &dsl, &d) == 0, "%s", d.msg);
  int k = xk_dsl_find(dsl, golden_kernels[_i]);
  ck_assert_int_ge(k, 0);
  xk_func *f;
  ck_assert_msg(xk_dsl_trace(dsl, k, NULL, 0, &f, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_passes_run(f, &d) == 0, "%s", d.msg);
  char *txt = xk_func_print(f);
  /* printing is a pure function of the IR */
  char *again = xk_func_print(f);
  ck_assert_str_eq(txt, again);
  char path[512];
  snprintf(path, sizeof path, XK_SRC "/tests/golden/%s.ir", golden_kernels[_i]);
  if (getenv("XK_UPDATE_GOLDEN")) {
    FILE *o = fopen(path, "w");
    ck_assert_ptr_nonnull(o);
    fputs(txt, o);
    fclose(o);
  }
  char *want = xk_read_file(path, NULL, &d);
  ck_assert_msg(want != NULL, "missing golden %s", path);
  ck_assert_msg(!strcmp(want, txt), "IR of %s differs from %s:\n%s",
                golden_kernels[_i], path, txt);
  free(want);
  free(txt);
  free(again);
  xk_func_free(f);
  xk_dsl_close(dsl);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ir");
  TCase *tc = tcase_create("ir");
  tcase_add_test(tc, fold_chain_and_identities);
  tcase_add_test(tc, fold_wraps_i32_and_float_compare);
  tcase_add_test(tc, cse_merges_across_scopes_only_downward);
  tcase_add_loop_test(tc, verifier_rejects_with_location, 0, 9);
  tcase_add_test(tc, barriers_survive_passes);
  tcase_add_loop_test(tc, verifier_rejects_new_ops, 0, 5);
  tcase_add_test(tc, unused_atomic_survives_passes);
  tcase_add_test(tc, grid_rules);
  tcase_add_loop_test(tc, printer_golden, 0,
                      sizeof golden_kernels / sizeof *golden_kernels);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
