/* The H100 (SXM) model:
 *
 *   blocks_per_sm = min(32, 2048 / threads,
 *                       65536 / (warps * roundup(regs * 32, 256)),
 *                       smem_per_sm / (smem + 1024))
 *   (registers are allocated per warp in 256s; each block also reserves
 *   1 KB of shared memory for the system; smem_per_sm is sm_90's 228 KB
 *   from arch.h, and a block above its 227 KB per block does not fit)
 *   waves    = ceil(blocks / (132 * blocks_per_sm))
 *   wave_eff = blocks / (waves * 132 * blocks_per_sm) when the grid fills
 *              the block slots; a smaller grid keeps min(blocks, 132) SMs
 *              busy: wave_eff = min(blocks, 132) / 132 (an SM's pipes do
 *              not split per block slot)
 *   hide     = min(1, resident warps per SM / 8): two warps per scheduler
 *              keep the pipes and memory busy for these tiled kernels;
 *              resident blocks per SM = min(blocks_per_sm,
 *              ceil(blocks / 132))
 *   t_dram   = unique bytes / 3.0 TB/s (every distinct byte crosses DRAM
 *              once: reuse between blocks hits the 50 MB L2)
 *   t_l2     = 32 * sectors / 5.5 TB/s (what the requests move, so poor
 *              coalescing costs even when the data is L2-resident)
 *   t_tensor = 4096 * mma warp-instructions / 790 TFLOP/s (m16n8k16)
 *   t_fma    = (64 * FMA + 32 * other FLOP warp-instructions) / 60 TFLOP/s
 *   time     = max(t_dram, t_l2, t_tensor, t_fma) / (wave_eff * hide)
 *              + 3 us of launch and tail latency
 *
 * Bandwidths and rates are the data-sheet peaks; the model ranks variants,
 * it does not promise absolute times. */
#include "perf_model.h"

#include "arch.h"

#define SMS 132
#define REGS_PER_SM 65536
#define THREADS_PER_SM 2048
#define BLOCKS_PER_SM 32
#define DRAM_BW 3.0e12
#define L2_BW 5.5e12
#define TENSOR_FLOPS 790e12
#define FMA_FLOPS 60e12
#define LAUNCH_S 3e-6

int xk_perf_model(const xk_sim_counters *c, const xk_perf_launch *l,
                  xk_perf_estimate *e, xk_diag *d) {
  if (l->threads <= 0 || l->threads > 1024 || l->blocks <= 0)
    return xk_diag_set(d, "perf model: %d threads x %lld blocks", l->threads,
                       (long long)l->blocks);
  const xk_arch *h100 = xk_arch_find("sm_90");
  if (l->shared_bytes > h100->smem_per_block)
    return xk_diag_set(d,
                       "perf model: a block with %d bytes of shared memory "
                       "does not fit on sm_90 (at most %d per block)",
                       l->shared_bytes, h100->smem_per_block);
  int warps = (l->threads + 31) / 32;
  int regs = l->registers > 0 ? l->registers : 32;
  int per_warp = (regs * 32 + 255) / 256 * 256;
  int by[4] = {THREADS_PER_SM / l->threads, REGS_PER_SM / (warps * per_warp),
               h100->smem_per_sm / (l->shared_bytes + XK_SMEM_RESERVED),
               BLOCKS_PER_SM};
  static const char *const names[4] = {"threads", "registers", "shared",
                                       "blocks"};
  int k = 0;
  for (int i = 1; i < 4; i++)
    if (by[i] < by[k])
      k = i;
  if (by[k] <= 0)
    return xk_diag_set(d,
                       "perf model: a block of %d threads, %d registers per "
                       "thread and %d bytes of shared memory does not fit on "
                       "an SM (%s)",
                       l->threads, regs, l->shared_bytes, names[k]);
  e->blocks_per_sm = by[k];
  e->limiter = names[k];
  e->occupancy = (double)(by[k] * warps) / 64.0;
  double slots = (double)SMS * by[k];
  e->waves = (double)((l->blocks + (int64_t)slots - 1) / (int64_t)slots);
  int64_t resident = (l->blocks + SMS - 1) / SMS;
  resident = resident < by[k] ? resident : by[k];
  e->wave_eff = e->waves > 1
                    ? (double)l->blocks / (e->waves * slots)
                    : (double)(l->blocks < SMS ? l->blocks : SMS) / SMS;
  e->hide = resident * warps >= 8 ? 1.0 : (double)(resident * warps) / 8.0;
  e->t_dram = (double)c->unique_bytes / DRAM_BW;
  e->t_l2 = 32.0 * (double)(c->gld_sectors + c->gst_sectors) / L2_BW;
  e->t_tensor = 4096.0 * (double)c->inst[XK_SIM_MMA] / TENSOR_FLOPS;
  e->t_fma = (64.0 * (double)c->inst[XK_SIM_FMA] +
              32.0 * (double)c->inst[XK_SIM_FLOP]) /
             FMA_FLOPS;
  double t[4] = {e->t_dram, e->t_l2, e->t_tensor, e->t_fma};
  static const char *const bounds[4] = {"dram", "l2", "tensor", "fma"};
  int b = 0;
  for (int i = 1; i < 4; i++)
    if (t[i] > t[b])
      b = i;
  e->bound = bounds[b];
  e->seconds = t[b] / (e->wave_eff * e->hide) + LAUNCH_S;
  return 0;
}
