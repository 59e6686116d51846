/* Decode attention for Llama-3.1-8B shapes on an H100 or H200, MODELED
 * without a GPU (issue 6: "sim counters and the modeled H100 time"): 32 query
 * heads, 8 KV heads, d = 128, rank_k = 384, rank_v = 576 (groups of W = 4
 * layers share A_k, A_v), f16 storage, prompt L = 16K..128K, batch 1..16.
 * Per layer and decode step: xKV = xkv_decode_lr_f16 (three sweeps) or
 * xkv_decode_lr1_f16 (single pass, B_k resident, rank buckets RK, RV =
 * the ranks rounded up to 64, HB = 2 KV heads per program) over the
 * compressed prompt + xkv_decode_combine; the baseline =
 * xkv_decode_exact_f16 over the full exact f16 cache + xkv_decode_combine. The
 * split count is the runtime's rule (nsplits in runtime/xkv_cache_attn.c) on an
 * H100's 132 SMs; no exact tail (the step right after prefill).
 *
 * Method. The counters are MEASURED through the sim target on the
 * default variants (D = 128), two programs at a time: split kernels on a
 * reduced prompt cut into 2 splits of 2 and of 4 token blocks (grid
 * {2, 1, 1}: KV head 0, query-head block 0), the combine on 2 query heads
 * at the real split count. A split program's counters are linear in its
 * token blocks (every loop over tokens is a loop over blocks; the rank
 * loops do not depend on L), so the two runs give each program's fixed
 * part and per-block part; the full launch is programs x fixed + token
 * blocks x per-block, with programs = splits x KV heads x query-head
 * blocks x batch (each sequence has its own factors, so a batch of b is b
 * times the grid). Distinct bytes (the DRAM minimum) are analytic, checked
 * against the sim's count on the reduced runs; the RoPE tables are shared
 * by the batch. The model (codegen/perf_model.c) turns counters, ptxas
 * registers and shared memory into a time; the HBM roofline column is
 * bytes / the data-sheet bandwidth (3.35 TB/s H100 SXM, 4.8 TB/s H200).
 *
 *   decode_model [--gpu h100|h200] [KERNELS.xk [RANK_K RANK_V]]
 *
 * Writes bench/results/decode-model-<gpu>-<date>.csv (default h100). */
#include "../runtime/xkv_cache_int.h"
#include "../tests/xkv_dsim.h"
#include "perf_model.h"
#include "results_file.h"
#include "variants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HQ 32
#define HKV 8
#define HEAD_D 128
/* the ranks; `decode_model KERNELS RK RV` models others */
static int RK = 384, RV = 576;
#define ESZ 2 /* f16 */
#define UNITS 132
/* the modeled GPU (--gpu); both have 132 SMs (UNITS) */
static const xk_gpu *gpu;
static const char *gpu_short = "h100";

static const int lens[] = {16384, 32768, 65536, 131072};
static const int batches[] = {1, 2, 4, 8, 16};
#define NLENS (int)(sizeof lens / sizeof *lens)
#define NBATCH (int)(sizeof batches / sizeof *batches)

/* the runtime's split rules on an H100's 132 SMs */
static int nsplits(int T) {
  return xkv_cache_nsplits(UNITS, HQ, HKV, T);
}
static int nsplits_lr1(int T) {
  return xkv_cache_nsplits_lr1(UNITS, HKV, XKV_LR1_HB, T);
}

/* the rank bucket of r: a multiple of 64 */
static int bucket(int r) {
  return (r + 63) / 64 * 64;
}

static int64_t cdiv(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

/* token blocks over all splits of n tokens (split_range in kernels.xk) */
static int64_t split_blocks(int64_t n, int ns, int64_t block) {
  int64_t chunk = cdiv(cdiv(n, ns), block) * block, total = 0;
  for (int s = 0; s < ns; s++) {
    int64_t t0 = s * chunk, t1 = t0 + chunk < n ? t0 + chunk : n;
    total += t1 > t0 ? cdiv(t1 - t0, block) : 0;
  }
  return total;
}

/* Distinct bytes of a launch covering hc KV heads, qc query heads, sc
 * split columns and a prompt of n tokens (the partials are [qc, sc, D]
 * outputs plus max and sum). */
static int64_t bytes_partials(int64_t qc, int64_t sc) {
  return qc * sc * (HEAD_D + 2) * 4;
}
static int64_t bytes_lr_factors(int64_t n, int64_t hc) {
  return n * (RK + RV) * ESZ + hc * (int64_t)(RK + RV) * HEAD_D * ESZ;
}
static int64_t bytes_tables(int64_t n) {
  return n * HEAD_D * 4; /* cos and sin [n, D/2] f32 */
}
static int64_t bytes_scratch(int64_t n, int64_t qc) {
  return qc * n * 4;
}
static int64_t bytes_lr(int64_t n, int64_t hc, int64_t qc, int64_t sc) {
  return bytes_lr_factors(n, hc) + bytes_tables(n) + qc * HEAD_D * 4 +
         bytes_scratch(n, qc) + bytes_partials(qc, sc);
}
/* The single-pass kernel reads no scratch, and of the tables the rows
 * 0..bn-1 (offsets) and the first row of each block (nb blocks of bn over
 * n tokens, split boundaries on block boundaries). */
static int64_t bytes_tables_lr1(int64_t n, int64_t bn, int64_t nb) {
  int64_t rows = (n < bn ? n : bn) + (nb > 1 ? nb - 1 : 0);
  return rows * HEAD_D * 4;
}
static int64_t bytes_lr1(int64_t n, int64_t hc, int64_t qc, int64_t sc,
                         int64_t bn) {
  return bytes_lr_factors(n, hc) + bytes_tables_lr1(n, bn, cdiv(n, bn)) +
         qc * HEAD_D * 4 + bytes_partials(qc, sc);
}
static int64_t bytes_kv(int64_t n, int64_t hc) {
  return 2 * n * hc * HEAD_D * ESZ;
}
static int64_t bytes_exact(int64_t n, int64_t hc, int64_t qc, int64_t sc) {
  return bytes_kv(n, hc) + qc * HEAD_D * 4 + bytes_partials(qc, sc);
}
static int64_t bytes_combine(int64_t qc, int64_t sc) {
  return bytes_partials(qc, sc) + qc * HEAD_D * 4;
}

/* two sim runs of 2 programs each, with nb[0] and nb[1] token blocks */
typedef struct {
  xk_sim_counters c[2];
  int nb[2];
} linfit;

/* progs x fixed + blocks x per-block, from each program's fixed part
 * a / 2 - nb[0] x per-block and its per-block part (b - a) / 2 / dnb */
static void scale(const linfit *m, int64_t progs, int64_t blocks,
                  xk_sim_counters *o) {
  int64_t dnb = m->nb[1] - m->nb[0], w = blocks - progs * m->nb[0];
  xk_sim_counters_affine(&m->c[0], progs * dnb - w, &m->c[1], w, 2 * dnb, progs,
                         o);
}

typedef struct {
  const char *name;
  xkv_dsim_kernel k;
  xk_ptxas_info pi;
} kern;

/* the variant with D = 128 and the overrides `over` (tile sizes, warps) */
static int kern_build(xk_dsl *dsl, const char *name, const xk_constexpr *over,
                      int nover, kern *k, xk_diag *d) {
  xk_constexpr all[8] = {{"D", HEAD_D}};
  int n = 1;
  for (int i = 0; i < nover; i++)
    if (strcmp(over[i].name, "D")) {
      if (n == 8)
        return xk_diag_set(d, "%s: more than 7 overrides", name);
      all[n++] = over[i];
    }
  k->name = name;
  if (xkv_dsim_kernel_build(dsl, name, all, n, &k->k, d))
    return -1;
  /* the registers and spills the H100 perf model needs */
  return xk_ptxas_func(k->k.f, "sm_90", NULL, &k->pi, NULL, d);
}

/* The reduced problem for a split kernel: 2 splits of nb token blocks of
 * the prompt (lr) or of exact rows. */
enum { K_EXACT, K_LR, K_LR1 };

static int measure_split(const kern *k, int kind, int nb, xk_sim_counters *c,
                         int64_t *want_bytes, xk_diag *d) {
  int lr = kind != K_EXACT;
  int bn = (int)xkv_dsim_const(&k->k, "BLOCK_N");
  int n = 2 * nb * bn, G = HQ / HKV;
  xkv_dsim_shape s = {.dt = XKV_DSIM_F16,
                      .hkv = HKV,
                      .g = G,
                      .d = HEAD_D,
                      .L = lr ? n : 0,
                      .rk = RK,
                      .rv = RV,
                      .tail = lr ? 0 : n,
                      .ns_lr = lr ? 2 : 0,
                      .ns_ex = lr ? 0 : 2,
                      .ldo = XKV_MAX_SPLITS,
                      .theta = 500000.0,
                      .seed = 7};
  xkv_dsim p;
  if (xkv_dsim_init(&p, &s, d))
    return -1;
  int32_t grid[3] = {2, 1, 1};
  int rc = kind == K_LR1 ? xkv_dsim_lr1(&p, &k->k, grid, c, d)
           : lr          ? xkv_dsim_lr(&p, &k->k, grid, c, d)
                         : xkv_dsim_exact(&p, &k->k, grid, c, d);
  xkv_dsim_free(&p);
  int64_t qc = G < XKV_DECODE_BLOCK_G ? G : XKV_DECODE_BLOCK_G;
  *want_bytes = kind == K_LR1 ? bytes_lr1(n, XKV_LR1_HB, XKV_LR1_HB * G, 2, bn)
                : lr          ? bytes_lr(n, 1, qc, 2)
                              : bytes_exact(n, 1, qc, 2);
  return rc;
}

static int measure_fit(const kern *k, int kind, linfit *m, xk_diag *d) {
  m->nb[0] = 2;
  m->nb[1] = 4;
  for (int i = 0; i < 2; i++) {
    int64_t want;
    if (measure_split(k, kind, m->nb[i], &m->c[i], &want, d))
      return -1;
    if (m->c[i].unique_bytes != want)
      return xk_diag_set(d,
                         "%s: the sim touched %lld distinct bytes, the "
                         "analytic count is %lld: fix bytes_*()",
                         k->name, (long long)m->c[i].unique_bytes,
                         (long long)want);
  }
  return 0;
}

/* the combine's 2 programs at ns split columns */
static int measure_combine(const kern *k, int ns, xk_sim_counters *c,
                           xk_diag *d) {
  xkv_dsim_shape s = {.dt = XKV_DSIM_F16,
                      .hkv = HKV,
                      .g = HQ / HKV,
                      .d = HEAD_D,
                      .L = 0,
                      .ns_lr = ns,
                      .ldo = XKV_MAX_SPLITS,
                      .theta = 500000.0,
                      .seed = 9};
  xkv_dsim p;
  if (xkv_dsim_init(&p, &s, d))
    return -1;
  for (int i = 0; i < HQ * XKV_MAX_SPLITS; i++) /* finite partials */
    p.M[i] = p.Lsum[i] = 1.0f;
  for (int i = 0; i < HQ * XKV_MAX_SPLITS * HEAD_D; i++)
    p.O[i] = 1.0f;
  int32_t grid[3] = {2, 1, 1};
  int rc = xkv_dsim_combine(&p, &k->k, grid, c, d);
  xkv_dsim_free(&p);
  if (!rc && c->unique_bytes != bytes_combine(2, ns))
    return xk_diag_set(d, "combine: sim %lld distinct bytes, analytic %lld",
                       (long long)c->unique_bytes,
                       (long long)bytes_combine(2, ns));
  return rc;
}

/* A split kernel's full launch over L tokens for a batch of b: counters
 * scaled from the fit, the analytic distinct bytes (per sequence: its
 * factors or rows, q, scratch, partials; the RoPE tables are shared). */
/* The single-pass kernel's launch: splits x head groups x batch programs. */
static void full_lr1(const kern *k, const linfit *m, int L, int64_t b,
                     xk_sim_counters *c) {
  int ns = nsplits_lr1(L);
  int64_t hg = cdiv(HKV, XKV_LR1_HB), bn = xkv_dsim_const(&k->k, "BLOCK_N");
  int64_t blocks = split_blocks(L, ns, bn);
  scale(m, ns * hg * b, blocks * hg * b, c);
  c->unique_bytes = b * (bytes_lr_factors(L, HKV) + HQ * HEAD_D * 4 +
                         bytes_partials(HQ, ns)) +
                    bytes_tables_lr1(L, bn, blocks);
}

static void full_split(const kern *k, const linfit *m, int lr, int L, int64_t b,
                       xk_sim_counters *c) {
  int ns = nsplits(L);
  int64_t gb = cdiv(HQ / HKV, xkv_dsim_const(&k->k, "BLOCK_G"));
  int64_t bn = xkv_dsim_const(&k->k, "BLOCK_N");
  scale(m, ns * HKV * gb * b, split_blocks(L, ns, bn) * HKV * gb * b, c);
  c->unique_bytes =
      lr ? b * (bytes_lr(L, HKV, HQ, ns) - bytes_tables(L)) + bytes_tables(L)
         : b * bytes_exact(L, HKV, HQ, ns);
}

static int model(const kern *k, const xk_sim_counters *c, xk_perf_estimate *e,
                 xk_diag *d) {
  xk_perf_launch l = {k->pi.registers, k->k.info.shared_bytes,
                      k->k.info.threads, c->blocks};
  return xk_perf_model_gpu(gpu, c, &l, e, d);
}

static double ratio(int64_t num, int64_t den) {
  return den ? (double)num / (double)den : 0;
}

/* the counters that matter, of a full launch */
static void print_counters(const char *what, const kern *k,
                           const xk_sim_counters *c, const xk_perf_estimate *e,
                           int64_t algo_flops) {
  double tc = 4096.0 * c->inst[XK_SIM_MMA];
  double simt = 64.0 * c->inst[XK_SIM_FMA] + 32.0 * c->inst[XK_SIM_FLOP];
  printf("  %-20s %s: regs %d spill %d smem %d threads %d | occ %.2f (%s) "
         "waves %.0f\n",
         k->name, what, k->pi.registers, k->pi.spill_bytes,
         k->k.info.shared_bytes, k->k.info.threads, e->occupancy, e->limiter,
         e->waves);
  printf("    gld eff %.3f gst eff %.3f | L2 sector bytes %.1f MB vs distinct "
         "%.1f MB (x%.1f) | smem req %lld conflicts %lld (%.2f/req)\n",
         xk_sim_gld_efficiency(c), xk_sim_gst_efficiency(c),
         32e-6 * (c->gld_sectors + c->gst_sectors), 1e-6 * c->unique_bytes,
         ratio(32 * (c->gld_sectors + c->gst_sectors), c->unique_bytes),
         (long long)c->smem_requests, (long long)c->smem_conflicts,
         ratio(c->smem_conflicts, c->smem_requests));
  printf("    warp-inst: mma %lld fma %lld flop %lld shfl %lld bar %lld ldsm "
         "%lld cp.async %lld | tensor-core FLOP share %.3f, mma FLOP / "
         "algorithmic dot FLOP %.2f\n",
         (long long)c->inst[XK_SIM_MMA], (long long)c->inst[XK_SIM_FMA],
         (long long)c->inst[XK_SIM_FLOP], (long long)c->inst[XK_SIM_SHFL],
         (long long)c->inst[XK_SIM_BAR], (long long)c->inst[XK_SIM_LDSM],
         (long long)c->inst[XK_SIM_CPASYNC],
         tc + simt > 0 ? tc / (tc + simt) : 0,
         algo_flops ? tc / (double)algo_flops : 0);
  printf("    bounds: dram %.1f us l2 %.1f us tensor %.1f us fma %.1f us -> "
         "%s, modeled %.1f us\n",
         e->t_dram * 1e6, e->t_l2 * 1e6, e->t_tensor * 1e6, e->t_fma * 1e6,
         e->bound, e->seconds * 1e6);
}

/* The lr kernel's tune space (its tune{} in kernels.xk) at L = 32K, batch 1
 * and 8 */
static int tune_lr(xk_dsl *dsl, xk_diag *d) {
  const char *name = "xkv_decode_lr_f16";
  xk_constexpr fixed = {"D", HEAD_D};
  xk_override_set *v;
  int nv;
  if (xk_variants_enumerate(xk_dsl_kernel(dsl, xk_dsl_find(dsl, name)), &fixed,
                            1, 1, &v, &nv, d))
    return -1;
  printf("\n%s tune space, L = 32768 (MODEL):\n%-40s %4s %5s | %9s %-6s "
         "%9s | %9s %-6s\n",
         name, "variant", "regs", "occ", "b=1 us", "bound", "L2 MB", "b=8 us",
         "bound");
  for (int i = 0; i < nv; i++) {
    kern k = {0};
    linfit m;
    xk_sim_counters c[2];
    xk_perf_estimate e[2];
    int rc = kern_build(dsl, name, v[i].over, v[i].n, &k, d) ||
             measure_fit(&k, K_LR, &m, d);
    for (int j = 0; j < 2 && !rc; j++) {
      full_split(&k, &m, 1, 32768, j ? 8 : 1, &c[j]);
      rc = model(&k, &c[j], &e[j], d);
    }
    char what[128] = "";
    for (int o = 0, n = 0; o < v[i].n; o++)
      if (strcmp(v[i].over[o].name, "D"))
        n += snprintf(what + n, sizeof what - (size_t)n, "%s%s=%lld",
                      n ? " " : "", v[i].over[o].name,
                      (long long)v[i].over[o].value);
    if (rc)
      printf("%-40s does not run or fit: %s\n", what, d->msg);
    else
      printf("%-40s %4d %5.2f | %9.1f %-6s %9.1f | %9.1f %-6s\n", what,
             k.pi.registers, e[0].occupancy, e[0].seconds * 1e6, e[0].bound,
             32e-6 * (c[0].gld_sectors + c[0].gst_sectors), e[1].seconds * 1e6,
             e[1].bound);
    xkv_dsim_kernel_free(&k.k);
  }
  xk_variants_free(v, nv);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 2 && !strcmp(argv[1], "--gpu")) {
    gpu_short = argv[2];
    argc -= 2;
    argv += 2;
  }
  gpu = xk_gpu_find(gpu_short);
  if (strcmp(gpu_short, "h100") && strcmp(gpu_short, "h200")) {
    fprintf(stderr, "decode_model: --gpu %s: h100 or h200\n", gpu_short);
    return 1;
  }
  double HBM_BW = gpu->dram_peak;
  const char *src = argc > 1 ? argv[1] : XK_SRC "/kernels.xk";
  xk_dsl *dsl = NULL;
  xk_diag d = {{0}};
  int ranks = argc > 3; /* other ranks: no tune sweep, own results file */
  if (ranks) {
    RK = atoi(argv[2]);
    RV = atoi(argv[3]);
    if (RK < 1 || RV < 1) {
      fprintf(stderr, "decode_model: ranks must be positive integers\n");
      return 1;
    }
  }
  kern lr = {0}, lr1 = {0}, ex = {0}, cb = {0};
  int rc = 1;
  FILE *csv = NULL;
  xk_constexpr lr1_over[3] = {
      {"RK", bucket(RK)}, {"RV", bucket(RV)}, {"HB", XKV_LR1_HB}};
  if (xk_dsl_open(src, &dsl, &d) ||
      kern_build(dsl, "xkv_decode_lr_f16", NULL, 0, &lr, &d) ||
      kern_build(dsl, "xkv_decode_lr1_f16", lr1_over, 3, &lr1, &d) ||
      kern_build(dsl, "xkv_decode_exact_f16", NULL, 0, &ex, &d) ||
      kern_build(dsl, "xkv_decode_combine", NULL, 0, &cb, &d))
    goto out;
  printf("MODEL, not a measurement (no GPU): Llama-3.1-8B decode attention "
         "per layer per step on the %s, from sim counters of 2 programs "
         "of reduced splits scaled to the full grid (see the header of "
         "bench/decode_model.c)\n",
         gpu->name);
  printf("Hq %d Hkv %d d %d rank_k %d rank_v %d f16; batch b = b x the "
         "grid\n",
         HQ, HKV, HEAD_D, RK, RV);
  linfit flr, flr1, fex;
  if (measure_fit(&lr, K_LR, &flr, &d) || measure_fit(&lr1, K_LR1, &flr1, &d) ||
      measure_fit(&ex, K_EXACT, &fex, &d))
    goto out;
  printf("sim distinct bytes of the reduced runs match the analytic counts\n");
  char path[512], stem[64];
  snprintf(stem, sizeof stem, "decode-model-%s", gpu_short);
  if (ranks)
    snprintf(stem, sizeof stem, "decode-model-%s-r%dx%d", gpu_short, RK, RV);
  csv = xk_bench_results_open(stem, "csv", path, sizeof path, NULL);
  if (!csv) {
    xk_diag_set(&d, "cannot write %s", path);
    goto out;
  }
  fprintf(csv,
          "# MODEL (sim/perf_model.c, %s, from sim counters), not "
          "measured; per layer per decode step\n",
          gpu->name);
  fprintf(csv, "L,batch,splits,xkv_lr_us,xkv_combine_us,xkv_us,xkv_bound,"
               "xkv_bytes,xkv_scratch_bytes,xkv_l2_bytes,xkv_roofline_us,"
               "exact_split_us,exact_combine_us,exact_us,exact_bound,"
               "exact_bytes,exact_l2_bytes,exact_roofline_us,model_speedup,"
               "bytes_ratio,roofline_speedup,xkv1_splits,xkv1_lr_us,"
               "xkv1_combine_us,xkv1_us,xkv1_bound,xkv1_bytes,xkv1_l2_bytes,"
               "model_speedup1\n");
  printf("\n%7s %3s %3s | %9s %9s %-6s %9s %9s | %9s %-6s %9s %9s | %7s "
         "%7s %7s | %3s %9s %-6s %9s %8s\n",
         "L", "b", "NS", "xKV us", "(combine)", "bound", "MB", "roof us",
         "exact us", "bound", "MB", "roof us", "speedup", "bytes", "roof",
         "NS1", "xKV1 us", "bound", "L2 MB", "speedup1");
  int gb = (int)cdiv(HQ / HKV, xkv_dsim_const(&lr.k, "BLOCK_G"));
  for (int li = 0; li < NLENS; li++) {
    int L = lens[li], ns = nsplits(L), ns1 = nsplits_lr1(L);
    xk_sim_counters ccb, ccb1;
    if (measure_combine(&cb, ns, &ccb, &d) ||
        measure_combine(&cb, ns1, &ccb1, &d))
      goto out;
    for (int bi = 0; bi < NBATCH; bi++) {
      int64_t b = batches[bi];
      xk_sim_counters c_lr, c_lr1, c_ex, c_cb, c_cb1;
      full_split(&lr, &flr, 1, L, b, &c_lr);
      full_lr1(&lr1, &flr1, L, b, &c_lr1);
      full_split(&ex, &fex, 0, L, b, &c_ex);
      /* the combine: one program per query head, fixed work */
      linfit fcb = {{ccb, ccb}, {2, 4}};
      scale(&fcb, HQ * b, 0, &c_cb);
      c_cb.unique_bytes = b * bytes_combine(HQ, ns);
      linfit fcb1 = {{ccb1, ccb1}, {2, 4}};
      scale(&fcb1, HQ * b, 0, &c_cb1);
      c_cb1.unique_bytes = b * bytes_combine(HQ, ns1);
      /* per sequence: its factors, q, scratch, partials; tables shared */
      xk_perf_estimate e_lr, e_lr1, e_ex, e_cb, e_cb1;
      if (model(&lr, &c_lr, &e_lr, &d) || model(&lr1, &c_lr1, &e_lr1, &d) ||
          model(&ex, &c_ex, &e_ex, &d) || model(&cb, &c_cb, &e_cb, &d) ||
          model(&cb, &c_cb1, &e_cb1, &d))
        goto out;
      double t_x1 = e_lr1.seconds + e_cb1.seconds;
      int64_t by_x1 = c_lr1.unique_bytes + c_cb1.unique_bytes;
      int64_t l2_x1 = 32 * (c_lr1.gld_sectors + c_lr1.gst_sectors +
                            c_cb1.gld_sectors + c_cb1.gst_sectors);
      double t_x = e_lr.seconds + e_cb.seconds;
      double t_e = e_ex.seconds + e_cb.seconds;
      int64_t by_x = c_lr.unique_bytes + c_cb.unique_bytes;
      int64_t by_e = c_ex.unique_bytes + c_cb.unique_bytes;
      int64_t l2_x = 32 * (c_lr.gld_sectors + c_lr.gst_sectors +
                           c_cb.gld_sectors + c_cb.gst_sectors);
      int64_t l2_e = 32 * (c_ex.gld_sectors + c_ex.gst_sectors +
                           c_cb.gld_sectors + c_cb.gst_sectors);
      double r_x = by_x / HBM_BW, r_e = by_e / HBM_BW;
      printf("%7d %3lld %3d | %9.1f %9.1f %-6s %9.1f %9.1f | %9.1f %-6s "
             "%9.1f %9.1f | %7.2f %7.2f %7.2f | %3d %9.1f %-6s %9.1f %8.2f\n",
             L, (long long)b, ns, t_x * 1e6, e_cb.seconds * 1e6, e_lr.bound,
             by_x * 1e-6, r_x * 1e6, t_e * 1e6, e_ex.bound, by_e * 1e-6,
             r_e * 1e6, t_e / t_x, ratio(by_e, by_x), r_e / r_x, ns1,
             t_x1 * 1e6, e_lr1.bound, l2_x1 * 1e-6, t_e / t_x1);
      fprintf(csv,
              "%d,%lld,%d,%.2f,%.2f,%.2f,%s,%lld,%lld,%lld,%.2f,%.2f,%.2f,"
              "%.2f,%s,%lld,%lld,%.2f,%.3f,%.3f,%.3f,%d,%.2f,%.2f,%.2f,%s,"
              "%lld,%lld,%.3f\n",
              L, (long long)b, ns, e_lr.seconds * 1e6, e_cb.seconds * 1e6,
              t_x * 1e6, e_lr.bound, (long long)by_x,
              (long long)(b * bytes_scratch(L, HQ)), (long long)l2_x, r_x * 1e6,
              e_ex.seconds * 1e6, e_cb.seconds * 1e6, t_e * 1e6, e_ex.bound,
              (long long)by_e, (long long)l2_e, r_e * 1e6, t_e / t_x,
              ratio(by_e, by_x), r_e / r_x, ns1, e_lr1.seconds * 1e6,
              e_cb1.seconds * 1e6, t_x1 * 1e6, e_lr1.bound, (long long)by_x1,
              (long long)l2_x1, t_e / t_x1);
      if (li == 0 && bi == 0) {
        /* dots: keys rebuilt and scored, P^T A_v, B_v^T U (query-head
         * blocks of BLOCK_G, as the kernel computes them) */
        int64_t bg = xkv_dsim_const(&lr.k, "BLOCK_G") * gb;
        int64_t f_lr =
            2LL * HKV * L * ((int64_t)RK * HEAD_D + 2 * HEAD_D * bg + RV * bg);
        f_lr += 2LL * HKV * ns * RV * HEAD_D * bg;
        int64_t f_ex = 2LL * HKV * L * 2 * HEAD_D * bg;
        printf("\ncounters of the full launches at L = %d, b = 1 (scaled):\n",
               L);
        /* lr1: keys rebuilt per head, scored over BLOCK_G columns for HB
         * heads, A_v^T P once per program, B_v^T u per head */
        int64_t bg1 = xkv_dsim_const(&lr1.k, "BLOCK_G");
        int64_t f_lr1 = 2LL * L *
                        (HKV * ((int64_t)RK * HEAD_D + 2 * HEAD_D * bg1) +
                         cdiv(HKV, XKV_LR1_HB) * RV * bg1);
        f_lr1 += 2LL * HKV * ns1 * RV * HEAD_D * bg1;
        print_counters("xKV split", &lr, &c_lr, &e_lr, f_lr);
        print_counters("xKV single pass", &lr1, &c_lr1, &e_lr1, f_lr1);
        print_counters("exact split", &ex, &c_ex, &e_ex, f_ex);
        print_counters("combine", &cb, &c_cb, &e_cb, 0);
        printf("\n");
      }
    }
  }
  if (!ranks && tune_lr(dsl, &d))
    goto out;
  printf("\nspeedup = modeled exact / modeled xKV; bytes = exact / xKV "
         "distinct bytes; roof = the same at %.2f TB/s (xKV bytes include "
         "the f32 RoPE tables and the f32 score scratch)\nwrote %s\n",
         HBM_BW * 1e-12, path);
  rc = 0;
out:
  if (rc)
    fprintf(stderr, "decode_model: %s\n", d.msg);
  if (csv)
    fclose(csv);
  xkv_dsim_kernel_free(&lr.k);
  xkv_dsim_kernel_free(&lr1.k);
  xkv_dsim_kernel_free(&ex.k);
  xkv_dsim_kernel_free(&cb.k);
  xk_dsl_close(dsl);
  return rc;
}
