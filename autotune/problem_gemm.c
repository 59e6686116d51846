/* Inputs and C references of the dense kernels: the GEMMs (gemm_f32/f16,
 * the compression's strided gemm_st_*), vadd, softmax, sumsq_f32. */
#include "problem_int.h"

#include <math.h>
#include <string.h>

/* C[i, j] = sum_k A[i, k] B[k, j] over the buffers of arguments a, b
 * (row-major; A stored [K, M] when trans_a), into the reference; skipped
 * above XK_C_REF_MAX_MACS. */
static int gemm_ref(xk_problem *p, int a, int b, int trans_a, int64_t M,
                    int64_t N, int64_t K, xkv_dtype out_dt, xk_diag *d) {
  if (M * N * K > XK_C_REF_MAX_MACS)
    return 0;
  double *r = xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  for (int64_t i = 0; i < M; i++)
    for (int64_t k = 0; k < K; k++) {
      double x = xk_pget(p, a, (size_t)(trans_a ? k * M + i : i * K + k));
      for (int64_t j = 0; j < N; j++)
        r[i * N + j] += x * xk_pget(p, b, (size_t)(k * N + j));
    }
  for (int64_t i = 0; i < M * N; i++)
    r[i] = xk_pround(out_dt, r[i]);
  return 0;
}

static int mnk(const xk_problem_key *k, int64_t *M, int64_t *N, int64_t *K,
               xk_diag *d) {
  *M = xk_pkey(k, "M", 0);
  *N = xk_pkey(k, "N", 0);
  *K = xk_pkey(k, "K", 0);
  return *M > 0 && *N > 0 && *K > 0
             ? 0
             : xk_diag_set(d, "%s needs keys M, N, K", k->kernel);
}

/* gemm_f32 / gemm_f16 / gemm_bf16 (A, B, C, M, N, K): C = A B */
int xk_setup_gemm(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t M, N, K;
  if (mnk(k, &M, &N, &K, d))
    return -1;
  xkv_dtype dt = k->dt;
  uint64_t s = 1;
  xk_pbuf(p, 0, (size_t)(M * K), dt, 1, &s);
  xk_pbuf(p, 1, (size_t)(K * N), dt, 1, &s);
  xk_pout(p, 2, (size_t)(M * N), dt);
  xk_pi32(p, 3, M);
  xk_pi32(p, 4, N);
  xk_pi32(p, 5, K);
  p->tol = dt == XKV_F32 ? 1e-4 : dt == XKV_F16 ? 4e-3 : xk_ptol(dt);
  p->flops = 2.0 * (double)M * N * K;
  return xk_pcheck(p, d) || gemm_ref(p, 0, 1, 0, M, N, K, dt, d) ? -1 : 0;
}

/* gemm_st_<b>_<c> (A, B, C, M, N, K, sam, sak, sbk, sbn, ldc, beta) as a
 * plain row-major C = A B with beta 0; A is f32, B f32 or f16 (the name's
 * first dtype), C the name's last. */
int xk_setup_gemm_st(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t M, N, K;
  if (mnk(k, &M, &N, &K, d))
    return -1;
  xkv_dtype bt = !strncmp(k->kernel, "gemm_st_f16", 11) ? XKV_F16 : XKV_F32;
  uint64_t s = 2;
  xk_pbuf(p, 0, (size_t)(M * K), XKV_F32, 1, &s);
  xk_pbuf(p, 1, (size_t)(K * N), bt, 1, &s);
  xk_pout(p, 2, (size_t)(M * N), k->dt);
  int64_t v[] = {M, N, K, K, 1, N, 1, N};
  for (int i = 0; i < 8; i++)
    xk_pi32(p, 3 + i, v[i]);
  xk_pf32(p, 11, 0.0f);
  p->tol = k->dt == XKV_F32 ? 1e-4 : xk_ptol(k->dt);
  p->flops = 2.0 * (double)M * N * K;
  return xk_pcheck(p, d) || gemm_ref(p, 0, 1, 0, M, N, K, k->dt, d) ? -1 : 0;
}

/* gemm_sk_<dt> / gemm_skt_<dt> (A, B, C, M, N, K): C += A B or A^T B (A
 * stored [K, M]) with f32 C, which the tuner zeroes before each run */
int xk_setup_gemm_sk(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t M, N, K;
  if (mnk(k, &M, &N, &K, d))
    return -1;
  uint64_t s = 4;
  xk_pbuf(p, 0, (size_t)(M * K), k->dt, 1, &s);
  xk_pbuf(p, 1, (size_t)(K * N), k->dt, 1, &s);
  xk_pout(p, 2, (size_t)(M * N), XKV_F32);
  xk_pi32(p, 3, M);
  xk_pi32(p, 4, N);
  xk_pi32(p, 5, K);
  p->accumulates = 1;
  /* the inputs are exact in their dtype, the sum is f32 */
  p->tol = 1e-4;
  p->flops = 2.0 * (double)M * N * K;
  return xk_pcheck(p, d) ||
                 gemm_ref(p, 0, 1, !strncmp(k->kernel, "gemm_skt_", 9), M, N, K,
                          XKV_F32, d)
             ? -1
             : 0;
}

static int need_n(const xk_problem_key *k, int64_t *N, xk_diag *d) {
  *N = xk_pkey(k, "N", 0);
  return *N > 0 ? 0 : xk_diag_set(d, "%s needs key N", k->kernel);
}

/* vadd (X, Y, Out, N) */
int xk_setup_vadd(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t N;
  uint64_t s = 3;
  if (need_n(k, &N, d))
    return -1;
  xk_pbuf(p, 0, (size_t)N, XKV_F32, 1, &s);
  xk_pbuf(p, 1, (size_t)N, XKV_F32, 1, &s);
  xk_pout(p, 2, (size_t)N, XKV_F32);
  xk_pi32(p, 3, N);
  p->tol = 1e-6;
  if (xk_pcheck(p, d))
    return -1;
  p->out_elems = (size_t)N;
  double *r = xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  for (int64_t i = 0; i < N; i++)
    r[i] = (float)(xk_pget(p, 0, (size_t)i) + xk_pget(p, 1, (size_t)i));
  return 0;
}

/* softmax (X, Out, rows, N): 256 rows, as the cache's landmark scores */
int xk_setup_softmax(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t N, rows = 256;
  uint64_t s = 3;
  if (need_n(k, &N, d))
    return -1;
  xk_pbuf(p, 0, (size_t)(rows * N), XKV_F32, 4, &s);
  xk_pout(p, 1, (size_t)(rows * N), XKV_F32);
  xk_pi32(p, 2, rows);
  xk_pi32(p, 3, N);
  p->tol = 1e-5;
  if (xk_pcheck(p, d))
    return -1;
  p->out_elems = (size_t)(rows * N);
  double *r = xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  for (int64_t i = 0; i < rows; i++) {
    double m = -INFINITY, l = 0;
    for (int64_t j = 0; j < N; j++)
      m = fmax(m, xk_pget(p, 0, (size_t)(i * N + j)));
    for (int64_t j = 0; j < N; j++)
      l += r[i * N + j] = exp(xk_pget(p, 0, (size_t)(i * N + j)) - m);
    for (int64_t j = 0; j < N; j++)
      r[i * N + j] /= l;
  }
  return 0;
}

/* sumsq_f32 (X, out, N): out[0] += sum X^2 */
int xk_setup_sumsq(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t N;
  uint64_t s = 3;
  if (need_n(k, &N, d))
    return -1;
  xk_pbuf(p, 0, (size_t)N, XKV_F32, 1, &s);
  xk_pout(p, 1, 1, XKV_F32);
  xk_pi32(p, 2, N);
  p->accumulates = 1;
  p->tol = 1e-5;
  if (xk_pcheck(p, d))
    return -1;
  p->out_elems = 1;
  double *r = xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  for (int64_t i = 0; i < N; i++)
    r[0] += xk_pget(p, 0, (size_t)i) * xk_pget(p, 0, (size_t)i);
  return 0;
}
