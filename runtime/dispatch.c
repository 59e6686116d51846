/* Launch-time work: resolving a kernel and its constexprs to a
 * configuration, checking arguments against the manifest signature,
 * choosing the most specialized variant whose assumptions hold, and the
 * grid (explicit, or the manifest's rule evaluated by codegen/grid.c). */
#include "grid.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

static int is_meta(const char *name) {
  return !strcmp(name, "num_warps") || !strcmp(name, "num_stages");
}

static int const_value(const rt_variant *v, const char *name, int64_t *out) {
  if (!strcmp(name, "num_warps"))
    return *out = v->num_warps, 1;
  if (!strcmp(name, "num_stages"))
    return *out = v->num_stages, 1;
  for (int i = 0; i < v->nconsts; i++)
    if (!strcmp(v->consts[i].name, name))
      return *out = v->consts[i].value, 1;
  return 0;
}

static int matches(const rt_variant *v, const xkv_const *c, int n) {
  for (int i = 0; i < n; i++) {
    int64_t x;
    if (!const_value(v, c[i].name, &x) || x != c[i].value)
      return 0;
  }
  return 1;
}

static void list_kernels(const xkv_context *ctx, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < ctx->nvars && k < n; i++) {
    const char *name = ctx->vars[i]->kernel;
    int seen = 0;
    for (int j = 0; j < i && !seen; j++)
      seen = !strcmp(ctx->vars[j]->kernel, name);
    if (!seen)
      k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? ", " : "", name);
  }
  if (!ctx->nvars)
    snprintf(buf, n, "none: load a manifest or an embedded table first");
}

static void list_values(const xkv_context *ctx, const char *kernel, char *buf,
                        size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < ctx->nkernels && k < n; i++) {
    const rt_variant *v = ctx->kernels[i]->v[0];
    if (strcmp(v->kernel, kernel))
      continue;
    k += (size_t)snprintf(buf + k, n - k, "%s{", k ? "; " : "");
    for (int j = 0; j < v->nconsts && k < n; j++)
      k += (size_t)snprintf(buf + k, n - k, "%s=%lld ", v->consts[j].name,
                            (long long)v->consts[j].value);
    if (k < n)
      k += (size_t)snprintf(buf + k, n - k, "num_warps=%d}", v->num_warps);
  }
}

xkv_status xkv_kernel_find(xkv_context *ctx, const char *kernel,
                           const xkv_const *consts, int nconsts,
                           xkv_kernel **out) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!kernel || !out || nconsts < 0 || (nconsts && !consts))
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_kernel_find: bad arguments");
  *out = NULL;
  const rt_variant *any = NULL;
  for (int i = 0; i < ctx->nkernels && !any; i++)
    if (!strcmp(ctx->kernels[i]->v[0]->kernel, kernel))
      any = ctx->kernels[i]->v[0];
  if (!any) {
    char names[512];
    list_kernels(ctx, names, sizeof names);
    return rt_err(ctx, XKV_ERR_NOT_FOUND,
                  "no kernel '%s' in the registry (kernels: %s)", kernel,
                  names);
  }
  int nreal = 0;
  for (int i = 0; i < nconsts; i++) {
    int64_t x;
    if (!consts[i].name)
      return rt_err(ctx, XKV_ERR_INVALID,
                    "xkv_kernel_find(%s): constexpr %d has no name", kernel, i);
    if (!const_value(any, consts[i].name, &x))
      return rt_err(ctx, XKV_ERR_NOT_FOUND, "kernel '%s' has no constexpr '%s'",
                    kernel, consts[i].name);
    nreal += !is_meta(consts[i].name);
  }
  /* 1. exact match of every constexpr. 2. the first in registry order
   * matching the subset: xkvgen writes the kernel's default configuration
   * first. With a tune cache, either becomes an auto handle that picks the
   * tuned configuration per launch (tune_choose.c). */
  xkv_kernel *first = NULL;
  for (int i = 0; i < ctx->nkernels; i++) {
    xkv_kernel *k = ctx->kernels[i];
    const rt_variant *v = k->v[0];
    if (strcmp(v->kernel, kernel) || !matches(v, consts, nconsts))
      continue;
    if (nreal == v->nconsts) {
      first = k;
      break;
    }
    if (!first)
      first = k;
  }
  if (first) {
    if (!(*out = rt_tune_auto(ctx, first, consts, nconsts)))
      return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_kernel_find(%s)", kernel);
    return XKV_OK;
  }
  char want[256], have[512];
  size_t w = 0;
  want[0] = 0;
  for (int i = 0; i < nconsts && w < sizeof want; i++)
    w += (size_t)snprintf(want + w, sizeof want - w, "%s%s=%lld", i ? ", " : "",
                          consts[i].name, (long long)consts[i].value);
  list_values(ctx, kernel, have, sizeof have);
  return rt_err(ctx, XKV_ERR_NOT_FOUND,
                "no variant of kernel '%s' with %s (built: %s)", kernel, want,
                have);
}

static const char *type_name(int is_ptr, int dt, char *buf, size_t n) {
  snprintf(buf, n, is_ptr ? "ptr<%s>" : "%s", rt_dtype_name(dt));
  return buf;
}

/* Does the variant's specialization hold for these arguments? */
static int spec_holds(const rt_variant *v, const xkv_arg *a) {
  if (!v->nspec)
    return 1;
  for (int i = 0; i < v->nargs; i++) {
    int64_t x = 0;
    switch (v->arg_spec[i]) {
    case RT_SPEC_NONE:
      continue;
    case RT_SPEC_ALIGN16:
      if ((uintptr_t)a[i].v.p & 15)
        return 0;
      continue;
    default:
      x = a[i].dtype == XKV_I64 ? a[i].v.i64 : a[i].v.i32;
      if (v->arg_spec[i] == RT_SPEC_DIV16 ? x % 16 != 0 : x != 1)
        return 0;
    }
  }
  return 1;
}

static xkv_status choose(xkv_context *ctx, xkv_kernel *k, const xkv_arg *args,
                         int nargs, rt_variant **out) {
  k = rt_tune_choose(ctx, k, args, nargs);
  const rt_variant *g = k->v[k->n - 1];
  if (nargs != g->nargs || (nargs && !args))
    return rt_err(ctx, XKV_ERR_ARGS,
                  "xkv_launch(%s): %d arguments given, the kernel takes %d "
                  "(%s)",
                  g->kernel, nargs, g->nargs, g->signature);
  for (int i = 0; i < nargs; i++) {
    if (args[i].is_ptr != g->arg_ptr[i] || args[i].dtype != g->arg_dtype[i]) {
      char want[32], got[32];
      return rt_err(
          ctx, XKV_ERR_ARGS,
          "xkv_launch(%s): argument %d '%s' must be %s, got %s", g->kernel, i,
          g->arg_names[i],
          type_name(g->arg_ptr[i], g->arg_dtype[i], want, sizeof want),
          type_name(args[i].is_ptr, args[i].dtype, got, sizeof got));
    }
  }
  for (int i = 0; i < k->n; i++)
    if (spec_holds(k->v[i], args)) {
      *out = k->v[i];
      return XKV_OK;
    }
  /* Unreachable when a generic variant exists. */
  return rt_err(ctx, XKV_ERR_NOT_FOUND,
                "xkv_launch(%s): no variant without argument specialization "
                "was built, and these arguments fit none of the specialized "
                "ones",
                g->kernel);
}

typedef struct {
  const rt_variant *v;
  const xkv_arg *args;
} grid_env;

static int lookup(void *p, const char *name, int64_t *out) {
  const grid_env *e = p;
  const rt_variant *v = e->v;
  for (int i = 0; i < v->nargs; i++) {
    if (strcmp(v->arg_names[i], name) || v->arg_ptr[i])
      continue;
    if (v->arg_dtype[i] == XKV_I32)
      return *out = e->args[i].v.i32, 0;
    if (v->arg_dtype[i] == XKV_I64)
      return *out = e->args[i].v.i64, 0;
    return -1;
  }
  for (int i = 0; i < v->nconsts; i++)
    if (!strcmp(v->consts[i].name, name))
      return *out = v->consts[i].value, 0;
  return -1;
}

static int64_t operand(const rt_operand *o, const rt_variant *v,
                       const xkv_arg *args) {
  if (o->arg < 0)
    return o->value;
  return v->arg_dtype[o->arg] == XKV_I64 ? args[o->arg].v.i64
                                         : args[o->arg].v.i32;
}

/* The precompiled rule; 0 when it does not apply or would fail (then
 * xk_grid_eval runs and words the error). */
static int fast_rule(const rt_rule *r, const rt_variant *v, const xkv_arg *args,
                     int64_t *out) {
  if (r->kind == RT_RULE_GENERAL)
    return 0;
  int64_t a = operand(&r->a, v, args), x = a;
  if (r->kind == RT_RULE_CDIV) {
    int64_t b = operand(&r->b, v, args), t;
    if (b == 0 || (b == -1 && a == INT64_MIN) ||
        __builtin_add_overflow(a, b - 1, &t))
      return 0;
    x = t / b;
  }
  if (x < 0 || x > INT32_MAX)
    return 0;
  *out = x;
  return 1;
}

static xkv_status grid_of(xkv_context *ctx, const rt_variant *v,
                          const xkv_arg *args, uint32_t g[3]) {
  grid_env env = {v, args};
  if (v->no_grid)
    return rt_err(ctx, XKV_ERR_GRID,
                  "xkv_launch(%s): the kernel has no grid rule (no grid = "
                  "{...} in its kernels.xk spec), so the launch must pass "
                  "an explicit xkv_grid",
                  v->kernel);
  for (int i = 0; i < 3; i++) {
    xk_diag d;
    int64_t x;
    if (fast_rule(&v->rule[i], v, args, &x)) {
      g[i] = (uint32_t)x;
      continue;
    }
    if (xk_grid_eval(v->grid[i], lookup, &env, &x, &d))
      return rt_err(ctx, XKV_ERR_GRID, "xkv_launch(%s): %s", v->kernel, d.msg);
    g[i] = (uint32_t)x; /* xk_grid_eval bounds it to [0, INT32_MAX] */
  }
  return XKV_OK;
}

static xkv_status check_handle(xkv_context *ctx, const xkv_kernel *k,
                               const char *fn) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!ctx->ops)
    return rt_err(ctx, XKV_ERR_INVALID, "%s: the context failed to open", fn);
  if (!k)
    return rt_err(ctx, XKV_ERR_INVALID, "%s: kernel handle is NULL", fn);
  return XKV_OK;
}

xkv_status xkv_launch(xkv_context *ctx, xkv_kernel *k, const xkv_grid *grid,
                      const xkv_arg *args, int nargs, xkv_stream *stream) {
  xkv_status s = check_handle(ctx, k, "xkv_launch");
  rt_variant *v;
  if (s || (s = choose(ctx, k, args, nargs, &v)))
    return s;
  uint32_t g[3];
  if (grid) {
    g[0] = grid->x;
    g[1] = grid->y;
    g[2] = grid->z;
  } else if ((s = grid_of(ctx, v, args, g))) {
    return s;
  }
  if (!g[0] || !g[1] || !g[2])
    return XKV_OK; /* an empty grid, e.g. N == 0: nothing to do */
  uint64_t total;
  if (__builtin_mul_overflow((uint64_t)g[0] * g[1], (uint64_t)g[2], &total) ||
      total > INT64_MAX)
    return rt_err(ctx, XKV_ERR_GRID,
                  "xkv_launch(%s): grid (%u, %u, %u) too "
                  "large",
                  v->kernel, g[0], g[1], g[2]);
  void *params[RT_MAX_ARGS];
  for (int i = 0; i < nargs; i++)
    params[i] = (void *)&args[i].v;
  return ctx->ops->launch(ctx, v, g, params, stream);
}

xkv_status xkv_launch_named(xkv_context *ctx, const char *kernel,
                            const xkv_const *consts, int nconsts,
                            const xkv_grid *grid, const xkv_arg *args,
                            int nargs, xkv_stream *stream) {
  xkv_kernel *k;
  xkv_status s = xkv_kernel_find(ctx, kernel, consts, nconsts, &k);
  return s ? s : xkv_launch(ctx, k, grid, args, nargs, stream);
}

xkv_status xkv_kernel_grid(xkv_context *ctx, xkv_kernel *k, const xkv_arg *args,
                           int nargs, xkv_grid *out) {
  xkv_status s = check_handle(ctx, k, "xkv_kernel_grid");
  rt_variant *v;
  uint32_t g[3];
  if (s || (s = choose(ctx, k, args, nargs, &v)) ||
      (s = grid_of(ctx, v, args, g)))
    return s;
  if (!out)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_kernel_grid: out is NULL");
  out->x = g[0];
  out->y = g[1];
  out->z = g[2];
  return XKV_OK;
}

xkv_status xkv_kernel_select(xkv_context *ctx, xkv_kernel *k,
                             const xkv_arg *args, int nargs,
                             const char **symbol) {
  xkv_status s = check_handle(ctx, k, "xkv_kernel_select");
  rt_variant *v;
  if (s || (s = choose(ctx, k, args, nargs, &v)))
    return s;
  if (!symbol)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_kernel_select: symbol is NULL");
  *symbol = v->symbol;
  return XKV_OK;
}
