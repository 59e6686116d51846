#include "model.h"
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int eng_read_file(const char *path, unsigned char **buf, size_t *size,
                  eng_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return eng_fail(err, "%s: cannot open: %s", path, strerror(errno));
  long n = -1;
  if (fseek(f, 0, SEEK_END) == 0)
    n = ftell(f);
  if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return eng_fail(err, "%s: cannot determine its size", path);
  }
  unsigned char *b = malloc((size_t)n + 1);
  if (!b) {
    fclose(f);
    return eng_fail(err, "%s: out of memory reading %ld bytes", path, n);
  }
  size_t got = fread(b, 1, (size_t)n, f);
  fclose(f);
  if (got != (size_t)n) {
    free(b);
    return eng_fail(err, "%s: short read (%zu of %ld bytes)", path, got, n);
  }
  b[n] = 0;
  *buf = b;
  *size = (size_t)n;
  return 0;
}

int eng_model_load(const char *path, eng_model *m, eng_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return eng_fail(err, "%s: cannot open model: %s", path, strerror(errno));
  char magic[4] = {0};
  size_t got = fread(magic, 1, 4, f);
  fclose(f);
  if (got == 4 && memcmp(magic, "GGUF", 4) == 0)
    return eng_model_load_gguf(path, m, err);
  return eng_model_load_llama2c(path, m, err);
}

void eng_model_free(eng_model *m) {
  if (!m)
    return;
  free(m->arena);
  free(m->layers);
  eng_tok_free(m->tok);
  memset(m, 0, sizeof *m);
}

int eng_model_open(const char *path, const char *tok_path, eng_model *m,
                   eng_err *err) {
  if (eng_model_load(path, m, err))
    return -1;
  if (tok_path) {
    eng_tok_free(m->tok);
    m->tok = NULL;
    if (eng_tok_load_llama2c(tok_path, m->cfg.vocab_size, &m->tok, err)) {
      eng_model_free(m);
      return -1;
    }
  }
  if (!m->tok) {
    eng_model_free(m);
    return eng_fail(err,
                    "%s: a llama2.c checkpoint has no tokenizer: pass "
                    "--tokenizer (e.g. tok512.bin)",
                    path);
  }
  if (eng_tok_vocab_size(m->tok) != m->cfg.vocab_size) {
    eng_fail(err, "tokenizer has %d tokens, the model %d",
             eng_tok_vocab_size(m->tok), m->cfg.vocab_size);
    eng_model_free(m);
    return -1;
  }
  return 0;
}
