/* libFuzzer: a llama2.c checkpoint through the engine's reader. */
#include "model.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  eng_model m;
  eng_err err;
  if (!eng_model_parse_llama2c(data, size, "fuzz.bin", &m, &err))
    eng_model_free(&m);
  return 0;
}
