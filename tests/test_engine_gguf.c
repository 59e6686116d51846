/* The GGUF reader: synthetic files with every supported tensor type,
 * dequantized values against per-element formulas written here; corrupt
 * and truncated files rejected with clear errors; SmolLM2 when present. */
#include "generate.h"
#include "gguf.h"
#include "quant.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMOL XK_SRC "/models/SmolLM2-135M-Instruct.Q4_1.gguf"

/* ---- a GGUF writer ------------------------------------------------------ */
typedef struct {
  unsigned char *b;
  size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 256;
    b->b = realloc(b->b, b->cap);
  }
  memcpy(b->b + b->n, p, n);
  b->n += n;
}
static void u32(buf *b, uint32_t v) {
  put(b, &v, 4);
}
static void u64(buf *b, uint64_t v) {
  put(b, &v, 8);
}
static void str(buf *b, const char *s) {
  u64(b, strlen(s));
  put(b, s, strlen(s));
}

typedef struct {
  const char *name;
  uint32_t type;
  uint64_t ne0;
  unsigned char data[1024];
  size_t bytes;
} tensor;

static uint16_t f16_bits[] = {0x3c00, 0x3800, 0xb400, 0x4000};

static void rnd_block(unsigned char *p, size_t n, unsigned *seed) {
  for (size_t i = 0; i < n; i++) {
    *seed = *seed * 1103515245u + 12345u;
    p[i] = (unsigned char)(*seed >> 16);
  }
}

/* Random block content with sane f16 scales at the given byte offsets. */
static void make(tensor *t, const char *name, uint32_t type, unsigned seed) {
  size_t be, bb;
  ck_assert(eng_ggml_block(type, &be, &bb));
  t->name = name;
  t->type = type;
  t->ne0 = be == 1 ? 8 : be;
  t->bytes = be == 1 ? 8 * bb : bb;
  rnd_block(t->data, t->bytes, &seed);
  int offs[2] = {-1, -1};
  if (type == GGML_F16) {
    for (int i = 0; i < 8; i++)
      memcpy(t->data + 2 * i, &f16_bits[i % 4], 2);
    uint16_t sub = 0x0001, inf = 0x7c00;
    memcpy(t->data + 8, &sub, 2);
    memcpy(t->data + 10, &inf, 2);
  } else if (type == GGML_Q6_K) {
    offs[0] = 208;
  } else if (type == GGML_Q4_K || type == GGML_Q5_K || type == GGML_Q4_1 ||
             type == GGML_Q5_1) {
    offs[0] = 0;
    offs[1] = 2;
  } else if (type != GGML_F32 && type != GGML_BF16) {
    offs[0] = 0;
  }
  if (type == GGML_F32 || type == GGML_BF16)
    for (size_t i = 0; i < t->bytes; i += 4) {
      float f = (float)(i + 1) * 0.25f - 3.0f;
      memcpy(t->data + i, (const char *)&f + (type == GGML_BF16 ? 2 : 0),
             type == GGML_BF16 ? 2 : 4);
      if (type == GGML_BF16)
        memcpy(t->data + i + 2, (const char *)&f + 2, 2);
    }
  for (int k = 0; k < 2; k++)
    if (offs[k] >= 0)
      memcpy(t->data + offs[k], &f16_bits[(seed + k) % 4], 2);
}

static float h(const unsigned char *p) {
  uint16_t v = (uint16_t)(p[0] | p[1] << 8);
  int e = (v >> 10) & 31, m = v & 1023;
  float s = v & 0x8000 ? -1.0f : 1.0f;
  if (e == 31)
    return s * INFINITY;
  if (e == 0)
    return s * ldexpf((float)m, -24);
  return s * ldexpf((float)(1024 + m), e - 25);
}

static void sm(int j, const unsigned char *s, int *sc, int *m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

/* Element i of one tensor, from the format description. */
static float expect(const tensor *t, size_t i) {
  const unsigned char *b = t->data;
  switch (t->type) {
  case GGML_F32: {
    float f;
    memcpy(&f, b + 4 * i, 4);
    return f;
  }
  case GGML_F16:
    return h(b + 2 * i);
  case GGML_BF16: {
    uint32_t u = (uint32_t)(b[2 * i] | b[2 * i + 1] << 8) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  case GGML_Q8_0:
    return h(b) * (signed char)b[2 + i];
  case GGML_Q4_0:
  case GGML_Q4_1: {
    int one = t->type == GGML_Q4_1;
    const unsigned char *qs = b + (one ? 4 : 2);
    int q = i < 16 ? qs[i] & 15 : qs[i - 16] >> 4;
    return one ? h(b) * q + h(b + 2) : h(b) * (q - 8);
  }
  case GGML_Q5_0:
  case GGML_Q5_1: {
    int one = t->type == GGML_Q5_1;
    const unsigned char *qh = b + (one ? 4 : 2), *qs = qh + 4;
    int q = i < 16 ? qs[i] & 15 : qs[i - 16] >> 4;
    q |= ((qh[i / 8] >> (i % 8)) & 1) << 4;
    return one ? h(b) * q + h(b + 2) : h(b) * (q - 16);
  }
  case GGML_Q6_K: {
    size_t half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
    int lo = b[half * 64 + l + (quarter & 1) * 32];
    lo = quarter < 2 ? lo & 15 : lo >> 4;
    int hi = (b[128 + half * 32 + l] >> (2 * quarter)) & 3;
    int sc = (signed char)b[192 + half * 8 + l / 16 + 2 * quarter];
    return h(b + 208) * sc * ((lo | hi << 4) - 32);
  }
  case GGML_Q4_K:
  case GGML_Q5_K: {
    int five = t->type == GGML_Q5_K;
    size_t chunk = i / 64, within = i % 64, l = within % 32;
    int sub = (int)(2 * chunk + (within >= 32)), sc, m;
    sm(sub, b + 4, &sc, &m);
    int q = b[(five ? 48 : 16) + chunk * 32 + l];
    q = within < 32 ? q & 15 : q >> 4;
    if (five)
      q += ((b[16 + l] >> sub) & 1) * 16;
    return h(b) * sc * q - h(b + 2) * m;
  }
  }
  return NAN;
}

/* A file of the given tensors; the knobs corrupt it. */
typedef struct {
  uint32_t magic, version;
  uint64_t n_kv_extra, tensor_off_extra;
} knobs;

static buf write_gguf(const tensor *ts, int nt, knobs k) {
  buf b = {0};
  u32(&b, k.magic ? k.magic : 0x46554747u); /* "GGUF" */
  u32(&b, k.version ? k.version : 3);
  u64(&b, (uint64_t)nt);
  u64(&b, 2 + k.n_kv_extra);
  str(&b, "general.architecture");
  u32(&b, GGUF_T_STRING);
  str(&b, "test");
  str(&b, "test.list");
  u32(&b, GGUF_T_ARRAY);
  u32(&b, GGUF_T_I32);
  u64(&b, 3);
  for (int32_t i = 0; i < 3; i++)
    put(&b, &i, 4);
  uint64_t off = 0;
  for (int i = 0; i < nt; i++) {
    str(&b, ts[i].name);
    u32(&b, 1);
    u64(&b, ts[i].ne0);
    u32(&b, ts[i].type);
    u64(&b, off + (i == nt - 1 ? k.tensor_off_extra : 0));
    off += (ts[i].bytes + 31) / 32 * 32;
  }
  while (b.n % 32)
    put(&b, "", 1);
  for (int i = 0; i < nt; i++) {
    put(&b, ts[i].data, ts[i].bytes);
    while (b.n % 32)
      put(&b, "", 1);
  }
  return b;
}

static const uint32_t all_types[] = {GGML_F32,  GGML_F16,  GGML_BF16, GGML_Q4_0,
                                     GGML_Q4_1, GGML_Q5_0, GGML_Q5_1, GGML_Q8_0,
                                     GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};
#define NT ((int)(sizeof all_types / sizeof *all_types))

static tensor *all_tensors(void) {
  static tensor ts[NT];
  static char names[NT][16];
  for (int i = 0; i < NT; i++) {
    snprintf(names[i], sizeof names[i], "t.%s", eng_ggml_name(all_types[i]));
    make(&ts[i], names[i], all_types[i], 17u + (unsigned)i);
  }
  return ts;
}

START_TEST(dequantizes_every_type) {
  tensor *ts = all_tensors();
  buf b = write_gguf(ts, NT, (knobs){0});
  eng_gguf g;
  eng_err err;
  ck_assert_msg(eng_gguf_parse(b.b, b.n, "synthetic", &g, &err) == 0, "%s",
                err.msg);
  ck_assert_uint_eq(g.version, 3);
  int64_t list;
  ck_assert_int_eq(eng_gguf_get_int(&g, "general.architecture", &list, &err),
                   -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "not an integer"));
  for (int i = 0; i < NT; i++) {
    const eng_gguf_tensor *t = eng_gguf_find_tensor(&g, ts[i].name);
    ck_assert_ptr_nonnull(t);
    float out[256];
    ck_assert_int_eq(eng_gguf_dequant(&g, t, out, &err), 0);
    for (size_t e = 0; e < t->nelem; e++) {
      float want = expect(&ts[i], e);
      ck_assert_msg(
          out[e] == want || fabsf(out[e] - want) <= 1e-6f * fabsf(want),
          "%s element %zu: %g, expected %g", ts[i].name, e, out[e], want);
    }
  }
  eng_gguf_close(&g);
}
END_TEST

static void expect_reject(knobs k, size_t cut, const char *needle) {
  tensor *ts = all_tensors();
  buf b = write_gguf(ts, NT, k);
  eng_gguf g;
  eng_err err = {{0}};
  size_t n = cut ? cut : b.n;
  ck_assert_int_eq(eng_gguf_parse(b.b, n, "bad.gguf", &g, &err), -1);
  ck_assert_msg(strstr(err.msg, needle) && strstr(err.msg, "bad.gguf"),
                "error \"%s\" lacks \"%s\"", err.msg, needle);
}

START_TEST(rejects_corrupt) {
  expect_reject((knobs){.magic = 0x12345678}, 0, "bad magic");
  expect_reject((knobs){.version = 2}, 0, "version 2");
  expect_reject((knobs){.n_kv_extra = 1ull << 60}, 0, "absurd counts");
  expect_reject((knobs){.tensor_off_extra = 1 << 20}, 0, "past the end");
  expect_reject((knobs){0}, 300, "truncated");
  /* every truncation fails cleanly (ASan watches the reads) */
  tensor *ts = all_tensors();
  buf full = write_gguf(ts, NT, (knobs){0});
  for (size_t n = 0; n + 1 < full.n; n += 7) {
    unsigned char *p = malloc(n + 1);
    memcpy(p, full.b, n);
    eng_gguf g;
    eng_err err;
    int rc = eng_gguf_parse(p, n, "cut.gguf", &g, &err);
    /* the last tensor's padding may be cut without losing data */
    if (rc == 0) {
      ck_assert_uint_ge(n, full.n - 31);
      eng_gguf_close(&g);
    }
  }
  free(full.b);
  eng_model m;
  eng_err err;
  ck_assert_int_eq(eng_model_load("/nonexistent/model.gguf", &m, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/model.gguf"));
}
END_TEST

START_TEST(f16_conversion) {
  ck_assert_float_eq(eng_f16_to_f32(0x3c00), 1.0f);
  ck_assert_float_eq(eng_f16_to_f32(0xc000), -2.0f);
  ck_assert_float_eq(eng_f16_to_f32(0x7bff), 65504.0f);
  ck_assert_float_eq(eng_f16_to_f32(0x0001), ldexpf(1.0f, -24));
  ck_assert_float_eq(eng_f16_to_f32(0x0200), ldexpf(1.0f, -15));
  ck_assert(isinf(eng_f16_to_f32(0xfc00)));
  ck_assert(isnan(eng_f16_to_f32(0x7e00)));
}
END_TEST

START_TEST(smollm2_greedy) {
  FILE *f = fopen(SMOL, "rb");
  if (!f) {
    printf("SKIP smollm2_greedy: %s absent (scripts/get-models.sh)\n", SMOL);
    return;
  }
  fclose(f);
  eng_model m;
  eng_err err;
  ck_assert_msg(eng_model_open(SMOL, NULL, &m, &err) == 0, "%s", err.msg);
  ck_assert_int_eq(m.cfg.n_layers, 30);
  ck_assert_int_eq(m.cfg.n_kv_heads, 3);
  ck_assert_int_eq(m.cfg.head_dim, 64);
  char *chat = eng_tok_chat(m.tok, "What is the capital of France?");
  ck_assert_ptr_nonnull(chat);
  int *ids, n;
  ck_assert_int_eq(eng_tok_encode(m.tok, chat, 1, &ids, &n, &err), 0);
  eng_kv *kv;
  ck_assert_int_eq(eng_kv_exact_create(&m.cfg, n + 16, &kv, &err), 0);
  int out[16];
  eng_gen_opts g = {.max_new = 16, .out = out, .stop_at_eos = 1, .tok = m.tok};
  eng_gen_result r;
  ck_assert_msg(eng_generate(&m, kv, ids, n, &g, &r, &err) == 0, "%s", err.msg);
  char text[1024] = "", piece[512];
  size_t len = 0;
  for (int i = 0; i < r.n_gen && !eng_tok_is_stop(m.tok, out[i]); i++) {
    size_t k = eng_tok_decode(m.tok, -1, out[i], piece, sizeof piece);
    memcpy(text + len, piece, k);
    len += k;
  }
  text[len] = 0;
  printf("SmolLM2: %s\n", text);
  ck_assert_msg(strstr(text, "Paris"), "answer \"%s\" lacks Paris", text);
  kv->ops->destroy(kv);
  free(ids);
  free(chat);
  eng_model_free(&m);
}
END_TEST

int main(void) {
  Suite *s = suite_create("engine_gguf");
  TCase *tc = tcase_create("gguf");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, dequantizes_every_type);
  tcase_add_test(tc, rejects_corrupt);
  tcase_add_test(tc, f16_conversion);
  tcase_add_test(tc, smollm2_greedy);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
