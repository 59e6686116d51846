/* GGUF v3 reader (llama.cpp's model format): header, metadata key/values,
 * tensor infos, and tensor data, every offset and count checked against
 * the file size so that truncated or corrupt files give an error. */
#ifndef ENG_GGUF_H
#define ENG_GGUF_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>

enum {
  GGUF_T_U8 = 0,
  GGUF_T_I8,
  GGUF_T_U16,
  GGUF_T_I16,
  GGUF_T_U32,
  GGUF_T_I32,
  GGUF_T_F32,
  GGUF_T_BOOL,
  GGUF_T_STRING,
  GGUF_T_ARRAY,
  GGUF_T_U64,
  GGUF_T_I64,
  GGUF_T_F64
};

typedef struct {
  const char *s; /* not NUL-terminated */
  uint64_t len;
} eng_gguf_str;

typedef struct {
  eng_gguf_str key;
  uint32_t type;
  union {
    uint64_t u;
    int64_t i;
    double f;
    eng_gguf_str str;
    struct {
      uint32_t type;
      uint64_t n;
      const unsigned char *data; /* the first element */
    } arr;
  } v;
} eng_gguf_kv;

typedef struct {
  eng_gguf_str name;
  uint32_t n_dims;
  uint64_t ne[4];  /* ne[0] is the contiguous dimension */
  uint32_t type;   /* ggml type */
  uint64_t offset; /* from the data section */
  uint64_t nelem, nbytes;
} eng_gguf_tensor;

typedef struct {
  unsigned char *buf;
  size_t size;
  uint32_t version;
  uint64_t n_kv, n_tensors, alignment;
  eng_gguf_kv *kv;
  eng_gguf_tensor *tensors;
  size_t data_off;
  char path[256];
} eng_gguf;

int eng_gguf_open(const char *path, eng_gguf *g, eng_err *err);
/* Takes ownership of buf (malloc'ed) even on failure. */
int eng_gguf_parse(unsigned char *buf, size_t size, const char *name,
                   eng_gguf *g, eng_err *err);
void eng_gguf_close(eng_gguf *g);

const eng_gguf_kv *eng_gguf_find(const eng_gguf *g, const char *key);
/* Typed getters with integer/float coercion; a missing key is an error. */
int eng_gguf_get_int(const eng_gguf *g, const char *key, int64_t *out,
                     eng_err *err);
int eng_gguf_get_f32(const eng_gguf *g, const char *key, float *out,
                     eng_err *err);
/* An array of `type`; *kv stays NULL (and 0 returned) when optional and
 * absent. */
int eng_gguf_get_arr(const eng_gguf *g, const char *key, uint32_t type,
                     int optional, const eng_gguf_kv **kv, eng_err *err);
/* Walks a string array: *p starts at kv->v.arr.data. Checked at parse. */
eng_gguf_str eng_gguf_next_str(const unsigned char **p);

const eng_gguf_tensor *eng_gguf_find_tensor(const eng_gguf *g,
                                            const char *name);
/* Dequantizes a whole tensor into out[nelem]. */
int eng_gguf_dequant(const eng_gguf *g, const eng_gguf_tensor *t, float *out,
                     eng_err *err);

#endif
