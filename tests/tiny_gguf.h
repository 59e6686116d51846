/* A tiny but complete Llama GGUF model (gpt2 BPE tokenizer, one layer,
 * f32 and f16 tensors) written in memory: the fuzzers' seed and the
 * allocation-failure sweep's input, where no real model may be present. */
#ifndef XK_TINY_GGUF_H
#define XK_TINY_GGUF_H

#include <stddef.h>

/* malloc'ed; NULL when out of memory */
unsigned char *xk_tiny_gguf(size_t *size);

#endif
