/* Shared between the tokenizer implementations. */
#ifndef ENG_TOK_INTERNAL_H
#define ENG_TOK_INTERNAL_H

#include "gguf.h"
#include "tokenizer.h"

/* String -> int map, open addressing; keys are copied. */
typedef struct {
  char **keys;
  size_t *lens;
  int *vals;
  size_t cap, n;
} eng_strmap;

int eng_strmap_init(eng_strmap *m, size_t expected);
int eng_strmap_put(eng_strmap *m, const char *key, size_t len, int val);
int eng_strmap_get(const eng_strmap *m, const char *key, size_t len); /* -1 */
void eng_strmap_free(eng_strmap *m);

/* SP: llama2.c's tokenizer file; SPM: a GGUF SentencePiece vocabulary
 * (spaces as U+2581, byte fallback pieces <0xXX>) */
enum { ENG_TOK_SP, ENG_TOK_BPE, ENG_TOK_SPM };

struct eng_tokenizer {
  int kind;
  int n_vocab;
  char **tokens; /* NUL-terminated pieces */
  size_t *lens;
  float *scores;     /* SP: merge scores */
  int *types;        /* BPE: GGUF token types (3: control) */
  int bos, eos, eot; /* eot: end of turn, -1 when none */
  int unk;           /* SPM: for bytes without a piece */
  int add_bos;       /* whether sequences start with BOS */
  int add_space;     /* SPM: a space before the text */
  eng_strmap vocab, merges;
  char *chat_template;
  int *specials; /* BPE: control token ids, matched literally */
  int n_specials;
};

void eng_tok_encode_sp(const eng_tokenizer *t, const char *text, int *ids,
                       int *n);
int eng_tok_encode_bpe(const eng_tokenizer *t, const char *text, int *ids,
                       int *n, eng_err *err);
size_t eng_tok_decode_bpe(const eng_tokenizer *t, int id, char *buf,
                          size_t cap);
/* The tokenizer stored in a GGUF file (tokenizer.ggml.*): byte-level BPE
 * or SentencePiece. */
int eng_tok_from_gguf(const eng_gguf *g, eng_tokenizer **out, eng_err *err);
int eng_tok_spm_from_gguf(const eng_gguf *g, eng_tokenizer **out, eng_err *err);
int eng_tok_encode_spm(const eng_tokenizer *t, const char *text, int *ids,
                       int *n, eng_err *err);
size_t eng_tok_decode_spm(const eng_tokenizer *t, int id, char *buf,
                          size_t cap);
/* Copies the string array kv into t->tokens / t->lens. */
int eng_tok_copy_strings(const eng_gguf *g, const eng_gguf_kv *kv,
                         eng_tokenizer *t, eng_err *err);
/* Builds the vocab map and copies pieces: tokens[i] of lens[i] bytes;
 * `where` (the file) names the failure. */
int eng_tok_set_vocab(eng_tokenizer *t, int n, const char *where, eng_err *err);

#endif
