/* ggml tensor types and their dequantization to f32 (block layouts as in
 * ggml-quants.c). */
#ifndef ENG_QUANT_H
#define ENG_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum {
  GGML_F32 = 0,
  GGML_F16 = 1,
  GGML_Q4_0 = 2,
  GGML_Q4_1 = 3,
  GGML_Q5_0 = 6,
  GGML_Q5_1 = 7,
  GGML_Q8_0 = 8,
  GGML_Q4_K = 12,
  GGML_Q5_K = 13,
  GGML_Q6_K = 14,
  GGML_BF16 = 30
};

/* Elements per block and bytes per block; 0 when the type is unsupported. */
int eng_ggml_block(uint32_t type, size_t *elems, size_t *bytes);
const char *eng_ggml_name(uint32_t type);
float eng_f16_to_f32(uint16_t h);
/* Dequantizes nblocks blocks of `type` from src into dst. */
void eng_dequant(uint32_t type, const unsigned char *src, size_t nblocks,
                 float *dst);

#endif
