/* The kernel registry: variants from manifests and embedded tables, grouped
 * into launchable configurations (struct xkv_kernel). A registration is
 * all or nothing: everything is checked before anything is added. */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int same_consts(const rt_variant *a, const rt_variant *b) {
  if (a->nconsts != b->nconsts)
    return 0;
  for (int i = 0; i < a->nconsts; i++) {
    int found = 0;
    for (int j = 0; j < b->nconsts && !found; j++)
      found = !strcmp(a->consts[i].name, b->consts[j].name) &&
              a->consts[i].value == b->consts[j].value;
    if (!found)
      return 0;
  }
  return 1;
}

static int same_signature(const rt_variant *a, const rt_variant *b) {
  if (a->nargs != b->nargs)
    return 0;
  for (int i = 0; i < a->nargs; i++)
    if (a->arg_ptr[i] != b->arg_ptr[i] || a->arg_dtype[i] != b->arg_dtype[i])
      return 0;
  return 1;
}

static int has_symbol(const xkv_context *ctx, const char *sym) {
  for (int i = 0; i < ctx->nvars; i++)
    if (!strcmp(ctx->vars[i]->symbol, sym))
      return 1;
  return 0;
}

static int same_config(const rt_variant *a, const rt_variant *b) {
  return !strcmp(a->kernel, b->kernel) && a->num_warps == b->num_warps &&
         a->num_stages == b->num_stages && same_consts(a, b) &&
         !strcmp(a->other_consts ? a->other_consts : "",
                 b->other_consts ? b->other_consts : "");
}

static struct xkv_kernel *config_of(const xkv_context *ctx,
                                    const rt_variant *v) {
  for (int i = 0; i < ctx->nkernels; i++) {
    if (same_config(ctx->kernels[i]->v[0], v))
      return ctx->kernels[i];
  }
  return NULL;
}

/* Checks a batch against what is registered and against itself. */
static xkv_status check_batch(xkv_context *ctx, rt_variant **vs, int n,
                              const char *where) {
  for (int i = 0; i < n; i++) {
    const rt_variant *other = NULL;
    for (int j = 0; j < ctx->nvars && !other; j++)
      if (!strcmp(ctx->vars[j]->kernel, vs[i]->kernel))
        other = ctx->vars[j];
    for (int j = 0; j < i && !other; j++)
      if (!strcmp(vs[j]->kernel, vs[i]->kernel))
        other = vs[j];
    if (other && !same_signature(other, vs[i]))
      return rt_err(ctx, XKV_ERR_MANIFEST,
                    "%s: variant %s of kernel %s has signature (%s), another "
                    "has (%s)",
                    where, vs[i]->symbol, vs[i]->kernel, vs[i]->signature,
                    other->signature);
  }
  return XKV_OK;
}

static int grow(void *arr, int *cap, int need, size_t elem) {
  if (need <= *cap)
    return 0;
  int c = *cap ? 2 * *cap : 16;
  while (c < need)
    c *= 2;
  void *p = realloc(*(void **)arr, (size_t)c * elem);
  if (!p)
    return -1;
  *(void **)arr = p;
  *cap = c;
  return 0;
}

/* 1 when vs[i] is already registered or repeats an earlier batch entry:
 * registering the same artifacts twice is harmless, the first is kept. */
static int is_dup(const xkv_context *ctx, rt_variant **vs, int i) {
  if (has_symbol(ctx, vs[i]->symbol))
    return 1;
  for (int j = 0; j < i; j++)
    if (!strcmp(vs[j]->symbol, vs[i]->symbol))
      return 1;
  return 0;
}

/* Everything that can fail, with nothing visible changed: the
 * configuration of each new variant (kof[i]; NULL for duplicates), new
 * ones allocated (fresh[]), every variant array grown to its final size. */
static int reserve(xkv_context *ctx, rt_variant **vs, int n,
                   struct xkv_kernel **kof, struct xkv_kernel **fresh,
                   int *nfresh) {
  for (int i = 0; i < n; i++) {
    if (is_dup(ctx, vs, i))
      continue;
    struct xkv_kernel *k = config_of(ctx, vs[i]);
    for (int j = 0; !k && j < i; j++)
      if (kof[j] && kof[j]->n == 0 && same_config(vs[j], vs[i]))
        k = kof[j];
    if (!k) {
      if (!(k = calloc(1, sizeof *k)))
        return -1;
      fresh[(*nfresh)++] = k;
    }
    rt_variant **nv = realloc(k->v, (size_t)(k->cap + 1) * sizeof *nv);
    if (!nv)
      return -1;
    k->v = nv;
    k->cap++;
    kof[i] = k;
  }
  return 0;
}

/* Takes ownership of vs[*] (freeing duplicates) and of dl. All or nothing:
 * a failure registers none of the batch. */
static xkv_status add_batch(xkv_context *ctx, rt_variant **vs, int n,
                            const char *source, const char *where, void *dl) {
  xkv_status s = check_batch(ctx, vs, n, where);
  int capsrc = ctx->nsources; /* sources grow one at a time */
  char *src = rt_strdup(source);
  char **srcs = NULL;
  void **dls = NULL;
  struct xkv_kernel **kof = calloc((size_t)n + 1, sizeof *kof);
  struct xkv_kernel **fresh = calloc((size_t)n + 1, sizeof *fresh);
  int nfresh = 0;
  if (!s &&
      (!src || !kof || !fresh ||
       !(srcs = realloc(ctx->sources, (size_t)(capsrc + 1) * sizeof *srcs))))
    s = rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "%s: no memory", source);
  if (srcs)
    ctx->sources = srcs;
  if (!s && !(dls = realloc(ctx->dls, (size_t)(capsrc + 1) * sizeof *dls)))
    s = rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "%s: no memory", source);
  if (dls)
    ctx->dls = dls;
  /* Reserve the worst case so that adding below cannot fail halfway. */
  if (!s && (grow(&ctx->vars, &ctx->capvars, ctx->nvars + n, sizeof(void *)) ||
             grow(&ctx->kernels, &ctx->capkernels, ctx->nkernels + n,
                  sizeof(void *)) ||
             reserve(ctx, vs, n, kof, fresh, &nfresh)))
    s = rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "%s: no memory", source);
  if (s) {
    free(src);
    for (int i = 0; i < n; i++)
      rt_variant_free(vs[i]);
    for (int i = 0; i < nfresh; i++) {
      free(fresh[i]->v);
      free(fresh[i]);
    }
    free(kof);
    free(fresh);
    if (dl)
      dlclose(dl);
    return s;
  }
  ctx->sources[ctx->nsources] = src;
  ctx->dls[ctx->nsources] = dl;
  ctx->nsources++;
  for (int i = 0; i < nfresh; i++)
    ctx->kernels[ctx->nkernels++] = fresh[i];
  for (int i = 0; i < n; i++) {
    rt_variant *v = vs[i];
    struct xkv_kernel *k = kof[i];
    if (!k) {
      rt_variant_free(v);
      continue;
    }
    v->source = src;
    /* Most specialized first; equal specialization keeps registry order. */
    int at = k->n;
    while (at > 0 && k->v[at - 1]->nspec < v->nspec)
      at--;
    memmove(&k->v[at + 1], &k->v[at], (size_t)(k->n - at) * sizeof *k->v);
    k->v[at] = v;
    k->n++;
    v->kernel_handle = k;
    ctx->vars[ctx->nvars++] = v;
  }
  free(kof);
  free(fresh);
  return XKV_OK;
}

static xkv_status parse(xkv_context *ctx, const char *text, size_t len,
                        const char *where, char **target, rt_variant ***vs,
                        int *n) {
  xkv_status s = rt_manifest_parse(ctx, text, len, where, target, vs, n);
  if (s)
    return s;
  if (!*target)
    s = rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "%s: no memory", where);
  else
    s = ctx->ops->accept_target(ctx, *target);
  if (s) {
    if (s == XKV_ERR_TARGET) {
      char msg[sizeof ctx->err];
      snprintf(msg, sizeof msg, "%s", ctx->err);
      rt_err(ctx, s, "%s: %s", where, msg);
    }
    for (int i = 0; i < *n; i++)
      rt_variant_free((*vs)[i]);
    free(*vs);
    free(*target);
  }
  return s;
}

static char *join(const char *dir, const char *file) {
  size_t n = strlen(dir) + strlen(file) + 2;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", dir, file);
  return p;
}

static int is_file(const char *path) {
  struct stat st;
  return !stat(path, &st) && S_ISREG(st.st_mode);
}

xkv_status xkv_registry_load(xkv_context *ctx, const char *dir) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!ctx->ops)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_registry_load: the context failed to open");
  if (!dir)
    return rt_err(ctx, XKV_ERR_INVALID, "xkv_registry_load: dir is NULL");
  char *mpath = join(dir, "manifest.json");
  if (!mpath)
    return rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_registry_load: no memory");
  size_t len;
  char *text = xk_read_file(mpath, &len, NULL);
  if (!text) {
    xkv_status s =
        errno == ENOMEM
            ? rt_err(ctx, XKV_ERR_OUT_OF_MEMORY,
                     "%s: out of memory reading the manifest", mpath)
            : rt_err(ctx, XKV_ERR_MANIFEST,
                     "%s: cannot read the manifest: %s (is %s an xkvgen "
                     "output directory?)",
                     mpath, strerror(errno), dir);
    free(mpath);
    return s;
  }
  char *target;
  rt_variant **vs;
  int n;
  xkv_status s = parse(ctx, text, len, mpath, &target, &vs, &n);
  free(text);
  if (s) {
    free(mpath);
    return s;
  }
  void *dl = NULL;
  if (ctx->kind == XKV_DEVICE_CPU && n > 0) {
    char *so = join(dir, "kernels.so");
    if (so && !is_file(so))
      s = rt_err(ctx, XKV_ERR_MANIFEST,
                 "%s: missing (xkvgen --target host writes it next to the "
                 "manifest)",
                 so);
    else if (so && !(dl = dlopen(so, RTLD_NOW | RTLD_LOCAL)))
      s = rt_err(ctx, XKV_ERR_MANIFEST, "%s: cannot load: %s", so, dlerror());
    else if (!so)
      s = rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_registry_load: no memory");
    for (int i = 0; !s && i < n; i++) {
      *(void **)&vs[i]->host_fn = dlsym(dl, vs[i]->symbol);
      if (!vs[i]->host_fn)
        s = rt_err(ctx, XKV_ERR_MANIFEST,
                   "%s: kernel %s: symbol %s missing from %s", mpath,
                   vs[i]->kernel, vs[i]->symbol, so);
    }
    free(so);
  } else {
    for (int i = 0; !s && i < n; i++) {
      rt_variant *v = vs[i];
      v->ptx_path = join(dir, v->file);
      v->cubin_path = v->cubin_file ? join(dir, v->cubin_file) : NULL;
      if (!v->ptx_path || (v->cubin_file && !v->cubin_path))
        s = rt_err(ctx, XKV_ERR_OUT_OF_MEMORY, "xkv_registry_load: no memory");
      else if (!is_file(v->ptx_path))
        s = rt_err(ctx, XKV_ERR_MANIFEST, "%s: kernel %s: %s is missing", mpath,
                   v->kernel, v->ptx_path);
      else if (v->cubin_path && !is_file(v->cubin_path))
        s = rt_err(ctx, XKV_ERR_MANIFEST, "%s: kernel %s: %s is missing", mpath,
                   v->kernel, v->cubin_path);
    }
  }
  if (s) {
    for (int i = 0; i < n; i++)
      rt_variant_free(vs[i]);
    if (dl)
      dlclose(dl);
  } else {
    s = add_batch(ctx, vs, n, dir, mpath, dl);
  }
  free(vs);
  free(target);
  free(mpath);
  return s;
}

xkv_status xkv_registry_add_embedded(xkv_context *ctx, const xkv_embedded *e) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!ctx->ops)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_registry_add_embedded: the context failed to open");
  if (!e || !e->manifest_json || !e->target || e->nvariants < 0 ||
      (e->nvariants && !e->variants))
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_registry_add_embedded: incomplete table");
  const char *where = "embedded manifest";
  char *target;
  rt_variant **vs;
  int n;
  xkv_status s = parse(ctx, e->manifest_json, strlen(e->manifest_json), where,
                       &target, &vs, &n);
  if (s)
    return s;
  if (strcmp(target, e->target))
    s = rt_err(ctx, XKV_ERR_MANIFEST,
               "%s: the table says target %s, its manifest %s", where,
               e->target, target);
  else if (n != e->nvariants)
    s = rt_err(ctx, XKV_ERR_MANIFEST,
               "%s: %d variants in the manifest, %d in the table", where, n,
               e->nvariants);
  for (int i = 0; !s && i < n; i++) {
    const xkv_embedded_variant *ev = &e->variants[i];
    rt_variant *v = vs[i];
    if (!ev->symbol || strcmp(ev->symbol, v->symbol))
      s = rt_err(ctx, XKV_ERR_MANIFEST,
                 "%s: table entry %d is %s, the manifest says %s", where, i,
                 ev->symbol ? ev->symbol : "(null)", v->symbol);
    else if (ctx->kind == XKV_DEVICE_CPU && !ev->host_fn)
      s = rt_err(ctx, XKV_ERR_MANIFEST, "%s: %s has no host function", where,
                 v->symbol);
    else if (ctx->kind == XKV_DEVICE_CUDA && !ev->ptx && !ev->cubin)
      s = rt_err(ctx, XKV_ERR_MANIFEST, "%s: %s has neither PTX nor cubin",
                 where, v->symbol);
    v->host_fn = ev->host_fn;
    v->ptx = ev->ptx;
    v->cubin = ev->cubin_len ? ev->cubin : NULL;
    v->cubin_len = ev->cubin_len;
  }
  if (s) {
    for (int i = 0; i < n; i++)
      rt_variant_free(vs[i]);
  } else {
    s = add_batch(ctx, vs, n, "embedded", where, NULL);
  }
  free(vs);
  free(target);
  return s;
}

void rt_registry_free(xkv_context *ctx) {
  for (int i = 0; i < ctx->nvars; i++) {
    if (ctx->ops)
      ctx->ops->unload(ctx, ctx->vars[i]);
    rt_variant_free(ctx->vars[i]);
  }
  for (int i = 0; i < ctx->nkernels; i++) {
    free(ctx->kernels[i]->v);
    free(ctx->kernels[i]);
  }
  for (int i = 0; i < ctx->nsources; i++) {
    free(ctx->sources[i]);
    if (ctx->dls[i])
      dlclose(ctx->dls[i]);
  }
  free(ctx->vars);
  free(ctx->kernels);
  free(ctx->sources);
  free(ctx->dls);
  ctx->vars = NULL;
  ctx->kernels = NULL;
  ctx->sources = NULL;
  ctx->dls = NULL;
  ctx->nvars = ctx->nkernels = ctx->nsources = 0;
  ctx->capvars = ctx->capkernels = 0; /* empty and reusable */
}

int xkv_num_variants(const xkv_context *ctx) {
  return ctx ? ctx->nvars : 0;
}

xkv_status xkv_variant_get_info(xkv_context *ctx, int i, xkv_variant_info *o) {
  if (!ctx)
    return XKV_ERR_INVALID;
  if (!o || i < 0 || i >= ctx->nvars)
    return rt_err(ctx, XKV_ERR_INVALID,
                  "xkv_variant_get_info: index %d not in [0, %d)", i,
                  ctx->nvars);
  const rt_variant *v = ctx->vars[i];
  memset(o, 0, sizeof *o);
  o->kernel = v->kernel;
  o->symbol = v->symbol;
  o->target = v->target;
  o->source = v->source;
  o->signature = v->signature;
  for (int k = 0; k < 3; k++)
    o->grid[k] = v->grid[k];
  o->spec = v->spec_str;
  o->consts = v->consts;
  o->nconsts = v->nconsts;
  o->num_warps = v->num_warps;
  o->num_stages = v->num_stages;
  o->threads = v->threads;
  o->shared_bytes = v->shared_bytes;
  o->registers = v->registers;
  return XKV_OK;
}
