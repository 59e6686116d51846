/* Writes the generated seed inputs: a tiny Llama GGUF (tests/tiny_gguf.c)
 * and a tiny llama2.c checkpoint, so that no large binary is committed.
 * Usage: fuzz_seeds GGUF_DIR LLAMA2C_DIR */
#include "tiny_gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int write_file(const char *dir, const char *name, const void *p,
                      size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  int ok = f && fwrite(p, 1, n, f) == n;
  if (f && fclose(f))
    ok = 0;
  if (!ok)
    fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
  return ok ? 0 : 1;
}

/* dim 8, hidden 16, 1 layer, 2 heads, 1 KV head, vocab 8 (shared), seq 4 */
static int tiny_llama2c(const char *dir) {
  enum { D = 8, F = 16, L = 1, H = 2, KV = 1, V = 8, S = 4, HD = D / H };
  const int32_t h[7] = {D, F, L, H, KV, V, S};
  size_t floats = V * D +
                  L * (D + D * D + 2 * D * KV * HD + D * D + D + 3 * F * D) +
                  D + S * HD;
  size_t n = sizeof h + floats * sizeof(float);
  unsigned char *b = calloc(1, n);
  if (!b)
    return 1;
  memcpy(b, h, sizeof h);
  float *w = (float *)(b + sizeof h);
  for (size_t i = 0; i < floats; i++)
    w[i] = (float)((int)(i % 7) - 3) / 8.0f;
  int rc = write_file(dir, "tiny.bin", b, n);
  free(b);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: fuzz_seeds GGUF_DIR LLAMA2C_DIR\n");
    return 2;
  }
  size_t n;
  unsigned char *g = xk_tiny_gguf(&n);
  int rc = !g || write_file(argv[1], "tiny.gguf", g, n);
  free(g);
  return rc | tiny_llama2c(argv[2]);
}
