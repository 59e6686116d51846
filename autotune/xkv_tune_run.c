/* xkv-tune-run: times the variants of a built artifact directory on this
 * machine's CPU or GPU and merges "measured" records into a tune cache
 * (see tune_run.h). Needs no compiler: bench/gpu/tune.sh runs it on a lent
 * GPU with the artifacts built elsewhere. */
#include "tune_run.h"
#include "tune_write.h"

#include "xkv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROWS 2048

static const char usage[] =
    "usage: xkv-tune-run DIR... -o CACHE.json [options]\n"
    "  DIR               xkvgen output directories built with --variants\n"
    "                    all (host: kernels.so; sm_XX: PTX or cubin), one\n"
    "                    per value of a key constexpr (-D D=128)\n"
    "  --device D        cpu (default) or cuda (the artifacts' target)\n"
    "  --keys-from FILE  time every (kernel, key) FILE has records for\n"
    "                    (e.g. tune/model-sm_90.json) and copy its key grids\n"
    "  --kernels A,B     only these kernels\n"
    "  --keys SPEC       key points 'N=5000;N=10000' (the kernel's key names\n"
    "                    in its order), for each of --kernels\n"
    "  --budget S        stop starting candidates after S seconds\n"
    "  --rounds N        CPU: timing rounds per candidate (default 5)\n"
    "  --cand-s S        CUDA: time limit per candidate (default 0.25)\n"
    "  --spread F        CUDA: stop timing below this IQR/median (0.02)\n"
    "  --l2-mb MB        CUDA: L2 size; buffers rotate over > 2x it (50)\n"
    "  --json FILE       the summary table as JSON\n"
    "  --quiet           no progress line\n"
    "  --version         the xkv release\n"
    "  -h, --help        this text\n";

#define MAX_DIRS 256

typedef struct {
  const char *dirs[MAX_DIRS];
  int ndirs;
  const char *out, *device, *keys_from, *keys, *json, *kernels;
  int rounds, quiet;
  double budget, cand_s, spread, l2_mb;
} options;

static int parse_args(int argc, char **argv, options *o) {
  *o = (options){.device = "cpu"};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      exit(0);
    } else if (!strcmp(a, "--version")) {
      printf("xkv-tune-run %s\n", xkv_version());
      exit(0);
    } else if (!strcmp(a, "--quiet")) {
      o->quiet = 1;
    } else if (v && !strcmp(a, "-o")) {
      o->out = argv[++i];
    } else if (v && !strcmp(a, "--device")) {
      o->device = argv[++i];
    } else if (v && !strcmp(a, "--keys-from")) {
      o->keys_from = argv[++i];
    } else if (v && !strcmp(a, "--keys")) {
      o->keys = argv[++i];
    } else if (v && !strcmp(a, "--kernels")) {
      o->kernels = argv[++i];
    } else if (v && !strcmp(a, "--json")) {
      o->json = argv[++i];
    } else if (v && (!strcmp(a, "--budget") || !strcmp(a, "--rounds") ||
                     !strcmp(a, "--cand-s") || !strcmp(a, "--spread") ||
                     !strcmp(a, "--l2-mb"))) {
      char *end;
      double x = strtod(argv[++i], &end);
      if (*end || !(x > 0))
        return fprintf(stderr,
                       "xkv-tune-run: %s takes a positive number, not '%s'\n",
                       a, argv[i]),
               -1;
      *(!strcmp(a, "--budget")   ? &o->budget
        : !strcmp(a, "--cand-s") ? &o->cand_s
        : !strcmp(a, "--spread") ? &o->spread
        : !strcmp(a, "--l2-mb")  ? &o->l2_mb
                                 : &x) = x;
      if (!strcmp(a, "--rounds"))
        o->rounds = (int)x;
    } else if (a[0] != '-' && o->ndirs < MAX_DIRS) {
      o->dirs[o->ndirs++] = a;
    } else {
      return fprintf(stderr,
                     "xkv-tune-run: unknown or incomplete option '%s'\n%s", a,
                     usage),
             -1;
    }
  }
  if (!o->ndirs || !o->out)
    return fprintf(stderr, "xkv-tune-run: need DIR and -o CACHE.json\n%s",
                   usage),
           -1;
  if (!o->keys_from && !(o->keys && o->kernels))
    return fprintf(stderr,
                   "xkv-tune-run: give --keys-from FILE, or --kernels with "
                   "--keys\n"),
           -1;
  return 0;
}

/* 1 when kernel is one of the comma-separated list (or there is none) */
static int selected(const char *list, const char *kernel) {
  if (!list)
    return 1;
  size_t n = strlen(kernel);
  for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : 0)
    if (!strncmp(p, kernel, n) && (p[n] == ',' || !p[n]))
      return 1;
  return 0;
}

/* One key point to time. */
typedef struct {
  const char *kernel;
  const char *names[RT_TUNE_MAX_KEY];
  int64_t vals[RT_TUNE_MAX_KEY];
  int n;
} point;

static int same_point(const point *a, const rt_tune_record *r) {
  if (strcmp(a->kernel, r->kernel) || a->n != r->nkey)
    return 0;
  for (int i = 0; i < a->n; i++)
    if (strcmp(a->names[i], r->key[i].name) || a->vals[i] != r->key[i].value)
      return 0;
  return 1;
}

/* Every (kernel, key) of the cache whose kernel the directory has. */
static int points_from_cache(const rt_tune_cache *c, const options *o,
                             xk_run_session *s, point *pts, int *n) {
  for (int i = 0; i < c->n; i++) {
    const rt_tune_record *r = &c->r[i];
    int dup = 0;
    for (int j = 0; j < *n && !dup; j++)
      dup = same_point(&pts[j], r);
    if (dup || !selected(o->kernels, r->kernel) ||
        !xk_run_has_kernel(s, r->kernel))
      continue;
    if (*n == MAX_ROWS)
      return fprintf(stderr, "xkv-tune-run: more than %d keys\n", MAX_ROWS), -1;
    point *p = &pts[(*n)++];
    p->kernel = r->kernel;
    p->n = r->nkey;
    for (int k = 0; k < r->nkey; k++) {
      p->names[k] = r->key[k].name;
      p->vals[k] = r->key[k].value;
    }
  }
  return 0;
}

/* --keys for each of --kernels; the names point into `text` (freed by the
 * caller). */
static int points_from_spec(char *text, char *klist, point *pts, int *n) {
  point keys[64];
  int nk = 0;
  char *is = NULL, *ks = NULL;
  for (char *item = strtok_r(text, ";", &is); item;
       item = strtok_r(NULL, ";", &is)) {
    if (nk == 64)
      return fprintf(stderr, "xkv-tune-run: --keys: more than 64 points\n"), -1;
    point *p = &keys[nk++];
    *p = (point){0};
    char *ps = NULL;
    for (char *kv = strtok_r(item, ",", &ps); kv;
         kv = strtok_r(NULL, ",", &ps)) {
      char *eq = strchr(kv, '='), *end = NULL;
      long long v = eq ? strtoll(eq + 1, &end, 10) : 0;
      if (!eq || eq == kv || end == eq + 1 || *end || v < 1 ||
          p->n == RT_TUNE_MAX_KEY)
        return fprintf(stderr,
                       "xkv-tune-run: --keys: bad '%s' (want "
                       "NAME=POSITIVE_INTEGER, at most %d per point)\n",
                       kv, RT_TUNE_MAX_KEY),
               -1;
      *eq = 0;
      p->names[p->n] = kv;
      p->vals[p->n++] = v;
    }
  }
  for (char *k = strtok_r(klist, ",", &ks); k; k = strtok_r(NULL, ",", &ks))
    for (int j = 0; j < nk; j++) {
      if (*n == MAX_ROWS)
        return fprintf(stderr, "xkv-tune-run: too many keys\n"), -1;
      pts[*n] = keys[j];
      pts[(*n)++].kernel = k;
    }
  return 0;
}

static int copy_grids(const rt_tune_cache *from, const point *pts, int n,
                      rt_tune_cache *out) {
  for (int i = 0; from && i < from->ng; i++) {
    const rt_tune_grid *g = &from->g[i];
    int used = 0;
    for (int j = 0; j < n && !used; j++)
      used = !strcmp(pts[j].kernel, g->kernel);
    if (used && !rt_tune_grid_of(out, g->kernel, g->name) &&
        rt_tune_add_grid(out, g->kernel, g->name, g->vals, g->n, g->round))
      return -1;
  }
  return 0;
}

static int run(const options *o, xk_run_session *s, const rt_tune_cache *from,
               point *pts, int npts) {
  rt_tune_cache *out = calloc(1, sizeof *out);
  xk_tune_row *rows = calloc(MAX_ROWS, sizeof *rows);
  xk_diag d = {{0}};
  int rc = !out || !rows || copy_grids(from, pts, npts, out);
  if (rc)
    fprintf(stderr, "xkv-tune-run: out of memory\n");
  printf("xkv-tune-run: device %s (%s); measured: %s\n", o->device,
         xk_run_fingerprint(s),
         strcmp(o->device, "cuda")
             ? "median of interleaved runs, caches flushed"
             : "events around batches, buffers rotated over > 2x L2");
  xk_tune_header_print(stdout);
  int nrows = 0, failed = 0;
  for (int i = 0; !rc && i < npts; i++) {
    if (xk_run_key(s, pts[i].kernel, pts[i].names, pts[i].vals, pts[i].n, out,
                   &rows[nrows], &d)) {
      fprintf(stderr, "xkv-tune-run: %s\n", d.msg);
      failed++;
      continue;
    }
    xk_tune_row_print(stdout, &rows[nrows++]);
    fflush(stdout);
  }
  if (!rc && out->n && xk_tune_merge_write(o->out, out, &d)) {
    fprintf(stderr, "xkv-tune-run: %s\n", d.msg);
    rc = 1;
  }
  if (!rc && o->json &&
      xk_tune_rows_json(o->json, o->device, xk_run_fingerprint(s), rows,
                        nrows)) {
    fprintf(stderr, "xkv-tune-run: cannot write %s\n", o->json);
    rc = 1;
  }
  if (rows)
    xk_tune_totals_print(stdout, rows, nrows);
  if (!rc)
    printf("xkv-tune-run: %d records from %d keys merged into %s%s\n",
           out ? out->n : 0, nrows, o->out,
           failed ? " (some keys failed: see above)" : "");
  free(rows);
  rt_tune_free(out);
  return rc ? 1 : failed ? 3 : 0;
}

static int load_rest(const options *o, xk_run_session *s, xk_diag *d) {
  for (int i = 1; i < o->ndirs; i++)
    if (xk_run_load(s, o->dirs[i], d))
      return -1;
  return 0;
}

int main(int argc, char **argv) {
  options o;
  if (parse_args(argc, argv, &o))
    return 2;
  xk_run_opts ro = {.device = o.device,
                    .rounds = o.rounds,
                    .budget_s = o.budget,
                    .cand_s = o.cand_s,
                    .spread_goal = o.spread,
                    .l2_mb = o.l2_mb,
                    .progress = o.quiet ? NULL : stderr};
  xk_diag d = {{0}};
  xk_run_session *s = NULL;
  rt_tune_cache *from = NULL;
  point *pts = calloc(MAX_ROWS, sizeof *pts);
  char *text = o.keys ? strdup(o.keys) : NULL;
  char *klist = o.kernels ? strdup(o.kernels) : NULL;
  char err[1024];
  int npts = 0, rc = 1;
  if (!pts || (o.keys && !text) || (o.kernels && !klist))
    fprintf(stderr, "xkv-tune-run: out of memory\n");
  else if (xk_run_open(o.dirs[0], &ro, &s, &d) || load_rest(&o, s, &d))
    fprintf(stderr, "xkv-tune-run: %s\n", d.msg);
  else if (o.keys_from && !(from = rt_tune_read(o.keys_from, err, sizeof err)))
    fprintf(stderr, "xkv-tune-run: --keys-from: %s\n", err);
  else if (from ? points_from_cache(from, &o, s, pts, &npts)
                : points_from_spec(text, klist, pts, &npts))
    ;
  else if (!npts)
    fprintf(stderr, "xkv-tune-run: no key to time (no kernel of %s in %s%s)\n",
            o.keys_from ? o.keys_from : "--kernels", o.dirs[0],
            o.ndirs > 1 ? " ..." : "");
  else
    rc = run(&o, s, from, pts, npts);
  free(text);
  free(klist);
  free(pts);
  rt_tune_free(from);
  xk_run_close(s);
  return rc;
}
