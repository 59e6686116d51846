#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep nesting would only come from a corrupt or hostile file. */
#define JSON_MAX_DEPTH 64

typedef struct {
  const char *s, *p, *end;
  char *err;
  size_t errlen;
  int failed;
} reader;

static int fail(reader *r, const char *why) {
  if (r->failed)
    return -1;
  r->failed = 1;
  int line = 1, col = 1;
  for (const char *q = r->s; q < r->p && q < r->end; q++) {
    if (*q == '\n')
      line++, col = 1;
    else
      col++;
  }
  snprintf(r->err, r->errlen, "line %d, column %d: %s", line, col, why);
  return -1;
}

/* no location: the text is not at fault */
static int oom(reader *r) {
  if (!r->failed)
    snprintf(r->err, r->errlen, "%s", JSON_OOM);
  r->failed = 1;
  return -1;
}

static void skip_ws(reader *r) {
  while (r->p < r->end &&
         (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
    r->p++;
}

static int grow(json_val *v, int obj) {
  if (v->n < v->cap)
    return 0;
  int cap = v->cap ? 2 * v->cap : 4;
  json_val *items = realloc(v->items, (size_t)cap * sizeof *items);
  if (!items)
    return -1;
  v->items = items;
  if (obj) {
    char **keys = realloc(v->keys, (size_t)cap * sizeof *keys);
    if (!keys)
      return -1;
    v->keys = keys;
  }
  v->cap = cap;
  return 0;
}

static void put_utf8(char *o, size_t *k, uint32_t c) {
  if (c < 0x80) {
    o[(*k)++] = (char)c;
  } else if (c < 0x800) {
    o[(*k)++] = (char)(0xC0 | (c >> 6));
    o[(*k)++] = (char)(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    o[(*k)++] = (char)(0xE0 | (c >> 12));
    o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[(*k)++] = (char)(0x80 | (c & 0x3F));
  } else {
    o[(*k)++] = (char)(0xF0 | (c >> 18));
    o[(*k)++] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[(*k)++] = (char)(0x80 | (c & 0x3F));
  }
}

static int hex4(reader *r, uint32_t *out) {
  uint32_t c = 0;
  for (int i = 0; i < 4; i++, r->p++) {
    if (r->p >= r->end)
      return fail(r, "truncated \\u escape");
    char h = *r->p;
    c <<= 4;
    if (h >= '0' && h <= '9')
      c |= (uint32_t)(h - '0');
    else if (h >= 'a' && h <= 'f')
      c |= (uint32_t)(h - 'a' + 10);
    else if (h >= 'A' && h <= 'F')
      c |= (uint32_t)(h - 'A' + 10);
    else
      return fail(r, "bad hex digit in \\u escape");
  }
  *out = c;
  return 0;
}

/* r->p is just past the opening quote. Escapes only shrink the text, so
 * the raw length bounds the decoded one (a \u escape: 6 bytes -> <= 4). */
static char *read_string(reader *r) {
  const char *q = r->p;
  while (q < r->end && *q != '"') {
    if (*q == '\\' && q + 1 < r->end)
      q++;
    q++;
  }
  if (q >= r->end)
    return fail(r, "unterminated string"), NULL;
  char *o = malloc((size_t)(q - r->p) + 1);
  if (!o)
    return oom(r), NULL;
  size_t k = 0;
  while (*r->p != '"') {
    unsigned char c = (unsigned char)*r->p++;
    if (c < 0x20) {
      r->p--;
      free(o);
      return fail(r, "control character in string"), NULL;
    }
    if (c != '\\') {
      o[k++] = (char)c;
      continue;
    }
    char e = *r->p++;
    uint32_t u;
    switch (e) {
    case '"':
      o[k++] = '"';
      break;
    case '\\':
      o[k++] = '\\';
      break;
    case '/':
      o[k++] = '/';
      break;
    case 'b':
      o[k++] = '\b';
      break;
    case 'f':
      o[k++] = '\f';
      break;
    case 'n':
      o[k++] = '\n';
      break;
    case 'r':
      o[k++] = '\r';
      break;
    case 't':
      o[k++] = '\t';
      break;
    case 'u':
      if (hex4(r, &u))
        return free(o), NULL;
      if (u >= 0xD800 && u < 0xDC00) {
        uint32_t lo;
        if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u')
          return free(o), fail(r, "unpaired surrogate"), NULL;
        r->p += 2;
        if (hex4(r, &lo))
          return free(o), NULL;
        if (lo < 0xDC00 || lo > 0xDFFF)
          return free(o), fail(r, "unpaired surrogate"), NULL;
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
      } else if (u >= 0xDC00 && u < 0xE000) {
        return free(o), fail(r, "unpaired surrogate"), NULL;
      }
      if (u == 0)
        return free(o), fail(r, "NUL character in string"), NULL;
      put_utf8(o, &k, u);
      break;
    default:
      r->p--;
      free(o);
      return fail(r, "bad escape in string"), NULL;
    }
  }
  r->p++;
  o[k] = 0;
  return o;
}

static int read_number(reader *r, json_val *v) {
  const char *q = r->p;
  int integral = 1;
  if (q < r->end && *q == '-')
    q++;
  if (q >= r->end || *q < '0' || *q > '9')
    return fail(r, "bad number");
  if (*q == '0' && q + 1 < r->end && q[1] >= '0' && q[1] <= '9')
    return fail(r, "leading zero in number");
  while (q < r->end && *q >= '0' && *q <= '9')
    q++;
  if (q < r->end && *q == '.') {
    integral = 0;
    q++;
    if (q >= r->end || *q < '0' || *q > '9')
      return fail(r, "bad number");
    while (q < r->end && *q >= '0' && *q <= '9')
      q++;
  }
  if (q < r->end && (*q == 'e' || *q == 'E')) {
    integral = 0;
    q++;
    if (q < r->end && (*q == '+' || *q == '-'))
      q++;
    if (q >= r->end || *q < '0' || *q > '9')
      return fail(r, "bad number");
    while (q < r->end && *q >= '0' && *q <= '9')
      q++;
  }
  char buf[64];
  size_t n = (size_t)(q - r->p);
  if (n >= sizeof buf)
    return fail(r, "number too long");
  memcpy(buf, r->p, n);
  buf[n] = 0;
  v->t = JSON_NUM;
  v->num = strtod(buf, NULL);
  if (integral) {
    errno = 0;
    long long x = strtoll(buf, NULL, 10);
    if (!errno) {
      v->is_int = 1;
      v->i = x;
    }
  }
  r->p = q;
  return 0;
}

static int literal(reader *r, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n))
    return fail(r, "unexpected character");
  r->p += n;
  return 0;
}

static void val_clear(json_val *v);

static int read_value(reader *r, json_val *v, int depth) {
  memset(v, 0, sizeof *v);
  skip_ws(r);
  if (r->p >= r->end)
    return fail(r, "unexpected end of text");
  if (depth > JSON_MAX_DEPTH)
    return fail(r, "nesting too deep");
  char c = *r->p;
  if (c == '{' || c == '[') {
    int obj = c == '{';
    char close = obj ? '}' : ']';
    v->t = obj ? JSON_OBJ : JSON_ARR;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == close) {
      r->p++;
      return 0;
    }
    for (;;) {
      char *key = NULL;
      if (obj) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
          return fail(r, "expected a member name");
        r->p++;
        if (!(key = read_string(r)))
          return -1;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':')
          return free(key), fail(r, "expected ':'");
        r->p++;
      }
      if (grow(v, obj))
        return free(key), oom(r);
      if (obj)
        v->keys[v->n] = key;
      int rc = read_value(r, &v->items[v->n], depth + 1);
      v->n++; /* counted even on failure so that it is freed */
      if (rc)
        return -1;
      skip_ws(r);
      if (r->p < r->end && *r->p == ',') {
        r->p++;
        continue;
      }
      if (r->p < r->end && *r->p == close) {
        r->p++;
        return 0;
      }
      return fail(r, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  if (c == '"') {
    r->p++;
    v->t = JSON_STR;
    return (v->str = read_string(r)) ? 0 : -1;
  }
  if (c == 't' || c == 'f') {
    v->t = JSON_BOOL;
    v->i = c == 't';
    return literal(r, c == 't' ? "true" : "false");
  }
  if (c == 'n')
    return literal(r, "null");
  return read_number(r, v);
}

static void val_clear(json_val *v) {
  for (int i = 0; i < v->n; i++) {
    val_clear(&v->items[i]);
    if (v->keys)
      free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->str);
}

json_val *json_parse(const char *text, size_t len, char *err, size_t errlen) {
  reader r = {text, text, text + len, err, errlen, 0};
  json_val *v = calloc(1, sizeof *v);
  if (!v) {
    snprintf(err, errlen, "%s", JSON_OOM);
    return NULL;
  }
  if (!read_value(&r, v, 0)) {
    skip_ws(&r);
    if (r.p == r.end)
      return v;
    fail(&r, "trailing text after the value");
  }
  json_free(v);
  return NULL;
}

void json_free(json_val *v) {
  if (!v)
    return;
  val_clear(v);
  free(v);
}

const json_val *json_get(const json_val *v, const char *key) {
  if (!v || v->t != JSON_OBJ)
    return NULL;
  for (int i = 0; i < v->n; i++)
    if (!strcmp(v->keys[i], key))
      return &v->items[i];
  return NULL;
}
