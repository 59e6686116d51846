/* Tensor-core and cp.async semantics for the sim target (see sim_tc.h).
 * Fragment layouts follow the PTX ISA, "Matrix Fragments for
 * mma.m16n8k16 with floating point type" and "ldmatrix": with g = lane/4
 * and t = lane%4, a lane holds A elements (g, 2t..2t+1) in a0a1,
 * (g+8, 2t..) in a2a3, (g, 2t+8..) in a4a5, (g+8, 2t+8..) in a6a7; B
 * elements (k = 2t..2t+1, n = g) in b0b1 and (k = 2t+8.., n = g) in b2b3;
 * C/D elements (g, 2t..2t+1) in c0c1 and (g+8, 2t..2t+1) in c2c3. */
#include "sim_tc.h"

#include <stdlib.h>
#include <string.h>

float xk_tc_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31,
           man = h & 1023u, bits;
  if (exp == 31) {
    bits = sign | 0x7f800000u | man << 13;
  } else if (exp) {
    bits = sign | (exp + 112) << 23 | man << 13;
  } else if (!man) {
    bits = sign;
  } else { /* subnormal: normalize */
    int e = -1;
    do {
      man <<= 1;
      e++;
    } while (!(man & 1024u));
    bits = sign | (uint32_t)(112 - e) << 23 | (man & 1023u) << 13;
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

uint16_t xk_tc_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, sizeof x);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf, nan */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
  if (ax >= 0x477ff000u) /* rounds to >= 65520: inf */
    return (uint16_t)(sign | 0x7c00u);
  if (ax < 0x38800000u) { /* subnormal or zero: scale to units of 2^-24 */
    if (ax < 0x33000000u)
      return (uint16_t)sign;
    uint32_t man = (ax & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(ax >> 23);
    uint32_t q = man >> shift, rem = man & ((1u << shift) - 1),
             half = 1u << (shift - 1);
    q += rem > half || (rem == half && (q & 1));
    return (uint16_t)(sign | q);
  }
  uint32_t q = ((ax >> 13) - (112u << 10)), rem = ax & 0x1fffu;
  q += rem > 0x1000u || (rem == 0x1000u && (q & 1));
  return (uint16_t)(sign | q);
}

static float elem(int dtype, uint32_t reg, int hi) {
  uint16_t h = (uint16_t)(hi ? reg >> 16 : reg & 0xffffu);
  if (dtype == XK_BF16) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
  }
  return xk_tc_f16_to_f32(h);
}

/* A[row][k] and B[k][col] of the warp's fragments. */
static float a_at(int dtype, const uint32_t (*a)[4], int row, int k) {
  int lane = (row % 8) * 4 + (k % 8) / 2;
  int reg = (row >= 8) + 2 * (k >= 8);
  return elem(dtype, a[lane][reg], k & 1);
}

static float b_at(int dtype, const uint32_t (*b)[2], int k, int col) {
  int lane = col * 4 + (k % 8) / 2;
  return elem(dtype, b[lane][k >= 8], k & 1);
}

/* Products of f16/bf16 values are exact in f32; the sum runs in double
 * and rounds once, which the tensor core's wider internal accumulation
 * matches to within f32 rounding. */
void xk_tc_mma_lane(int dtype, const uint32_t (*a)[4], const uint32_t (*b)[2],
                    const float (*c)[4], int lane, float d[4]) {
  int g = lane / 4, t = lane % 4;
  for (int q = 0; q < 4; q++) {
    int row = g + 8 * (q >> 1), col = 2 * t + (q & 1);
    double acc = c[lane][q];
    for (int k = 0; k < 16; k++)
      acc += (double)a_at(dtype, a, row, k) * b_at(dtype, b, k, col);
    d[q] = (float)acc;
  }
}

/* XK_DOT_ACC_F16 (ir.h): the 16 products added to the f16 C in f32, in k
 * order, the sum rounded once to f16. Products of f16 values are exact in
 * f32, so an FMA chain gives the same sum. */
void xk_tc_mma_f16acc_lane(const uint32_t (*a)[4], const uint32_t (*b)[2],
                           const uint32_t (*c)[2], int lane, uint32_t d[2]) {
  int g = lane / 4, t = lane % 4;
  uint16_t h[4];
  for (int q = 0; q < 4; q++) {
    int row = g + 8 * (q >> 1), col = 2 * t + (q & 1);
    float acc = elem(XK_F16, c[lane][q >> 1], q & 1);
    for (int k = 0; k < 16; k++)
      acc += a_at(XK_F16, a, row, k) * b_at(XK_F16, b, k, col);
    h[q] = xk_tc_f32_to_f16(acc);
  }
  d[0] = (uint32_t)h[0] | (uint32_t)h[1] << 16;
  d[1] = (uint32_t)h[2] | (uint32_t)h[3] << 16;
}

void xk_tc_ldmatrix_lane(const uint16_t *const *rows, int n, int trans,
                         int lane, uint32_t *out) {
  for (int q = 0; q < n; q++) {
    uint16_t e[2];
    for (int c = 0; c < 2; c++)
      e[c] = trans ? rows[8 * q + 2 * (lane % 4) + c][lane / 4]
                   : rows[8 * q + lane / 4][2 * (lane % 4) + c];
    out[q] = (uint32_t)e[0] | (uint32_t)e[1] << 16;
  }
}

/* ---- per-lane instructions ------------------------------------------ */

typedef struct {
  uint32_t a[4], b[2];
  float c[4];
} mma_regs;

static void mma(int dtype, const uint32_t a[4], const uint32_t b[2],
                const float c[4], float d[4]) {
  mma_regs mine;
  memcpy(mine.a, a, sizeof mine.a);
  memcpy(mine.b, b, sizeof mine.b);
  memcpy(mine.c, c, sizeof mine.c);
  const mma_regs *all = xk_sim_warp_exchange(&mine, sizeof mine);
  uint32_t wa[32][4], wb[32][2];
  float wc[32][4];
  for (int l = 0; l < 32; l++) {
    memcpy(wa[l], all[l].a, sizeof wa[l]);
    memcpy(wb[l], all[l].b, sizeof wb[l]);
    memcpy(wc[l], all[l].c, sizeof wc[l]);
  }
  xk_tc_mma_lane(dtype, (const uint32_t(*)[4])wa, (const uint32_t(*)[2])wb,
                 (const float(*)[4])wc, xk_sim_tid() & 31, d);
  xk_sim_count(XK_SIM_MMA, 1);
}

void xk_sim_mma_m16n8k16_f16(const uint32_t a[4], const uint32_t b[2],
                             const float c[4], float d[4]) {
  mma(XK_F16, a, b, c, d);
}

void xk_sim_mma_m16n8k16_bf16(const uint32_t a[4], const uint32_t b[2],
                              const float c[4], float d[4]) {
  mma(XK_BF16, a, b, c, d);
}

typedef struct {
  uint32_t a[4], b[2], c[2];
} mma_f16acc_regs;

void xk_sim_mma_m16n8k16_f16acc(const uint32_t a[4], const uint32_t b[2],
                                const uint32_t c[2], uint32_t d[2]) {
  mma_f16acc_regs mine;
  memcpy(mine.a, a, sizeof mine.a);
  memcpy(mine.b, b, sizeof mine.b);
  memcpy(mine.c, c, sizeof mine.c);
  const mma_f16acc_regs *all = xk_sim_warp_exchange(&mine, sizeof mine);
  uint32_t wa[32][4], wb[32][2], wc[32][2];
  for (int l = 0; l < 32; l++) {
    memcpy(wa[l], all[l].a, sizeof wa[l]);
    memcpy(wb[l], all[l].b, sizeof wb[l]);
    memcpy(wc[l], all[l].c, sizeof wc[l]);
  }
  xk_tc_mma_f16acc_lane((const uint32_t(*)[4])wa, (const uint32_t(*)[2])wb,
                        (const uint32_t(*)[2])wc, xk_sim_tid() & 31, d);
  xk_sim_count(XK_SIM_MMA, 1);
}

void xk_sim_ldmatrix(const void *addr, int32_t n, int32_t trans, int32_t instr,
                     uint32_t *out) {
  int lane = xk_sim_tid() & 31;
  const unsigned char *smem = xk_sim_smem();
  if (n != 1 && n != 2 && n != 4)
    xk_sim_fail("ldmatrix.x%d: want x1, x2 or x4", n);
  if (lane < 8 * n && ((uintptr_t)addr & 15))
    xk_sim_fail("ldmatrix: lane %d row address %p is not 16-byte aligned", lane,
                addr);
  xk_sim_shared_access(instr, (uint32_t)((const unsigned char *)addr - smem),
                       lane < 8 * n ? 16 : 0, 0);
  const uint16_t *const *rows = xk_sim_warp_exchange(&addr, sizeof addr);
  xk_tc_ldmatrix_lane(rows, n, trans, lane, out);
  xk_sim_count(XK_SIM_LDSM, 1);
}

/* Pending copies of each emulated thread of the calling host thread (a
 * block's threads are fibers of one host thread). */
typedef struct {
  unsigned char *dst;
  unsigned char data[16];
  int bytes, group;
} cp_entry;

typedef struct {
  cp_entry *q;
  int n, cap, open_group;
} cp_queue;

static _Thread_local cp_queue cp_queues[1024];

void xk_sim_cp_async(void *dst, const void *src, int32_t bytes,
                     int32_t src_bytes, int32_t instr) {
  cp_queue *cq = &cp_queues[xk_sim_tid() & 1023];
  if ((bytes != 4 && bytes != 8 && bytes != 16) || src_bytes < 0 ||
      src_bytes > bytes)
    xk_sim_fail("cp.async of %d bytes with source size %d", bytes, src_bytes);
  if (((uintptr_t)dst | (src_bytes ? (uintptr_t)src : 0)) &
      (uintptr_t)(bytes - 1))
    xk_sim_fail("cp.async of %d bytes: misaligned %p <- %p", bytes, dst, src);
  if (cq->n == cq->cap) {
    int c = cq->cap ? 2 * cq->cap : 16;
    cp_entry *e = realloc(cq->q, (size_t)c * sizeof *e);
    if (!e)
      xk_sim_fail("cp.async: out of memory");
    cq->q = e;
    cq->cap = c;
  }
  cp_entry *e = &cq->q[cq->n++];
  e->dst = dst;
  e->bytes = bytes;
  e->group = cq->open_group;
  memset(e->data, 0, sizeof e->data);
  xk_sim_global_access(instr, src, src_bytes, 0);
  if (src_bytes)
    memcpy(e->data, src, (size_t)src_bytes);
  const unsigned char *smem = xk_sim_smem();
  xk_sim_shared_access(instr + 1, (uint32_t)((unsigned char *)dst - smem),
                       bytes, 1);
  xk_sim_count(XK_SIM_CPASYNC, 1);
}

void xk_sim_cp_async_commit(void) {
  cp_queues[xk_sim_tid() & 1023].open_group++;
}

void xk_sim_cp_async_wait(int32_t n) {
  cp_queue *cq = &cp_queues[xk_sim_tid() & 1023];
  int keep = 0;
  for (int i = 0; i < cq->n; i++) {
    cp_entry *e = &cq->q[i];
    if (e->group < cq->open_group - n)
      memcpy(e->dst, e->data, (size_t)e->bytes);
    else
      cq->q[keep++] = *e;
  }
  cq->n = keep;
  if (!keep) {
    free(cq->q);
    cq->q = NULL;
    cq->cap = 0;
    cq->open_group = 0;
  }
}
