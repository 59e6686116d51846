/* xKV decode attention through the sim target: the flash-decoding kernels
 * of kernels.xk ("xKV": xkv_decode_lr_<dt>, xkv_decode_exact_<dt>,
 * xkv_decode_combine) launched as runtime/xkv_cache_attn.c launches them,
 * on one layer of host data with a plain C reference. Shared by
 * tests/test_sim_xkv.c (correctness) and bench/decode_model.c (counters
 * for the H100 model).
 *
 * The problem: a compressed prompt of L tokens (positions 0..L-1), keys
 * A_k [L, rk] B_k [hkv, rk, d] before RoPE and values A_v [L, rv] B_v
 * [hkv, rv, d], then `tail` exact rows [tail, hkv, d] (keys after RoPE at
 * positions L..), and a query per head decoded at position L + tail. */
#ifndef XKV_DSIM_H
#define XKV_DSIM_H

#include "compile.h"
#include "ptxas.h"
#include "sim.h"

/* A kernel variant compiled for sim (or the host) and JIT'd. */
typedef struct {
  xk_func *f;
  xk_jit *jit;
  xk_sim_fn fn;
  xk_host_fn host;    /* built for the host instead: launched program by
                         program, no counters */
  xk_nvptx_info info; /* threads and shared memory per block */
} xkv_dsim_kernel;

int xkv_dsim_kernel_build(xk_dsl *dsl, const char *name,
                          const xk_constexpr *over, int nover,
                          xkv_dsim_kernel *k, xk_diag *d);
/* The same for the host target. */
int xkv_dsim_kernel_build_host(xk_dsl *dsl, const char *name,
                               const xk_constexpr *over, int nover,
                               xkv_dsim_kernel *k, xk_diag *d);
void xkv_dsim_kernel_free(xkv_dsim_kernel *k);
/* One launch of k over grid with its argument pointers (sim: counters into
 * c, which may be NULL; host: program by program, c zeroed). */
int xkv_dsim_launch(const xkv_dsim_kernel *k, void **args, const int32_t *grid,
                    xk_sim_counters *c, xk_diag *d);
/* A const of k's variant (-1 when it has none). */
int64_t xkv_dsim_const(const xkv_dsim_kernel *k, const char *name);

typedef enum { XKV_DSIM_F32, XKV_DSIM_F16, XKV_DSIM_BF16 } xkv_dsim_dtype;

typedef struct {
  xkv_dsim_dtype dt; /* factor and exact-row storage */
  int hkv, g, d;     /* KV heads, query heads per KV head, head_dim */
  int L, rk, rv;     /* compressed prompt tokens and ranks */
  int tail;          /* exact rows after the prompt */
  int ns_lr, ns_ex;  /* splits of the prompt and of the tail */
  int ldo;           /* partial columns per head, >= ns_lr + ns_ex */
  double theta;      /* RoPE base */
  uint64_t seed;
} xkv_dsim_shape;

typedef struct {
  xkv_dsim_shape s;
  size_t esz;                /* bytes per stored element */
  void *ak, *bk, *av, *bv;   /* factors in storage dtype */
  void *kx, *vx;             /* exact rows, storage dtype */
  float *q;                  /* [hq, d] rotated at L + tail, 1/sqrt(d) */
  float *cos, *sin;          /* [L, d/2] */
  float *S;                  /* score scratch [hq, L] */
  float *O, *M, *Lsum;       /* partials [hq, ldo, d], [hq, ldo] */
  float *out;                /* [hq, d] */
  float *qpre, *kpre, *vpre; /* the reference's inputs: q before RoPE,
                                K before RoPE and V [L + tail, hkv, d]
                                from the stored (rounded) values */
} xkv_dsim;

/* Random factors, rows and queries (deterministic in s->seed); the
 * partials are filled with NaN so that a column the combine should not
 * read, or a split that writes nothing, shows. */
int xkv_dsim_init(xkv_dsim *p, const xkv_dsim_shape *s, xk_diag *d);
void xkv_dsim_free(xkv_dsim *p);

/* One launch of each kernel as the runtime makes it; grid NULL is the full
 * grid (a smaller one runs the first programs only: what the bench
 * samples). c may be NULL. The kernels' D must be s.d. */
int xkv_dsim_lr(xkv_dsim *p, const xkv_dsim_kernel *k, const int32_t *grid,
                xk_sim_counters *c, xk_diag *d);
/* The single-pass split kernel (xkv_decode_lr1_<dt>) over the prompt in
 * splits 0..ns_lr-1; its full grid is {ns_lr, cdiv(hkv, HB), 1}. */
int xkv_dsim_lr1(xkv_dsim *p, const xkv_dsim_kernel *k, const int32_t *grid,
                 xk_sim_counters *c, xk_diag *d);
int xkv_dsim_exact(xkv_dsim *p, const xkv_dsim_kernel *k, const int32_t *grid,
                   xk_sim_counters *c, xk_diag *d);
int xkv_dsim_combine(xkv_dsim *p, const xkv_dsim_kernel *k, const int32_t *grid,
                     xk_sim_counters *c, xk_diag *d);
/* The full grids */
void xkv_dsim_grid_lr(const xkv_dsim *p, const xkv_dsim_kernel *k,
                      int32_t grid[3]);
void xkv_dsim_grid_exact(const xkv_dsim *p, const xkv_dsim_kernel *k,
                         int32_t grid[3]);

/* softmax(q K^T) V over the prompt and the tail in double precision
 * (xkv_ref_attention), into ref [hq, d]. */
void xkv_dsim_reference(const xkv_dsim *p, float *ref);

#endif
