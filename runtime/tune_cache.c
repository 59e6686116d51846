/* Reading tune caches (see tune_cache.h). Every field is checked: a
 * corrupt, truncated or foreign file is an error naming the file and the
 * record, so that the caller can fall back to the default configurations. */
#include "tune_cache.h"

#include "bucket.h"
#include "json.h"
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup(const char *s) {
  if (!s)
    return NULL;
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  return p ? memcpy(p, s, n) : NULL;
}

static void record_clear(rt_tune_record *r) {
  free(r->kernel);
  free(r->ir_hash);
  free(r->compiler);
  free(r->fingerprint);
  free(r->source);
  free(r->status);
  free(r->why);
  for (int i = 0; i < r->nkey; i++)
    free(r->key[i].name);
  for (int i = 0; i < r->nconf; i++)
    free(r->conf[i].name);
}

void rt_tune_free(rt_tune_cache *c) {
  if (!c)
    return;
  for (int i = 0; i < c->n; i++)
    record_clear(&c->r[i]);
  for (int i = 0; i < c->ng; i++) {
    free(c->g[i].kernel);
    free(c->g[i].name);
    free(c->g[i].vals);
  }
  for (int i = 0; i < c->nreported; i++)
    free(c->reported[i]);
  free(c->reported);
  free(c->misses_path);
  free(c->r);
  free(c->g);
  free(c);
}

static int grow(void **p, int *cap, int n, size_t elem) {
  if (n < *cap)
    return 0;
  int c = *cap ? 2 * *cap : 16;
  void *q = realloc(*p, (size_t)c * elem);
  if (!q)
    return -1;
  *p = q;
  *cap = c;
  return 0;
}

int rt_tune_add(rt_tune_cache *c, const rt_tune_record *r) {
  if (grow((void **)&c->r, &c->cap, c->n, sizeof *c->r))
    return -1;
  rt_tune_record *d = &c->r[c->n];
  *d = *r;
  d->kernel = dup(r->kernel);
  d->ir_hash = dup(r->ir_hash);
  d->compiler = dup(r->compiler);
  d->fingerprint = dup(r->fingerprint);
  d->source = dup(r->source);
  d->status = dup(r->status);
  d->why = dup(r->why);
  int bad = !d->kernel || !d->ir_hash || !d->compiler || !d->fingerprint ||
            !d->source || !d->status || (r->why && !d->why);
  for (int i = 0; i < r->nkey; i++)
    bad |= !(d->key[i].name = dup(r->key[i].name));
  for (int i = 0; i < r->nconf; i++)
    bad |= !(d->conf[i].name = dup(r->conf[i].name));
  if (bad) {
    record_clear(d);
    return -1;
  }
  c->n++;
  return 0;
}

int rt_tune_add_grid(rt_tune_cache *c, const char *kernel, const char *name,
                     const int64_t *vals, int n, int round) {
  if (rt_tune_grid_of(c, kernel, name))
    return 0; /* the first declaration stands */
  if (grow((void **)&c->g, &c->capg, c->ng, sizeof *c->g))
    return -1;
  rt_tune_grid *g = &c->g[c->ng];
  g->kernel = dup(kernel);
  g->name = dup(name);
  g->vals = malloc((size_t)(n ? n : 1) * sizeof *vals);
  if (!g->kernel || !g->name || !g->vals) {
    free(g->kernel);
    free(g->name);
    free(g->vals);
    return -1;
  }
  memcpy(g->vals, vals, (size_t)n * sizeof *vals);
  g->n = n;
  g->round = round;
  c->ng++;
  return 0;
}

const rt_tune_grid *rt_tune_grid_of(const rt_tune_cache *c, const char *kernel,
                                    const char *name) {
  for (int i = 0; c && i < c->ng; i++)
    if (!strcmp(c->g[i].kernel, kernel) && !strcmp(c->g[i].name, name))
      return &c->g[i];
  return NULL;
}

/* --- parsing ------------------------------------------------------------- */

typedef struct {
  const char *where;
  char *err;
  size_t errlen;
} pctx;

__attribute__((format(printf, 2, 3))) static rt_tune_cache *
fail(pctx *p, const char *fmt, ...) {
  char why[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  snprintf(p->err, p->errlen, "tune cache %s: %s", p->where, why);
  return NULL;
}

static const char *str_of(const json_val *o, const char *k) {
  const json_val *v = json_get(o, k);
  return v && v->t == JSON_STR ? v->str : NULL;
}

static int num_of(const json_val *o, const char *k, double *out) {
  const json_val *v = json_get(o, k);
  if (!v || v->t != JSON_NUM)
    return 0;
  *out = v->num;
  return 1;
}

/* {"NAME": int, ...} into pairs (names borrowed from the JSON) */
static int pairs_of(const json_val *o, rt_tune_pair *out, int max, int *n) {
  if (!o || o->t != JSON_OBJ || o->n > max)
    return -1;
  for (int i = 0; i < o->n; i++) {
    if (o->items[i].t != JSON_NUM || !o->items[i].is_int)
      return -1;
    out[i].name = o->keys[i];
    out[i].value = o->items[i].i;
  }
  *n = o->n;
  return 0;
}

static int parse_grids(rt_tune_cache *c, const json_val *gs, pctx *p) {
  if (!gs)
    return 0;
  if (gs->t != JSON_ARR)
    return fail(p, "\"grids\" must be an array"), -1;
  for (int i = 0; i < gs->n; i++) {
    const json_val *g = &gs->items[i], *vs = json_get(g, "values");
    const char *k = str_of(g, "kernel"), *name = str_of(g, "key");
    int round = xk_round_parse(str_of(g, "round"));
    if (!k || !name || round < 0 || !vs || vs->t != JSON_ARR || !vs->n ||
        vs->n > 256)
      return fail(p, "grid %d: needs kernel, key, round and values", i), -1;
    int64_t vals[256];
    for (int j = 0; j < vs->n; j++) {
      const json_val *v = &vs->items[j];
      if (v->t != JSON_NUM || !v->is_int || v->i < 1 ||
          (j && v->i <= vals[j - 1]))
        return fail(p, "grid %d (%s.%s): values must ascend, positive", i, k,
                    name),
               -1;
      vals[j] = v->i;
    }
    if (rt_tune_add_grid(c, k, name, vals, vs->n, round))
      return fail(p, "out of memory"), -1;
  }
  return 0;
}

static int parse_record(rt_tune_cache *c, const json_val *o, int i, pctx *p) {
  rt_tune_record r = {0};
  r.kernel = (char *)str_of(o, "kernel");
  r.ir_hash = (char *)str_of(o, "ir_hash");
  r.compiler = (char *)str_of(o, "compiler");
  r.fingerprint = (char *)str_of(o, "fingerprint");
  r.source = (char *)str_of(o, "source");
  r.status = (char *)str_of(o, "status");
  r.why = (char *)str_of(o, "why");
  const char *miss = !r.kernel        ? "kernel"
                     : !r.ir_hash     ? "ir_hash"
                     : !r.compiler    ? "compiler"
                     : !r.fingerprint ? "fingerprint"
                     : !r.source      ? "source"
                     : !r.status      ? "status"
                                      : NULL;
  if (miss)
    return fail(p, "record %d: no string \"%s\"", i, miss), -1;
  if (strcmp(r.source, "measured") && strcmp(r.source, "model"))
    return fail(p, "record %d (%s): source '%s' (measured, model)", i, r.kernel,
                r.source),
           -1;
  if (pairs_of(json_get(o, "key"), r.key, RT_TUNE_MAX_KEY, &r.nkey) ||
      pairs_of(json_get(o, "config"), r.conf, RT_TUNE_MAX_CONF, &r.nconf))
    return fail(p,
                "record %d (%s): \"key\" and \"config\" must be objects of "
                "integers (at most %d and %d)",
                i, r.kernel, RT_TUNE_MAX_KEY, RT_TUNE_MAX_CONF),
           -1;
  const json_val *w = json_get(o, "winner");
  r.winner = w && w->t == JSON_BOOL && w->i;
  int ok = !strcmp(r.status, "ok");
  if (ok && (!num_of(o, "time_us", &r.time_us) || !(r.time_us > 0) ||
             !num_of(o, "spread", &r.spread) || !(r.spread >= 0)))
    return fail(p,
                "record %d (%s): an ok record needs time_us > 0 and "
                "spread >= 0",
                i, r.kernel),
           -1;
  if (r.winner && !ok)
    return fail(p, "record %d (%s): a winner must have status ok", i, r.kernel),
           -1;
  if (r.winner && !num_of(o, "margin", &r.margin))
    return fail(p, "record %d (%s): a winner needs its margin", i, r.kernel),
           -1;
  /* rt_tune_add duplicates the strings the JSON tree owns */
  if (rt_tune_add(c, &r))
    return fail(p, "out of memory"), -1;
  return 0;
}

rt_tune_cache *rt_tune_parse(const char *text, size_t len, const char *where,
                             char *err, size_t errlen) {
  pctx p = {where, err, errlen};
  char jerr[256];
  json_val *root = json_parse(text, len, jerr, sizeof jerr);
  if (!root)
    return fail(&p, "not JSON (truncated or corrupt?): %s", jerr);
  const char *fmt = str_of(root, "format");
  const json_val *recs = json_get(root, "records");
  rt_tune_cache *c = NULL;
  if (!fmt || strcmp(fmt, RT_TUNE_FORMAT))
    fail(&p, "format is %s%s%s, this runtime reads \"%s\"", fmt ? "\"" : "",
         fmt ? fmt : "missing", fmt ? "\"" : "", RT_TUNE_FORMAT);
  else if (!recs || recs->t != JSON_ARR)
    fail(&p, "no \"records\" array");
  else if (!(c = calloc(1, sizeof *c)))
    fail(&p, "out of memory");
  int bad = !c || parse_grids(c, json_get(root, "grids"), &p);
  for (int i = 0; !bad && i < recs->n; i++)
    bad = parse_record(c, &recs->items[i], i, &p);
  json_free(root);
  if (bad) {
    rt_tune_free(c);
    return NULL;
  }
  return c;
}

rt_tune_cache *rt_tune_read(const char *path, char *err, size_t errlen) {
  size_t len;
  xk_diag d;
  char *text = xk_read_file(path, &len, &d);
  if (!text) {
    snprintf(err, errlen, "tune cache %s: %s", path, d.msg);
    return NULL;
  }
  rt_tune_cache *c = rt_tune_parse(text, len, path, err, errlen);
  free(text);
  return c;
}

/* --- lookup --------------------------------------------------------------- */

static int key_value(const rt_tune_record *r, const char *name, int64_t *v) {
  for (int i = 0; i < r->nkey; i++)
    if (!strcmp(r->key[i].name, name))
      return *v = r->key[i].value, 1;
  return 0;
}

const rt_tune_record *rt_tune_lookup(const rt_tune_cache *c, const char *kernel,
                                     const char *fingerprint,
                                     const char *const *names,
                                     const int64_t *vals, int n, int *exact) {
  const rt_tune_record *best = NULL;
  double best_d = 0;
  size_t fl = strlen(fingerprint);
  *exact = 0;
  for (int i = 0; c && i < c->n; i++) {
    const rt_tune_record *r = &c->r[i];
    if (!r->winner || r->nkey != n || strcmp(r->kernel, kernel) ||
        (fl && fingerprint[fl - 1] == ':'
             ? strncmp(r->fingerprint, fingerprint, fl)
             : strcmp(r->fingerprint, fingerprint)))
      continue;
    double dist = 0;
    int comparable = 1;
    for (int j = 0; j < n && comparable; j++) {
      int64_t v;
      comparable = key_value(r, names[j], &v);
      dist += comparable ? xk_log_distance(v, vals[j]) : 0;
    }
    if (!comparable)
      continue;
    if (dist == 0) {
      *exact = 1;
      return r;
    }
    if (!best || dist < best_d) {
      best = r;
      best_d = dist;
    }
  }
  return best;
}

void rt_tune_cpu_fingerprint(int cores, char *buf, size_t n) {
  char isa[160] = "";
#if defined(__x86_64__) || defined(__i386__)
  static const char *const feats[] = {"avx512f", "avx512bw", "avx512vl",
                                      "avx2",    "fma",      "avx"};
  size_t k = 0;
  __builtin_cpu_init();
  /* __builtin_cpu_supports needs literal names */
  int has[] = {
      __builtin_cpu_supports("avx512f"),  __builtin_cpu_supports("avx512bw"),
      __builtin_cpu_supports("avx512vl"), __builtin_cpu_supports("avx2"),
      __builtin_cpu_supports("fma"),      __builtin_cpu_supports("avx")};
  for (int i = 0; i < 6; i++)
    if (has[i])
      k += (size_t)snprintf(isa + k, sizeof isa - k, "%s%s", k ? "," : "",
                            feats[i]);
  const char *arch = "x86_64";
#elif defined(__aarch64__)
  const char *arch = "aarch64";
#else
  const char *arch = "other";
#endif
  snprintf(buf, n, "cpu:%s:%s:cores=%d", arch, isa[0] ? isa : "base", cores);
}
