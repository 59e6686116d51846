/* Tokenizers: llama2.c's sentencepiece-style BPE (merges by score, byte
 * fallback) and GGUF byte-level BPE (GPT-2 byte-to-unicode mapping, merges
 * by rank, control tokens matched literally). */
#ifndef ENG_TOKENIZER_H
#define ENG_TOKENIZER_H

#include "err.h"

#include <stddef.h>

typedef struct eng_tokenizer eng_tokenizer;

/* llama2.c tokenizer file (tok512.bin); vocab_size comes from the model. */
int eng_tok_load_llama2c(const char *path, int vocab_size, eng_tokenizer **out,
                         eng_err *err);
void eng_tok_free(eng_tokenizer *t);

/* *ids is malloc'ed. At a sequence start (start != 0), the BOS token is
 * prepended when the tokenizer asks for one. */
int eng_tok_encode(const eng_tokenizer *t, const char *text, int start,
                   int **ids, int *n, eng_err *err);
/* The bytes token `id` contributes after token `prev`; written to buf (cap
 * >= 64 plus the longest piece), returns their count. */
size_t eng_tok_decode(const eng_tokenizer *t, int prev, int id, char *buf,
                      size_t cap);
int eng_tok_vocab_size(const eng_tokenizer *t);
int eng_tok_bos(const eng_tokenizer *t);
/* EOS, or a chat template's end-of-turn token. */
int eng_tok_is_stop(const eng_tokenizer *t, int id);
/* The prompt wrapped in the model's chat template (ChatML templates are
 * recognized); NULL when the model has none. malloc'ed. */
char *eng_tok_chat(const eng_tokenizer *t, const char *prompt);

#endif
