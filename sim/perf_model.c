/* The model of an sm_90 GPU (H100 SXM or H200, table below):
 *
 *   blocks_per_sm = min(32, 2048 / threads,
 *                       65536 / (warps * roundup(regs * 32, 256)),
 *                       smem_per_sm / (smem + 1024))
 *   (registers are allocated per warp in 256s; each block also reserves
 *   1 KB of shared memory for the system; smem_per_sm is sm_90's 228 KB
 *   from arch.h, and a block above its 227 KB per block does not fit)
 *   waves    = ceil(blocks / (SMs * blocks_per_sm))
 *   wave_eff = blocks / (waves * SMs * blocks_per_sm) when the grid fills
 *              the block slots; a smaller grid keeps min(blocks, SMs) SMs
 *              busy: wave_eff = min(blocks, SMs) / SMs (an SM's pipes do
 *              not split per block slot)
 *   hide     = min(1, resident warps per SM / 8): two warps per scheduler
 *              keep the pipes and memory busy for these tiled kernels;
 *              resident blocks per SM = min(blocks_per_sm,
 *              ceil(blocks / SMs))
 *   t_dram   = unique bytes / (dram_peak * dram_eff) (every distinct byte
 *              crosses DRAM once: reuse between blocks hits the L2)
 *   t_l2     = 32 * sectors / l2_bw (what the requests move, so poor
 *              coalescing costs even when the data is L2-resident)
 *   t_tensor = 4096 * mma warp-instructions / mma_flops (m16n8k16)
 *   t_fma    = (64 * FMA + 32 * other FLOP warp-instructions) / fma_flops
 *   t_smem   = shared-memory wavefronts / (SMs * sm_clock): each SM's
 *              shared memory serves one 128-byte wavefront per clock; a
 *              request takes as many as its busiest bank has distinct
 *              words, so a conflict costs one more (large mma.sync tiles
 *              stop being L2-bound and become bound by the ldmatrix and
 *              cp.async traffic through shared memory)
 *   time     = max(t_dram, t_l2, t_tensor, t_fma, t_smem)
 *              / (wave_eff * hide) + launch_s
 *
 * dram_eff is calibrated (bench/model_calib.c, its note in bench/results):
 * the H200 copy the workplace measured, 4.3 TB/s of 4.8, gives 0.896, and
 * the same fraction of the H100's 3.35 TB/s is the 3.0 TB/s this model
 * always used. The other rates are data-sheet peaks or estimates: the
 * model ranks variants, it does not promise absolute times. */
#include "perf_model.h"

#include "arch.h"

#include <string.h>

#define REGS_PER_SM 65536
#define THREADS_PER_SM 2048
#define BLOCKS_PER_SM 32

/* 4.3 / 4.8: the workplace's H200 device-to-device copy (bytes read plus
 * written) over the data sheet's HBM3e bandwidth */
#define DRAM_EFF (4.3 / 4.8)

/* Same GH100 compute on both: 132 SMs; the mma.sync and SIMT rates are the
 * ones this model always used (mma.sync cannot issue at wgmma's 989
 * TFLOP/s; 790 is an estimate that model_calib checks). The H200 differs
 * in its memory; PyTorch reported 60 MB of L2 on the workplace's H200
 * (KINDS.md), against 50 MB on the H100 SXM's data sheet. */
/* the GH100's boost clock on both cards (data sheet: 1.98 GHz) */
#define SM_CLOCK 1.98e9
static const xk_gpu gpus[] = {
    {"h100-sxm", "sm_90", 132, 3.35e12, DRAM_EFF, 5.5e12, 50LL << 20, 790e12,
     60e12, SM_CLOCK, 3e-6},
    {"h200", "sm_90", 132, 4.8e12, DRAM_EFF, 5.5e12, 60LL << 20, 790e12, 60e12,
     SM_CLOCK, 3e-6},
};
#define NGPUS (int)(sizeof gpus / sizeof *gpus)

const xk_gpu *xk_gpu_find(const char *name) {
  if (name && !strcmp(name, "h100"))
    name = "h100-sxm";
  for (int i = 0; name && i < NGPUS; i++)
    if (!strcmp(gpus[i].name, name))
      return &gpus[i];
  return NULL;
}

const char *xk_gpu_names(void) {
  return "h100-sxm (or h100), h200";
}

double xk_gpu_dram_bw(const xk_gpu *g) {
  return g->dram_peak * g->dram_eff;
}

int xk_perf_model(const xk_sim_counters *c, const xk_perf_launch *l,
                  xk_perf_estimate *e, xk_diag *d) {
  return xk_perf_model_gpu(&gpus[0], c, l, e, d);
}

int xk_perf_model_gpu(const xk_gpu *g, const xk_sim_counters *c,
                      const xk_perf_launch *l, xk_perf_estimate *e,
                      xk_diag *d) {
  if (l->threads <= 0 || l->threads > 1024 || l->blocks <= 0)
    return xk_diag_set(d, "perf model: %d threads x %lld blocks", l->threads,
                       (long long)l->blocks);
  const xk_arch *arch = xk_arch_find(g->arch);
  if (l->shared_bytes > arch->smem_per_block)
    return xk_diag_set(d,
                       "perf model: a block with %d bytes of shared memory "
                       "does not fit on %s (at most %d per block)",
                       l->shared_bytes, g->arch, arch->smem_per_block);
  int warps = (l->threads + 31) / 32;
  int regs = l->registers > 0 ? l->registers : 32;
  int per_warp = (regs * 32 + 255) / 256 * 256;
  int by[4] = {THREADS_PER_SM / l->threads, REGS_PER_SM / (warps * per_warp),
               arch->smem_per_sm / (l->shared_bytes + XK_SMEM_RESERVED),
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
  double slots = (double)g->sms * by[k];
  e->waves = (double)((l->blocks + (int64_t)slots - 1) / (int64_t)slots);
  int64_t resident = (l->blocks + g->sms - 1) / g->sms;
  resident = resident < by[k] ? resident : by[k];
  e->wave_eff =
      e->waves > 1 ? (double)l->blocks / (e->waves * slots)
                   : (double)(l->blocks < g->sms ? l->blocks : g->sms) / g->sms;
  e->hide = resident * warps >= 8 ? 1.0 : (double)(resident * warps) / 8.0;
  e->t_dram = (double)c->unique_bytes / xk_gpu_dram_bw(g);
  e->t_l2 = 32.0 * (double)(c->gld_sectors + c->gst_sectors) / g->l2_bw;
  e->t_tensor = 4096.0 * (double)c->inst[XK_SIM_MMA] / g->mma_flops;
  e->t_fma = (64.0 * (double)c->inst[XK_SIM_FMA] +
              32.0 * (double)c->inst[XK_SIM_FLOP]) /
             g->fma_flops;
  e->t_smem = (double)c->smem_wavefronts / ((double)g->sms * g->sm_clock);
  double t[5] = {e->t_dram, e->t_l2, e->t_tensor, e->t_fma, e->t_smem};
  static const char *const bounds[5] = {"dram", "l2", "tensor", "fma", "smem"};
  int b = 0;
  for (int i = 1; i < 5; i++)
    if (t[i] > t[b])
      b = i;
  e->bound = bounds[b];
  e->seconds = t[b] / (e->wave_eff * e->hide) + g->launch_s;
  return 0;
}
