/* The Lua front end: kernels.xk traces and verifies at every tune value,
 * signatures match common.md, and small inline kernels pin down
 * broadcasting, promotion, for_range and override rules. */
#include "dsl.h"
#include "text.h"

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KERNELS XK_SRC "/kernels.xk"

static xk_dsl *open_kernels(void) {
  xk_dsl *D = NULL;
  xk_diag d = {{0}};
  int rc = xk_dsl_open(KERNELS, &D, &d);
  ck_assert_msg(rc == 0, "open: %s", d.msg);
  return D;
}

static const char *type_str(xk_type t) {
  static char buf[4][64];
  static int k;
  k = (k + 1) % 4;
  return xk_type_str(t, buf[k], sizeof buf[k]);
}

static const xk_op *nth_op(const xk_func *f, int code, int n) {
  for (int i = 0; i < f->nops; i++)
    if (!f->ops[i].dead && f->ops[i].code == code && n-- == 0)
      return &f->ops[i];
  return NULL;
}

static int count_ops(const xk_func *f, int code) {
  int n = 0;
  while (nth_op(f, code, n))
    n++;
  return n;
}

static xk_func *trace(xk_dsl *D, const char *name, const xk_constexpr *over,
                      int nover) {
  int i = xk_dsl_find(D, name);
  ck_assert_msg(i >= 0, "kernel %s missing", name);
  xk_func *f = NULL;
  xk_diag d = {{0}};
  int rc = xk_dsl_trace(D, i, over, nover, &f, &d);
  ck_assert_msg(rc == 0, "trace %s: %s", name, d.msg);
  ck_assert_int_eq(xk_func_verify(f, &d), 0);
  ck_assert_str_eq(f->name, name);
  ck_assert_str_eq(f->file, KERNELS);
  return f;
}

/* A kernel source in a temp file (the API loads files only). */
static char *write_tmp(const char *src) {
  char tmpl[] = "/tmp/xk_dsl_XXXXXX.xk";
  int fd = mkstemps(tmpl, 3);
  ck_assert_int_ge(fd, 0);
  size_t n = strlen(src);
  ck_assert_int_eq(write(fd, src, n), (ssize_t)n);
  close(fd);
  return strdup(tmpl);
}

/* Opens src and traces its first kernel; 0 or -1 with d filled. */
static int trace_src(const char *src, const xk_constexpr *over, int nover,
                     xk_func **f, xk_diag *d) {
  char *path = write_tmp(src);
  xk_dsl *D = NULL;
  *f = NULL;
  int rc = xk_dsl_open(path, &D, d);
  if (rc == 0) {
    rc = xk_dsl_trace(D, 0, over, nover, f, d);
    xk_dsl_close(D);
  }
  unlink(path);
  free(path);
  return rc;
}

static void expect_error(const char *src, const char *want, int line) {
  xk_func *f = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(trace_src(src, NULL, 0, &f, &d) != 0, "no error for %s", want);
  ck_assert_ptr_null(f);
  ck_assert_msg(strstr(d.msg, want), "'%s' not in: %s", want, d.msg);
  char loc[32];
  snprintf(loc, sizeof loc, ".xk:%d:", line);
  ck_assert_msg(strstr(d.msg, loc), "'%s' not in: %s", loc, d.msg);
}

START_TEST(all_kernels_default) {
  static const char *names[] = {"vadd",     "softmax",   "gemm_f32",
                                "gemm_f16", "gemm_bf16", "rebuild_k"};
  xk_dsl *D = open_kernels();
  ck_assert_int_ge(xk_dsl_nkernels(D), 6);
  ck_assert_str_eq(xk_dsl_path(D), KERNELS);
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq(xk_dsl_find(D, names[i]), i);
    xk_func *f = trace(D, names[i], NULL, 0);
    /* rebuild_k declares num_warps = 8 among its consts */
    ck_assert_int_eq(f->num_warps, i == 5 ? 8 : 4);
    ck_assert_int_eq(f->num_stages, 1);
    ck_assert_int_ge(count_ops(f, XK_OP_STORE), 1);
    xk_func_free(f);
  }
  ck_assert_int_eq(xk_dsl_find(D, "nope"), -1);
  ck_assert_ptr_null(xk_dsl_kernel(D, xk_dsl_nkernels(D)));
  xk_dsl_close(D);
}
END_TEST

/* kernels.xk from memory: the same kernels and traces as from the file;
 * errors name the given name and line */
START_TEST(open_buffer) {
  size_t len;
  xk_diag d = {{0}};
  char *text = xk_read_file(KERNELS, &len, &d);
  ck_assert_ptr_nonnull(text);
  xk_dsl *M = NULL, *D = open_kernels();
  ck_assert_msg(xk_dsl_open_buffer("mem.xk", text, len, &M, &d) == 0, "%s",
                d.msg);
  ck_assert_str_eq(xk_dsl_path(M), "mem.xk");
  ck_assert_int_eq(xk_dsl_nkernels(M), xk_dsl_nkernels(D));
  for (int i = 0; i < xk_dsl_nkernels(D); i++) {
    xk_func *a = trace(D, xk_dsl_kernel(D, i)->name, NULL, 0), *b;
    ck_assert_int_eq(xk_dsl_trace(M, i, NULL, 0, &b, &d), 0);
    ck_assert_str_eq(b->file, "mem.xk");
    char *pa = xk_func_print(a), *pb = xk_func_print(b);
    ck_assert_str_eq(pa, pb);
    free(pa);
    free(pb);
    xk_func_free(a);
    xk_func_free(b);
  }
  xk_dsl_close(M);
  xk_dsl_close(D);
  free(text);
  static const char bad[] = "kernel \"k\" {}\nx = (";
  ck_assert_int_ne(xk_dsl_open_buffer("mem.xk", bad, sizeof bad - 1, &M, &d),
                   0);
  ck_assert_ptr_null(M);
  ck_assert_msg(!strncmp(d.msg, "mem.xk:2: ", 10), "%s", d.msg);
  ck_assert_int_ne(xk_dsl_open_buffer("mem.xk", NULL, 0, &M, &d), 0);
}
END_TEST

/* every value of every tune dimension, one at a time */
START_TEST(all_kernels_every_tune_value) {
  xk_dsl *D = open_kernels();
  int traced = 0;
  for (int k = 0; k < xk_dsl_nkernels(D); k++) {
    const xk_kernel_spec *s = xk_dsl_kernel(D, k);
    ck_assert_int_ge(s->ntune, 1);
    int configs = 1;
    for (int t = 0; t < s->ntune; t++) {
      configs *= s->tune[t].n;
      if (t)
        ck_assert_int_lt(strcmp(s->tune[t - 1].name, s->tune[t].name), 0);
      for (int v = 0; v < s->tune[t].n; v++) {
        xk_constexpr o = {s->tune[t].name, s->tune[t].vals[v]};
        xk_func *f = trace(D, s->name, &o, 1);
        if (!strcmp(o.name, "num_warps"))
          ck_assert_int_eq(f->num_warps, o.value);
        else if (!strcmp(o.name, "num_stages"))
          ck_assert_int_eq(f->num_stages, o.value);
        else
          for (int c = 0; c < f->nconsts; c++)
            if (!strcmp(f->consts[c].name, o.name))
              ck_assert_int_eq(f->consts[c].value, o.value);
        xk_func_free(f);
        traced++;
      }
    }
    ck_assert_int_ge(configs, 3);
  }
  ck_assert_int_ge(traced, 30);
  xk_dsl_close(D);
}
END_TEST

static void check_args(const xk_kernel_spec *s, const char *const *names,
                       const char *const *types, int n) {
  ck_assert_int_eq(s->nargs, n);
  for (int i = 0; i < n; i++) {
    ck_assert_str_eq(s->args[i].name, names[i]);
    ck_assert_str_eq(type_str(s->args[i].type), types[i]);
  }
}

START_TEST(signatures) {
  xk_dsl *D = open_kernels();
  const xk_kernel_spec *s = xk_dsl_kernel(D, xk_dsl_find(D, "vadd"));
  check_args(s, (const char *[]){"X", "Y", "Z", "N"},
             (const char *[]){"ptr<f32>", "ptr<f32>", "ptr<f32>", "i32"}, 4);
  ck_assert_int_eq(s->nconsts, 1);
  ck_assert_str_eq(s->consts[0].name, "BLOCK");
  ck_assert_int_eq(s->consts[0].value, 1024);
  ck_assert_str_eq(s->grid[0], "cdiv(N, BLOCK)");
  ck_assert_ptr_null(s->grid[1]);
  ck_assert_int_gt(s->line, 0);

  s = xk_dsl_kernel(D, xk_dsl_find(D, "softmax"));
  check_args(s, (const char *[]){"X", "Y", "M", "N"},
             (const char *[]){"ptr<f32>", "ptr<f32>", "i32", "i32"}, 4);
  ck_assert_str_eq(s->grid[0], "M");

  static const char *const gemms[][2] = {{"gemm_f32", "ptr<f32>"},
                                         {"gemm_f16", "ptr<f16>"},
                                         {"gemm_bf16", "ptr<bf16>"}};
  for (int k = 0; k < 3; k++) {
    const char *dt = gemms[k][1];
    s = xk_dsl_kernel(D, xk_dsl_find(D, gemms[k][0]));
    check_args(s, (const char *[]){"A", "B", "C", "M", "N", "K"},
               (const char *[]){dt, dt, dt, "i32", "i32", "i32"}, 6);
    ck_assert_int_eq(s->nconsts, 3);
    ck_assert_str_eq(s->consts[0].name, "BLOCK_M");
    ck_assert_int_le(s->consts[0].value, 64);
    ck_assert_int_le(s->consts[1].value, 64);
    ck_assert_str_eq(s->grid[1], "cdiv(N, BLOCK_N)");
    ck_assert_int_eq(s->nkey, 3);
    ck_assert_str_eq(s->key[2], "K");
  }

  s = xk_dsl_kernel(D, xk_dsl_find(D, "rebuild_k"));
  check_args(s, (const char *[]){"A", "B", "pos", "cos", "sin", "K", "L"},
             (const char *[]){"ptr<f16>", "ptr<f16>", "ptr<i32>", "ptr<f32>",
                              "ptr<f32>", "ptr<f16>", "i32"},
             7);
  static const char *cn[] = {"R", "D", "BLOCK_N", "BLOCK_R"};
  static const int64_t cv[] = {64, 128, 32, 32};
  ck_assert_int_eq(s->nconsts, 4);
  for (int i = 0; i < 4; i++) {
    ck_assert_str_eq(s->consts[i].name, cn[i]);
    ck_assert_int_eq(s->consts[i].value, cv[i]);
  }
  ck_assert_int_eq(s->nkey, 2);
  ck_assert_str_eq(s->key[0], "R");
  ck_assert_str_eq(s->key[1], "D");
  xk_dsl_close(D);
}
END_TEST

START_TEST(gemm_shapes) {
  xk_dsl *D = open_kernels();
  xk_constexpr o[3] = {{"BLOCK_M", 64}, {"BLOCK_N", 16}, {"BLOCK_K", 32}};
  for (int k = 0; k < 2; k++) {
    xk_func *f = trace(D, k ? "gemm_f16" : "gemm_f32", o, 3);
    const char *dt = k ? "f16" : "f32";
    char a[32], b[32];
    snprintf(a, sizeof a, "%s[64,32]", dt);
    snprintf(b, sizeof b, "%s[32,16]", dt);
    ck_assert_int_eq(count_ops(f, XK_OP_DOT), 1);
    const xk_op *dot = nth_op(f, XK_OP_DOT, 0);
    ck_assert_str_eq(type_str(xk_vtype(f, dot->opnd[0])), a);
    ck_assert_str_eq(type_str(xk_vtype(f, dot->opnd[1])), b);
    ck_assert_str_eq(type_str(xk_vtype(f, dot->res[0])), "f32[64,16]");
    /* the dot sits in the K loop, which carries the f32 accumulator */
    const xk_op *loop = nth_op(f, XK_OP_FOR, 0);
    ck_assert_int_eq(dot->block, loop->body);
    ck_assert_int_eq(loop->nres, 1);
    ck_assert_str_eq(type_str(xk_vtype(f, loop->res[0])), "f32[64,16]");
    /* loop bound hi is the K argument itself (value 5 of the entry) */
    ck_assert_int_eq(loop->opnd[1], f->blocks[0].args[5]);
    const xk_op *st = nth_op(f, XK_OP_STORE, 0);
    ck_assert_int_eq(st->nopnd, 3); /* masked */
    snprintf(a, sizeof a, "%s[64,16]", dt);
    ck_assert_str_eq(type_str(xk_vtype(f, st->opnd[1])), a);
    ck_assert_int_eq(count_ops(f, XK_OP_LOAD), 2);
    ck_assert_int_eq(nth_op(f, XK_OP_LOAD, 0)->attr.has_mask, 1);
    ck_assert_int_eq(nth_op(f, XK_OP_LOAD, 0)->attr.has_other, 1);
    xk_func_free(f);
  }
  xk_dsl_close(D);
}
END_TEST

START_TEST(rebuild_k_shapes) {
  xk_dsl *D = open_kernels();
  xk_constexpr o[3] = {{"BLOCK_N", 32}, {"BLOCK_R", 16}, {"R", 48}};
  xk_func *f = trace(D, "rebuild_k", o, 3);
  ck_assert_int_eq(count_ops(f, XK_OP_DOT), 2);
  for (int i = 0; i < 2; i++) {
    const xk_op *dot = nth_op(f, XK_OP_DOT, i);
    ck_assert_str_eq(type_str(xk_vtype(f, dot->opnd[0])), "f16[32,16]");
    ck_assert_str_eq(type_str(xk_vtype(f, dot->opnd[1])), "f16[16,128]");
    ck_assert_str_eq(type_str(xk_vtype(f, dot->res[0])), "f32[32,128]");
  }
  /* the partner columns come from d ~ 1 */
  const xk_op *x = nth_op(f, XK_OP_XOR, 0);
  ck_assert_ptr_nonnull(x);
  const xk_op *one = &f->ops[f->values[x->opnd[1]].def_op];
  ck_assert_int_eq(one->code, XK_OP_CONST);
  ck_assert_int_eq(one->attr.i, 1);
  /* R = 48 is no power of two: the loop runs to the constant 48 */
  const xk_op *loop = nth_op(f, XK_OP_FOR, 0);
  ck_assert_int_eq(loop->nres, 2);
  ck_assert_int_eq(f->ops[f->values[loop->opnd[1]].def_op].attr.i, 48);
  ck_assert_int_eq(f->ops[f->values[loop->opnd[2]].def_op].attr.i, 16);
  const xk_op *st = nth_op(f, XK_OP_STORE, 0);
  ck_assert_str_eq(type_str(xk_vtype(f, st->opnd[1])), "f16[32,128]");
  ck_assert_int_eq(count_ops(f, XK_OP_LOAD), 6); /* A, B, B', pos, cos, sin */
  xk_func_free(f);
  xk_dsl_close(D);
}
END_TEST

START_TEST(softmax_loops) {
  xk_dsl *D = open_kernels();
  xk_func *f = trace(D, "softmax", NULL, 0);
  ck_assert_int_eq(count_ops(f, XK_OP_FOR), 2);
  const xk_op *l0 = nth_op(f, XK_OP_FOR, 0), *l1 = nth_op(f, XK_OP_FOR, 1);
  ck_assert_int_eq(l0->nres, 2);
  ck_assert_str_eq(type_str(xk_vtype(f, l0->res[0])), "f32");
  ck_assert_str_eq(type_str(xk_vtype(f, l0->res[1])), "f32");
  ck_assert_int_eq(l1->nres, 0);
  /* the running max starts at -inf */
  const xk_op *init = &f->ops[f->values[l0->opnd[3]].def_op];
  ck_assert_int_eq(init->code, XK_OP_CONST);
  ck_assert(init->attr.f < -1e308);
  ck_assert_int_eq(count_ops(f, XK_OP_REDUCE), 2);
  ck_assert_int_eq(nth_op(f, XK_OP_STORE, 0)->block, l1->body);
  xk_func_free(f);
  xk_dsl_close(D);
}
END_TEST

START_TEST(overrides) {
  xk_dsl *D = open_kernels();
  xk_constexpr o[2] = {{"BLOCK", 256}, {"num_warps", 8}};
  xk_func *f = trace(D, "vadd", o, 2);
  ck_assert_int_eq(f->consts[0].value, 256);
  ck_assert_int_eq(f->num_warps, 8);
  const xk_op *ar = nth_op(f, XK_OP_ARANGE, 0);
  ck_assert_int_eq(ar->attr.hi - ar->attr.lo, 256);
  xk_func_free(f);

  xk_diag d = {{0}};
  xk_constexpr bad = {"NOPE", 1};
  ck_assert_int_eq(xk_dsl_trace(D, 0, &bad, 1, &f, &d), -1);
  ck_assert_ptr_null(f);
  ck_assert_ptr_nonnull(strstr(d.msg, "unknown constexpr 'NOPE'"));
  ck_assert_ptr_nonnull(strstr(d.msg, "kernels.xk:"));
  xk_constexpr warps = {"num_warps", 3};
  ck_assert_int_eq(xk_dsl_trace(D, 0, &warps, 1, &f, &d), -1);
  ck_assert_ptr_nonnull(strstr(d.msg, "out of range"));
  /* a non power of two block fails in arange, naming the line */
  xk_constexpr odd = {"BLOCK", 100};
  ck_assert_int_eq(xk_dsl_trace(D, 0, &odd, 1, &f, &d), -1);
  ck_assert_ptr_nonnull(strstr(d.msg, "not a power of two"));
  ck_assert_ptr_nonnull(strstr(d.msg, "in kernel 'vadd'"));
  ck_assert_int_eq(xk_dsl_trace(D, 99, NULL, 0, &f, &d), -1);
  /* the state survives failed traces */
  f = trace(D, "vadd", NULL, 0);
  xk_func_free(f);
  xk_dsl_close(D);
}
END_TEST

#define PRE                                                                    \
  "local function expect(x, want)\n"                                           \
  "  if tostring(x) ~= want then\n"                                            \
  "    error(('got %s, want %s'):format(tostring(x), want), 2)\n"              \
  "  end\n"                                                                    \
  "end\n"

START_TEST(promotion_and_broadcast) {
  const char *src =
      PRE "kernel 't' {\n"
          "  args = { {'X', ptr(f32)}, {'H', ptr(f16)}, {'B', ptr(bf16)},\n"
          "           {'N', i32}, {'S', f32} },\n"
          "}(function(a, c)\n"
          "  local i, j = arange(16), arange(8)\n"
          "  expect(i, 'tile<i32[16]>')\n"
          "  local x, h, b = load(a.X + i), load(a.H + j), load(a.B + j)\n"
          "  expect(x:col() + h:row(), 'tile<f32[16,8]>')\n"
          "  expect(h + h, 'tile<f16[8]>')\n"
          "  expect(h + b, 'tile<f32[8]>')\n"
          "  expect(h * 2, 'tile<f16[8]>')\n"
          "  expect(2.5 * h, 'tile<f16[8]>')\n"
          "  expect(i + 1, 'tile<i32[16]>')\n"
          "  expect(i + 1.5, 'tile<f32[16]>')\n"
          "  expect(i / 2, 'tile<f32[16]>')\n"
          "  expect(i // 2, 'tile<i32[16]>')\n"
          "  expect(i % 3, 'tile<i32[16]>')\n"
          "  expect(i:lt(4), 'tile<i1[16]>')\n"
          "  expect(lt(4, i), 'tile<i1[16]>')\n"
          "  expect(i:lt(4) + 1, 'tile<i32[16]>')\n"
          "  expect(i:lt(4) & i:gt(1), 'tile<i1[16]>')\n"
          "  expect(~i:eq(4), 'tile<i1[16]>')\n"
          "  expect(i:to(i64) + i, 'tile<i64[16]>')\n"
          "  expect(i:to(i64) + x, 'tile<f32[16]>')\n"
          "  expect(a.N + i, 'tile<i32[16]>')\n"
          "  expect(a.S * i, 'tile<f32[16]>')\n"
          "  expect(a.X + i, 'tile<ptr<f32>[16]>')\n"
          "  expect(a.X + i:col() * 8 + j:row(), 'tile<ptr<f32>[16,8]>')\n"
          "  expect(1 - x, 'tile<f32[16]>')\n"
          "  expect(-x, 'tile<f32[16]>')\n"
          "  expect(x ^ 2, 'tile<f32[16]>')\n"
          "  expect(i ^ 0.5, 'tile<f32[16]>')\n"
          "  expect(i << 2, 'tile<i32[16]>')\n"
          "  expect(exp(i), 'tile<f32[16]>')\n"
          "  expect(x:exp(), 'tile<f32[16]>')\n"
          "  assert(math.type(abs(-3)) == 'integer' and exp(0) == 1.0)\n"
          "  expect(sum(x:col() + h:row(), 1), 'tile<f32[16]>')\n"
          "  expect(sum(x:col() + h:row(), -2), 'tile<f32[8]>')\n"
          "  expect(max(x), 'tile<f32>')\n"
          "  expect(x:min(0), 'tile<f32>')\n"
          "  expect(sum(i:lt(3)), 'tile<i32>')\n"
          "  expect(maximum(x, 0), 'tile<f32[16]>')\n"
          "  assert(maximum(2, 3) == 3 and minimum(2, 3) == 2)\n"
          "  expect(where(i:lt(3), x, 0), 'tile<f32[16]>')\n"
          "  expect(where(i:lt(3):col(), h:row(), 1), 'tile<f16[16,8]>')\n"
          "  expect(full({2, 4}, 7), 'tile<i32[2,4]>')\n"
          "  expect(full({}, 1.5), 'tile<f32>')\n"
          "  expect(zeros({4}, f16), 'tile<f16[4]>')\n"
          "  expect(broadcast(i, {4, 16}), 'tile<i32[4,16]>')\n"
          "  expect(reshape(broadcast(i, {4, 16}), {64}), 'tile<i32[64]>')\n"
          "  expect(trans(broadcast(j:col(), {8, 16})), 'tile<i32[16,8]>')\n"
          "  expect(expand_dims(i, -1), 'tile<i32[16,1]>')\n"
          "  expect(cast(i, bf16), 'tile<bf16[16]>')\n"
          "  expect(dot(broadcast(h:col(), {8, 16}), broadcast(h:row(), {16, "
          "8})),\n"
          "         'tile<f32[8,8]>')\n"
          "  assert(x.dtype == f32 and x.rank == 1 and x.shape[0] == 16 and "
          "#x.shape == 1)\n"
          "  assert((a.X + i).dtype == 'ptr<f32>')\n"
          "  assert(cdiv(10, 4) == 3)\n"
          "  expect(cdiv(a.N, 4), 'tile<i32>')\n"
          "  store(a.X + i:col(), x:col() + h:row())\n"
          "end)\n";
  xk_func *f = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(trace_src(src, NULL, 0, &f, &d) == 0, "%s", d.msg);
  /* h was promoted by an explicit CAST, shapes by EXPAND_DIMS/BROADCAST */
  int cast_f16_f32 = 0;
  for (int i = 0; i < f->nops; i++) {
    const xk_op *op = &f->ops[i];
    if (op->code == XK_OP_CAST && xk_vtype(f, op->opnd[0]).dtype == XK_F16 &&
        xk_vtype(f, op->res[0]).dtype == XK_F32)
      cast_f16_f32++;
  }
  ck_assert_int_ge(cast_f16_f32, 2);
  ck_assert_int_gt(count_ops(f, XK_OP_EXPAND_DIMS), 0);
  ck_assert_int_gt(count_ops(f, XK_OP_BROADCAST), 0);
  /* the store broadcasts the [16,1] pointers to the [16,8] value */
  const xk_op *st = nth_op(f, XK_OP_STORE, 0);
  ck_assert_str_eq(type_str(xk_vtype(f, st->opnd[0])), "ptr<f32>[16,8]");
  ck_assert_str_eq(type_str(xk_vtype(f, st->opnd[1])), "f32[16,8]");
  /* every op records its line: the store is on line 65 of the source */
  ck_assert_int_eq(st->loc.line, 65);
  xk_func_free(f);
}
END_TEST

START_TEST(for_range_rules) {
  const char *ok =
      "kernel 'k' { args = { {'X', ptr(f32)}, {'N', i32} } }(function(a, c)\n"
      "  local i = arange(16)\n"
      "  local s, n = for_range(0, a.N, 16, { zeros({16}), 0 },\n"
      "    function(j, s, n)\n"
      "      local t = for_range(j, j + 16, 4, 0.0, function(q, t)\n"
      "        return t + q\n" /* a number init became an f32 scalar */
      "      end)\n"
      "      return s + load(a.X + j + i) + t, n + 1\n"
      "    end)\n"
      "  local one = for_range(0, 4, 1, 1.0, function(q, v) return 2 end)\n"
      "  store(a.X + i, s + n + one)\n"
      "end)\n";
  xk_func *f = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(trace_src(ok, NULL, 0, &f, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(count_ops(f, XK_OP_FOR), 3);
  const xk_op *outer = nth_op(f, XK_OP_FOR, 0);
  const xk_op *inner = nth_op(f, XK_OP_FOR, 1);
  ck_assert_int_eq(inner->block, outer->body);
  ck_assert_str_eq(type_str(xk_vtype(f, outer->res[0])), "f32[16]");
  ck_assert_str_eq(type_str(xk_vtype(f, outer->res[1])), "i32");
  ck_assert_str_eq(type_str(xk_vtype(f, inner->res[0])), "f32");
  ck_assert_int_eq(outer->loc.line, 3);
  ck_assert_int_eq(inner->loc.line, 5);
  xk_func_free(f);

  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local s = for_range(0, 4, 1, zeros({16}), function(j, s)\n"
               "    return load(a.X + arange(16)):to(f16)\n"
               "  end)\n"
               "end)\n",
               "body returned tile<f16[16]> for carried value 1 of type "
               "tile<f32[16]>",
               2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local s = for_range(0, 4, 1, zeros({16}), function(j, s)\n"
               "    return s:col()\n"
               "  end)\n"
               "end)\n",
               "for carried value 1 of type tile<f32[16]>", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local s = for_range(0, 4, 1, {zeros({16}), 0}, "
               "function(j, s, n)\n"
               "    return s\n"
               "  end)\n"
               "end)\n",
               "body returned 1 value for 2 carried values", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local kept\n"
               "  for_range(0, 4, 1, nil, function(j) kept = j + 1 end)\n"
               "  store(a.X, kept)\n"
               "end)\n",
               "used outside it", 4);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)}, {'F', f32} } }"
               "(function(a, c)\n"
               "  for_range(0, a.F, 1, nil, function(j) end)\n"
               "end)\n",
               "hi must be an integer or a scalar i32 tile", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  for_range(0, 4, 0, nil, function(j) end)\n"
               "end)\n",
               "step must be positive", 2);
  /* an error deep in a body reports the body's line */
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  for_range(0, 4, 1, nil, function(j)\n"
               "    for_range(0, 4, 1, nil, function(q)\n"
               "      error({})\n"
               "    end)\n"
               "  end)\n"
               "end)\n",
               "error object is a table value", 4);
}
END_TEST

START_TEST(errors_and_recovery) {
  /* a kernel may catch an op error with pcall and go on tracing */
  const char *src =
      "kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
      "  local ok, err = pcall(for_range, 0, 4, 1, nil, function(j)\n"
      "    load(a.X + j, { mask = j })\n"
      "  end)\n"
      "  assert(not ok and err:find('mask must be an i1 tile'))\n"
      "  assert(err:find(':3: in kernel'))\n"
      "  store(a.X + arange(4), 1.0)\n"
      "end)\n";
  xk_func *f = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(trace_src(src, NULL, 0, &f, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(nth_op(f, XK_OP_STORE, 0)->block, 0);
  xk_func_free(f);
  /* tiles do not outlive their trace */
  src = "local kept\n"
        "kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
        "  if kept then store(a.X, kept) end\n"
        "  kept = load(a.X)\n"
        "end)\n";
  char *path = write_tmp(src);
  xk_dsl *D = NULL;
  ck_assert_int_eq(xk_dsl_open(path, &D, &d), 0);
  ck_assert_int_eq(xk_dsl_trace(D, 0, NULL, 0, &f, &d), 0);
  xk_func_free(f);
  ck_assert_int_eq(xk_dsl_trace(D, 0, NULL, 0, &f, &d), -1);
  ck_assert_ptr_nonnull(strstr(d.msg, "from another trace"));
  /* the Lua `if` on the kept tile is where it is first met */
  ck_assert_ptr_nonnull(strstr(d.msg, ".xk:3: in kernel 'k': if:"));
  xk_dsl_close(D);
  unlink(path);
  free(path);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local p = a.X\n"
               "  p.foo = 1\n"
               "end)\n",
               "tiles are immutable", 3);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  c.BLOCK = 1\n"
               "end)\n",
               "c is read-only", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local y = a.Y\n"
               "end)\n",
               "a.Y: no such argument (X)", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  store(a.X + arange(4), 1.0, { maks = arange(4):lt(2) })\n"
               "end)\n",
               "unknown option 'maks'", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local x = a.X + arange(4)\n"
               "  local y = a.X\n"
               "  local z = x:frob()\n"
               "end)\n",
               "no field or method 'frob'", 4);
  expect_error("kernel 'k' { args = { {'X', ptr(f16)} } }(function(a, c)\n"
               "  atomic_add(a.X, 1.0)\n"
               "end)\n",
               "atomic_add: supports f32, i32 and i64", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local t = full({64, 64, 64, 64}, 0)\n"
               "end)\n",
               "at most 3", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local t = zeros({2048, 2048})\n"
               "end)\n",
               "larger than", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local t = max(arange(4), arange(4))\n"
               "end)\n",
               "use maximum(a, b)", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local t = arange(4) // 1.5\n"
               "end)\n",
               "'//' needs integer operands", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local t = a.X * 2\n"
               "end)\n",
               "pointers only take ptr + offset", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  load(a.X, { other = 0 })\n"
               "end)\n",
               "'other' without a mask", 2);
  expect_error("local t = arange(4)\n", "only allowed inside a kernel body", 1);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} }, consts = { {'B', "
               "false} } }(function(a, c) end)\n",
               "const 'B' must be an integer, a finite float or a string "
               "(got the boolean false)",
               1);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "end)\n"
               "kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "end)\n",
               "declared twice (first at line 1)", 3);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} }, grid = { 'cdiv(X, "
               "4)' } }(function(a, c) end)\n",
               "names 'X', which is neither", 1);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} }, gird = {} }"
               "(function(a, c) end)\n",
               "unknown spec field 'gird'", 1);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)}, {'X', i32} } }"
               "(function(a, c) end)\n",
               "duplicate name 'X'", 1);
  expect_error("kernel 'k' { args = { {'X', f16} } }(function(a, c) end)\n",
               "scalar args are i32, i64 or f32", 1);
  expect_error("local s = load\nlocal x = load('x')\n", "only allowed", 2);
}
END_TEST

/* barrier() records a BARRIER op where it is called, in loop bodies too,
 * and prints as `barrier`; arguments are refused at their line. */
START_TEST(barrier_op) {
  const char *src =
      "kernel 'k' { args = { {'X', ptr(f32)}, {'N', i32} } }(function(a, c)\n"
      "  local i = arange(16)\n"
      "  store(a.X + i, 1.0)\n"
      "  barrier()\n"
      "  for_range(0, a.N, 16, nil, function(j)\n"
      "    store(a.X + 16 + j + i, load(a.X + 15 - i))\n"
      "    barrier()\n"
      "  end)\n"
      "end)\n";
  xk_func *f = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(trace_src(src, NULL, 0, &f, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_func_verify(f, &d) == 0, "%s", d.msg);
  ck_assert_int_eq(count_ops(f, XK_OP_BARRIER), 2);
  const xk_op *top = nth_op(f, XK_OP_BARRIER, 0);
  const xk_op *in = nth_op(f, XK_OP_BARRIER, 1);
  ck_assert_int_eq(top->block, 0);
  ck_assert_int_eq(in->block, nth_op(f, XK_OP_FOR, 0)->body);
  ck_assert_int_eq(top->loc.line, 4);
  ck_assert_int_eq(in->loc.line, 7);
  ck_assert_int_eq(top->nopnd + top->nres, 0);
  /* between the first store and the loop; last in the body but the yield */
  char *txt = xk_func_print(f);
  const char *st = strstr(txt, "\n  store "),
             *bar = strstr(txt, "\n  barrier\n");
  ck_assert_msg(st && bar && st < bar && bar < strstr(txt, "\n  for "), "%s",
                txt);
  ck_assert_msg(strstr(txt, "\n    barrier\n    yield\n"), "%s", txt);
  free(txt);
  xk_func_free(f);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  barrier(1)\n"
               "end)\n",
               "in kernel 'k': barrier: takes no arguments (got 1)", 2);
  expect_error("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
               "  local x = load(a.X)\n"
               "  barrier(x, nil)\n"
               "end)\n",
               "barrier: takes no arguments (got 2)", 3);
  expect_error("barrier()\n", "barrier: only allowed inside a kernel body", 1);
}
END_TEST

/* Nonsense must fail with a located message, never crash or hang. */
START_TEST(robustness) {
  static const struct {
    const char *src, *want;
  } cases[] = {
      {"kernel(nil)\n", "the name must be an identifier"},
      {"kernel 'k' (5)\n", "expected a spec table"},
      {"kernel 'k' {} (5)\n", "expected the body"},
      {"kernel 'k' { args = { {1, 2} } }(function() end)\n",
       "is not an identifier"},
      {"kernel 'k' { args = { {'X'} } }(function() end)\n",
       "must be a pair {name, dtype}"},
      {"kernel 'k' { consts = { {'B', 4} }, tune = { B = 'x' } }"
       "(function() end)\n",
       "tune values must be a list"},
      {"kernel 'k' { tune = { {1} } }(function() end)\n", "tune names"},
      {"kernel 'k' { consts = { {'B', 4} }, tune = { B = {} } }"
       "(function() end)\n",
       "lists no values"},
      {"kernel 'k' { grid = { 1 } }(function() end)\n",
       "must be a string expression"},
      {"kernel 'k' { grid = { 'a; os.exit()' } }(function() end)\n",
       "names 'a'"},
      {"kernel 'k' { consts = { {'num_warps', 3} } }(function() end)\n",
       "num_warps = 3 is out of range"},
      {"kernel 'k' { tune = { num_warps = {64} } }(function() end)\n",
       "out of range"},
      {"kernel 'k' {}(function(a, c) load() end)\n",
       "load through a non-pointer (a nil)"},
      {"kernel 'k' {}(function(a, c) store() end)\n", "non-pointer"},
      {"kernel 'k' {}(function(a, c) dot() end)\n", "a must be a tile"},
      {"kernel 'k' {}(function(a, c) for_range() end)\n",
       "body must be a function"},
      {"kernel 'k' {}(function(a, c) arange() end)\n",
       "n must be a Lua integer"},
      {"kernel 'k' {}(function(a, c) arange(1 << 40) end)\n", "outside"},
      {"kernel 'k' {}(function(a, c) full() end)\n", "shape must be a list"},
      {"kernel 'k' {}(function(a, c) full({3}, 1) end)\n",
       "powers of two (dim 0 is 3)"},
      {"kernel 'k' {}(function(a, c) reshape(arange(4), {8}) end)\n",
       "element counts differ"},
      {"kernel 'k' {}(function(a, c) trans(arange(4)) end)\n",
       "needs a tile with 2 or 3 dims"},
      {"kernel 'k' {}(function(a, c) trans(zeros({2, 4}), {0, 0}) end)\n",
       "not a permutation"},
      {"kernel 'k' {}(function(a, c) where() end)\n",
       "condition must be an i1 tile"},
      {"kernel 'k' {}(function(a, c) cast(arange(4), ptr(f32)) end)\n",
       "unknown dtype 'ptr<f32>'"},
      {"kernel 'k' {}(function(a, c) program_id(3) end)\n", "outside [0, 2]"},
      {"kernel 'k' {}(function(a, c) expand_dims(zeros({2, 2, 2}), 0) end)\n",
       "already has 3 dims"},
      {"kernel 'k' {}(function(a, c) local x = arange(4) .. 'x' end)\n",
       "attempt to concatenate"},
      {"kernel 'k' {}(function(a, c) local x = #arange(4) end)\n",
       "attempt to get length"},
      {"kernel 'k' {}(function(a, c) arange(4)() end)\n", "attempt to call"},
      {"kernel 'k' {}(function(a, c) getmetatable(arange(4)).__add = 1 end)\n",
       "attempt to index a string value"},
      {"kernel 'k' {}(function(a, c) setmetatable(a, nil) end)\n",
       "protected metatable"},
      {"kernel 'k' {}(function(a, c) kernel 'j' {}(function() end) end)\n",
       "declare kernels at the top"},
      {"kernel 'k' {}(function(a, c) load = nil end)\nlocal s = "
       "string.rep('x', 1 << 30)\n",
       "not enough memory"},
      {"local f = loadstring or load\n", "unknown name 'loadstring'"},
      {"dofile('/etc/passwd')\n", "unknown name 'dofile'"},
      {"io.open('/etc/passwd')\n", "unknown name 'io'"},
      {"kernel 'k' {}(function(a, c) dot(zeros({2, 2}), zeros({2, 2}), "
       "zeros({2, 2}, f16)) end)\n",
       "accumulator must be tile<f32[2,2]>"},
      {"kernel 'k' {}(function(a, c) dot(arange(4):col(), arange(4):row()) "
       "end)\n",
       "inputs must be f16, bf16 or f32"},
      {"kernel 'k' {}(function(a, c) local x = zeros({4}) ^ zeros({2}) "
       "end)\n",
       "shapes do not broadcast"},
      {"kernel 'k' {}(function(a, c) local x = ~zeros({4}) end)\n",
       "'~' needs an integer"},
      {"kernel 'k' {}(function(a, c) local x = zeros({4}) & 1 end)\n",
       "bitwise ops need integer"},
      {"kernel 'k' {}(function(a, c) local x = arange(4) + 'a' end)\n",
       "right operand must be a tile or a number (got a string)"},
      {"kernel 'k' {}(function(a, c) local x = full({4}, 1 << 40, i32) "
       "end)\n",
       "does not fit in i32"},
      {"kernel 'k' {}(function(a, c) local x = full({4}, 0/0, i32) end)\n",
       "does not fit in i32"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    xk_func *f = NULL;
    xk_diag d = {{0}};
    ck_assert_msg(trace_src(cases[i].src, NULL, 0, &f, &d) != 0,
                  "no error for %s", cases[i].src);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(d.msg, cases[i].want), "'%s' not in: %s",
                  cases[i].want, d.msg);
    ck_assert_msg(strstr(d.msg, ".xk:1: ") || strstr(d.msg, ".xk:2: ") ||
                      strstr(d.msg, ".xk: not enough memory"),
                  "no location in: %s", d.msg);
  }
}
END_TEST

/* The condition guards (cond_lint.c) keep what Lua conditions on Lua
 * values mean: the trace stores 1 only when every check below held. */
START_TEST(lua_conditions_keep_meaning) {
  const char *src =
      "kernel 'k' { args = { {'X', ptr(i32)} }, consts = { {'B', 64} } }"
      "(function(a, c)\n"
      "  local ok, s, n = 1, 'if x then', 0\n"
      "  --[[ if a.X then end ]] -- if a.X == 0 then\n"
      "  if not c.B == false then else ok = 0 end\n"
      "  if c.B == 64 and not (c.B ~= 64) or false then else ok = 0 end\n"
      "  if s == \"if x then\" and #s == 9 then else ok = 0 end\n"
      "  if c.B ~= 64 then ok = 0 elseif c.B == 2 ^ 6 then n = 1 end\n"
      "  while n < 4 and n ~= 9 do n = n + 1 end\n"
      "  if n ~= 4 or [[x]] ~= 'x' then ok = 0 end\n"
      "  if a.X.dtype == 'ptr<i32>' then else ok = 0 end\n"
      "  store(a.X, ok)\n"
      "end)\n";
  xk_func *f = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(trace_src(src, NULL, 0, &f, &d) == 0, "%s", d.msg);
  const xk_op *st = nth_op(f, XK_OP_STORE, 0);
  const xk_op *k = &f->ops[f->values[st->opnd[1]].def_op];
  ck_assert_int_eq(k->code, XK_OP_CONST);
  ck_assert_int_eq(k->attr.i, 1);
  xk_func_free(f);
}
END_TEST

/* x.shape[0] is the first dim, like axis 0; #x.shape is the rank, and a
 * shape table feeds the ops that take shapes. */
START_TEST(shape_counts_from_zero) {
  const char *src =
      "kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
      "  local x = zeros({ 4, 8 })\n"
      "  assert(x.shape[0] == 4 and x.shape[1] == 8 and #x.shape == 2)\n"
      "  assert(sum(x, 0).shape[0] == x.shape[1])\n"
      "  local y = zeros(x.shape, i32)\n"
      "  assert(y.shape[0] == 4 and y.shape[1] == 8)\n"
      "  static_assert(#x.shape == 2, 'rank 2')\n"
      "  static_assert(x.dtype == f32)\n"
      "  store(a.X + arange(4):col() * 8 + arange(8):row(), reshape(x, "
      "x.shape))\n"
      "end)\n";
  xk_func *f = NULL;
  xk_diag d = {{0}};
  ck_assert_msg(trace_src(src, NULL, 0, &f, &d) == 0, "%s", d.msg);
  xk_func_free(f);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("dsl");
  TCase *tc = tcase_create("dsl");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, all_kernels_default);
  tcase_add_test(tc, open_buffer);
  tcase_add_test(tc, all_kernels_every_tune_value);
  tcase_add_test(tc, signatures);
  tcase_add_test(tc, gemm_shapes);
  tcase_add_test(tc, rebuild_k_shapes);
  tcase_add_test(tc, softmax_loops);
  tcase_add_test(tc, overrides);
  tcase_add_test(tc, promotion_and_broadcast);
  tcase_add_test(tc, barrier_op);
  tcase_add_test(tc, for_range_rules);
  tcase_add_test(tc, errors_and_recovery);
  tcase_add_test(tc, robustness);
  tcase_add_test(tc, lua_conditions_keep_meaning);
  tcase_add_test(tc, shape_counts_from_zero);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return xk_check_run(suite());
}
