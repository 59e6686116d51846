/* libFuzzer: a GGUF file through the GGUF reader (every tensor
 * dequantized) and through the Llama model loader (hyperparameters, the
 * BPE tokenizer, tensor shapes), which both take the buffer as theirs. */
#include "gguf.h"
#include "model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *copy(const uint8_t *data, size_t size) {
  unsigned char *b = malloc(size + 1);
  if (b)
    memcpy(b, data, size);
  return b;
}

static void read_gguf(const uint8_t *data, size_t size) {
  unsigned char *b = copy(data, size);
  eng_gguf g;
  eng_err err;
  if (!b || eng_gguf_parse(b, size, "fuzz.gguf", &g, &err))
    return;
  for (uint64_t i = 0; i < g.n_tensors; i++) {
    float *out = malloc(g.tensors[i].nelem * sizeof *out);
    if (out)
      eng_gguf_dequant(&g, &g.tensors[i], out, &err);
    free(out);
  }
  eng_gguf_close(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  read_gguf(data, size);
  unsigned char *b = copy(data, size);
  eng_model m;
  eng_err err;
  if (b && !eng_model_parse_gguf(b, size, "fuzz.gguf", &m, &err))
    eng_model_free(&m);
  return 0;
}
