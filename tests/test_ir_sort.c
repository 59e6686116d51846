/* The verifier's rules for SORT: a lowering with a native sort skips the
 * body, so a body with a side effect, or results that do not match what
 * the native sort gives, must be rejected, naming the op and its line. */
#include "ir.h"

#include "check_main.h"
#include <string.h>

static const xk_loc L7 = {7};

/* A sort of an f32[8] constant along axis 0; `which` breaks one rule
 * (-1: none). */
static xk_func *sort_func(int which) {
  xk_func *f = xk_func_new("k", "t.xk");
  int p = xk_func_add_arg(f, "P", xk_type_ptr(XK_F32));
  int32_t s8[1] = {8};
  xk_type ft = xk_type_tile(XK_F32, 1, s8), it = xk_type_tile(XK_I32, 1, s8);
  int x = xk_emit(f, 0, XK_OP_CONST, NULL, 0, ft, (xk_attr){0}, L7);
  xk_type rt[2] = {ft, which == 1 ? ft : it};
  int op = xk_op_new(f, 0, XK_OP_SORT, &x, 1, rt, 2, (xk_attr){.i = 1}, L7);
  int body = xk_block_new(f, op);
  f->ops[op].body = body;
  xk_attr ar = {.lo = 0, .hi = 8};
  int idx = xk_emit(f, body, XK_OP_ARANGE, NULL, 0, it, ar, L7);
  if (which == 0) { /* a store the host would drop */
    int pt = xk_emit(f, body, XK_OP_BROADCAST, &p, 1,
                     (xk_type){XK_PTR, XK_F32, 1, {8}}, (xk_attr){0}, L7);
    int o[2] = {pt, x};
    xk_op_new(f, body, XK_OP_STORE, o, 2, NULL, 0, (xk_attr){0}, L7);
  }
  int y[2] = {x, which == 2 ? x : idx};
  xk_op_new(f, body, XK_OP_YIELD, y, 2, NULL, 0, (xk_attr){0}, L7);
  if (which == 3)
    f->ops[op].attr.axis = 1;
  return f;
}

START_TEST(sort_verifies) {
  xk_func *f = sort_func(-1);
  xk_diag d;
  ck_assert_msg(xk_func_verify(f, &d) == 0, "%s", d.msg);
  xk_func_free(f);
}
END_TEST

START_TEST(sort_rejected) {
  static const char *const why[] = {"other than pure tile ops", "i32 indices",
                                    "yielded type", "axis out of range"};
  xk_func *f = sort_func(_i);
  xk_diag d = {{0}};
  ck_assert_int_eq(xk_func_verify(f, &d), -1);
  ck_assert_msg(strstr(d.msg, "t.xk:7: in kernel 'k'") && strstr(d.msg, "sort"),
                "%s", d.msg);
  ck_assert_msg(strstr(d.msg, why[_i]), "case %d: %s", _i, d.msg);
  xk_func_free(f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ir_sort");
  TCase *tc = tcase_create("verify");
  tcase_add_test(tc, sort_verifies);
  tcase_add_loop_test(tc, sort_rejected, 0, 4);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
