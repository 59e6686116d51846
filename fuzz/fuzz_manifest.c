/* libFuzzer: a manifest.json through the runtime's manifest reader and the
 * registry (as an embedded table whose entries match what the reader
 * found), then every registered kernel's grid rule and variant selection
 * over arguments of its signature. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int32_t nop_kernel(void **args, const int32_t *pid, const int32_t *np) {
  (void)args, (void)pid, (void)np;
  return 0;
}

/* Arguments of k's signature: every int 7, every pointer aligned. */
static void probe(xkv_context *ctx, struct xkv_kernel *k) {
  static float buf[16] __attribute__((aligned(16)));
  const rt_variant *v = k->v[0];
  xkv_arg args[RT_MAX_ARGS];
  int n = v->nargs < RT_MAX_ARGS ? v->nargs : RT_MAX_ARGS;
  for (int i = 0; i < n; i++) {
    args[i] = (xkv_arg){v->arg_ptr[i], v->arg_dtype[i], {0}};
    if (v->arg_ptr[i])
      args[i].v.p = buf;
    else if (v->arg_dtype[i] == XKV_I64)
      args[i].v.i64 = 7;
    else
      args[i].v.i32 = 7;
  }
  xkv_grid g;
  const char *sym;
  xkv_kernel_grid(ctx, k, args, n, &g);
  xkv_kernel_select(ctx, k, args, n, &sym);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static xkv_context *ctx;
  if (!ctx && xkv_open(&ctx, "cpu"))
    abort();
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = 0;
  char *target;
  rt_variant **vs;
  int n;
  if (!rt_manifest_parse(ctx, text, strlen(text), "fuzz", &target, &vs, &n)) {
    xkv_embedded_variant *ev = calloc((size_t)n + 1, sizeof *ev);
    for (int i = 0; ev && i < n; i++)
      ev[i] = (xkv_embedded_variant){vs[i]->symbol, nop_kernel, NULL, NULL, 0};
    xkv_embedded e = {text, target ? target : "host", n, ev};
    if (ev && !xkv_registry_add_embedded(ctx, &e))
      for (int i = 0; i < ctx->nkernels; i++)
        probe(ctx, ctx->kernels[i]);
    rt_registry_free(ctx);
    free(ev);
    for (int i = 0; i < n; i++)
      rt_variant_free(vs[i]);
    free(vs);
    free(target);
  }
  free(text);
  return 0;
}
