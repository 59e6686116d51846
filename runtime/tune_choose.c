/* The runtime's side of autotuning: loading a tune cache into a context,
 * and choosing per launch the tuned configuration for the call's key
 * (exact bucket, nearest bucket in log space, the default). The runtime
 * never times anything itself. */
#include "bucket.h"
#include "internal.h"
#include "tune_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fingerprint(xkv_context *ctx) {
  xkv_device_info di;
  if (xkv_device_get_info(ctx, &di)) {
    snprintf(ctx->tune_fp, sizeof ctx->tune_fp, "unknown");
    return;
  }
  if (di.kind == XKV_DEVICE_CPU)
    rt_tune_cpu_fingerprint(di.units, ctx->tune_fp, sizeof ctx->tune_fp);
  else
    snprintf(ctx->tune_fp, sizeof ctx->tune_fp, "cuda:%s:sms=%d", di.arch,
             di.units);
}

const char *xkv_tune_fingerprint(xkv_context *ctx) {
  if (!ctx)
    return "";
  if (!ctx->tune_fp[0])
    fingerprint(ctx);
  return ctx->tune_fp;
}

xkv_status xkv_tune_cache_load(xkv_context *ctx, const char *path) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!path)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_tune_cache_load: path is NULL");
  char err[1024];
  rt_tune_cache *c = rt_tune_read(path, err, sizeof err);
  if (!c)
    return rt_err(ctx, XKV_ERR_MANIFEST,
                  "%s; launches keep the previous "
                  "choice (the defaults when none was loaded)",
                  err);
  if (ctx->tune && ctx->tune->misses_path) {
    c->misses_path = ctx->tune->misses_path;
    ctx->tune->misses_path = NULL;
  }
  rt_tune_free(ctx->tune);
  ctx->tune = c;
  xkv_tune_fingerprint(ctx);
  for (int i = 0; i < ctx->nautos; i++) {
    ctx->autos[i]->memo_valid = 0;
    ctx->autos[i]->key_rec = NULL;
  }
  return XKV_OK;
}

xkv_status xkv_tune_misses_file(xkv_context *ctx, const char *path) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!ctx->tune && !(ctx->tune = calloc(1, sizeof *ctx->tune)))
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_tune_misses_file");
  free(ctx->tune->misses_path);
  ctx->tune->misses_path = path ? rt_strdup(path) : NULL;
  return path && !ctx->tune->misses_path
             ? rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_tune_misses_file")
             : XKV_OK;
}

void rt_tune_open_env(xkv_context *ctx) {
  const char *p = getenv("XKV_TUNE_CACHE"), *m = getenv("XKV_TUNE_MISSES");
  char keep[sizeof ctx->err]; /* what xkv_open left there (the CPU note) */
  memcpy(keep, ctx->err, sizeof keep);
  if (p && *p && xkv_tune_cache_load(ctx, p))
    fprintf(stderr, "xkv: XKV_TUNE_CACHE: %s\n", ctx->err);
  if (m && *m)
    xkv_tune_misses_file(ctx, m);
  memcpy(ctx->err, keep, sizeof keep);
}

void rt_tune_close(xkv_context *ctx) {
  for (int i = 0; i < ctx->nautos; i++)
    free(ctx->autos[i]);
  free(ctx->autos);
  ctx->autos = NULL;
  ctx->nautos = ctx->capautos = 0;
  rt_tune_free(ctx->tune);
  ctx->tune = NULL;
}

/* The first winner record of the kernel for this device: its key and
 * config names are the kernel's. */
static const rt_tune_record *any_record(const xkv_context *ctx,
                                        const char *kernel) {
  const rt_tune_cache *c = ctx->tune;
  for (int i = 0; c && i < c->n; i++)
    if (c->r[i].winner && !strcmp(c->r[i].kernel, kernel) &&
        (!strcmp(c->r[i].fingerprint, ctx->tune_fp) ||
         (ctx->kind == XKV_DEVICE_CUDA && !strcmp(c->r[i].source, "model"))))
      return &c->r[i];
  return NULL;
}

xkv_kernel *rt_tune_auto(xkv_context *ctx, xkv_kernel *k,
                         const xkv_const *consts, int nconsts) {
  const rt_tune_record *r = ctx->tune ? any_record(ctx, k->v[0]->kernel) : 0;
  if (!r || k->base)
    return k;
  for (int i = 0; i < nconsts; i++)
    for (int j = 0; j < r->nconf; j++)
      if (!strcmp(consts[i].name, r->conf[j].name))
        return k; /* the caller chose this tuned value */
  for (int i = 0; i < ctx->nautos; i++)
    if (ctx->autos[i]->base == k)
      return ctx->autos[i];
  if (ctx->nautos == ctx->capautos) {
    int cap = ctx->capautos ? 2 * ctx->capautos : 16;
    xkv_kernel **a = realloc(ctx->autos, (size_t)cap * sizeof *a);
    if (!a)
      return NULL;
    ctx->autos = a;
    ctx->capautos = cap;
  }
  xkv_kernel *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->base = k;
  ctx->autos[ctx->nautos++] = h;
  return h;
}

/* A key value of this launch: an integer argument or a constexpr. */
static int key_value(const rt_variant *v, const xkv_arg *args, int nargs,
                     const char *name, int64_t *out) {
  for (int i = 0; i < v->nargs && i < nargs; i++) {
    if (strcmp(v->arg_names[i], name) || args[i].is_ptr)
      continue;
    if (args[i].dtype == XKV_I32)
      return *out = args[i].v.i32, 1;
    if (args[i].dtype == XKV_I64)
      return *out = args[i].v.i64, 1;
    return 0;
  }
  for (int i = 0; i < v->nconsts; i++)
    if (!strcmp(v->consts[i].name, name))
      return *out = v->consts[i].value, 1;
  return 0;
}

static int conf_value(const rt_tune_record *r, const char *name, int64_t dflt) {
  for (int i = 0; i < r->nconf; i++)
    if (!strcmp(r->conf[i].name, name))
      return (int)r->conf[i].value;
  return (int)dflt;
}

/* The registered configuration of base's kernel with r's tuned values. */
static xkv_kernel *config_for(const xkv_context *ctx, const rt_variant *base,
                              const rt_tune_record *r) {
  int warps = conf_value(r, "num_warps", base->num_warps);
  int stages = conf_value(r, "num_stages", base->num_stages);
  for (int i = 0; i < ctx->nkernels; i++) {
    const rt_variant *w = ctx->kernels[i]->v[0];
    if (strcmp(w->kernel, base->kernel) || w->num_warps != warps ||
        w->num_stages != stages || w->nconsts != base->nconsts)
      continue;
    int same = 1;
    for (int j = 0; j < w->nconsts && same; j++) {
      const xkv_const *c = &base->consts[j];
      int64_t want = conf_value(r, c->name, c->value), have;
      same = key_value(w, NULL, 0, c->name, &have) && have == want;
    }
    if (same)
      return ctx->kernels[i];
  }
  return NULL;
}

/* 1 when `line` was seen before; else remembers it. */
static int seen(rt_tune_cache *c, const char *line) {
  for (int i = 0; i < c->nreported; i++)
    if (!strcmp(c->reported[i], line))
      return 1;
  char **r = realloc(c->reported, (size_t)(c->nreported + 1) * sizeof *r);
  if (!r)
    return 0;
  c->reported = r;
  if ((c->reported[c->nreported] = rt_strdup(line)))
    c->nreported++;
  return 0;
}

/* A miss: appended once to the misses file (for the next xkv-tune run);
 * said on stderr once per `said` (the miss itself when NULL). */
static void report_as(xkv_context *ctx, const char *kernel, const char *key,
                      const char *said, const char *what) {
  rt_tune_cache *c = ctx->tune;
  char line[512], once[600];
  snprintf(line, sizeof line, "%s %s", kernel, key);
  if (seen(c, line))
    return;
  snprintf(once, sizeof once, "said: %s", said ? said : line);
  if (!seen(c, once))
    fprintf(stderr, "xkv: tune cache: %s at %s: %s\n", kernel, key, what);
  FILE *f = c->misses_path ? fopen(c->misses_path, "a") : NULL;
  if (f) {
    fprintf(f, "%s\n", line); /* one line per miss: kernel NAME=V ... */
    fclose(f);
  }
}

static void report(xkv_context *ctx, const char *kernel, const char *key,
                   const char *what) {
  report_as(ctx, kernel, key, NULL, what);
}

/* A record at the variant's own key constexprs must carry its IR hash (a
 * nearest bucket at another head_dim is another IR by right). */
static int stale(const rt_tune_record *r, const rt_variant *v) {
  if (!v->ir_hash || !r->ir_hash || !strcmp(r->ir_hash, v->ir_hash))
    return 0;
  for (int i = 0; i < r->nkey; i++)
    for (int j = 0; j < v->nconsts; j++)
      if (!strcmp(v->consts[j].name, r->key[i].name) &&
          v->consts[j].value != r->key[i].value)
        return 0;
  return 1;
}

static xkv_kernel *choose_uncached(xkv_context *ctx, xkv_kernel *base,
                                   const int64_t *vals, int n,
                                   const char *const *names) {
  const rt_variant *v = base->v[0];
  char key[256];
  size_t k = 0;
  key[0] = 0;
  for (int i = 0; i < n && k < sizeof key; i++)
    k += (size_t)snprintf(key + k, sizeof key - k, "%s%s=%lld", i ? " " : "",
                          names[i], (long long)vals[i]);
  int exact;
  const rt_tune_record *r = rt_tune_lookup(ctx->tune, v->kernel, ctx->tune_fp,
                                           names, vals, n, &exact);
  if (!r && ctx->kind == XKV_DEVICE_CUDA) { /* modeled records stand in */
    const char *arch = ctx->tune_fp + strlen("cuda:"), *end = strchr(arch, ':');
    char model[64];
    snprintf(model, sizeof model,
             "model:%.*s:", (int)(end ? (size_t)(end - arch) : strlen(arch)),
             arch);
    r = rt_tune_lookup(ctx->tune, v->kernel, model, names, vals, n, &exact);
  }
  if (!r) {
    report(ctx, v->kernel, key, "no record for this device; the default");
    return base;
  }
  if (stale(r, v)) {
    char what[256], said[160];
    snprintf(what, sizeof what,
             "its records were tuned for another version of the kernel (IR "
             "hash %s, this build's %s): ignored, the default (rerun xkv-tune)",
             r->ir_hash, v->ir_hash);
    snprintf(said, sizeof said, "stale %s", v->kernel);
    report_as(ctx, v->kernel, key, said, what);
    return base;
  }
  if (!exact)
    report(ctx, v->kernel, key, "no exact bucket; the nearest tuned one");
  xkv_kernel *c = config_for(ctx, v, r);
  if (!c) {
    report(ctx, v->kernel, key,
           "the tuned configuration is not built (xkvgen --variants tuned); "
           "the default");
    return base;
  }
  return c;
}

xkv_kernel *rt_tune_choose(xkv_context *ctx, xkv_kernel *k, const xkv_arg *args,
                           int nargs) {
  if (!k->base)
    return k;
  if (!ctx->tune)
    return k->base;
  xkv_kernel *base = k->base;
  const rt_variant *v = base->v[0];
  const rt_tune_record *any = k->key_rec;
  if (!any)
    k->key_rec = any = any_record(ctx, v->kernel);
  if (!any || nargs != v->nargs || (nargs && !args))
    return base; /* xkv_launch words the argument error */
  const char *names[RT_TUNE_MAX_KEY];
  int64_t vals[RT_TUNE_MAX_KEY] = {0};
  int n = any->nkey;
  for (int i = 0; i < n; i++) {
    names[i] = any->key[i].name;
    if (!key_value(v, args, nargs, names[i], &vals[i]))
      return base;
    const rt_tune_grid *g = rt_tune_grid_of(ctx->tune, v->kernel, names[i]);
    if (g)
      vals[i] = xk_bucket(g->vals, g->n, g->round, vals[i]);
  }
  if (k->memo_valid && !memcmp(k->memo_key, vals, (size_t)n * sizeof *vals))
    return k->memo;
  k->memo = choose_uncached(ctx, base, vals, n, names);
  memcpy(k->memo_key, vals, (size_t)n * sizeof *vals);
  k->memo_valid = 1;
  return k->memo;
}
