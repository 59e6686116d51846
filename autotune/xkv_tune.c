/* xkv-tune: sweeps kernels' tune{} spaces over problem keys on a device and
 * merges the results into a tune cache (see tune.h, tune_write.h). */
#include "tune.h"
#include "tune_write.h"

#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 256
#define MAX_GRID_POINTS 64

static const char usage[] =
    "usage: xkv-tune FILE.xk -o CACHE.json [options]\n"
    "  --device D        cpu (default; measured on this machine) or\n"
    "                    model:sm_90 (H100 SXM perf model on sim counters;\n"
    "                    model:sm_90-h200 the H200's, records kept apart;\n"
    "                    records marked \"source\": \"model\")\n"
    "  --kernels A,B     the kernels to tune (default: all the tuner has\n"
    "                    inputs for)\n"
    "  --keys SPEC       key points: 'M=256,N=256,K=256;M=512,N=512,K=512';\n"
    "                    NAME=a|b|c expands to each value (cartesian); one\n"
    "                    NAME=V fixes a key for every point. Default: the\n"
    "                    kernel's declared key grid (keys = {...})\n"
    "  --misses FILE     also tune the keys the runtime missed (lines\n"
    "                    'kernel NAME=V ...', from XKV_TUNE_MISSES)\n"
    "  --budget S        stop starting new configs after S seconds\n"
    "  --max-configs N   at most N candidates per key (the default first)\n"
    "  --rounds N        timing rounds per candidate (default 5)\n"
    "  -j N              model devices: compile, prune and sim-run the\n"
    "                    candidates in N forked workers (default 1)\n"
    "  -D NAME=VALUE     hold a tune dim at one value (repeatable)\n"
    "  --resume          skip keys CACHE already has a current winner for\n"
    "                    (same kernel IR, tune space, compiler, device)\n"
    "  --json FILE       the summary table as JSON\n"
    "  --quiet           no progress line\n"
    "  -h, --help        this text\n";

typedef struct {
  const char *file, *out, *device, *keys, *misses, *json;
  char *kernels[64];
  xk_constexpr fix[16];
  int nkernels, nfix, max_configs, rounds, resume, quiet, jobs;
  double budget;
} options;

static int split_kernels(options *o, const char *s) {
  char *t = strdup(s), *save = NULL;
  for (char *p = strtok_r(t, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    if (o->nkernels == 64) {
      free(t);
      return -1;
    }
    o->kernels[o->nkernels++] = strdup(p);
  }
  free(t);
  return 0;
}

static int parse_args(int argc, char **argv, options *o) {
  *o = (options){.device = "cpu"};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      exit(0);
    } else if (!strcmp(a, "--resume")) {
      o->resume = 1;
    } else if (!strcmp(a, "--quiet")) {
      o->quiet = 1;
    } else if (v && !strcmp(a, "-D")) {
      const char *def = argv[++i], *eq = strchr(def, '=');
      char *end;
      long long x = eq ? strtoll(eq + 1, &end, 10) : 0;
      if (!eq || eq == def || *end || end == eq + 1 || o->nfix == 16)
        return fprintf(stderr, "xkv-tune: bad -D '%s' (want NAME=INTEGER)\n",
                       def),
               -1;
      o->fix[o->nfix].name = strndup(def, (size_t)(eq - def));
      o->fix[o->nfix++].value = x;
    } else if (v && !strcmp(a, "-o")) {
      o->out = argv[++i];
    } else if (v && !strcmp(a, "--device")) {
      o->device = argv[++i];
    } else if (v && !strcmp(a, "--keys")) {
      o->keys = argv[++i];
    } else if (v && !strcmp(a, "--misses")) {
      o->misses = argv[++i];
    } else if (v && !strcmp(a, "--json")) {
      o->json = argv[++i];
    } else if (v && !strcmp(a, "--kernels")) {
      if (split_kernels(o, argv[++i]))
        return fprintf(stderr, "xkv-tune: too many kernels\n"), -1;
    } else if (v && (!strcmp(a, "--budget") || !strcmp(a, "--max-configs") ||
                     !strcmp(a, "--rounds") || !strcmp(a, "-j"))) {
      char *end;
      double x = strtod(argv[++i], &end);
      if (*end || !(x > 0))
        return fprintf(stderr,
                       "xkv-tune: %s takes a positive number, not "
                       "'%s'\n",
                       a, argv[i]),
               -1;
      if (!strcmp(a, "--budget"))
        o->budget = x;
      else if (!strcmp(a, "--rounds"))
        o->rounds = (int)x;
      else if (!strcmp(a, "-j"))
        o->jobs = x < XK_TUNE_MAX_JOBS ? (int)x : XK_TUNE_MAX_JOBS;
      else
        o->max_configs = (int)x;
    } else if (a[0] != '-' && !o->file) {
      o->file = a;
    } else {
      return fprintf(stderr, "xkv-tune: unknown or incomplete option '%s'\n%s",
                     a, usage),
             -1;
    }
  }
  if (!o->file || !o->out)
    return fprintf(stderr, "xkv-tune: need FILE.xk and -o CACHE.json\n%s",
                   usage),
           -1;
  return 0;
}

/* --- key points ----------------------------------------------------------- */

typedef struct {
  int64_t v[MAX_KEYS][8];
  int n;
} points;

static int key_index(const xk_kernel_spec *s, const char *name) {
  for (int i = 0; i < s->nkey; i++)
    if (!strcmp(s->key[i], name))
      return i;
  return -1;
}

/* The default of a key: a const's default value (args have none). */
static int64_t key_default(const xk_kernel_spec *s, int i) {
  for (int j = 0; j < s->nconsts; j++)
    if (!strcmp(s->consts[j].name, s->key[i]))
      return s->consts[j].value;
  return 0;
}

/* Adds point p and, for each dim with alternatives, its expansions. */
static int expand(const xk_kernel_spec *s, int64_t alts[8][16], const int *nalt,
                  int dim, int64_t *cur, points *out) {
  if (dim == s->nkey) {
    if (out->n == MAX_KEYS)
      return -1;
    memcpy(out->v[out->n++], cur, sizeof(int64_t) * 8);
    return 0;
  }
  for (int i = 0; i < nalt[dim]; i++) {
    cur[dim] = alts[dim][i];
    if (expand(s, alts, nalt, dim + 1, cur, out))
      return -1;
  }
  return 0;
}

/* One ';'-separated item of --keys (or a misses line, space-separated):
 * 0 when added, 1 when it gives no value for one of the kernel's keys, -1
 * on a malformed item. */
static int parse_point(const xk_kernel_spec *s, char *item, const char *sep,
                       points *out, char *err, size_t n) {
  int64_t alts[8][16], cur[8] = {0};
  int nalt[8];
  for (int i = 0; i < s->nkey; i++) {
    alts[i][0] = key_default(s, i);
    nalt[i] = alts[i][0] ? 1 : 0;
  }
  char *save = NULL;
  for (char *p = strtok_r(item, sep, &save); p;
       p = strtok_r(NULL, sep, &save)) {
    char *eq = strchr(p, '=');
    if (!eq)
      return snprintf(err, n, "'%s' is not NAME=VALUE", p), -1;
    *eq = 0;
    int k = key_index(s, p);
    if (k < 0)
      continue; /* another kernel's key: --keys is shared by the kernels */
    nalt[k] = 0;
    char *save2 = NULL;
    for (char *v = strtok_r(eq + 1, "|", &save2); v;
         v = strtok_r(NULL, "|", &save2)) {
      char *end;
      long long x = strtoll(v, &end, 10);
      if (*end || x < 1 || nalt[k] == 16)
        return snprintf(err, n, "key %s: bad value '%s'", p, v), -1;
      alts[k][nalt[k]++] = x;
    }
  }
  for (int i = 0; i < s->nkey; i++)
    if (!nalt[i])
      return snprintf(err, n, "no value for key %s of %s", s->key[i], s->name),
             1; /* a point for other kernels */
  if (expand(s, alts, nalt, 0, cur, out))
    return snprintf(err, n, "more than %d key points", MAX_KEYS), -1;
  return 0;
}

static int keys_from_spec(const xk_kernel_spec *s, const char *spec,
                          points *out, char *err, size_t n) {
  char *t = strdup(spec), *save = NULL;
  int rc = 0, some = 0;
  for (char *p = strtok_r(t, ";", &save); p && rc >= 0;
       p = strtok_r(NULL, ";", &save))
    some |= !(rc = parse_point(s, p, ",", out, err, n));
  free(t);
  /* points lacking one of the kernel's keys are other kernels' */
  return rc < 0 || !some ? -1 : 0;
}

/* The declared grid's cartesian product. */
static int keys_from_grid(const xk_kernel_spec *s, points *out, char *err,
                          size_t n) {
  int64_t alts[8][16], cur[8] = {0};
  int nalt[8];
  long total = 1;
  for (int i = 0; i < s->nkey; i++) {
    alts[i][0] = key_default(s, i);
    nalt[i] = alts[i][0] ? 1 : 0;
    for (int g = 0; g < s->nkeygrid; g++)
      if (!strcmp(s->keygrid[g].name, s->key[i])) {
        nalt[i] = s->keygrid[g].n < 16 ? s->keygrid[g].n : 16;
        memcpy(alts[i], s->keygrid[g].vals, sizeof(int64_t) * (size_t)nalt[i]);
      }
    if (!nalt[i])
      return snprintf(err, n,
                      "%s: key %s has no grid in kernels.xk: give --keys",
                      s->name, s->key[i]),
             -1;
    total *= nalt[i];
  }
  if (total > MAX_GRID_POINTS)
    return snprintf(err, n,
                    "%s: its key grid has %ld points (more than %d): give "
                    "--keys",
                    s->name, total, MAX_GRID_POINTS),
           -1;
  return expand(s, alts, nalt, 0, cur, out);
}

static int keys_from_misses(const xk_kernel_spec *s, const char *path,
                            points *out, char *err, size_t n) {
  char *text = xk_read_file(path, NULL, NULL), *save = NULL;
  if (!text)
    return snprintf(err, n, "%s: cannot read", path), -1;
  int rc = 0;
  size_t kl = strlen(s->name);
  for (char *l = strtok_r(text, "\n", &save); l && !rc;
       l = strtok_r(NULL, "\n", &save))
    if (!strncmp(l, s->name, kl) && l[kl] == ' ')
      rc = parse_point(s, l + kl + 1, " ", out, err, n) ? -1 : 0;
  free(text);
  return rc;
}

int main(int argc, char **argv) {
  options o;
  if (parse_args(argc, argv, &o))
    return 2;
  xk_diag d = {{0}};
  rt_tune_cache *prev = NULL;
  char err[1024];
  FILE *exists = fopen(o.out, "r");
  if (exists)
    fclose(exists);
  if (o.resume && exists && !(prev = rt_tune_read(o.out, err, sizeof err))) {
    fprintf(stderr, "xkv-tune: --resume: %s\n", err);
    return 1;
  }
  xk_tune_opts to = {.device = o.device,
                     .budget_s = o.budget,
                     .max_configs = o.max_configs,
                     .rounds = o.rounds,
                     .jobs = o.jobs,
                     .resume = prev,
                     .fix = o.fix,
                     .nfix = o.nfix,
                     .progress = o.quiet ? NULL : stderr};
  xk_tune_session *s = NULL;
  if (xk_tune_open(o.file, &to, &s, &d)) {
    fprintf(stderr, "xkv-tune: %s\n", d.msg);
    xk_tune_close(s);
    rt_tune_free(prev);
    return 1;
  }
  xk_dsl *dsl = xk_tune_dsl(s);
  int ks[256], nk = 0, rc = 0;
  for (int i = 0; i < o.nkernels && !rc; i++)
    if ((ks[nk++] = xk_dsl_find(dsl, o.kernels[i])) < 0) {
      fprintf(stderr, "xkv-tune: no kernel '%s' in %s\n", o.kernels[i], o.file);
      rc = 1;
    }
  static const char *const dflt[] = {"gemm_f32", "gemm_f16", "gemm_bf16",
                                     "vadd",     "softmax",  "sumsq_f32",
                                     NULL};
  for (int i = 0; !o.nkernels && dflt[i]; i++)
    if (xk_dsl_find(dsl, dflt[i]) >= 0)
      ks[nk++] = xk_dsl_find(dsl, dflt[i]);
  printf("xkv-tune: device %s (%s)%s\n", o.device, xk_tune_fingerprint(s),
         strncmp(o.device, "model:", 6)
             ? "; measured: median of interleaved runs, caches flushed"
             : "; MODELED times (H100 perf model), not measurements");
  xk_tune_header_print(stdout);
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row *rows = calloc(MAX_KEYS * 8, sizeof *rows);
  int nrows = 0, failed = 0;
  for (int i = 0; i < nk && !rc && out && rows; i++) {
    const xk_kernel_spec *spec = xk_dsl_kernel(dsl, ks[i]);
    points *pts = calloc(1, sizeof *pts);
    int prc = !pts     ? -1
              : o.keys ? keys_from_spec(spec, o.keys, pts, err, sizeof err)
                       : keys_from_grid(spec, pts, err, sizeof err);
    if (!prc && o.misses)
      prc = keys_from_misses(spec, o.misses, pts, err, sizeof err);
    if (prc) {
      fprintf(stderr, "xkv-tune: %s\n", pts ? err : "out of memory");
      rc = 1;
    }
    for (int p = 0; !rc && p < pts->n && nrows < MAX_KEYS * 8; p++) {
      if (xk_tune_key(s, ks[i], pts->v[p], out, &rows[nrows], &d)) {
        fprintf(stderr, "xkv-tune: %s\n", d.msg);
        failed++;
        continue;
      }
      xk_tune_row_print(stdout, &rows[nrows++]);
      fflush(stdout);
    }
    free(pts);
  }
  if (!out || !rows) {
    fprintf(stderr, "xkv-tune: out of memory\n");
    rc = 1;
  }
  if (!rc && out->n && xk_tune_merge_write(o.out, out, &d)) {
    fprintf(stderr, "xkv-tune: %s\n", d.msg);
    rc = 1;
  }
  if (!rc && o.json &&
      xk_tune_rows_json(o.json, o.device, xk_tune_fingerprint(s), rows,
                        nrows)) {
    fprintf(stderr, "xkv-tune: cannot write %s\n", o.json);
    rc = 1;
  }
  if (rows)
    xk_tune_totals_print(stdout, rows, nrows);
  if (!rc)
    printf("xkv-tune: %d records merged into %s%s\n", out->n, o.out,
           failed ? " (some keys failed: see above)" : "");
  for (int i = 0; i < o.nkernels; i++)
    free(o.kernels[i]);
  for (int i = 0; i < o.nfix; i++)
    free((char *)o.fix[i].name);
  free(rows);
  rt_tune_free(out);
  rt_tune_free(prev);
  xk_tune_close(s);
  return rc ? 1 : failed ? 3 : 0;
}
