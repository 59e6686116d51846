/* manifest.json (format "xkv-manifest-1", written by codegen/manifest.c)
 * into registry variants. Every field is checked: a corrupt manifest is an
 * error naming the file, the variant and the field, never a crash later. */
#include "internal.h"
#include "json.h"
#include "text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  xkv_context *ctx;
  const char *where;
  int index;
  const char *kernel;
  int gpu; /* the target is a GPU: launches need a block size */
} mctx;

static xkv_status bad(mctx *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static xkv_status bad(mctx *m, const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  if (m->index < 0)
    return rt_err(m->ctx, XKV_ERR_MANIFEST, "%s: corrupt manifest: %s",
                  m->where, why);
  return rt_err(m->ctx, XKV_ERR_MANIFEST,
                "%s: corrupt manifest: variant %d (%s): %s", m->where, m->index,
                m->kernel ? m->kernel : "?", why);
}

static xkv_status oom(mctx *m) {
  return rt_err(m->ctx, XKV_ERR_OUT_OF_MEMORY,
                "%s: out of memory reading the manifest", m->where);
}

static const char *get_str(const json_val *o, const char *key) {
  const json_val *v = json_get(o, key);
  return v && v->t == JSON_STR ? v->str : NULL;
}

/* -1 when absent or not an int in [lo, hi]; *present tells which. */
static int get_int(const json_val *o, const char *key, int64_t lo, int64_t hi,
                   int64_t *out) {
  const json_val *v = json_get(o, key);
  if (!v || v->t != JSON_NUM || !v->is_int || v->i < lo || v->i > hi)
    return -1;
  *out = v->i;
  return 0;
}

/* "ptr<f32>" or "i32". */
static int parse_type(const char *s, uint8_t *is_ptr, uint8_t *dt) {
  char buf[16];
  size_t n = strlen(s);
  if (n > 5 && !strncmp(s, "ptr<", 4) && s[n - 1] == '>' &&
      n - 5 < sizeof buf) {
    memcpy(buf, s + 4, n - 5);
    buf[n - 5] = 0;
    int d = rt_dtype_parse(buf);
    *is_ptr = 1;
    *dt = (uint8_t)d;
    return d < 0 ? -1 : 0;
  }
  int d = rt_dtype_parse(s);
  *is_ptr = 0;
  *dt = (uint8_t)d;
  return d < 0 ? -1 : 0;
}

static int arg_index(const rt_variant *v, const char *name) {
  for (int i = 0; i < v->nargs; i++)
    if (!strcmp(v->arg_names[i], name))
      return i;
  return -1;
}

/* Appends NAME=VALUE to v->other_consts, a float as %.17g, a string quoted;
 * -1 when out of memory. */
static int add_other_const(rt_variant *v, const char *name, const json_val *c) {
  size_t had = v->other_consts ? strlen(v->other_consts) : 0;
  size_t n = had + strlen(name) + (c->t == JSON_STR ? strlen(c->str) : 32) + 6;
  char *s = realloc(v->other_consts, n);
  if (!s)
    return -1;
  v->other_consts = s;
  if (c->t == JSON_STR)
    snprintf(s + had, n - had, "%s=\"%s\" ", name, c->str);
  else
    snprintf(s + had, n - had, "%s=%.17g ", name, c->num);
  return 0;
}

static int const_index(const rt_variant *v, const char *name) {
  for (int i = 0; i < v->nconsts; i++)
    if (!strcmp(v->consts[i].name, name))
      return i;
  return -1;
}

/* Every name in a grid rule must be an int argument or a constexpr; the
 * syntax itself is checked by xk_grid_eval at launch. */
static xkv_status check_grid(mctx *m, const rt_variant *v, const char *rule) {
  for (const char *p = rule; *p;) {
    if (isalpha((unsigned char)*p) || *p == '_') {
      const char *s = p;
      while (isalnum((unsigned char)*p) || *p == '_')
        p++;
      const char *q = p;
      while (isspace((unsigned char)*q))
        q++;
      if (*q == '(')
        continue; /* a function: cdiv, min, max */
      char name[64];
      size_t n = (size_t)(p - s);
      if (n >= sizeof name)
        return bad(m, "grid rule '%s': name too long", rule);
      memcpy(name, s, n);
      name[n] = 0;
      int a = arg_index(v, name);
      if (a >= 0 && !v->arg_ptr[a] &&
          (v->arg_dtype[a] == XKV_I32 || v->arg_dtype[a] == XKV_I64))
        continue;
      if (const_index(v, name) >= 0)
        continue;
      return bad(m,
                 "grid rule '%s' uses '%s', not an int argument or "
                 "constexpr",
                 rule, name);
    } else if (isdigit((unsigned char)*p)) {
      while (isalnum((unsigned char)*p))
        p++;
    } else {
      p++;
    }
  }
  return XKV_OK;
}

/* One operand of a fast rule: a name or a decimal literal. */
static const char *operand(const rt_variant *v, const char *p, rt_operand *o) {
  while (isspace((unsigned char)*p))
    p++;
  if (isdigit((unsigned char)*p)) {
    int64_t x = 0;
    while (isdigit((unsigned char)*p) && x < (INT64_C(1) << 40))
      x = x * 10 + (*p++ - '0');
    if (isdigit((unsigned char)*p))
      return NULL;
    o->arg = -1;
    o->value = x;
  } else {
    const char *s = p;
    while (isalnum((unsigned char)*p) || *p == '_')
      p++;
    char name[64];
    size_t n = (size_t)(p - s);
    if (!n || n >= sizeof name)
      return NULL;
    memcpy(name, s, n);
    name[n] = 0;
    int a = arg_index(v, name), c = const_index(v, name);
    if (a >= 0 && !v->arg_ptr[a] &&
        (v->arg_dtype[a] == XKV_I32 || v->arg_dtype[a] == XKV_I64)) {
      o->arg = a;
      o->value = 0;
    } else if (a < 0 && c >= 0) {
      o->arg = -1;
      o->value = v->consts[c].value;
    } else {
      return NULL;
    }
  }
  while (isspace((unsigned char)*p))
    p++;
  return p;
}

static rt_rule compile_rule(const rt_variant *v, const char *r) {
  rt_rule out = {RT_RULE_GENERAL, {-1, 0}, {-1, 0}}, t = out;
  const char *p = r;
  while (isspace((unsigned char)*p))
    p++;
  if (!strncmp(p, "cdiv", 4)) {
    p += 4;
    while (isspace((unsigned char)*p))
      p++;
    if (*p++ != '(' || !(p = operand(v, p, &t.a)) || *p++ != ',' ||
        !(p = operand(v, p, &t.b)) || *p++ != ')')
      return out;
    t.kind = RT_RULE_CDIV;
  } else {
    if (!(p = operand(v, p, &t.a)))
      return out;
    t.kind = RT_RULE_VALUE;
  }
  while (isspace((unsigned char)*p))
    p++;
  return *p ? out : t;
}

/* Human-readable strings for xkv-info. */
static xkv_status describe(rt_variant *v) {
  size_t cap = 64;
  for (int i = 0; i < v->nargs; i++)
    cap += strlen(v->arg_names[i]) + 32;
  v->signature = malloc(cap);
  v->spec_str = malloc(cap);
  if (!v->signature || !v->spec_str)
    return XKV_ERR_OUT_OF_MEMORY;
  static const char *spec_names[] = {"", "div16", "one", "align16"};
  size_t k = 0, ks = 0;
  v->signature[0] = v->spec_str[0] = 0;
  for (int i = 0; i < v->nargs; i++) {
    const char *dt = rt_dtype_name(v->arg_dtype[i]);
    k += (size_t)snprintf(v->signature + k, cap - k,
                          v->arg_ptr[i] ? "%s%s: ptr<%s>" : "%s%s: %s",
                          i ? ", " : "", v->arg_names[i], dt);
    if (v->arg_spec[i])
      ks += (size_t)snprintf(v->spec_str + ks, cap - ks, "%s%s: %s",
                             ks ? ", " : "", v->arg_names[i],
                             spec_names[v->arg_spec[i]]);
  }
  return XKV_OK;
}

static xkv_status parse_variant(mctx *m, const json_val *o, rt_variant **out) {
  if (o->t != JSON_OBJ)
    return bad(m, "not an object");
  const char *kernel = get_str(o, "kernel"), *symbol = get_str(o, "symbol");
  const char *file = get_str(o, "file");
  m->kernel = kernel;
  if (!kernel || !xk_is_ident(kernel))
    return bad(m, "'kernel' missing or not an identifier");
  if (!symbol || !xk_is_ident(symbol))
    return bad(m, "'symbol' missing or not an identifier");
  if (!file || !*file || strstr(file, "..") || file[0] == '/')
    return bad(m, "'file' missing or not a plain file name");
  const json_val *cub = json_get(o, "cubin");
  if (cub && (cub->t != JSON_STR || !*cub->str || strstr(cub->str, "..") ||
              cub->str[0] == '/'))
    return bad(m, "'cubin' is not a plain file name");
  const json_val *hash = json_get(o, "ir_hash");
  if (hash && hash->t != JSON_STR)
    return bad(m, "'ir_hash' is not a string");
  rt_variant *v = calloc(1, sizeof *v);
  if (!v)
    return oom(m);
  *out = v;
  v->kernel = rt_strdup(kernel);
  v->symbol = rt_strdup(symbol);
  v->file = rt_strdup(file);
  v->cubin_file = cub ? rt_strdup(cub->str) : NULL;
  v->ir_hash = hash ? rt_strdup(hash->str) : NULL;
  v->registers = -1;
  if (!v->kernel || !v->symbol || !v->file || (cub && !v->cubin_file) ||
      (hash && !v->ir_hash))
    return oom(m);

  const json_val *consts = json_get(o, "consts");
  if (!consts || consts->t != JSON_OBJ)
    return bad(m, "'consts' missing or not an object");
  v->consts = calloc((size_t)consts->n + 1, sizeof *v->consts);
  if (!v->consts)
    return oom(m);
  for (int i = 0; i < consts->n; i++) {
    const json_val *c = &consts->items[i];
    const char *name = consts->keys[i];
    if (!xk_is_ident(name) || (c->t != JSON_NUM && c->t != JSON_STR))
      return bad(m,
                 "constexpr '%s' is not an identifier with a number or a "
                 "string",
                 name);
    if (const_index(v, name) >= 0)
      return bad(m, "constexpr '%s' appears twice", name);
    if (c->t == JSON_NUM && c->is_int) {
      if (!(v->consts[v->nconsts].name = rt_strdup(name)))
        return oom(m);
      v->consts[v->nconsts++].value = c->i;
    } else if (add_other_const(v, name, c)) {
      return oom(m);
    }
  }

  int64_t x;
  if (get_int(o, "num_warps", 1, 32, &x))
    return bad(m, "'num_warps' missing or not in 1..32");
  v->num_warps = (int)x;
  if (get_int(o, "num_stages", 0, 16, &x))
    return bad(m, "'num_stages' missing or not in 0..16");
  v->num_stages = (int)x;
  if (get_int(o, "shared_bytes", 0, 1 << 30, &x))
    return bad(m, "'shared_bytes' missing or negative");
  v->shared_bytes = (int)x;
  if (get_int(o, "threads", m->gpu ? 1 : 0, 1024, &x))
    return bad(m, "'threads' missing or not in %d..1024", m->gpu ? 1 : 0);
  v->threads = (int)x;
  /* Shared memory the launch must request; static shared memory declared
   * in the PTX needs none. */
  if (json_get(o, "dynamic_shared_bytes")) {
    if (get_int(o, "dynamic_shared_bytes", 0, 1 << 30, &x))
      return bad(m, "'dynamic_shared_bytes' is not a byte count");
    v->dyn_shared = (int)x;
  }
  if (json_get(o, "registers") && !get_int(o, "registers", -1, 1 << 16, &x))
    v->registers = (int)x;

  const json_val *args = json_get(o, "args");
  if (!args || args->t != JSON_ARR)
    return bad(m, "'args' missing or not an array");
  if (args->n > RT_MAX_ARGS)
    return bad(m, "%d arguments, at most %d supported", args->n, RT_MAX_ARGS);
  int na = args->n;
  v->arg_names = calloc((size_t)na + 1, sizeof *v->arg_names);
  v->arg_ptr = calloc((size_t)na + 1, 1);
  v->arg_dtype = calloc((size_t)na + 1, 1);
  v->arg_spec = calloc((size_t)na + 1, 1);
  if (!v->arg_names || !v->arg_ptr || !v->arg_dtype || !v->arg_spec)
    return oom(m);
  for (int i = 0; i < na; i++) {
    const json_val *a = &args->items[i];
    const char *name = get_str(a, "name"), *type = get_str(a, "type");
    if (!name || !xk_is_ident(name))
      return bad(m, "argument %d has no identifier 'name'", i);
    if (arg_index(v, name) >= 0)
      return bad(m, "argument '%s' appears twice", name);
    if (!type || parse_type(type, &v->arg_ptr[i], &v->arg_dtype[i]))
      return bad(m,
                 "argument '%s' has type '%s' (expected i32, i64, f32 or "
                 "ptr<DTYPE>)",
                 name, type ? type : "(none)");
    if (!v->arg_ptr[i] && v->arg_dtype[i] != XKV_I32 &&
        v->arg_dtype[i] != XKV_I64 && v->arg_dtype[i] != XKV_F32)
      return bad(m, "argument '%s': scalar type %s is not passable", name,
                 type);
    if (!(v->arg_names[i] = rt_strdup(name)))
      return oom(m);
    v->nargs++;
  }

  const json_val *grid = json_get(o, "grid");
  if (grid && grid->t == JSON_NULL) { /* no rule: launches give the grid */
    v->no_grid = 1;
    for (int i = 0; i < 3; i++)
      if (!(v->grid[i] = rt_strdup("none")))
        return bad(m, "out of memory");
    grid = NULL;
  } else if (!grid || grid->t != JSON_ARR || grid->n != 3) {
    return bad(m, "'grid' missing, not null and not 3 rules");
  }
  for (int i = 0; grid && i < 3; i++) {
    if (grid->items[i].t != JSON_STR || !*grid->items[i].str)
      return bad(m, "grid rule %d is not a string", i);
    if (!(v->grid[i] = rt_strdup(grid->items[i].str)))
      return oom(m);
    xkv_status s = check_grid(m, v, v->grid[i]);
    if (s)
      return s;
    v->rule[i] = compile_rule(v, v->grid[i]);
  }

  const json_val *spec = json_get(o, "spec");
  if (spec && spec->t != JSON_OBJ)
    return bad(m, "'spec' is not an object");
  for (int i = 0; spec && i < spec->n; i++) {
    int a = arg_index(v, spec->keys[i]);
    const char *kind = spec->items[i].t == JSON_STR ? spec->items[i].str : "";
    if (a < 0)
      return bad(m, "spec names '%s', not an argument", spec->keys[i]);
    int sp = !strcmp(kind, "div16")     ? RT_SPEC_DIV16
             : !strcmp(kind, "one")     ? RT_SPEC_ONE
             : !strcmp(kind, "align16") ? RT_SPEC_ALIGN16
                                        : RT_SPEC_NONE;
    if (sp == RT_SPEC_NONE)
      return bad(m, "spec '%s' for '%s' (expected div16, one or align16)", kind,
                 spec->keys[i]);
    int is_int = !v->arg_ptr[a] &&
                 (v->arg_dtype[a] == XKV_I32 || v->arg_dtype[a] == XKV_I64);
    if (sp == RT_SPEC_ALIGN16 ? !v->arg_ptr[a] : !is_int)
      return bad(m, "spec '%s' does not apply to argument '%s'", kind,
                 spec->keys[i]);
    if (v->arg_spec[a])
      return bad(m, "argument '%s' specialized twice", spec->keys[i]);
    v->arg_spec[a] = (uint8_t)sp;
    v->nspec++;
  }
  if (describe(v))
    return oom(m);
  return XKV_OK;
}

void rt_variant_free(rt_variant *v) {
  if (!v)
    return;
  free(v->kernel);
  free(v->symbol);
  free(v->target);
  free(v->file);
  free(v->cubin_file);
  free(v->ir_hash);
  for (int i = 0; v->consts && i < v->nconsts; i++)
    free((char *)v->consts[i].name);
  free(v->consts);
  free(v->other_consts);
  for (int i = 0; v->arg_names && i < v->nargs; i++)
    free(v->arg_names[i]);
  free(v->arg_names);
  free(v->arg_ptr);
  free(v->arg_dtype);
  free(v->arg_spec);
  for (int i = 0; i < 3; i++)
    free(v->grid[i]);
  free(v->signature);
  free(v->spec_str);
  free(v->ptx_path);
  free(v->cubin_path);
  free(v);
}

xkv_status rt_manifest_parse(xkv_context *ctx, const char *text, size_t len,
                             const char *where, char **target,
                             rt_variant ***out, int *n) {
  mctx m = {ctx, where, -1, NULL, 0};
  char err[256];
  *out = NULL;
  *n = 0;
  *target = NULL;
  if (strlen(text) != len)
    return bad(&m, "NUL byte in the text");
  json_val *root = json_parse(text, len, err, sizeof err);
  if (!root)
    return strcmp(err, JSON_OOM) ? bad(&m, "%s", err) : oom(&m);
  xkv_status s = XKV_OK;
  const char *format = get_str(root, "format");
  const char *tgt = get_str(root, "target");
  const json_val *vars = json_get(root, "variants");
  if (root->t != JSON_OBJ)
    s = bad(&m, "the top level is not an object");
  else if (!format || strcmp(format, "xkv-manifest-1"))
    s = bad(&m, "'format' is '%s', expected 'xkv-manifest-1'",
            format ? format : "(missing)");
  else if (!tgt || !*tgt)
    s = bad(&m, "'target' missing");
  else if (!vars || vars->t != JSON_ARR)
    s = bad(&m, "'variants' missing or not an array");
  rt_variant **vs = NULL;
  m.gpu = tgt && strcmp(tgt, "host") != 0;
  if (!s && !(vs = calloc((size_t)vars->n + 1, sizeof *vs)))
    s = oom(&m);
  int k = 0;
  for (; !s && k < vars->n; k++) {
    m.index = k;
    m.kernel = NULL;
    s = parse_variant(&m, &vars->items[k], &vs[k]);
    if (vs[k] && !(vs[k]->target = rt_strdup(tgt)) && !s)
      s = oom(&m);
  }
  if (!s) {
    *target = rt_strdup(tgt);
    *out = vs;
    *n = k;
  } else if (vs) {
    for (int i = 0; i <= k && i < vars->n; i++)
      rt_variant_free(vs[i]);
    free(vs);
  }
  json_free(root);
  return s;
}
