/* xkvgen: compiles kernels.xk ahead of time into PTX/cubin or host objects
 * plus a manifest the runtime loads, or prints one stage for inspection. */
#include "arch.h"
#include "compile.h"
#include "embed.h"
#include "grid.h"
#include "ir_hash.h"
#include "manifest.h"
#include "outdir.h"
#include "ptxas.h"
#include "variants.h"
#include "variants_tuned.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EMIT_NONE, EMIT_IR, EMIT_LLVM, EMIT_PTX, EMIT_OBJ };

typedef struct {
  const char *file, *target, *outdir;
  const char *kernels[64];
  int nkernels;
  xk_constexpr defs[64];
  int ndefs;
  const char *embed, *tune;
  int all, tuned, emit, cubin, opt, list, specialize;
} options;

static const char usage[] =
    "usage: xkvgen FILE.xk [options]\n"
    "  --target T        host (default), sm_80, sm_86, sm_89, sm_90, sm_90a\n"
    "  -D NAME=VALUE     fix a constexpr, num_warps or num_stages\n"
    "  --kernel NAME     only this kernel (repeatable)\n"
    "  --variants V      default (defaults + -D), all (the tune{} space) or\n"
    "                    tuned (the default + what --tune FILE selects)\n"
    "  --tune FILE       a tune cache (xkv-tune) for --variants tuned\n"
    "  --emit STAGE      print ir, llvm, ptx (GPU targets) or obj (host)\n"
    "                    to stdout\n"
    "  -o DIR            write one artifact per variant (.ptx or .o) and\n"
    "                    manifest.json into DIR\n"
    "  --cubin           with -o: assemble each PTX with ptxas (.cubin)\n"
    "  --embed NAME      with -o: also write DIR/NAME.c, a C table of the\n"
    "                    manifest and artifacts to link into an engine\n"
    "  --no-opt          skip the LLVM O3 pipeline\n"
    "  --specialize      also build each variant's twin for 16-byte aligned\n"
    "                    pointers and i32 args divisible by 16\n"
    "  --list            list the kernels, their args, consts and tune space\n"
    "  --version         the xkv release this xkvgen belongs to\n"
    "  -h, --help        this text\n";

/* NAME=VALUE: an integer, else a float, else a string */
static int parse_def(options *o, const char *s) {
  const char *eq = strchr(s, '='), *val = eq ? eq + 1 : NULL;
  char *end;
  if (!eq || eq == s || o->ndefs == 64)
    return -1;
  xk_constexpr *c = &o->defs[o->ndefs++];
  *c = (xk_constexpr){.name = strndup(s, (size_t)(eq - s))};
  c->value = strtoll(val, &end, 0);
  if (*val && !*end)
    return 0;
  c->fvalue = strtod(val, &end);
  if (*val && !*end && isfinite(c->fvalue)) {
    c->kind = XK_CONST_FLOAT;
    return 0;
  }
  c->kind = XK_CONST_STR;
  c->str = (char *)val; /* borrowed from argv */
  return 0;
}

static int parse_args(int argc, char **argv, options *o) {
  *o = (options){.target = "host", .opt = 1};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      exit(0);
    } else if (!strcmp(a, "--version")) {
      printf("xkvgen %s\n", XK_VERSION);
      exit(0);
    } else if (!strcmp(a, "--list")) {
      o->list = 1;
    } else if (!strcmp(a, "--cubin")) {
      o->cubin = 1;
    } else if (!strcmp(a, "--specialize")) {
      o->specialize = 1;
    } else if (!strcmp(a, "--no-opt")) {
      o->opt = 0;
    } else if (!strncmp(a, "-D", 2) && (a[2] || next)) {
      const char *d = a[2] ? a + 2 : argv[++i];
      if (parse_def(o, d)) {
        fprintf(stderr, "xkvgen: bad -D '%s' (want NAME=VALUE)\n", d);
        return -1;
      }
    } else if (next && !strcmp(a, "--target")) {
      o->target = argv[++i];
    } else if (next && !strcmp(a, "-o")) {
      o->outdir = argv[++i];
    } else if (next && !strcmp(a, "--embed")) {
      o->embed = argv[++i];
    } else if (next && !strcmp(a, "--kernel") && o->nkernels < 64) {
      o->kernels[o->nkernels++] = argv[++i];
    } else if (next && !strcmp(a, "--variants")) {
      const char *v = argv[++i];
      if (strcmp(v, "default") && strcmp(v, "all") && strcmp(v, "tuned")) {
        fprintf(stderr,
                "xkvgen: --variants takes default, all or tuned, not '%s'\n",
                v);
        return -1;
      }
      o->all = !strcmp(v, "all");
      o->tuned = !strcmp(v, "tuned");
    } else if (next && !strcmp(a, "--tune")) {
      o->tune = argv[++i];
    } else if (next && !strcmp(a, "--emit")) {
      static const char *const st[] = {"", "ir", "llvm", "ptx", "obj"};
      const char *s = argv[++i];
      for (int k = 1; k < 5; k++)
        if (!strcmp(s, st[k]))
          o->emit = k;
      if (!o->emit) {
        fprintf(stderr, "xkvgen: --emit takes ir, llvm, ptx or obj, not '%s'\n",
                s);
        return -1;
      }
    } else if (a[0] != '-' && !o->file) {
      o->file = a;
    } else {
      fprintf(stderr, "xkvgen: unknown or incomplete option '%s'\n%s", a,
              usage);
      return -1;
    }
  }
  if (!o->file) {
    fprintf(stderr, "xkvgen: no kernel file given\n%s", usage);
    return -1;
  }
  if (!o->list && !o->emit && !o->outdir) {
    fprintf(stderr, "xkvgen: nothing to do: give --emit, -o DIR or --list\n");
    return -1;
  }
  if (o->tuned != !!o->tune) {
    fprintf(stderr, "xkvgen: --variants tuned and --tune FILE go together\n");
    return -1;
  }
  if (o->embed && !o->outdir) {
    fprintf(stderr, "xkvgen: --embed needs -o DIR\n");
    return -1;
  }
  if (o->emit && o->outdir) {
    fprintf(stderr, "xkvgen: --emit prints one stage; -o writes artifacts: "
                    "give one of them\n");
    return -1;
  }
  if (o->emit == EMIT_OBJ && (xk_target_is_gpu(o->target) || isatty(1))) {
    fprintf(stderr, "xkvgen: --emit obj writes a host object to stdout: use "
                    "--target host and redirect it\n");
    return -1;
  }
  if (o->emit == EMIT_PTX && !xk_target_is_gpu(o->target)) {
    fprintf(stderr, "xkvgen: --emit ptx needs a GPU target (--target sm_90)\n");
    return -1;
  }
  return 0;
}

static void list_kernels(const xk_dsl *dsl) {
  char ty[64];
  for (int k = 0; k < xk_dsl_nkernels(dsl); k++) {
    const xk_kernel_spec *s = xk_dsl_kernel(dsl, k);
    printf("%s (%s:%d)\n  args:", s->name, xk_dsl_path(dsl), s->line);
    for (int i = 0; i < s->nargs; i++)
      printf(" %s:%s", s->args[i].name,
             xk_type_str(s->args[i].type, ty, sizeof ty));
    printf("\n  consts:");
    for (int i = 0; i < s->nconsts; i++) {
      char v[96];
      xk_const_format(&s->consts[i], v, sizeof v);
      printf(" %s=%s", s->consts[i].name, v);
    }
    printf("\n  tune:");
    for (int i = 0; i < s->ntune; i++) {
      printf(" %s={", s->tune[i].name);
      for (int j = 0; j < s->tune[i].n; j++)
        printf("%s%lld", j ? "," : "", (long long)s->tune[i].vals[j]);
      printf("}");
    }
    printf("\n  key:");
    for (int i = 0; i < s->nkey; i++)
      printf(" %s", s->key[i]);
    for (int i = 0; i < s->nkeygrid; i++) {
      const xk_key_grid *g = &s->keygrid[i];
      printf("%s %s=%s{%lld..%lld, %d values}", i ? "" : "\n  keys:", g->name,
             xk_round_name(g->round), (long long)g->vals[0],
             (long long)g->vals[g->n - 1], g->n);
    }
    printf("\n  grid: (%s, %s, %s)\n", s->grid[0] ? s->grid[0] : "1",
           s->grid[1] ? s->grid[1] : "1", s->grid[2] ? s->grid[2] : "1");
  }
}

/* Grid rules may name int args and consts; check the names at build time
 * so a typo fails here, not at the first launch. */
static int grid_lookup_names(void *ctx, const char *name, int64_t *v) {
  const xk_func *f = ctx;
  *v = 1;
  for (int i = 0; i < f->nargs; i++)
    if (!strcmp(f->args[i].name, name) &&
        xk_dtype_is_int(f->args[i].type.dtype) &&
        f->args[i].type.dtype != XK_I1)
      return 0;
  for (int i = 0; i < f->nconsts; i++)
    if (!strcmp(f->consts[i].name, name)) {
      *v = f->consts[i].value > 0 ? f->consts[i].value : 1;
      return 0;
    }
  return -1;
}

static int check_grid(const xk_kernel_spec *s, const xk_func *f,
                      const char *file, xk_diag *d) {
  int64_t v;
  for (int i = 0; i < 3; i++)
    if (xk_grid_eval(s->grid[i], grid_lookup_names, (void *)f, &v, d)) {
      char why[sizeof d->msg];
      snprintf(why, sizeof why, "%s", d->msg);
      return xk_diag_set(d, "%s:%d: kernel '%s': %s", file, s->line, s->name,
                         why);
    }
  return 0;
}

static int write_file(const char *path, const char *buf, size_t len,
                      xk_diag *d) {
  FILE *o = fopen(path, "wb");
  if (!o)
    return xk_diag_set(d, "%s: cannot write: %s", path, strerror(errno));
  size_t w = fwrite(buf, 1, len, o);
  if (fclose(o) || w != len)
    return xk_diag_set(d, "%s: write failed", path);
  return 0;
}

/* The variants written so far; entries own their strings and functions.
 * IR hashes are memoized per kernel and key constexprs (one trace each,
 * not one per variant). */
typedef struct {
  int k;
  char key[256], hash[32];
} hash_memo;

typedef struct {
  xk_manifest_entry *e;
  int n, cap;
  hash_memo *memo;
  int nmemo;
} built;

static const char *ir_hash_of(built *b, xk_dsl *dsl, int k, const xk_func *f,
                              xk_diag *d) {
  const xk_kernel_spec *s = xk_dsl_kernel(dsl, k);
  char key[256];
  size_t kl = 0;
  key[0] = 0;
  for (int i = 0; i < s->nkey && kl < sizeof key; i++)
    for (int j = 0; j < f->nconsts; j++)
      if (!strcmp(f->consts[j].name, s->key[i]))
        kl += (size_t)snprintf(key + kl, sizeof key - kl, "%s=%lld ", s->key[i],
                               (long long)f->consts[j].value);
  for (int i = 0; i < b->nmemo; i++)
    if (b->memo[i].k == k && !strcmp(b->memo[i].key, key))
      return b->memo[i].hash;
  hash_memo *m = realloc(b->memo, (size_t)(b->nmemo + 1) * sizeof *m);
  if (!m)
    return xk_diag_set(d, "out of memory"), NULL;
  b->memo = m;
  m = &m[b->nmemo];
  m->k = k;
  snprintf(m->key, sizeof m->key, "%s", key);
  if (xk_kernel_ir_hash(dsl, k, f, m->hash, sizeof m->hash, d))
    return NULL;
  b->nmemo++;
  return m->hash;
}

static int record(built *b, const xk_kernel_spec *s, xk_func *f,
                  const char *sym, const char *file, const char *cubin,
                  const xk_nvptx_info *info, const xk_ptxas_info *pi,
                  const char *ir_hash) {
  if (b->n == b->cap) {
    int cap = b->cap ? 2 * b->cap : 16;
    xk_manifest_entry *e = realloc(b->e, (size_t)cap * sizeof *e);
    if (!e)
      return -1;
    b->e = e;
    b->cap = cap;
  }
  b->e[b->n++] = (xk_manifest_entry){f,
                                     s,
                                     strdup(sym),
                                     strdup(file),
                                     cubin ? strdup(cubin) : NULL,
                                     info ? info->shared_bytes : 0,
                                     info ? info->threads : 0,
                                     info ? info->shared_bytes : 0,
                                     pi ? pi->registers : -1,
                                     pi ? pi->spill_bytes : 0,
                                     strdup(ir_hash)};
  return 0;
}

static void built_free(built *b) {
  for (int i = 0; i < b->n; i++) {
    xk_func_free((xk_func *)b->e[i].f);
    free((char *)b->e[i].symbol);
    free((char *)b->e[i].file);
    free((char *)b->e[i].cubin);
    free((char *)b->e[i].ir_hash);
  }
  free(b->e);
  free(b->memo);
}

/* The most registers an SM holds: a block needing more cannot launch. */
#define REGS_PER_SM 65536

/* One variant through the pipeline: print a stage, or write its artifact.
 * With --variants all, a config past a resource limit is skipped (said on
 * stderr, its files removed) rather than failing the build: *skipped. */
static int build_variant(const options *o, xk_dsl *dsl, int k,
                         const xk_override_set *ov, const int *spec,
                         LLVMTargetMachineRef tm, built *b, int *skipped,
                         xk_diag *d) {
  const xk_kernel_spec *s = xk_dsl_kernel(dsl, k);
  xk_func *f = NULL;
  LLVMModuleRef mod = NULL;
  xk_nvptx_info info = {0, 0};
  char sym[128], file[300], path[4096] = "", cubin[300], out[4096] = "";
  int gpu = xk_target_is_gpu(o->target), resource = 0;
  *skipped = 0;
  if (xk_compile_ir_spec(dsl, k, ov->over, ov->n, spec, &f, d) ||
      check_grid(s, f, xk_dsl_path(dsl), d))
    goto fail;
  if (o->emit == EMIT_IR) {
    char *txt = xk_func_print(f);
    fputs(txt, stdout);
    free(txt);
    xk_func_free(f);
    return 0;
  }
  xk_variant_symbol(f, o->target, sym, sizeof sym);
  for (int i = 0; i < b->n; i++)
    if (!strcmp(b->e[i].symbol, sym)) { /* a tuned config is the default */
      xk_func_free(f);
      return 0;
    }
  if (xk_compile_llvm(f, o->target, tm, sym, o->opt, &mod, &info, d)) {
    resource =
        gpu && info.shared_bytes > xk_arch_find(o->target)->smem_per_block;
    goto fail;
  }
  if (o->emit == EMIT_LLVM) {
    char *txt = LLVMPrintModuleToString(mod);
    fputs(txt, stdout);
    LLVMDisposeMessage(txt);
  }
  if (o->emit == EMIT_PTX || o->emit == EMIT_OBJ || o->outdir) {
    char *buf = NULL;
    size_t len = 0;
    if (xk_target_emit(mod, tm, !gpu, &buf, &len, d))
      goto fail;
    int rc = 0;
    if (o->emit == EMIT_PTX || o->emit == EMIT_OBJ)
      fwrite(buf, 1, len, stdout);
    else {
      snprintf(file, sizeof file, "%s.%s", sym, gpu ? "ptx" : "o");
      snprintf(path, sizeof path, "%s/%s", o->outdir, file);
      rc = write_file(path, buf, len, d);
    }
    free(buf);
    if (rc)
      goto fail;
  }
  LLVMDisposeModule(mod);
  mod = NULL;
  if (!o->outdir) {
    xk_func_free(f);
    return 0;
  }
  xk_ptxas_info pi;
  int have_pi = 0;
  if (gpu && o->cubin) {
    const char *ptxas = xk_ptxas_find();
    if (!ptxas) {
      xk_diag_set(d, "--cubin: ptxas not found (set XK_PTXAS or PATH)");
      goto fail;
    }
    snprintf(cubin, sizeof cubin, "%s.cubin", sym);
    snprintf(out, sizeof out, "%s/%s", o->outdir, cubin);
    /* what ptxas refuses is taken for one config's resources (its
     * register and shared memory limits), not the kernel's fault */
    resource = 1;
    if (xk_ptxas_run(ptxas, o->target, path, out, &pi, d))
      goto fail;
    have_pi = 1;
    if (pi.registers * info.threads > REGS_PER_SM) {
      xk_diag_set(d,
                  "kernel '%s': %d registers x %d threads exceed the %d "
                  "registers of an SM",
                  f->name, pi.registers, info.threads, REGS_PER_SM);
      goto fail;
    }
    resource = 0;
  }
  const char *hash = ir_hash_of(b, dsl, k, f, d);
  if (!hash)
    goto fail;
  if (record(b, s, f, sym, file, have_pi ? cubin : NULL, gpu ? &info : NULL,
             have_pi ? &pi : NULL, hash))
    goto fail;
  return 0;
fail:
  if (mod)
    LLVMDisposeModule(mod);
  if (o->all && resource) {
    char cfg[512];
    fprintf(stderr, "xkvgen: skipped %s (%s) for %s: %s\n", f->name,
            xk_func_config_str(f, cfg, sizeof cfg), o->target, d->msg);
    if (path[0])
      unlink(path);
    if (out[0])
      unlink(out);
    *skipped = 1;
    xk_func_free(f);
    return 0;
  }
  xk_func_free(f);
  return -1;
}

/* -D names apply to the kernels that declare them, so one command line can
 * fix BLOCK_N for every kernel that has one. */
static int defs_for(const options *o, const xk_kernel_spec *s,
                    xk_constexpr *out, char *used) {
  int n = 0;
  for (int i = 0; i < o->ndefs; i++) {
    int known = !strcmp(o->defs[i].name, "num_warps") ||
                !strcmp(o->defs[i].name, "num_stages");
    for (int j = 0; j < s->nconsts && !known; j++)
      known = !strcmp(s->consts[j].name, o->defs[i].name);
    if (known) {
      out[n++] = o->defs[i];
      used[i] = 1;
    }
  }
  return n;
}

static int selected(const options *o, const char *name) {
  if (!o->nkernels)
    return 1;
  for (int i = 0; i < o->nkernels; i++)
    if (!strcmp(o->kernels[i], name))
      return 1;
  return 0;
}

static int run(const options *o, xk_dsl *dsl, LLVMTargetMachineRef tm,
               xk_diag *d) {
  for (int i = 0; i < o->nkernels; i++)
    if (xk_dsl_find(dsl, o->kernels[i]) < 0)
      return xk_diag_set(d, "%s: no kernel named '%s' (see --list)", o->file,
                         o->kernels[i]);
  rt_tune_cache *cache = NULL;
  if (o->tune && !(cache = rt_tune_read(o->tune, d->msg, sizeof d->msg)))
    return -1;
  /* artifacts are staged and moved into o->outdir once all are built */
  xk_outdir od;
  options staged = *o;
  if (o->outdir) {
    if (xk_outdir_open(&od, o->outdir, d)) {
      rt_tune_free(cache);
      return -1;
    }
    staged.outdir = od.stage;
    o = &staged;
  }
  built b = {0};
  int rc = 0;
  char used[64] = {0};
  for (int k = 0; k < xk_dsl_nkernels(dsl) && !rc; k++) {
    const xk_kernel_spec *s = xk_dsl_kernel(dsl, k);
    xk_override_set *vs = NULL;
    int nv = 0;
    if (!selected(o, s->name))
      continue;
    xk_constexpr defs[64];
    int ndefs = defs_for(o, s, defs, used);
    rc = cache
             ? xk_variants_tuned(s, o->target, cache, defs, ndefs, &vs, &nv, d)
             : xk_variants_enumerate(s, defs, ndefs, o->all, &vs, &nv, d);
    /* --specialize: the twin assumes what Triton's specialization
     * usually finds (aligned pointers, sizes and strides divisible by 16) */
    int spec[64] = {0};
    for (int i = 0; i < s->nargs && i < 64; i++)
      spec[i] = s->args[i].type.dtype == XK_PTR   ? XK_SPEC_ALIGN16
                : s->args[i].type.dtype == XK_I32 ? XK_SPEC_DIV16
                                                  : 0;
    int nskip = 0, skip;
    for (int v = 0; v < nv && !rc; v++) {
      rc = build_variant(o, dsl, k, &vs[v], NULL, tm, &b, &skip, d);
      nskip += skip;
      if (!rc && !skip && o->specialize)
        rc = build_variant(o, dsl, k, &vs[v], spec, tm, &b, &skip, d);
    }
    xk_variants_free(vs, nv);
    if (!rc && nskip && nskip == nv)
      rc = xk_diag_set(d, "kernel '%s': none of its %d configs fits %s",
                       s->name, nv, o->target);
  }
  for (int i = 0; i < o->ndefs && !rc; i++)
    if (!used[i])
      rc = xk_diag_set(d,
                       "-D %s: no selected kernel has a constexpr of that "
                       "name",
                       o->defs[i].name);
  if (!rc && o->outdir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", o->outdir);
    rc = xk_manifest_write(path, o->file, o->target, b.e, b.n, d);
    if (!rc && !xk_target_is_gpu(o->target))
      rc = xk_link_shared(o->outdir, b.e, b.n, d);
    if (!rc && o->embed)
      rc = xk_embed_write(o->outdir, o->embed, o->target, b.e, b.n, d);
    if (!rc)
      rc = xk_outdir_commit(&od, d);
    else
      xk_outdir_abort(&od);
    if (!rc)
      fprintf(stderr, "xkvgen: %d variant(s) for %s in %s\n", b.n, o->target,
              od.dir);
  } else if (o->outdir)
    xk_outdir_abort(&od);
  built_free(&b);
  rt_tune_free(cache);
  return rc;
}

int main(int argc, char **argv) {
  options o;
  xk_diag d = {{0}};
  xk_dsl *dsl = NULL;
  LLVMTargetMachineRef tm = NULL;
  int rc = 1;
  if (parse_args(argc, argv, &o))
    goto out;
  if (xk_dsl_open(o.file, &dsl, &d))
    goto fail;
  if (o.list) {
    list_kernels(dsl);
    if (!o.emit && !o.outdir) {
      rc = 0;
      goto out;
    }
  }
  if (o.emit != EMIT_IR && xk_target_machine(o.target, &tm, &d))
    goto fail;
  if (run(&o, dsl, tm, &d))
    goto fail;
  rc = 0;
  goto out;
fail:
  fprintf(stderr, "xkvgen: error: %s\n", d.msg);
out:
  if (tm)
    LLVMDisposeTargetMachine(tm);
  if (dsl)
    xk_dsl_close(dsl);
  for (int i = 0; i < o.ndefs; i++)
    free((char *)o.defs[i].name);
  return rc;
}
