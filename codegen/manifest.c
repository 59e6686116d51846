#include "manifest.h"

#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void put_entry(FILE *o, const xk_manifest_entry *e) {
  const xk_func *f = e->f;
  char ty[64];
  fprintf(o, "    {\"kernel\": ");
  xk_json_put_str(o, f->name);
  fprintf(o, ", \"symbol\": ");
  xk_json_put_str(o, e->symbol);
  fprintf(o, ", \"file\": ");
  xk_json_put_str(o, e->file);
  if (e->cubin) {
    fprintf(o, ", \"cubin\": ");
    xk_json_put_str(o, e->cubin);
  }
  fprintf(o, ",\n     \"consts\": {");
  for (int i = 0; i < f->nconsts; i++) {
    fprintf(o, "%s", i ? ", " : "");
    xk_json_put_str(o, f->consts[i].name);
    const xk_constexpr *c = &f->consts[i];
    fprintf(o, ": ");
    if (c->kind == XK_CONST_STR) {
      xk_json_put_str(o, c->str);
    } else { /* finite floats only (dsl.c), so a JSON number */
      char v[64];
      xk_const_format(c, v, sizeof v);
      fprintf(o, "%s", v);
    }
  }
  fprintf(o, "}, \"num_warps\": %d, \"num_stages\": %d,\n     \"args\": [",
          f->num_warps, f->num_stages);
  for (int i = 0; i < f->nargs; i++) {
    fprintf(o, "%s{\"name\": ", i ? ", " : "");
    xk_json_put_str(o, f->args[i].name);
    fprintf(o, ", \"type\": ");
    xk_json_put_str(o, xk_type_str(f->args[i].type, ty, sizeof ty));
    fprintf(o, "}");
  }
  fprintf(o, "]");
  /* the facts a specialized variant assumes; the dispatcher checks them */
  int nspec = 0;
  for (int i = 0; i < f->nargs; i++) {
    int sp = f->args[i].spec;
    if (!sp)
      continue;
    fprintf(o, "%s", nspec++ ? ", " : ", \"spec\": {");
    xk_json_put_str(o, f->args[i].name);
    fprintf(o, ": \"%s\"",
            sp & XK_SPEC_ONE     ? "one"
            : sp & XK_SPEC_DIV16 ? "div16"
                                 : "align16");
  }
  if (nspec)
    fprintf(o, "}");
  /* null: the spec has no grid rule, so a launch must give the grid */
  const char *const *g = (const char *const *)e->spec->grid;
  if (!g[0] && !g[1] && !g[2]) {
    fprintf(o, ",\n     \"grid\": null");
  } else {
    fprintf(o, ",\n     \"grid\": [");
    for (int i = 0; i < 3; i++) {
      fprintf(o, "%s", i ? ", " : "");
      xk_json_put_str(o, g[i] ? g[i] : "1");
    }
    fprintf(o, "]");
  }
  fprintf(o, ", \"key\": [");
  for (int i = 0; i < e->spec->nkey; i++) {
    fprintf(o, "%s", i ? ", " : "");
    xk_json_put_str(o, e->spec->key[i]);
  }
  fprintf(o, "],\n     \"shared_bytes\": %d, \"threads\": %d", e->shared_bytes,
          e->threads);
  if (e->dynamic_shared_bytes)
    fprintf(o, ", \"dynamic_shared_bytes\": %d", e->dynamic_shared_bytes);
  if (e->registers >= 0)
    fprintf(o, ", \"registers\": %d, \"spill_bytes\": %d", e->registers,
            e->spill_bytes);
  if (e->ir_hash) {
    fprintf(o, ", \"ir_hash\": ");
    xk_json_put_str(o, e->ir_hash);
  }
  fprintf(o, "}");
}

int xk_manifest_write(const char *path, const char *source, const char *target,
                      const xk_manifest_entry *e, int n, xk_diag *d) {
  FILE *o = fopen(path, "w");
  if (!o)
    return xk_diag_set(d, "%s: cannot write: %s", path, strerror(errno));
  fprintf(o, "{\n  \"format\": \"xkv-manifest-1\",\n  \"source\": ");
  xk_json_put_str(o, source);
  fprintf(o, ",\n  \"target\": ");
  xk_json_put_str(o, target);
  fprintf(o, ",\n  \"variants\": [\n");
  for (int i = 0; i < n; i++) {
    put_entry(o, &e[i]);
    fprintf(o, "%s\n", i + 1 < n ? "," : "");
  }
  fprintf(o, "  ]\n}\n");
  if (fclose(o))
    return xk_diag_set(d, "%s: write failed: %s", path, strerror(errno));
  return 0;
}
