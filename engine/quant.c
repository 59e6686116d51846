#include "quant.h"

#include <string.h>

static const struct {
  uint32_t type;
  const char *name;
  size_t elems, bytes;
} types[] = {
    {GGML_F32, "F32", 1, 4},       {GGML_F16, "F16", 1, 2},
    {GGML_BF16, "BF16", 1, 2},     {GGML_Q4_0, "Q4_0", 32, 18},
    {GGML_Q4_1, "Q4_1", 32, 20},   {GGML_Q5_0, "Q5_0", 32, 22},
    {GGML_Q5_1, "Q5_1", 32, 24},   {GGML_Q8_0, "Q8_0", 32, 34},
    {GGML_Q4_K, "Q4_K", 256, 144}, {GGML_Q5_K, "Q5_K", 256, 176},
    {GGML_Q6_K, "Q6_K", 256, 210},
};

int eng_ggml_block(uint32_t type, size_t *elems, size_t *bytes) {
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (types[i].type == type) {
      *elems = types[i].elems;
      *bytes = types[i].bytes;
      return 1;
    }
  return 0;
}

const char *eng_ggml_name(uint32_t type) {
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (types[i].type == type)
      return types[i].name;
  return "unsupported";
}

float eng_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do {
        man <<= 1;
        e++;
      } while (!(man & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static float rd_f16(const unsigned char *p) {
  return eng_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* The 6-bit scale and min of sub-block j in Q4_K/Q5_K's 12 scale bytes. */
static void scale_min_k4(int j, const unsigned char *q, int *d, int *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

static void q4_0(const unsigned char *b, float *y) {
  float d = rd_f16(b);
  const unsigned char *qs = b + 2;
  for (int j = 0; j < 16; j++) {
    y[j] = ((qs[j] & 0xf) - 8) * d;
    y[j + 16] = ((qs[j] >> 4) - 8) * d;
  }
}

static void q4_1(const unsigned char *b, float *y) {
  float d = rd_f16(b), m = rd_f16(b + 2);
  const unsigned char *qs = b + 4;
  for (int j = 0; j < 16; j++) {
    y[j] = (qs[j] & 0xf) * d + m;
    y[j + 16] = (qs[j] >> 4) * d + m;
  }
}

/* Q5_0 / Q5_1: the fifth bit of element j sits in bit j of qh. */
static void q5(const unsigned char *b, int has_min, float *y) {
  float d = rd_f16(b), m = has_min ? rd_f16(b + 2) : 0.0f;
  const unsigned char *qh_p = b + (has_min ? 4 : 2), *qs = qh_p + 4;
  uint32_t qh = (uint32_t)qh_p[0] | (uint32_t)qh_p[1] << 8 |
                (uint32_t)qh_p[2] << 16 | (uint32_t)qh_p[3] << 24;
  int off = has_min ? 0 : 16;
  for (int j = 0; j < 16; j++) {
    int x0 = (qs[j] & 0xf) | (int)(((qh >> j) & 1) << 4);
    int x1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
    y[j] = (x0 - off) * d + m;
    y[j + 16] = (x1 - off) * d + m;
  }
}

static void q8_0(const unsigned char *b, float *y) {
  float d = rd_f16(b);
  for (int j = 0; j < 32; j++)
    y[j] = (signed char)b[2 + j] * d;
}

/* Q4_K and Q5_K share the scale/min packing; Q5_K adds a high bit plane. */
static void qk(const unsigned char *b, int five, float *y) {
  float d = rd_f16(b), dmin = rd_f16(b + 2);
  const unsigned char *sc = b + 4, *qh = b + 16;
  const unsigned char *q = five ? b + 48 : b + 16;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
    int s1, m1, s2, m2;
    scale_min_k4(is, sc, &s1, &m1);
    scale_min_k4(is + 1, sc, &s2, &m2);
    int u1 = 1 << is, u2 = 2 << is;
    for (int l = 0; l < 32; l++) {
      int h1 = five && (qh[l] & u1) ? 16 : 0;
      int h2 = five && (qh[l] & u2) ? 16 : 0;
      y[j + l] = d * s1 * ((q[l] & 0xf) + h1) - dmin * m1;
      y[j + 32 + l] = d * s2 * ((q[l] >> 4) + h2) - dmin * m2;
    }
  }
}

static void q6_k(const unsigned char *b, float *y) {
  const unsigned char *ql = b, *qh = b + 128;
  const signed char *sc = (const signed char *)(b + 192);
  float d = rd_f16(b + 208);
  for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; l++) {
      int is = l / 16;
      int q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) - 32;
      int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
      int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[n + l] = d * sc[is] * q1;
      y[n + l + 32] = d * sc[is + 2] * q2;
      y[n + l + 64] = d * sc[is + 4] * q3;
      y[n + l + 96] = d * sc[is + 6] * q4;
    }
  }
}

void eng_dequant(uint32_t type, const unsigned char *src, size_t nblocks,
                 float *dst) {
  size_t elems = 0, bytes = 0;
  if (!eng_ggml_block(type, &elems, &bytes))
    return;
  for (size_t i = 0; i < nblocks; i++, src += bytes, dst += elems) {
    switch (type) {
    case GGML_F32:
      memcpy(dst, src, 4);
      break;
    case GGML_F16:
      *dst = rd_f16(src);
      break;
    case GGML_BF16: {
      uint32_t bits = (uint32_t)(src[0] | src[1] << 8) << 16;
      memcpy(dst, &bits, 4);
      break;
    }
    case GGML_Q4_0:
      q4_0(src, dst);
      break;
    case GGML_Q4_1:
      q4_1(src, dst);
      break;
    case GGML_Q5_0:
    case GGML_Q5_1:
      q5(src, type == GGML_Q5_1, dst);
      break;
    case GGML_Q8_0:
      q8_0(src, dst);
      break;
    case GGML_Q4_K:
    case GGML_Q5_K:
      qk(src, type == GGML_Q5_K, dst);
      break;
    case GGML_Q6_K:
      q6_k(src, dst);
      break;
    }
  }
}
