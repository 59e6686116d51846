/* xkv-info: the device the runtime would use, and the kernels available.
 *   xkv-info [--device auto|cpu|cuda|cuda:N] [DIR...]
 * Each DIR is an xkvgen output directory to load into the registry. */
#include "xkv.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *o) {
  fputs("usage: xkv-info [--version] [--device auto|cpu|cuda|cuda:N] "
        "[DIR...]\n"
        "  prints the device (driver, compute capability, memory) and the\n"
        "  kernel variants in each xkvgen output DIR\n",
        o);
}

static void print_variants(xkv_context *ctx) {
  int n = xkv_num_variants(ctx);
  printf("variants: %d\n", n);
  for (int i = 0; i < n; i++) {
    xkv_variant_info v;
    if (xkv_variant_get_info(ctx, i, &v))
      continue;
    printf("  %-12s %s  [", v.kernel, v.symbol);
    for (int k = 0; k < v.nconsts; k++)
      printf("%s%s=%lld", k ? " " : "", v.consts[k].name,
             (long long)v.consts[k].value);
    printf("] warps=%d stages=%d threads=%d shared=%d", v.num_warps,
           v.num_stages, v.threads, v.shared_bytes);
    if (v.registers >= 0)
      printf(" regs=%d", v.registers);
    printf("\n      (%s)  grid (%s, %s, %s)", v.signature, v.grid[0], v.grid[1],
           v.grid[2]);
    if (v.spec[0])
      printf("  spec {%s}", v.spec);
    printf("  from %s\n", v.source);
  }
}

int main(int argc, char **argv) {
  const char *device = "auto";
  int first_dir = argc;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(argv[i], "--version")) {
      printf("xkv-info %s\n", xkv_version());
      return 0;
    }
    if (!strcmp(argv[i], "--device") && i + 1 < argc) {
      device = argv[++i];
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "xkv-info: unknown option %s\n", argv[i]);
      usage(stderr);
      return 2;
    } else {
      first_dir = i;
      break;
    }
  }
  xkv_context *ctx;
  if (xkv_open(&ctx, device)) {
    fprintf(stderr, "xkv-info: %s\n", xkv_last_error(ctx));
    xkv_close(ctx);
    return 1;
  }
  xkv_device_info d;
  if (xkv_device_get_info(ctx, &d)) {
    fprintf(stderr, "xkv-info: %s\n", xkv_last_error(ctx));
    xkv_close(ctx);
    return 1;
  }
  if (d.kind == XKV_DEVICE_CUDA) {
    printf("device: cuda  %s  %s (compute capability %d.%d)\n", d.name, d.arch,
           d.cc_major, d.cc_minor);
    printf("driver: CUDA %d.%d\n", d.driver_version / 1000,
           d.driver_version % 1000 / 10);
    printf("multiprocessors: %d\n", d.units);
  } else {
    printf("device: cpu  (%d threads)\n", d.units);
  }
  printf("memory: %.1f GiB total, %.1f GiB free\n",
         (double)d.total_memory / (1 << 30), (double)d.free_memory / (1 << 30));
  if (d.note[0])
    printf("note: %s\n", d.note);
  int rc = 0;
  for (int i = first_dir; i < argc; i++) {
    if (xkv_registry_load(ctx, argv[i])) {
      fprintf(stderr, "xkv-info: %s\n", xkv_last_error(ctx));
      rc = 1;
    }
  }
  print_variants(ctx);
  xkv_close(ctx);
  return rc;
}
