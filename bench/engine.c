/* Engine throughput: prefill and decode tokens/s of the exact cache and xKV
 * (W=4, ratio 6), and the share of decode time inside cache attention,
 * in one run on this CPU. stories260K at its 512 limit; SmolLM2 at 2K (and
 * 8K with --long) when models/ has it. Writes bench/results/engine-*.json.
 * usage: engine [--long] */
#include "cli.h"
#include "generate.h"
#include "results_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA XK_SRC "/../shared/data/"

static int bench(FILE *js, int *first, const char *name, const char *path,
                 const char *tok, int ctx, int gen) {
  eng_model m;
  eng_err err;
  if (eng_model_open(path, tok, &m, &err)) {
    printf("%s: skipped (%s)\n", name, err.msg);
    return 0;
  }
  unsigned char *raw = NULL;
  size_t size;
  int *ids = NULL, n = 0, rc = 0;
  if (eng_read_file(DATA "paul_graham_essays.txt", &raw, &size, &err) == 0) {
    size_t cut = (size_t)ctx * 8; /* enough text for ctx tokens */
    raw[cut < size ? cut : size] = 0;
    rc = eng_tok_encode(m.tok, (const char *)raw, 1, &ids, &n, &err);
    free(raw);
  }
  if (!raw || rc) {
    fprintf(stderr, "engine: %s\n", err.msg);
    eng_model_free(&m);
    return 1;
  }
  int prompt = ctx - gen < n ? ctx - gen : n;
  const char *caches[2] = {"exact", "xkv"};
  for (int c = 0; c < 2 && !rc; c++) {
    eng_xkv_opts o = {.device = "cpu", .group = 4, .ratio = 6, .seed = 1};
    eng_kv *kv;
    eng_gen_result r;
    eng_kv_stats st;
    eng_gen_opts g = {.max_new = gen};
    if (eng_kv_create(caches[c], &m.cfg, ctx, &o, &kv, &err)) {
      fprintf(stderr, "engine: %s\n", err.msg);
      rc = 1;
      break;
    }
    if (eng_generate(&m, kv, ids, prompt, &g, &r, &err) ||
        kv->ops->stats(kv, &st, &err)) {
      fprintf(stderr, "engine: %s\n", err.msg);
      rc = 1;
    } else {
      double pf = prompt / r.t_prefill, dc = (gen - 1) / r.t_decode;
      double share = 100.0 * r.t_attn / r.t_decode;
      printf("%-12s ctx %5d %-5s prefill %9.1f tok/s  decode %8.1f tok/s  "
             "attention %5.1f%%  ratio %.2fx\n",
             name, ctx, caches[c], pf, dc, share, c ? st.ratio : 1.0);
      fprintf(js,
              "%s  {\"model\": \"%s\", \"context\": %d, \"prompt\": %d, "
              "\"cache\": \"%s\", \"prefill_tok_s\": %.2f, "
              "\"decode_tok_s\": %.2f, \"attention_share\": %.4f, "
              "\"ratio\": %.3f, \"bytes\": %llu}",
              *first ? "" : ",\n", name, ctx, prompt, caches[c], pf, dc,
              share / 100, c ? st.ratio : 1.0, (unsigned long long)st.bytes);
      *first = 0;
    }
    kv->ops->destroy(kv);
  }
  free(ids);
  eng_model_free(&m);
  return rc;
}

int main(int argc, char **argv) {
  eng_blas_spin_limit(argv);
  int lng = argc > 1 && strcmp(argv[1], "--long") == 0;
  char day[11], path[512];
  FILE *js =
      xk_bench_results_open("engine-cpu", "json", path, sizeof path, day);
  if (!js) {
    fprintf(stderr, "engine: cannot write %s\n", path);
    return 1;
  }
  fprintf(js, "{\"device\": \"cpu\", \"date\": \"%s\", \"runs\": [\n", day);
  int first = 1, rc = 0;
  rc |= bench(js, &first, "stories260K", DATA "stories260K.bin",
              DATA "tok512.bin", 512, 64);
  const char *smol = XK_SRC "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  rc |= bench(js, &first, "SmolLM2-135M", smol, NULL, 2048, 32);
  if (lng)
    rc |= bench(js, &first, "SmolLM2-135M", smol, NULL, 8192, 32);
  fprintf(js, "\n]}\n");
  fclose(js);
  printf("wrote %s\n", path);
  return rc;
}
