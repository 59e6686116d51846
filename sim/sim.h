/* The SIMT emulator behind the `sim` target: runs the per-thread code of
 * the NVPTX lowering, compiled for the CPU, one fiber per GPU thread, and
 * counts what a GPU would do with it (memory sectors, bank conflicts,
 * instruction mix).
 *
 * It has no LLVM or Lua dependency so that the JIT'd code of the tests and,
 * later, the runtime can both use it. Blocks run one after another on the
 * calling thread; the threads of a block are fibers that switch only at
 * barriers, warp collectives, and when a lane runs too far ahead of its
 * warp's counting window. */
#ifndef XK_SIM_H
#define XK_SIM_H

#include "ir.h"

#include <stddef.h>
#include <stdint.h>

/* ---- called from sim-lowered kernel code, on an emulated GPU thread ---- */

int32_t xk_sim_tid(void); /* thread index in the block */
int32_t xk_sim_ctaid(int32_t axis);
int32_t xk_sim_nctaid(int32_t axis);
void xk_sim_barrier(void); /* bar.sync 0 for the whole block */
int32_t xk_sim_shfl_bfly_i32(int32_t v, int32_t lanemask);
void *xk_sim_smem(void); /* the block's shared memory */
/* Warp-collective exchange: every lane of the calling warp calls it with its
 * own n bytes; returns 32*n bytes (lane-major) of all lanes' data, valid
 * until this lane's next collective call. Building block for shuffles, mma,
 * ldmatrix. Counts nothing itself. */
const void *xk_sim_warp_exchange(const void *mine, size_t n);

/* Memory-access counting. Every lane of a warp makes the same sequence of
 * access calls (the lowering keeps control flow warp-uniform); a lane whose
 * element is masked off still calls, with bytes = 0, so the calls of one
 * warp-instruction are matched by their position in that sequence. `instr`
 * is a static id the lowering assigns per memory instruction (a check that
 * the lanes agree). Vector accesses pass their full width in bytes. */
void xk_sim_global_access(int32_t instr, const void *addr, int32_t bytes,
                          int32_t is_store);
void xk_sim_shared_access(int32_t instr, uint32_t offset, int32_t bytes,
                          int32_t is_store);

/* Instruction mix, counted per thread (n instructions of `kind` executed
 * by the calling thread); the launcher reports warp-instructions (/32).
 * XK_SIM_SHFL and XK_SIM_BAR are counted by the emulator itself. */
enum {
  XK_SIM_FMA,     /* f32 fused multiply-add: 2 FLOPs */
  XK_SIM_MMA,     /* mma.sync m16n8k16 (per lane; 4096 FLOPs per warp) */
  XK_SIM_SHFL,    /* warp shuffle */
  XK_SIM_BAR,     /* block barrier (per thread arriving) */
  XK_SIM_FLOP,    /* other f32 arithmetic, 1 FLOP each */
  XK_SIM_LDSM,    /* ldmatrix */
  XK_SIM_CPASYNC, /* cp.async */
  XK_SIM_NKINDS
};
void xk_sim_count(int32_t kind, int32_t n);

/* Records an error from inside an emulated thread (e.g. a misaligned mma
 * operand): the launch fails with this message after the block stops. The
 * calling thread does not return from this function. */
void xk_sim_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

/* ---- host side ---- */

/* The sim ABI of a lowered kernel: one call per GPU thread; args[i] points
 * at the value of argument i, as for cuLaunchKernel. */
typedef void (*xk_sim_fn)(void **args);

typedef struct {
  int64_t blocks, threads;
  /* warp-level global memory requests (one per warp-instruction with at
   * least one active lane), split by direction */
  int64_t gld_requests, gst_requests;
  /* 32-byte sectors the requests touch, and the fewest sectors that could
   * hold each request's distinct bytes */
  int64_t gld_sectors, gst_sectors;
  int64_t gld_ideal_sectors, gst_ideal_sectors;
  /* bytes requested by active lanes */
  int64_t gld_bytes, gst_bytes;
  /* distinct global bytes touched by the launch: the algorithmic minimum */
  int64_t unique_bytes;
  /* shared memory: warp-level requests, and bank conflicts (per request:
   * max over the 32 banks of the distinct 4-byte words it touches, minus
   * one, when positive; summed) */
  int64_t smem_requests, smem_conflicts;
  int64_t smem_bytes;
  /* 128-byte wavefronts the requests take: per request the distinct words
   * of its busiest bank (so conflicts included, broadcasts one) */
  int64_t smem_wavefronts;
  /* warp-instructions by XK_SIM_* kind (thread counts / 32) */
  int64_t inst[XK_SIM_NKINDS];
} xk_sim_counters;

/* Runs fn on `grid` blocks of `threads` threads (a multiple of 32, at most
 * 1024) with `smem_bytes` of zeroed shared memory per block. Counters are
 * written to *out when out is not NULL. A deadlock (a barrier or warp
 * collective that not every thread reaches), an emulated thread's error
 * or a bad launch configuration fails with a message in d. Not reentrant
 * from kernel code; launches from different host threads are independent. */
int xk_sim_launch(xk_sim_fn fn, void **args, const int32_t grid[3], int threads,
                  int smem_bytes, xk_sim_counters *out, xk_diag *d);
/* xk_sim_launch emulating architecture `arch` ("sm_80", ...: arch.h): a
 * block may have at most its shared memory per block. xk_sim_launch
 * emulates sm_90. */
int xk_sim_launch_arch(const char *arch, xk_sim_fn fn, void **args,
                       const int32_t grid[3], int threads, int smem_bytes,
                       xk_sim_counters *out, xk_diag *d);

/* The functions sim-lowered code calls, name and address, ending with a
 * NULL name: the JIT defines them (a test binary need not export them). */
typedef struct {
  const char *name;
  void (*addr)(void);
} xk_sim_symbol;
extern const xk_sim_symbol xk_sim_symbols[];

/* Coalescing efficiency: ideal / touched sectors (1.0 when nothing moved). */
double xk_sim_gld_efficiency(const xk_sim_counters *c);
double xk_sim_gst_efficiency(const xk_sim_counters *c);

/* Counters of a launch extrapolated from two measured ones, a and b: every
 * count that adds up over blocks and loop trips (requests, sectors, bytes,
 * shared memory, instructions) becomes (wa * a + wb * b) / den, rounded to
 * the nearest; o->blocks = blocks, of a's threads per block. unique_bytes
 * does not add up (blocks share bytes): 0, for the caller to set. */
void xk_sim_counters_affine(const xk_sim_counters *a, int64_t wa,
                            const xk_sim_counters *b, int64_t wb, int64_t den,
                            int64_t blocks, xk_sim_counters *o);

#endif
