/* Timing built variants (see tune_run.h). The inputs, the C references
 * and the correctness gate are xkv-tune's (problem.c, measure.c), so a
 * record measured here means what one from xkv-tune means.
 *
 * CPU: like xkv-tune, interleaved rounds with the last-level cache flushed
 * before each run, the finalists re-timed, median and spread.
 * CUDA: each candidate is warmed up for WARM_S, then timed by events around
 * batches of launches; every launch takes the next of several copies of
 * the problem's buffers (together more than twice the L2), so no launch
 * finds its inputs in L2 from the one before (a memset between launches
 * would be timed with them, and leaves the memset's lines in L2); it stops
 * once the batches' relative spread is below the goal or its time is up. */
#include "tune_run.h"

#include "internal.h"
#include "problem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CAND 1024
#define MAX_SETS 64
#define WARM_S 0.02   /* CUDA warm-up per candidate */
#define BATCH_S 1e-3  /* CUDA: one timed batch lasts about this */
#define MIN_BATCHES 5 /* before the spread rule may stop */
#define MAX_BATCHES 200
#define RUN_COMPILER "xkvgen artifacts" /* the IR hash names the compiler */

struct xk_run_session {
  xk_run_opts o;
  xkv_context *ctx;
  int cuda, units;
  char fp[256];
  unsigned char *flush; /* CPU: written before each run */
  size_t flush_bytes;
  double t0;
};

typedef struct {
  xkv_kernel *h;
  rt_tune_pair conf[RT_TUNE_MAX_CONF];
  int nconf;
  const char *status;
  char why[1024];
} cand;

/* One key's sweep: the candidates and the problem's buffers, on CUDA
 * nsets device copies of them (args[set * nargs + i]). */
typedef struct {
  xk_run_session *s;
  xk_problem *p;
  cand *c;
  const char *kernel, *key;
  xkv_arg *args;
  int nsets, next;
  xkv_event *e0, *e1;
  xk_diag *d;
} sweep;

int xk_run_open(const char *dir, const xk_run_opts *o, xk_run_session **out,
                xk_diag *d) {
  xk_run_session *s = calloc(1, sizeof *s);
  if (!(*out = s))
    return xk_diag_set(d, "out of memory");
  s->o = *o;
  s->o.rounds = o->rounds > 0 ? o->rounds : 5;
  s->o.cand_s = o->cand_s > 0 ? o->cand_s : 0.25;
  s->o.spread_goal = o->spread_goal > 0 ? o->spread_goal : 0.02;
  s->o.l2_mb = o->l2_mb > 0 ? o->l2_mb : 50;
  s->t0 = xk_now();
  if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda"))
    return xk_diag_set(d, "--device %s: xkv-tune-run times on cpu or cuda",
                       o->device);
  s->cuda = !strcmp(o->device, "cuda");
  unsetenv("XKV_TUNE_CACHE"); /* candidates are launched by exact config */
  if (xkv_open(&s->ctx, o->device))
    return xk_diag_set(d, "%s device: %s", o->device, xkv_last_error(s->ctx));
  if (xkv_registry_load(s->ctx, dir))
    return xk_diag_set(d, "%s", xkv_last_error(s->ctx));
  xkv_device_info di;
  if (xkv_device_get_info(s->ctx, &di))
    return xk_diag_set(d, "%s", xkv_last_error(s->ctx));
  s->units = di.units;
  snprintf(s->fp, sizeof s->fp, "%s", xkv_tune_fingerprint(s->ctx));
  if (!s->cuda) {
    s->flush_bytes = 2 * xk_llc_bytes();
    if (!(s->flush = malloc(s->flush_bytes)))
      return xk_diag_set(d, "out of memory");
  }
  return 0;
}

int xk_run_load(xk_run_session *s, const char *dir, xk_diag *d) {
  return xkv_registry_load(s->ctx, dir)
             ? xk_diag_set(d, "%s", xkv_last_error(s->ctx))
             : 0;
}

const char *xk_run_fingerprint(const xk_run_session *s) {
  return s->fp;
}

int xk_run_has_kernel(const xk_run_session *s, const char *kernel) {
  for (int i = 0; i < s->ctx->nkernels; i++)
    if (!strcmp(s->ctx->kernels[i]->v[0]->kernel, kernel))
      return 1;
  return 0;
}

void xk_run_close(xk_run_session *s) {
  if (!s)
    return;
  xkv_close(s->ctx);
  free(s->flush);
  free(s);
}

/* --- candidates ----------------------------------------------------------- */

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

static int is_key(const char *const *names, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], name))
      return 1;
  return 0;
}

/* The kernel's configurations built for this key (its key constexprs at
 * the key's values), the default first, then registry order. */
static int gather(xk_run_session *s, const char *kernel,
                  const char *const *names, const int64_t *vals, int n, cand *c,
                  int *nc, xk_diag *d) {
  xkv_const keyc[RT_TUNE_MAX_KEY];
  int nkeyc = 0, m = 0;
  for (int i = 0; i < s->ctx->nkernels && m < MAX_CAND; i++) {
    const rt_variant *v = s->ctx->kernels[i]->v[0];
    int fits = !strcmp(v->kernel, kernel);
    for (int j = 0; fits && j < n; j++) {
      int64_t have;
      if (const_value(v, names[j], &have))
        fits = have == vals[j];
    }
    if (fits)
      c[m++].h = s->ctx->kernels[i];
  }
  if (!m)
    return xk_diag_set(d,
                       "%s: no built variant at key %s=%lld...: build the "
                       "directory with xkvgen --variants all (and -D for the "
                       "key constexprs)",
                       kernel, n ? names[0] : "?",
                       n ? (long long)vals[0] : 0LL);
  const rt_variant *v0 = c[0].h->v[0];
  for (int j = 0; j < n && nkeyc < RT_TUNE_MAX_KEY; j++) {
    int64_t have;
    if (const_value(v0, names[j], &have))
      keyc[nkeyc++] = (xkv_const){names[j], vals[j]};
  }
  xkv_kernel *dflt;
  if (xkv_kernel_find(s->ctx, kernel, keyc, nkeyc, &dflt))
    return xk_diag_set(d, "%s", xkv_last_error(s->ctx));
  for (int i = 1; i < m; i++)
    if (c[i].h == dflt) {
      memmove(&c[1], &c[0], (size_t)i * sizeof *c);
      c[0].h = dflt;
    }
  *nc = m;
  return 0;
}

/* The tune dims: the names the candidates differ in, key constexprs aside
 * (in the default's constexpr order, then num_warps and num_stages). */
static void dims(cand *c, int m, const char *const *names, int n) {
  const rt_variant *v0 = c[0].h->v[0];
  const char *dim[RT_TUNE_MAX_CONF];
  int nd = 0;
  for (int k = 0; k < v0->nconsts + 2 && nd < RT_TUNE_MAX_CONF; k++) {
    const char *name = k < v0->nconsts    ? v0->consts[k].name
                       : k == v0->nconsts ? "num_warps"
                                          : "num_stages";
    if (is_key(names, n, name))
      continue;
    int64_t a = 0, b;
    const_value(v0, name, &a);
    int varies = 0;
    for (int i = 1; i < m && !varies; i++)
      varies = !const_value(c[i].h->v[0], name, &b) || b != a;
    if (varies)
      dim[nd++] = name;
  }
  for (int i = 0; i < m; i++) {
    c[i].nconf = 0;
    for (int j = 0; j < nd; j++) {
      int64_t x = 0;
      const_value(c[i].h->v[0], dim[j], &x);
      c[i].conf[c[i].nconf++] = (rt_tune_pair){(char *)dim[j], x};
    }
  }
}

static void conf_str(const cand *c, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < c->nconf && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s=%lld", i ? " " : "",
                          c->conf[i].name, (long long)c->conf[i].value);
}

/* --- buffers -------------------------------------------------------------- */

static size_t arg_bytes(const xk_problem *p, int i) {
  int dt = p->args[i].dtype;
  size_t es = dt == XKV_F16 || dt == XKV_BF16 ? 2 : dt == XKV_I64 ? 8 : 4;
  return (p->nelem[i] ? p->nelem[i] : 1) * es;
}

static int is_out(const xk_problem *p, int i) {
  for (int o = 0; o < p->nouts; o++)
    if (p->outs[o] == i)
      return 1;
  return 0;
}

/* CPU: the problem's own arguments. CUDA: nsets copies on the device, as
 * many as make more than 2x L2 (at least 2, at most MAX_SETS and half the
 * free memory). */
static int buffers(sweep *w, xk_diag *d) {
  xk_problem *p = w->p;
  if (!w->s->cuda) {
    w->nsets = 1;
    w->args = p->args;
    return 0;
  }
  size_t set = 0;
  for (int i = 0; i < p->nargs; i++)
    if (p->args[i].is_ptr)
      set += arg_bytes(p, i);
  xkv_device_info di;
  xkv_device_get_info(w->s->ctx, &di);
  double l2 = w->s->o.l2_mb * 1048576.0;
  int want = (int)ceil(2 * l2 / (double)(set ? set : 1)) + 1;
  want = want < 2 ? 2 : want > MAX_SETS ? MAX_SETS : want;
  while (want > 1 && (double)set * want > 0.5 * (double)di.free_memory)
    want--;
  if (!(w->args = calloc((size_t)want * (size_t)p->nargs, sizeof *w->args)))
    return xk_diag_set(d, "out of memory");
  w->nsets = want; /* every set's pointers NULL until allocated */
  for (int k = 0; k < want; k++) {
    xkv_arg *a = &w->args[k * p->nargs];
    memcpy(a, p->args, (size_t)p->nargs * sizeof *a);
    for (int i = 0; i < p->nargs; i++)
      if (p->args[i].is_ptr)
        a[i].v.p = NULL;
  }
  for (int k = 0; k < want; k++) {
    xkv_arg *a = &w->args[k * p->nargs];
    for (int i = 0; i < p->nargs; i++) {
      if (!p->args[i].is_ptr)
        continue;
      if (xkv_alloc(w->s->ctx, arg_bytes(p, i), &a[i].v.p) ||
          xkv_copy_h2d(w->s->ctx, a[i].v.p, p->bufs[i], arg_bytes(p, i), NULL))
        return xk_diag_set(d, "%s: %zu MiB of problem copies: %s", w->kernel,
                           set * (size_t)want >> 20, xkv_last_error(w->s->ctx));
    }
  }
  if (xkv_event_create(w->s->ctx, &w->e0) ||
      xkv_event_create(w->s->ctx, &w->e1))
    return xk_diag_set(d, "%s", xkv_last_error(w->s->ctx));
  return 0;
}

static void free_buffers(sweep *w) {
  if (!w->s->cuda || !w->args)
    return;
  for (int k = 0; w->args && k < w->nsets; k++)
    for (int i = 0; i < w->p->nargs; i++)
      if (w->p->args[i].is_ptr)
        xkv_free(w->s->ctx, w->args[k * w->p->nargs + i].v.p);
  free(w->args);
  if (w->e0)
    xkv_event_destroy(w->s->ctx, w->e0);
  if (w->e1)
    xkv_event_destroy(w->s->ctx, w->e1);
}

static int fail(sweep *w, cand *c, const char *status) {
  c->status = status;
  snprintf(c->why, sizeof c->why, "%s", xkv_last_error(w->s->ctx));
  return -1;
}

/* Launches candidate c on the next buffer set (queued on CUDA). */
static int launch(sweep *w, cand *c) {
  xkv_arg *a = &w->args[w->next * w->p->nargs];
  w->next = (w->next + 1) % w->nsets;
  return xkv_launch(w->s->ctx, c->h, NULL, a, w->p->nargs, NULL)
             ? fail(w, c, "run_failed")
             : 0;
}

/* One run on set 0 with NaN-poisoned outputs; the checked output in out. */
static int checked_run(sweep *w, cand *c, double *out) {
  xk_problem *p = w->p;
  xkv_context *ctx = w->s->ctx;
  xk_problem_poison(p);
  for (int i = 0; w->s->cuda && i < p->nargs; i++)
    if (is_out(p, i) &&
        xkv_copy_h2d(ctx, w->args[i].v.p, p->bufs[i], arg_bytes(p, i), NULL))
      return fail(w, c, "run_failed");
  w->next = 0;
  if (launch(w, c))
    return -1;
  if (xkv_sync(ctx))
    return fail(w, c, "run_failed");
  for (int i = 0; w->s->cuda && i < p->nargs; i++)
    if (is_out(p, i) &&
        xkv_copy_d2h(ctx, p->bufs[i], w->args[i].v.p, arg_bytes(p, i), NULL))
      return fail(w, c, "run_failed");
  xk_problem_output(p, out);
  return 0;
}

/* --- timing --------------------------------------------------------------- */

static int cpu_run(void *ctx, int i, double *us) {
  sweep *w = ctx;
  memset(w->s->flush, (int)(xk_now() * 1e3) & 0xff, w->s->flush_bytes);
  double t = xk_now();
  if (launch(w, &w->c[i]))
    return -1;
  *us = (xk_now() - t) * 1e6;
  return 0;
}

static void progress(sweep *w, const char *phase, int done, int total,
                     const cand *best, double us) {
  FILE *o = w->s->o.progress;
  if (!o)
    return;
  char b[256] = "-";
  if (best)
    conf_str(best, b, sizeof b);
  fprintf(o, "\r\033[K%s %s: %s %d/%d (%d left), fastest %.1f us [%s]",
          w->kernel, w->key, phase, done, total, total - done, us, b);
  fflush(o);
}

static void round_done(void *ctx, int round, int rounds, int i, double us) {
  sweep *w = ctx;
  progress(w, "timing round", round, rounds, i >= 0 ? &w->c[i] : NULL, us);
}

/* CUDA: warm-up by time, then event-timed batches until the spread goal
 * or the time limit. */
static int cuda_time(sweep *w, int i, xk_samples *m) {
  xkv_context *ctx = w->s->ctx;
  cand *c = &w->c[i];
  double t0 = xk_now();
  int warm = 0;
  while (xk_now() - t0 < WARM_S) {
    if (launch(w, c))
      return -1;
    if (xkv_sync(ctx))
      return fail(w, c, "run_failed");
    warm++;
  }
  double est = (xk_now() - t0) / warm; /* an upper bound: syncs included */
  int batch = (int)(BATCH_S / est);
  batch = batch < 1 ? 1 : batch > 1000 ? 1000 : batch;
  double start = xk_now();
  while (m->nt < MAX_BATCHES) {
    float ms;
    if (xkv_event_record(ctx, w->e0, NULL))
      return fail(w, c, "run_failed");
    for (int b = 0; b < batch; b++)
      if (launch(w, c))
        return -1;
    if (xkv_event_record(ctx, w->e1, NULL) ||
        xkv_event_elapsed_ms(ctx, w->e0, w->e1, &ms))
      return fail(w, c, "run_failed");
    if (xk_samples_add(m, 1e3 * ms / batch))
      return xk_diag_set(w->d, "out of memory"), -2;
    if (m->nt >= MIN_BATCHES) {
      xk_samples_stats(m);
      if (m->spread <= w->s->o.spread_goal || xk_now() - start > w->s->o.cand_s)
        break;
    }
  }
  xk_samples_stats(m);
  return 0;
}

static int over_budget(const xk_run_session *s) {
  return s->o.budget_s > 0 && xk_now() - s->t0 > s->o.budget_s;
}

/* --- records -------------------------------------------------------------- */

static int emit(sweep *w, const char *const *names, const int64_t *vals, int n,
                const xk_samples *m, int nc, int win, int runner,
                rt_tune_cache *out, xk_diag *d) {
  const char *hash = w->c[0].h->v[0]->ir_hash;
  for (int i = 0; i < nc; i++) {
    const cand *c = &w->c[i];
    if (!c->status || (!strcmp(c->status, "ok") && !(m[i].median > 0)))
      continue; /* skipped by the budget */
    rt_tune_record r = {.kernel = (char *)w->kernel,
                        .ir_hash = (char *)(hash ? hash : "unknown"),
                        .compiler = RUN_COMPILER,
                        .fingerprint = w->s->fp,
                        .source = "measured",
                        .status = (char *)c->status,
                        .why = c->why[0] ? (char *)c->why : NULL,
                        .nconf = c->nconf,
                        .time_us = m[i].median,
                        .spread = m[i].spread,
                        .winner = i == win};
    for (int j = 0; j < n && j < RT_TUNE_MAX_KEY; j++)
      r.key[r.nkey++] = (rt_tune_pair){(char *)names[j], vals[j]};
    memcpy(r.conf, c->conf, sizeof r.conf);
    if (i == win)
      r.margin = runner >= 0 ? m[runner].median / m[win].median - 1 : 0;
    if (rt_tune_add(out, &r))
      return xk_diag_set(d, "out of memory");
  }
  return 0;
}

static void summarize(const sweep *w, const xk_samples *m, int nc, int win,
                      int runner, xk_tune_row *row) {
  row->default_us = m[0].median;
  row->tuned_us = m[win].median;
  row->spread = m[win].spread;
  row->margin = runner >= 0 ? m[runner].median / m[win].median - 1 : 0;
  row->gflops = w->p->flops > 0 ? w->p->flops / (m[win].median * 1e3) : 0;
  conf_str(&w->c[win], row->config, sizeof row->config);
  for (int i = 0; i < nc; i++) {
    const char *st = w->c[i].status;
    row->n_skipped += !st;
    row->n_ok += st && !strcmp(st, "ok");
    row->n_wrong += st && !strcmp(st, "wrong");
    row->n_failed += st && strstr(st, "failed") != NULL;
  }
}

/* Checks and times the candidates; the winner's index, or -1 with d set. */
static int sweep_key(sweep *w, xk_samples *m, int nc, double *ref, double *buf,
                     int *runner, xk_diag *d) {
  cand *c = w->c;
  double t = xk_now();
  if (checked_run(w, &c[0], ref))
    return xk_diag_set(d, "%s %s: the default config fails: %s", w->kernel,
                       w->key, c[0].why),
           -1;
  double us = (xk_now() - t) * 1e6;
  if (xk_problem_reference(w->p, w->kernel, w->key, ref, d))
    return -1;
  c[0].status = "ok";
  int idx[MAX_CAND], nidx = 0;
  for (int i = 0; i < nc; i++) {
    if (i && over_budget(w->s))
      break;
    if (i && !checked_run(w, &c[i], buf))
      c[i].status = xk_gate(buf, ref, w->p->out_elems, w->p->tol,
                            "the default config's", c[i].why, sizeof c[i].why);
    if (!strcmp(c[i].status, "ok"))
      m[idx[nidx++] = i].ok = 1;
    progress(w, "check", i + 1, nc, NULL, 0);
  }
  if (w->s->cuda) {
    for (int j = 0; j < nidx; j++) {
      int rc = cuda_time(w, idx[j], &m[idx[j]]);
      if (rc == -2)
        return -1;
      m[idx[j]].ok = !rc;
      progress(w, "timed", j + 1, nidx, NULL, 0);
    }
  } else {
    int rounds = xk_cpu_rounds(w->s->o.rounds, us);
    if (xk_time_rounds(m, idx, nidx, rounds, cpu_run, w, round_done) ||
        xk_time_finalists(m, idx, nidx, 2 * w->s->o.rounds, cpu_run, w,
                          round_done))
      return xk_diag_set(d, "out of memory"), -1;
  }
  int win = xk_pick(m, nc, runner);
  if (win < 0)
    return xk_diag_set(d, "%s %s: no config ran correctly", w->kernel, w->key),
           -1;
  return win;
}

int xk_run_key(xk_run_session *s, const char *kernel, const char *const *names,
               const int64_t *vals, int n, rt_tune_cache *out, xk_tune_row *row,
               xk_diag *d) {
  double t_start = xk_now();
  memset(row, 0, sizeof *row);
  snprintf(row->kernel, sizeof row->kernel, "%s", kernel);
  size_t k = 0;
  for (int i = 0; i < n && k < sizeof row->key; i++)
    k += (size_t)snprintf(row->key + k, sizeof row->key - k, "%s%s=%lld",
                          i ? " " : "", names[i], (long long)vals[i]);
  cand *c = calloc(MAX_CAND, sizeof *c);
  xk_samples *m = calloc(MAX_CAND, sizeof *m);
  xk_problem p = {0};
  sweep w = {
      .s = s, .p = &p, .c = c, .kernel = kernel, .key = row->key, .d = d};
  int nc = 0, rc = !c || !m ? xk_diag_set(d, "out of memory") : 0;
  if (!rc)
    rc = gather(s, kernel, names, vals, n, c, &nc, d);
  if (!rc) {
    dims(c, nc, names, n);
    rc = xk_problem_make(kernel, names, vals, n, s->units, &p, d);
  }
  double *ref = NULL, *buf = NULL;
  if (!rc) {
    ref = malloc((p.out_elems ? p.out_elems : 1) * sizeof *ref);
    buf = malloc((p.out_elems ? p.out_elems : 1) * sizeof *buf);
    rc = !ref || !buf ? xk_diag_set(d, "out of memory") : buffers(&w, d);
  }
  int runner = -1, win = rc ? -1 : sweep_key(&w, m, nc, ref, buf, &runner, d);
  if (win >= 0) {
    rc = emit(&w, names, vals, n, m, nc, win, runner, out, d);
    summarize(&w, m, nc, win, runner, row);
  } else
    rc = -1;
  if (s->o.progress)
    fprintf(s->o.progress, "\r\033[K");
  row->seconds = xk_now() - t_start;
  free_buffers(&w);
  for (int i = 0; m && i < nc; i++)
    free(m[i].t);
  free(m);
  free(c);
  free(ref);
  free(buf);
  xk_problem_free(&p);
  return rc;
}
