/* The manifest round trip of float and string constexprs: const_kinds.xk
 * built by xkvgen -D ACTIVATION=relu -D ALPHA=0.25 at build time, loaded
 * from its directory and from the embedded table by the CPU device, and
 * launched against a C reference. xkv_const carries integers only, so the
 * variant is reached as the kernel's default and by its integer BLOCK. */
#include "xkv.h"

#include "check_main.h"
#include <stdio.h>
#include <string.h>

extern const xkv_embedded xk_const_kinds_host;

static void run(xkv_context *ctx) {
  enum { N = 300 };
  float x[N], y[N];
  for (int i = 0; i < N; i++)
    x[i] = (float)(i % 17) - 8.5f;
  xkv_arg a[3] = {xkv_arg_ptr(XKV_F32, x), xkv_arg_ptr(XKV_F32, y),
                  xkv_arg_i32(N)};
  xkv_const block = {"BLOCK", 128};
  for (int by_block = 0; by_block < 2; by_block++) {
    memset(y, 0, sizeof y);
    xkv_status s =
        xkv_launch_named(ctx, "act_scale", &block, by_block, NULL, a, 3, NULL);
    ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
    ck_assert_int_eq(xkv_sync(ctx), XKV_OK);
    for (int i = 0; i < N; i++)
      ck_assert_msg(y[i] == (x[i] > 0 ? x[i] : 0) * 0.25f, "y[%d] = %g", i,
                    (double)y[i]);
  }
  xkv_variant_info info;
  ck_assert_int_eq(xkv_variant_get_info(ctx, 0, &info), XKV_OK);
  ck_assert_int_eq(info.nconsts, 1); /* the int BLOCK only */
  ck_assert_str_eq(info.consts[0].name, "BLOCK");
}

START_TEST(from_directory) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  xkv_status s = xkv_registry_load(ctx, XK_CONST_KINDS_DIR);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  run(ctx);
  xkv_close(ctx);
}
END_TEST

START_TEST(from_embedded_table) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  xkv_status s = xkv_registry_add_embedded(ctx, &xk_const_kinds_host);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  run(ctx);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  Suite *su = suite_create("runtime_const_kinds");
  TCase *tc = tcase_create("const_kinds");
  tcase_add_test(tc, from_directory);
  tcase_add_test(tc, from_embedded_table);
  suite_add_tcase(su, tc);
  return xk_check_run(su);
}
