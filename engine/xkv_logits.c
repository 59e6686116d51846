/* xkv-logits: the exact-cache logits of a text's last positions, written to
 * a file, so another implementation (llama.cpp: scripts/compare_llamacpp.py)
 * can run the same token ids and be compared row by row. The ids are
 * written too: the comparison must not depend on two tokenizers agreeing
 * (that is checked separately).
 *
 * File (little-endian): "XKVL", int32 n, vocab, p; int32 ids[n];
 * float32 logits[n - p][vocab], row i predicting token p + i. */
#include "cli.h"
#include "eval.h"
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: xkv-logits --model M [--tokenizer T] --text F --out FILE\n"
    "                  [--tokens N] [--rows K]\n"
    "       xkv-logits --version\n"
    "Writes the ids of the text's first N tokens (default 256) and the\n"
    "exact-cache logits predicting its last K (default 16).\n";

typedef struct {
  const char *model, *tok, *text, *out;
  int tokens, rows;
  eng_xkv_opts x;
} logits_opts;

/* typed through eng_cli_main's void pointers */
static int parse(int argc, char **argv, void *vo, eng_err *err) {
  logits_opts *o = vo;
  *o = (logits_opts){.tokens = 256, .rows = 16, .x = {.device = "auto"}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return eng_fail(err, "%s", "help");
    if (eng_flag_value(argc, argv, &i, &v, err))
      return -1;
    int rc = 0;
    if (strcmp(a, "--text") == 0)
      o->text = v;
    else if (strcmp(a, "--out") == 0)
      o->out = v;
    else if (strcmp(a, "--tokens") == 0)
      rc = eng_parse_int(a, v, 2, 1 << 20, &o->tokens, err);
    else if (strcmp(a, "--rows") == 0)
      rc = eng_parse_int(a, v, 1, 1 << 20, &o->rows, err);
    else
      rc = eng_common_flag(a, v, &o->model, &o->tok, &o->x, err);
    if (rc)
      return -1;
  }
  if (!o->model || !o->text || !o->out)
    return eng_fail(err, "--model, --text and --out are required");
  if (o->rows >= o->tokens)
    return eng_fail(err, "--rows %d must be below --tokens %d", o->rows,
                    o->tokens);
  return 0;
}

static int write_file(const char *path, const int *ids, int n, int p, int V,
                      const float *logits, eng_err *err) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return eng_fail(err, "%s: cannot create", path);
  int32_t head[3] = {n, V, p};
  size_t rows = (size_t)(n - p) * V;
  int ok = fwrite("XKVL", 1, 4, f) == 4 && fwrite(head, 4, 3, f) == 3 &&
           fwrite(ids, sizeof *ids, n, f) == (size_t)n &&
           fwrite(logits, sizeof *logits, rows, f) == rows;
  if (fclose(f) || !ok)
    return eng_fail(err, "%s: write failed", path);
  return 0;
}

/* Encodes a prefix of text long enough for n tokens: encoding a whole long
 * file costs far more than the model run (the merges are quadratic). The
 * prefix ends on a UTF-8 lead byte and is grown until it gives margin
 * tokens past n, so a word cut at its end cannot change the first n. */
static int encode_prefix(const eng_tokenizer *t, char *text, int need,
                         int **ids, int *n, eng_err *err) {
  enum { margin = 16 };
  size_t len = strlen(text);
  for (size_t chars = (size_t)need * 8;; chars *= 2) {
    size_t cut = chars < len ? chars : len;
    while (cut < len && ((unsigned char)text[cut] & 0xC0) == 0x80)
      cut--;
    char keep = text[cut];
    text[cut] = 0;
    free(*ids);
    *ids = NULL;
    int rc = eng_tok_encode(t, text, 1, ids, n, err);
    text[cut] = keep;
    if (rc || cut == len || *n >= need + margin)
      return rc;
  }
}

static int run(const void *vo, eng_err *err) {
  const logits_opts *o = vo;
  eng_model m;
  if (eng_model_open(o->model, o->tok, &m, err))
    return -1;
  char *text = NULL;
  int *ids = NULL, n = 0, rc = -1, N = o->tokens, p = N - o->rows;
  float *logits = NULL;
  eng_kv *kv = NULL;
  if (N > m.cfg.seq_len) {
    eng_fail(err, "--tokens %d exceeds the model's context %d", N,
             m.cfg.seq_len);
    goto done;
  }
  if (eng_read_text(o->text, &text, err) ||
      encode_prefix(m.tok, text, N, &ids, &n, err))
    goto done;
  if (n < N) {
    eng_fail(err, "%s: only %d tokens, --tokens asks for %d", o->text, n, N);
    goto done;
  }
  logits = malloc((size_t)o->rows * m.cfg.vocab_size * sizeof(float));
  if (!logits) {
    eng_fail(err, "out of memory for %d logit rows", o->rows);
    goto done;
  }
  if (eng_kv_create("exact", &m.cfg, N, &o->x, &kv, err) ||
      eng_teacher_force(&m, kv, ids, p, N, logits, err) ||
      write_file(o->out, ids, N, p, m.cfg.vocab_size, logits, err))
    goto done;
  printf("%s: %d ids, logits for positions %d..%d (vocab %d)\n", o->out, N, p,
         N - 1, m.cfg.vocab_size);
  rc = 0;
done:
  if (kv)
    kv->ops->destroy(kv);
  free(logits);
  free(ids);
  free(text);
  eng_model_free(&m);
  return rc;
}

int main(int argc, char **argv) {
  logits_opts o;
  return eng_cli_main("xkv-logits", usage, argc, argv, &o, parse, run);
}
