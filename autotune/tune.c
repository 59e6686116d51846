/* The sweep of one kernel at one key; see tune.h. On the CPU every
 * candidate is compiled for the host, JIT-loaded and registered in a CPU
 * context of the runtime, so it runs on the device's own thread pool, as
 * an engine's launches do. The reference every candidate's output is
 * checked against is the kernel's default configuration on the host
 * (itself checked against a plain C reference where problem.c has one). */
#include "tune.h"

#include "compile.h"
#include "gemm_model.h"
#include "internal.h"
#include "ir_hash.h"
#include "manifest.h"
#include "measure.h"
#include "problem.h"
#include "text.h"
#include "tune_model.h"
#include "variants.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CAND 4096

struct xk_tune_session {
  xk_tune_opts o;
  xk_dsl *dsl;
  xk_jit *jit;
  LLVMTargetMachineRef tm;
  xkv_context *ctx;
  xk_tune_model model; /* model devices */
  int is_model;
  char fp[256];
  double t0;
  unsigned char *flush;
  size_t flush_bytes;
  int serial;
};

typedef struct {
  xk_constexpr over[RT_TUNE_MAX_CONF];
  int nover;
  rt_tune_pair conf[RT_TUNE_MAX_CONF];
  int nconf;
  const char *status;
  char why[1024];
  xkv_kernel *h;
  xk_func *f;
} cand;

int xk_tune_open(const char *xk_path, const xk_tune_opts *o,
                 xk_tune_session **out, xk_diag *d) {
  xk_tune_session *s = calloc(1, sizeof *s);
  if (!s)
    return xk_diag_set(d, "out of memory");
  s->o = *o;
  s->o.rounds = o->rounds > 0 ? o->rounds : 5;
  s->t0 = xk_now();
  *out = s;
  if (xk_dsl_open(xk_path, &s->dsl, d))
    return -1;
  if (!strncmp(o->device, "model:", 6)) {
    s->is_model = 1;
    if (xk_tune_model_open(o->device + 6, &s->model, d))
      return -1;
    snprintf(s->fp, sizeof s->fp, "%s", s->model.fingerprint);
    return 0;
  }
  if (strcmp(o->device, "cpu"))
    return xk_diag_set(d,
                       "--device %s: this build tunes on cpu, model:sm_90 and "
                       "model:sm_90-h200 (a CUDA device is not supported yet)",
                       o->device);
  unsetenv("XKV_TUNE_CACHE"); /* candidates are launched by exact config */
  if (xkv_open(&s->ctx, "cpu"))
    return xk_diag_set(d, "cpu device: %s", xkv_last_error(s->ctx));
  if (xk_target_machine("host", &s->tm, d) || xk_jit_new(&s->jit, d))
    return -1;
  snprintf(s->fp, sizeof s->fp, "%s", xkv_tune_fingerprint(s->ctx));
  s->flush_bytes = 2 * xk_llc_bytes();
  if (!(s->flush = malloc(s->flush_bytes)))
    return xk_diag_set(d, "out of memory");
  return 0;
}

xk_dsl *xk_tune_dsl(xk_tune_session *s) {
  return s->dsl;
}

const char *xk_tune_fingerprint(const xk_tune_session *s) {
  return s->fp;
}

void xk_tune_close(xk_tune_session *s) {
  if (!s)
    return;
  xkv_close(s->ctx);
  xk_jit_free(s->jit);
  if (s->tm)
    LLVMDisposeTargetMachine(s->tm);
  xk_tune_model_close(&s->model);
  xk_dsl_close(s->dsl);
  free(s->flush);
  free(s);
}

/* --- candidates ----------------------------------------------------------- */

static int64_t func_value(const xk_func *f, const char *name) {
  if (!strcmp(name, "num_warps"))
    return f->num_warps;
  if (!strcmp(name, "num_stages"))
    return f->num_stages;
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, name))
      return f->consts[i].value;
  return 0;
}

static int is_const(const xk_kernel_spec *spec, const char *name) {
  for (int i = 0; i < spec->nconsts; i++)
    if (!strcmp(spec->consts[i].name, name))
      return 1;
  return 0;
}

/* Candidates: the default first, then the tune space in declaration order
 * (dims sorted by name, values as listed). The host ignores num_warps and
 * num_stages, so on the CPU they stay at their defaults. */
static int candidates(xk_tune_session *s, const xk_kernel_spec *spec,
                      const xk_func *dflt, const xk_constexpr *keyc, int nkeyc,
                      cand **out, int *n, xk_diag *d) {
  xk_constexpr fixed[RT_TUNE_MAX_CONF + RT_TUNE_MAX_KEY];
  int nfixed = 0;
  for (int i = 0; i < nkeyc; i++)
    fixed[nfixed++] = keyc[i];
  for (int i = 0; !s->is_model && i < spec->ntune; i++)
    if (!is_const(spec, spec->tune[i].name))
      fixed[nfixed++] = (xk_constexpr){spec->tune[i].name,
                                       func_value(dflt, spec->tune[i].name)};
  for (int i = 0; i < s->o.nfix && nfixed < RT_TUNE_MAX_CONF; i++) {
    int tuned = 0, have = 0;
    for (int j = 0; j < spec->ntune; j++)
      tuned |= !strcmp(spec->tune[j].name, s->o.fix[i].name);
    for (int j = 0; j < nfixed; j++)
      have |= !strcmp(fixed[j].name, s->o.fix[i].name);
    if (tuned && !have)
      fixed[nfixed++] = s->o.fix[i];
  }
  xk_override_set *vs;
  int nv;
  if (xk_variants_enumerate(spec, fixed, nfixed, 1, &vs, &nv, d))
    return -1;
  cand *c = calloc((size_t)nv + 1, sizeof *c);
  if (!c) {
    xk_variants_free(vs, nv);
    return xk_diag_set(d, "out of memory");
  }
  int m = 0;
  for (int v = -1; v < nv; v++) {
    cand *x = &c[m];
    for (int i = 0; i < spec->ntune && x->nconf < RT_TUNE_MAX_CONF; i++) {
      const char *name = spec->tune[i].name;
      int64_t val = func_value(dflt, name);
      for (int j = 0; v >= 0 && j < vs[v].n; j++)
        if (!strcmp(vs[v].over[j].name, name))
          val = vs[v].over[j].value;
      x->conf[x->nconf++] = (rt_tune_pair){(char *)name, val};
    }
    int dup = 0;
    for (int j = 0; j < m && !dup; j++) {
      dup = 1;
      for (int i = 0; i < x->nconf && dup; i++)
        dup = c[j].conf[i].value == x->conf[i].value;
    }
    if (dup) {
      memset(x, 0, sizeof *x);
      continue;
    }
    for (int i = 0; i < nkeyc; i++)
      x->over[x->nover++] = keyc[i];
    for (int i = 0; i < x->nconf; i++)
      x->over[x->nover++] = (xk_constexpr){x->conf[i].name, x->conf[i].value};
    m++;
  }
  xk_variants_free(vs, nv);
  *out = c;
  *n = m;
  return 0;
}

static void conf_str(const cand *c, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < c->nconf && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s=%lld", i ? " " : "",
                          c->conf[i].name, (long long)c->conf[i].value);
}

/* JIT-compiles the candidate for the host and registers it in the CPU
 * context through an embedded table, the way a linked engine gets it. */
static int load_host(xk_tune_session *s, const xk_kernel_spec *spec, cand *c,
                     xk_diag *d) {
  char sym[160], path[64];
  snprintf(sym, sizeof sym, "%s_t%d", c->f->name, s->serial++);
  LLVMModuleRef mod;
  xk_host_fn fn;
  if (xk_compile_llvm(c->f, "host", s->tm, sym, 1, &mod, NULL, d) ||
      xk_jit_add(s->jit, mod, d) || xk_jit_lookup(s->jit, sym, &fn, d))
    return -1;
  snprintf(path, sizeof path, "/tmp/xkv-tune-%ld.json", (long)getpid());
  xk_manifest_entry e = {.f = c->f,
                         .spec = spec,
                         .symbol = sym,
                         .file = "jit",
                         .threads = 32 * c->f->num_warps,
                         .registers = -1,
                         .spill_bytes = -1};
  size_t len;
  char *text = NULL;
  int rc = xk_manifest_write(path, "xkv-tune", "host", &e, 1, d);
  if (!rc && !(text = xk_read_file(path, &len, d)))
    rc = -1;
  unlink(path);
  if (rc)
    return -1;
  xkv_embedded_variant ev = {sym, (xkv_host_fn)fn, NULL, NULL, 0};
  xkv_embedded t = {text, "host", 1, &ev};
  xkv_const kc[RT_TUNE_MAX_CONF + RT_TUNE_MAX_KEY];
  for (int i = 0; i < c->nover; i++)
    kc[i] = (xkv_const){c->over[i].name, c->over[i].value};
  xkv_status st = xkv_registry_add_embedded(s->ctx, &t);
  free(text);
  if (st || xkv_kernel_find(s->ctx, spec->name, kc, c->nover, &c->h))
    return xk_diag_set(d, "%s", xkv_last_error(s->ctx));
  return 0;
}

/* A candidate an earlier key already loaded: the same kernel, constexprs,
 * warps and stages. */
static int registered(xk_tune_session *s, const xk_kernel_spec *spec, cand *c) {
  xkv_const kc[RT_TUNE_MAX_CONF + RT_TUNE_MAX_KEY];
  for (int i = 0; i < c->nover; i++)
    kc[i] = (xkv_const){c->over[i].name, c->over[i].value};
  xkv_kernel *h;
  if (xkv_kernel_find(s->ctx, spec->name, kc, c->nover, &h))
    return 0;
  const rt_variant *v = h->v[0];
  for (int i = 0; i < c->nover; i++) {
    const char *n = c->over[i].name;
    int64_t have = !strcmp(n, "num_warps")    ? v->num_warps
                   : !strcmp(n, "num_stages") ? v->num_stages
                                              : INT64_MIN;
    for (int j = 0; j < v->nconsts; j++)
      if (!strcmp(v->consts[j].name, n))
        have = v->consts[j].value;
    if (have != c->over[i].value)
      return 0;
  }
  c->h = h;
  return 1;
}

/* Compiles (or finds) the candidate's host code and registers it. */
static int load(xk_tune_session *s, xk_dsl *dsl, int k,
                const xk_kernel_spec *spec, cand *c, xk_diag *d) {
  if (registered(s, spec, c))
    return 0;
  return xk_compile_ir(dsl, k, c->over, c->nover, &c->f, d) ||
                 load_host(s, spec, c, d)
             ? -1
             : 0;
}

static int run_once(xk_tune_session *s, xk_problem *p, cand *c, double *us,
                    xk_diag *d) {
  if (s->flush) /* caches flushed: the inputs come from memory */
    memset(s->flush, (int)(xk_now() * 1e3) & 0xff, s->flush_bytes);
  double t = xk_now();
  if (xkv_launch(s->ctx, c->h, NULL, p->args, p->nargs, NULL))
    return xk_diag_set(d, "%s", xkv_last_error(s->ctx));
  *us = (xk_now() - t) * 1e6;
  return 0;
}

static int over_budget(const xk_tune_session *s) {
  return s->o.budget_s > 0 && xk_now() - s->t0 > s->o.budget_s;
}

/* What the timing callbacks need of one key's sweep. */
typedef struct {
  xk_tune_session *s;
  xk_problem *p;
  cand *c;
  const char *kname, *key;
} sweep;

/* best: the candidate with the fastest run so far, us its time */
static void progress(xk_tune_session *s, const char *kname, const char *key,
                     const char *phase, int done, int total, const cand *best,
                     double us) {
  if (!s->o.progress)
    return;
  char b[256] = "-";
  if (best)
    conf_str(best, b, sizeof b);
  fprintf(s->o.progress,
          "\r\033[K%s %s: %s %d/%d (%d left), fastest run %.1f us [%s]", kname,
          key, phase, done, total, total - done, us, b);
  fflush(s->o.progress);
}

static void round_done(void *ctx, int round, int rounds, int i, double us) {
  sweep *w = ctx;
  progress(w->s, w->kname, w->key, "timing round", round, rounds,
           i >= 0 ? &w->c[i] : NULL, us);
}

static int run_cand(void *ctx, int i, double *us) {
  sweep *w = ctx;
  xk_diag d;
  if (run_once(w->s, w->p, &w->c[i], us, &d)) {
    w->c[i].status = "run_failed";
    snprintf(w->c[i].why, sizeof w->c[i].why, "%s", d.msg);
    return -1;
  }
  return 0;
}

static void key_str(const xk_kernel_spec *spec, const int64_t *vals, char *buf,
                    size_t n) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < spec->nkey && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s=%lld", i ? " " : "",
                          spec->key[i], (long long)vals[i]);
}

static const rt_tune_record *resumed(const xk_tune_session *s,
                                     const xk_kernel_spec *spec,
                                     const int64_t *vals, const char *hash) {
  const rt_tune_cache *c = s->o.resume;
  for (int i = 0; c && i < c->n; i++) {
    const rt_tune_record *r = &c->r[i];
    if (!r->winner || strcmp(r->kernel, spec->name) ||
        strcmp(r->fingerprint, s->fp) || strcmp(r->ir_hash, hash) ||
        r->nkey != spec->nkey)
      continue;
    int same = 1;
    for (int j = 0; j < r->nkey && same; j++)
      same =
          !strcmp(r->key[j].name, spec->key[j]) && r->key[j].value == vals[j];
    if (same)
      return r;
  }
  return NULL;
}

static int emit(xk_tune_session *s, const xk_kernel_spec *spec,
                const int64_t *vals, const char *hash, const cand *c,
                const xk_samples *m, int n, int w, int runner,
                rt_tune_cache *out, xk_diag *d) {
  for (int i = 0; i < spec->nkeygrid; i++)
    if (rt_tune_add_grid(out, spec->name, spec->keygrid[i].name,
                         spec->keygrid[i].vals, spec->keygrid[i].n,
                         spec->keygrid[i].round))
      return xk_diag_set(d, "out of memory");
  for (int i = 0; i < n; i++) {
    if (!c[i].status)
      continue; /* skipped by the budget or --max-configs */
    rt_tune_record r = {.kernel = spec->name,
                        .ir_hash = (char *)hash,
                        .compiler = XK_TUNE_COMPILER,
                        .fingerprint = s->fp,
                        .source = s->is_model ? "model" : "measured",
                        .status = (char *)c[i].status,
                        .why = c[i].why[0] ? (char *)c[i].why : NULL,
                        .nconf = c[i].nconf,
                        .time_us = m[i].median,
                        .spread = m[i].spread,
                        .winner = i == w};
    if (!strcmp(c[i].status, "ok") && !(m[i].median > 0))
      continue;
    for (int j = 0; j < spec->nkey; j++)
      r.key[r.nkey++] = (rt_tune_pair){spec->key[j], vals[j]};
    memcpy(r.conf, c[i].conf, sizeof r.conf);
    if (i == w)
      r.margin = runner >= 0 ? m[runner].median / m[w].median - 1 : 0;
    if (rt_tune_add(out, &r))
      return xk_diag_set(d, "out of memory");
  }
  return 0;
}

static void free_cands(cand *c, xk_samples *m, int n) {
  for (int i = 0; c && i < n; i++) {
    xk_func_free(c[i].f);
    free(m ? m[i].t : NULL);
  }
  free(c);
  free(m);
}

/* Compiles candidate i (IR, resources, host code) and checks its output;
 * its status says what became of it. */
static void prepare(xk_tune_session *s, const xk_kernel_spec *spec, int k,
                    cand *c, xk_problem *p, const double *ref, double *out) {
  xk_diag d;
  if (s->is_model) {
    if (xk_compile_ir(s->dsl, k, c->over, c->nover, &c->f, &d)) {
      c->status = "compile_failed";
      snprintf(c->why, sizeof c->why, "%s", d.msg);
      return;
    }
    xk_tune_model_prepare(&s->model, c->f, &c->status, c->why, sizeof c->why);
    return;
  }
  if (load(s, s->dsl, k, spec, c, &d)) {
    c->status = "compile_failed";
    snprintf(c->why, sizeof c->why, "%s", d.msg);
    return;
  }
  double us;
  xk_problem_poison(p);
  if (run_once(s, p, c, &us, &d)) {
    c->status = "run_failed";
    snprintf(c->why, sizeof c->why, "%s", d.msg);
    return;
  }
  xk_problem_output(p, out);
  c->status = xk_gate(out, ref, p->out_elems, p->tol, "the default config's",
                      c->why, sizeof c->why);
}

/* Model device: candidate x compiled, pruned on the compiler's resource
 * numbers (registers, shared memory, threads) and, when it fits, timed
 * by the model on p (NULL: the GEMM model's own problems). */
static void model_one(xk_tune_session *s, const xk_kernel_spec *spec, int k,
                      cand *x, xk_samples *t, const int64_t *vals,
                      xk_problem *p) {
  prepare(s, spec, k, x, NULL, NULL, NULL);
  if (strcmp(x->status, "ok"))
    return;
  int mr = xk_tune_model_time(&s->model, spec, x->f, vals, p, &t->median,
                              x->why, sizeof x->why);
  x->status = mr < 0 ? "run_failed" : mr ? "wrong" : "ok";
  t->ok = !mr;
  t->spread = 0; /* a model has no run-to-run noise */
}

/* What a worker sends back per candidate. */
static const char *const statuses[] = {"ok", "wrong", "infeasible",
                                       "compile_failed", "run_failed"};
typedef struct {
  int i, status;
  double median;
  char why[1024];
} model_result;

static int read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r <= 0)
      return -1;
    got += (size_t)r;
  }
  return 0;
}

/* Candidates 0..limit-1 on the model device in `jobs` forked workers,
 * worker w taking w, w + jobs, ...: the compile, the ptxas pruning and
 * the sim run are each candidate's own, and the sim run is the slow part
 * (each worker has its copy of the session and the problem). A worker
 * that dies leaves its unreported candidates run_failed, saying so. */
static int model_parallel(xk_tune_session *s, const xk_kernel_spec *spec, int k,
                          cand *c, xk_samples *m, int limit,
                          const int64_t *vals, xk_problem *p, const char *key,
                          xk_diag *d) {
  int jobs = s->o.jobs < limit ? s->o.jobs : limit;
  pid_t pid[XK_TUNE_MAX_JOBS];
  int fd[XK_TUNE_MAX_JOBS], done = 0, nw = 0;
  fflush(NULL); /* the children must not flush the parent's buffers */
  for (; nw < jobs; nw++) {
    int pp[2];
    if (pipe(pp))
      break;
    if ((pid[nw] = fork()) == 0) {
      close(pp[0]);
      for (int i = nw; i < limit; i += jobs) {
        if (i && over_budget(s))
          continue; /* the default always runs */
        model_result r = {.i = i};
        model_one(s, spec, k, &c[i], &m[i], vals, p);
        for (int j = 0; j < 5; j++)
          if (!strcmp(c[i].status, statuses[j]))
            r.status = j;
        r.median = m[i].median;
        snprintf(r.why, sizeof r.why, "%s", c[i].why);
        if (write(pp[1], &r, sizeof r) != (ssize_t)sizeof r)
          _exit(1);
      }
      _exit(0);
    }
    close(pp[1]);
    if (pid[nw] < 0) {
      close(pp[0]);
      break;
    }
    fd[nw] = pp[0];
  }
  if (nw < jobs)
    for (int i = 0; i < limit; i++) /* the workers' share that never ran */
      if (i % jobs >= nw)
        model_one(s, spec, k, &c[i], &m[i], vals, p);
  for (int w = 0; w < nw; w++) {
    model_result r;
    while (!read_full(fd[w], &r, sizeof r) && r.i >= 0 && r.i < limit) {
      c[r.i].status = statuses[r.status >= 0 && r.status < 5 ? r.status : 4];
      m[r.i].median = r.median;
      m[r.i].ok = !strcmp(c[r.i].status, "ok");
      snprintf(c[r.i].why, sizeof c[r.i].why, "%s", r.why);
      progress(s, spec->name, key, "compile+sim+model", ++done, limit, NULL, 0);
    }
    close(fd[w]);
    int st = 0;
    waitpid(pid[w], &st, 0);
    if (WIFEXITED(st) && !WEXITSTATUS(st))
      continue;
    for (int i = w; i < limit; i += jobs)
      if (!c[i].status) {
        c[i].status = "run_failed";
        snprintf(c[i].why, sizeof c[i].why,
                 "the tuner's worker died (%s %d) before reporting it",
                 WIFSIGNALED(st) ? "signal" : "exit status",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
      }
  }
  return c[0].status ? 0
                     : xk_diag_set(d, "%s %s: no worker ran the default",
                                   spec->name, key);
}

int xk_tune_key(xk_tune_session *s, int k, const int64_t *vals,
                rt_tune_cache *out, xk_tune_row *row, xk_diag *d) {
  const xk_kernel_spec *spec = xk_dsl_kernel(s->dsl, k);
  double t_start = xk_now();
  memset(row, 0, sizeof *row);
  snprintf(row->kernel, sizeof row->kernel, "%s", spec->name);
  key_str(spec, vals, row->key, sizeof row->key);
  xk_constexpr keyc[RT_TUNE_MAX_KEY];
  int nkeyc = 0;
  for (int i = 0; i < spec->nkey && nkeyc < RT_TUNE_MAX_KEY; i++)
    if (is_const(spec, spec->key[i]))
      keyc[nkeyc++] = (xk_constexpr){spec->key[i], vals[i]};
  xk_func *dflt;
  if (xk_compile_ir(s->dsl, k, keyc, nkeyc, &dflt, d))
    return -1;
  char hash[32];
  if (xk_kernel_ir_hash(s->dsl, k, dflt, hash, sizeof hash, d)) {
    xk_func_free(dflt);
    return -1;
  }
  const rt_tune_record *prev = resumed(s, spec, vals, hash);
  if (prev) {
    xk_func_free(dflt);
    row->resumed = 1;
    row->tuned_us = prev->time_us;
    return 0; /* its records stay in the file: nothing to merge */
  }
  cand *c = NULL;
  int n = 0, rc = candidates(s, spec, dflt, keyc, nkeyc, &c, &n, d);
  xk_func_free(dflt);
  if (rc)
    return -1;
  xk_samples *m = calloc((size_t)n, sizeof *m);
  if (!m) {
    free_cands(c, m, n);
    return xk_diag_set(d, "out of memory");
  }
  int limit =
      s->o.max_configs > 0 && s->o.max_configs < n ? s->o.max_configs : n;
  xk_problem p = {0};
  double *ref = NULL, *buf = NULL;
  /* the model device runs the GEMMs on its own reduced problems */
  int sim_problem = s->is_model && !xk_gemm_model_esize(spec->name);
  if (!s->is_model || sim_problem) {
    xkv_device_info di = {0};
    if (!s->is_model)
      xkv_device_get_info(s->ctx, &di);
    if (xk_problem_make(spec->name, (const char *const *)spec->key, vals,
                        spec->nkey, s->is_model ? s->model.sms : di.units, &p,
                        d)) {
      free_cands(c, m, n);
      return -1;
    }
  }
  if (!s->is_model) {
    ref = malloc(p.out_elems * sizeof *ref);
    buf = malloc(p.out_elems * sizeof *buf);
  }
  /* the default: the reference, checked against C where there is one */
  rc = !s->is_model && (!ref || !buf) ? xk_diag_set(d, "out of memory") : 0;
  double us = 0;
  if (!rc && !s->is_model) {
    xk_diag e;
    if (load(s, s->dsl, k, spec, &c[0], &e) ||
        (xk_problem_poison(&p), run_once(s, &p, &c[0], &us, &e)))
      rc = xk_diag_set(d, "%s %s: the default config fails: %s", spec->name,
                       row->key, e.msg);
    else {
      rc = xk_problem_reference(&p, spec->name, row->key, ref, d);
      c[0].status = "ok";
    }
  }
  if (!rc && s->is_model && s->o.jobs > 1)
    rc = model_parallel(s, spec, k, c, m, limit, vals, sim_problem ? &p : NULL,
                        row->key, d);
  for (int i = 0; !rc && s->is_model && s->o.jobs <= 1 && i < limit; i++) {
    if (i > 0 && over_budget(s)) /* sim runs are the slow part here */
      break;
    model_one(s, spec, k, &c[i], &m[i], vals, sim_problem ? &p : NULL);
    progress(s, spec->name, row->key, "compile+sim+model", i + 1, limit, NULL,
             0);
  }
  for (int i = 1; !rc && !s->is_model && i < limit; i++) {
    if (over_budget(s)) /* the default always runs */
      break;
    prepare(s, spec, k, &c[i], &p, ref, buf);
    progress(s, spec->name, row->key, "compile+check", i + 1, limit, NULL, 0);
  }
  int idx[MAX_CAND], nidx = 0;
  for (int i = 0; !rc && !s->is_model && i < limit && nidx < MAX_CAND; i++)
    if (c[i].status && !strcmp(c[i].status, "ok"))
      m[idx[nidx++] = i].ok = 1;
  if (!rc && !s->is_model) {
    int rounds = xk_cpu_rounds(s->o.rounds, us);
    sweep sw = {s, &p, c, spec->name, row->key};
    if (xk_time_rounds(m, idx, nidx, rounds, run_cand, &sw, round_done) ||
        xk_time_finalists(m, idx, nidx, 2 * s->o.rounds, run_cand, &sw,
                          round_done))
      rc = xk_diag_set(d, "out of memory");
  }
  int runner, w = rc ? -1 : xk_pick(m, limit, &runner);
  if (!rc && w < 0)
    rc = xk_diag_set(d, "%s %s: no config ran correctly", spec->name, row->key);
  if (!rc)
    rc = emit(s, spec, vals, hash, c, m, limit, w, runner, out, d);
  if (!rc) {
    row->default_us = m[0].median;
    row->tuned_us = m[w].median;
    row->spread = m[w].spread;
    row->margin = runner >= 0 ? m[runner].median / m[w].median - 1 : 0;
    row->gflops = p.flops > 0 ? p.flops / (m[w].median * 1e3) : 0;
    conf_str(&c[w], row->config, sizeof row->config);
    for (int i = 0; i < n; i++) {
      const char *st = c[i].status;
      row->n_skipped += !st;
      row->n_ok += st && !strcmp(st, "ok");
      row->n_wrong += st && !strcmp(st, "wrong");
      row->n_infeasible += st && !strcmp(st, "infeasible");
      row->n_failed += st && strstr(st, "failed") != NULL;
    }
  }
  if (s->o.progress)
    fprintf(s->o.progress, "\r\033[K");
  row->seconds = xk_now() - t_start;
  free(ref);
  free(buf);
  xk_problem_free(&p);
  free_cands(c, m, n);
  return rc;
}
