/* xKV accuracy on a real KV cache: stories260K over 256 tokens of
 * TinyStories text; every layer compressed with W = 1, 2, 4 at matched
 * compression ratios (the cache picks each group's ranks for the target).
 * Per layer: K/V relative reconstruction error, the group's optimal rank-r
 * error (exact SVD), and the decode attention-output error.
 * usage: xkv_accuracy [DATA_DIR] [CSV_OUT] */
#include "../tests/xkv_real.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  const char *data = argc > 1 ? argv[1] : "../shared/data";
  FILE *csv = argc > 2 ? fopen(argv[2], "w") : NULL;
  char model[1024], tok[1024], text[1024], err[512];
  snprintf(model, sizeof model, "%s/stories260K.bin", data);
  snprintf(tok, sizeof tok, "%s/tok512.bin", data);
  snprintf(text, sizeof text, "%s/tinystories_val.txt", data);
  kv_capture cap;
  xkv_context *ctx = NULL;
  if (kv_capture_run(model, tok, text, 256, &cap, err, sizeof err)) {
    fprintf(stderr, "xkv_accuracy: %s\n", err);
    return 1;
  }
  if (xkv_open(&ctx, "cpu")) {
    fprintf(stderr, "xkv_accuracy: %s\n", xkv_last_error(ctx));
    return 1;
  }
  static const float ratios[] = {2, 3, 4, 6};
  static const int groups[] = {1, 2, 4};
  xkv_real_layer lay[64];
  if (csv)
    fprintf(csv, "model,tokens,target_ratio,W,ratio,layer,rank_k,rank_v,"
                 "k_err,v_err,k_group,k_opt,v_group,v_opt,attn_err,"
                 "attn_cos\n");
  printf("stories260K, %d tokens, f16 factors. Errors are means over the %d "
         "layers.\n%6s %3s %7s %9s %9s %9s %9s %9s %9s\n",
         cap.L, cap.n_layers, "target", "W", "ratio", "ranks k", "K err",
         "K opt", "V err", "V opt", "attn err");
  int rc = 0;
  for (size_t t = 0; t < sizeof ratios / sizeof *ratios && !rc; t++)
    for (size_t g = 0; g < sizeof groups / sizeof *groups && !rc; g++) {
      xkv_real_run run;
      if (cap.n_layers > 64 ||
          xkv_real_eval(ctx, &cap, groups[g], 0, 0, ratios[t], XKV_F16, lay,
                        &run, err, sizeof err)) {
        fprintf(stderr, "xkv_accuracy: %s\n", err);
        rc = 1;
        break;
      }
      double m[5] = {0};
      for (int l = 0; l < cap.n_layers; l++) {
        const xkv_real_layer *y = &lay[l];
        m[0] += y->k_err, m[1] += y->k_opt, m[2] += y->v_err;
        m[3] += y->v_opt, m[4] += y->attn_err;
        if (csv)
          fprintf(csv,
                  "stories260K,%d,%g,%d,%.3f,%d,%d-%d,%d-%d,%.5f,%.5f,"
                  "%.5f,%.5f,%.5f,%.5f,%.5f,%.6f\n",
                  cap.L, ratios[t], groups[g], run.ratio, l, run.rank_k_min,
                  run.rank_k_max, run.rank_v_min, run.rank_v_max, y->k_err,
                  y->v_err, y->k_grp, y->k_opt, y->v_grp, y->v_opt, y->attn_err,
                  y->attn_cos);
      }
      char rk[32];
      snprintf(rk, sizeof rk, "%d-%d", run.rank_k_min, run.rank_k_max);
      printf("%6g %3d %7.2f %9s %9.4f %9.4f %9.4f %9.4f %9.4f\n", ratios[t],
             groups[g], run.ratio, rk, m[0] / cap.n_layers, m[1] / cap.n_layers,
             m[2] / cap.n_layers, m[3] / cap.n_layers, m[4] / cap.n_layers);
    }
  if (csv)
    fclose(csv);
  xkv_close(ctx);
  kv_capture_free(&cap);
  return rc;
}
