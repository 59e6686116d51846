/* Tensor-core and async-copy instructions for the sim target, with the
 * exact fragment semantics of the PTX ISA (mma.m16n8k16 with f16/bf16
 * inputs and f32 or f16 accumulation, ldmatrix m8n8 b16, cp.async). The
 * per-lane entry points are called from sim-lowered kernel code on an emulated
 * GPU thread (they are warp collectives over xk_sim_warp_exchange); the
 * warp-level cores are plain functions, testable without the emulator. */
#ifndef XK_SIM_TC_H
#define XK_SIM_TC_H

#include "sim.h"

#include <stdint.h>

/* ---- warp-level cores: all 32 lanes' registers in, one lane's out ---- */

/* d = a * b + c for `lane`, a/b/c in m16n8k16 fragment layout; dtype is
 * XK_F16 or XK_BF16 (two elements per u32, the lower-indexed in the low
 * half). */
void xk_tc_mma_lane(int dtype, const uint32_t (*a)[4], const uint32_t (*b)[2],
                    const float (*c)[4], int lane, float d[4]);
/* The f16-accumulating form (mma...f16.f16.f16.f16): c and d hold two
 * packed f16 each, rounded as XK_DOT_ACC_F16 (ir.h) defines. */
void xk_tc_mma_f16acc_lane(const uint32_t (*a)[4], const uint32_t (*b)[2],
                           const uint32_t (*c)[2], int lane, uint32_t d[2]);
/* The registers `lane` receives from ldmatrix.x`n` (1, 2, 4) given every
 * lane's row address (lanes 8q..8q+7 address the rows of matrix q). */
void xk_tc_ldmatrix_lane(const uint16_t *const *rows, int n, int trans,
                         int lane, uint32_t *out);
float xk_tc_f16_to_f32(uint16_t h);
uint16_t xk_tc_f32_to_f16(float f); /* round to nearest even */

/* ---- per-lane instructions (emulated thread context) ---- */

void xk_sim_mma_m16n8k16_f16(const uint32_t a[4], const uint32_t b[2],
                             const float c[4], float d[4]);
void xk_sim_mma_m16n8k16_bf16(const uint32_t a[4], const uint32_t b[2],
                              const float c[4], float d[4]);
void xk_sim_mma_m16n8k16_f16acc(const uint32_t a[4], const uint32_t b[2],
                                const uint32_t c[2], uint32_t d[2]);
/* addr: this lane's row address in shared memory (16-byte aligned; lanes
 * >= 8n pass one too but it is not read); `instr` numbers the access for
 * the bank-conflict counter. */
void xk_sim_ldmatrix(const void *addr, int32_t n, int32_t trans, int32_t instr,
                     uint32_t *out);
/* Reads src_bytes from global `src` now, writes them plus zero fill up to
 * `bytes` into shared `dst` when a later wait retires the group. */
void xk_sim_cp_async(void *dst, const void *src, int32_t bytes,
                     int32_t src_bytes, int32_t instr);
void xk_sim_cp_async_commit(void);
void xk_sim_cp_async_wait(int32_t n);

#endif
