/* A small strict JSON reader (RFC 8259) for manifests: the runtime must not
 * depend on libraries the deployment machine may lack. */
#ifndef XKV_JSON_H
#define XKV_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  JSON_NULL,
  JSON_BOOL,
  JSON_NUM,
  JSON_STR,
  JSON_ARR,
  JSON_OBJ
} json_type;

typedef struct json_val {
  json_type t;
  int is_int; /* a number written without fraction/exponent that fits */
  int64_t i;  /* numbers (is_int) and booleans */
  double num;
  char *str;              /* JSON_STR */
  struct json_val *items; /* JSON_ARR elements / JSON_OBJ values */
  char **keys;            /* JSON_OBJ */
  int n, cap;
} json_val;

/* Returns NULL and writes "line L, column C: why" into err on failure, or
 * exactly JSON_OOM when an allocation failed. */
#define JSON_OOM "out of memory"
json_val *json_parse(const char *text, size_t len, char *err, size_t errlen);
void json_free(json_val *v);
/* Object member, NULL when absent or when v is not an object. */
const json_val *json_get(const json_val *v, const char *key);

#endif
