/* The kernels of kernels.xk, compiled by xkvgen --target host, launched
 * through the runtime's CPU device (from the output directory and from the
 * --embed table linked into this test) and compared with the plain C
 * references of kernel_cases.c. */
#include "dsl.h"
#include "kernel_cases.h"
#include "xkv.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD_BYTES XK_CASE_GUARD

extern const xkv_embedded xk_kernels_host;

/* Runs every case of every registered variant; returns the case count. */
static int run_registry(xkv_context *ctx) {
  xk_dsl *dsl;
  xk_diag d;
  ck_assert_msg(xk_dsl_open(XK_SRC "/kernels.xk", &dsl, &d) == 0, "%s", d.msg);
  int ncases = 0;
  for (int v = 0; v < xkv_num_variants(ctx); v++) {
    xkv_variant_info vi;
    ck_assert_int_eq(xkv_variant_get_info(ctx, v, &vi), XKV_OK);
    if (!xk_case_nsizes(vi.kernel))
      continue;
    xk_constexpr over[16];
    int n = 0;
    for (int i = 0; i < vi.nconsts && n < 14; i++)
      over[n++] = (xk_constexpr){(char *)vi.consts[i].name, vi.consts[i].value};
    over[n++] = (xk_constexpr){"num_warps", vi.num_warps};
    over[n++] = (xk_constexpr){"num_stages", vi.num_stages};
    xk_func *f;
    int ki = xk_dsl_find(dsl, vi.kernel);
    ck_assert_int_ge(ki, 0);
    ck_assert_msg(xk_dsl_trace(dsl, ki, over, n, &f, &d) == 0, "%s", d.msg);
    xkv_kernel *k;
    ck_assert_int_eq(xkv_kernel_find(ctx, vi.kernel, vi.consts, vi.nconsts, &k),
                     XKV_OK);
    for (int s = 0; s < xk_case_nsizes(vi.kernel); s++) {
      xk_case c;
      ck_assert_msg(xk_case_setup(vi.kernel, f, s, &c, &d) == 0, "%s", d.msg);
      xkv_arg args[XK_CASE_MAXARGS];
      void *dev[XK_CASE_MAXARGS] = {0};
      for (int i = 0; i < c.nargs; i++) {
        xk_type t = f->args[i].type;
        if (t.dtype == XK_PTR) {
          size_t bytes = c.bytes[i] + GUARD_BYTES;
          ck_assert_int_eq(xkv_alloc(ctx, bytes, &dev[i]), XKV_OK);
          ck_assert_int_eq(xkv_copy_h2d(ctx, dev[i], c.buf[i], bytes, NULL),
                           XKV_OK);
          args[i] = xkv_arg_ptr((xkv_dtype)t.elem, dev[i]);
        } else {
          ck_assert_int_eq(t.dtype, XK_I32);
          args[i] = xkv_arg_i32(c.ival[i]);
        }
      }
      xkv_grid g;
      ck_assert_int_eq(xkv_kernel_grid(ctx, k, args, c.nargs, &g), XKV_OK);
      ck_assert_msg(g.x == (uint32_t)c.grid[0] && g.y == (uint32_t)c.grid[1] &&
                        g.z == (uint32_t)c.grid[2],
                    "%s: grid rule gives (%u,%u,%u), the case (%d,%d,%d)",
                    c.desc, g.x, g.y, g.z, c.grid[0], c.grid[1], c.grid[2]);
      xkv_status st = xkv_launch(ctx, k, NULL, args, c.nargs, NULL);
      ck_assert_msg(st == XKV_OK, "%s", xkv_last_error(ctx));
      for (int i = 0; i < c.nargs; i++)
        if (dev[i]) {
          ck_assert_int_eq(xkv_copy_d2h(ctx, c.buf[i], dev[i],
                                        c.bytes[i] + GUARD_BYTES, NULL),
                           XKV_OK);
          xkv_free(ctx, dev[i]);
        }
      double err;
      ck_assert_msg(xk_case_check(&c, &err, &d) == 0, "%s (%s): %s", vi.symbol,
                    vi.source, d.msg);
      xk_case_free(&c);
      ncases++;
    }
    xk_func_free(f);
  }
  xk_dsl_close(dsl);
  return ncases;
}

START_TEST(kernels_from_directory) {
  setenv("XKV_NUM_THREADS", "2", 1);
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  unsetenv("XKV_NUM_THREADS");
  xkv_status s = xkv_registry_load(ctx, XK_HOST_DIR);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  ck_assert_int_ge(xkv_num_variants(ctx), 5);
  int n = run_registry(ctx);
  printf("directory %s: %d cases passed\n", XK_HOST_DIR, n);
  ck_assert_int_ge(n, 5);
  xkv_close(ctx);
}
END_TEST

START_TEST(kernels_from_embedded_table) {
  xkv_context *ctx;
  ck_assert_int_eq(xkv_open(&ctx, "cpu"), XKV_OK);
  xkv_status s = xkv_registry_add_embedded(ctx, &xk_kernels_host);
  ck_assert_msg(s == XKV_OK, "%s", xkv_last_error(ctx));
  ck_assert_int_eq(xkv_num_variants(ctx), xk_kernels_host.nvariants);
  int n = run_registry(ctx);
  printf("embedded table: %d cases passed\n", n);
  ck_assert_int_ge(n, 5);
  xkv_close(ctx);
}
END_TEST

int main(void) {
  Suite *su = suite_create("runtime_kernels");
  TCase *tc = tcase_create("kernels");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, kernels_from_directory);
  tcase_add_test(tc, kernels_from_embedded_table);
  suite_add_tcase(su, tc);
  return xk_check_run(su);
}
