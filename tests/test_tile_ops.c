/* The axis ops of the DSL (argmax/argmin, cumsum/cumprod,
 * associative_scan, sort, topk) on the host and sim targets against plain
 * C references, at ragged sizes with masks, ties and NaNs
 * (tests/data/ops_kernels.xk); the math ops (log2, tanh, sigmoid, erf,
 * floor, ceil, fma, pow, abs, umulhi) and where on pointers and integers
 * against the C library; atomics under contention (host programs on four
 * threads) checking final values and that the old values returned form a
 * valid serialization; reductions with keep_dims and an accumulation
 * dtype; dot's out_dtype and input_precision. */
#include "compile.h"
#include "kernel_cases.h"
#include "sim.h"

#include "check_main.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static xk_dsl *dsl;

typedef struct {
  xk_func *f;
  xk_jit *hjit, *sjit;
  xk_host_fn host;
  xk_sim_fn sim;
  xk_nvptx_info info;
} prog;

static xk_jit *jit_target(const xk_func *f, const char *target,
                          xk_nvptx_info *info, xk_host_fn *fn) {
  LLVMTargetMachineRef tm;
  LLVMModuleRef m;
  xk_jit *j;
  xk_diag d;
  ck_assert_msg(xk_target_machine(target, &tm, &d) == 0, "%s", d.msg);
  int rc = xk_compile_llvm(f, target, tm, f->name, 1, &m, info, &d);
  LLVMDisposeTargetMachine(tm);
  ck_assert_msg(rc == 0, "%s %s: %s", f->name, target, d.msg);
  ck_assert_msg(xk_jit_new(&j, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_jit_add(j, m, &d) == 0 &&
                    xk_jit_lookup(j, f->name, fn, &d) == 0,
                "%s", d.msg);
  return j;
}

static prog build(const char *kernel, const xk_constexpr *over, int nover) {
  prog p;
  xk_diag d;
  xk_host_fn sfn;
  ck_assert_msg(dsl != NULL, "ops_kernels.xk did not load");
  int k = xk_dsl_find(dsl, kernel);
  ck_assert_msg(k >= 0, "no kernel %s", kernel);
  ck_assert_msg(xk_compile_ir(dsl, k, over, nover, &p.f, &d) == 0, "%s", d.msg);
  p.hjit = jit_target(p.f, "host", NULL, &p.host);
  p.sjit = jit_target(p.f, "sim", &p.info, &sfn);
  p.sim = (xk_sim_fn)(void (*)(void))sfn;
  return p;
}

static void release(prog *p) {
  xk_jit_free(p->hjit);
  xk_jit_free(p->sjit);
  xk_func_free(p->f);
}

/* on_sim 0: every program in order on this thread; 1: the SIMT emulator */
static void launch(const prog *p, int on_sim, void **args, int32_t g0) {
  int32_t grid[3] = {g0, 1, 1};
  if (on_sim) {
    xk_diag d;
    ck_assert_msg(xk_sim_launch(p->sim, args, grid, p->info.threads,
                                p->info.shared_bytes, NULL, &d) == 0,
                  "%s", d.msg);
    return;
  }
  int32_t pid[3] = {0, 0, 0};
  for (pid[0] = 0; pid[0] < g0; pid[0]++)
    p->host(args, pid, grid);
}

static const char *target_name(int on_sim) {
  return on_sim ? "sim" : "host";
}

/* splitmix64 */
static uint64_t rng(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Few distinct values so that ties are common; NaN now and then when
 * nan_every > 0. */
static void fill_ties(float *x, int n, uint64_t seed, int nan_every) {
  for (int i = 0; i < n; i++) {
    uint64_t r = rng(&seed);
    x[i] = (float)((int)(r % 9) - 4) * 0.5f;
    if (nan_every && r % (uint64_t)nan_every == 1)
      x[i] = NAN;
  }
}

/* The order the sort ops promise: larger first when desc, NaN the
 * largest, ties by index. 1 when (a, ia) goes before (b, ib). */
static int goes_before(float a, int ia, float b, int ib, int desc) {
  int na = isnan(a), nb = isnan(b);
  if (na || nb) {
    if (na && nb)
      return ia < ib;
    return desc ? na : nb;
  }
  if (a != b)
    return desc ? a > b : a < b;
  return ia < ib;
}

/* Stable sort of the indices of x[0..n) (insertion sort: tests are small). */
static void ref_order(const float *x, int n, int desc, int *order) {
  for (int i = 0; i < n; i++) {
    int j = i;
    while (j > 0 && goes_before(x[i], i, x[order[j - 1]], order[j - 1], desc)) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
}

static int same_float(float a, float b) {
  return (isnan(a) && isnan(b)) || a == b;
}

START_TEST(test_argmax_argmin_rows) {
  static const int ns[] = {1, 37, 64};
  prog p = build("argext_rows", NULL, 0);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t M = 9, N = ns[s];
      float *x = malloc(sizeof *x * (size_t)(M * N));
      int32_t I[9], J[9];
      fill_ties(x, M * N, 17 + (uint64_t)s, 0);
      /* row 1 has NaNs (the first one wins both), row 2 only -inf and
       * +inf (ties with the padding go to the real elements) */
      if (N > 3) {
        x[N + 2] = NAN;
        x[N + N - 1] = NAN;
      }
      for (int i = 0; M > 2 && i < N; i++)
        x[2 * N + i] = i % 2 ? INFINITY : -INFINITY;
      void *px = x, *pi = I, *pj = J;
      void *args[4] = {&px, &pi, &pj, &N};
      launch(&p, on_sim, args, M);
      for (int r = 0; r < M; r++) {
        int am = 0, an = 0, nan = -1;
        for (int i = 0; i < N; i++) {
          float v = x[r * N + i];
          if (isnan(v) && nan < 0)
            nan = i;
          if (v > x[r * N + am])
            am = i;
          if (v < x[r * N + an])
            an = i;
        }
        if (nan >= 0)
          am = an = nan;
        ck_assert_msg(I[r] == am && J[r] == an,
                      "%s N=%d row %d: argmax %d (want %d) argmin %d (want %d)",
                      target_name(on_sim), N, r, I[r], am, J[r], an);
      }
      free(x);
    }
  release(&p);
}
END_TEST

START_TEST(test_argmax_cols) {
  static const int32_t sizes[][2] = {{1, 1}, {19, 11}, {32, 16}};
  prog p = build("argmax_cols", NULL, 0);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t M = sizes[s][0], N = sizes[s][1], I[16];
      int32_t *x = malloc(sizeof *x * (size_t)(M * N));
      uint64_t seed = 5;
      for (int i = 0; i < M * N; i++)
        x[i] = (int32_t)(rng(&seed) % 5) - 2;
      void *px = x, *pi = I;
      void *args[4] = {&px, &pi, &M, &N};
      launch(&p, on_sim, args, 1);
      for (int c = 0; c < N; c++) {
        int am = 0;
        for (int r = 1; r < M; r++)
          if (x[r * N + c] > x[am * N + c])
            am = r;
        ck_assert_msg(I[c] == am, "%s %dx%d col %d: %d, want %d",
                      target_name(on_sim), M, N, c, I[c], am);
      }
      free(x);
    }
  release(&p);
}
END_TEST

START_TEST(test_scans) {
  static const int ns[] = {1, 45, 64};
  prog p = build("scans", NULL, 0);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t M = 7, N = ns[s], n = M * N;
      int32_t *buf = malloc(sizeof *buf * (size_t)(6 * n)), *x = buf;
      int32_t *S = x + n, *P = S + n, *R = P + n, *Q = R + n, *QI = Q + n;
      uint64_t seed = 99 + (uint64_t)s;
      for (int i = 0; i < n; i++) {
        uint64_t r = rng(&seed) % 16;
        x[i] = r < 7 ? 1 : r < 14 ? -1 : r == 14 ? 2 : 3;
      }
      void *ptr[6] = {x, S, P, R, Q, QI};
      void *args[8] = {&ptr[0], &ptr[1], &ptr[2], &ptr[3],
                       &ptr[4], &ptr[5], &M,      &N};
      launch(&p, on_sim, args, (M + 3) / 4);
      for (int r = 0; r < M; r++) {
        int64_t sum = 0, prod = 1, rsum = 0;
        int best = 0;
        for (int c = 0; c < N; c++) {
          int i = r * N + c;
          sum += x[i];
          prod *= x[i];
          if (x[i] > x[r * N + best])
            best = c;
          ck_assert(prod > INT32_MIN && prod < INT32_MAX);
          ck_assert_msg(S[i] == sum && P[i] == prod &&
                            Q[i] == x[r * N + best] && QI[i] == best,
                        "%s N=%d (%d,%d): cumsum %d/%lld cumprod %d/%lld max "
                        "%d@%d/%d@%d",
                        target_name(on_sim), N, r, c, S[i], (long long)sum,
                        P[i], (long long)prod, Q[i], QI[i], x[r * N + best],
                        best);
        }
        for (int c = N - 1; c >= 0; c--) {
          rsum += x[r * N + c];
          ck_assert_msg(R[r * N + c] == rsum,
                        "%s N=%d reverse (%d,%d): %d/%lld", target_name(on_sim),
                        N, r, c, R[r * N + c], (long long)rsum);
        }
      }
      free(buf);
    }
  release(&p);
}
END_TEST

START_TEST(test_cumsum_f32_cols) {
  static const int32_t sizes[][2] = {{1, 3}, {50, 13}, {64, 16}};
  prog p = build("cumsum_f32_cols", NULL, 0);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t M = sizes[s][0], N = sizes[s][1];
      float *x = malloc(sizeof *x * (size_t)(2 * M * N)), *S = x + M * N;
      uint64_t seed = 3;
      for (int i = 0; i < M * N; i++)
        x[i] = (float)(rng(&seed) % 1000) / 250.0f - 2.0f;
      void *px = x, *ps = S;
      void *args[4] = {&px, &ps, &M, &N};
      launch(&p, on_sim, args, (N + 7) / 8);
      for (int c = 0; c < N; c++) {
        double sum = 0;
        for (int r = 0; r < M; r++) {
          sum += x[r * N + c];
          ck_assert_msg(fabs(S[r * N + c] - sum) < 1e-4,
                        "%s %dx%d (%d,%d): %g, want %g", target_name(on_sim), M,
                        N, r, c, S[r * N + c], sum);
        }
      }
      free(x);
    }
  release(&p);
}
END_TEST

START_TEST(test_sort_rows) {
  static const int ns[] = {1, 37, 64};
  prog p = build("sort_rows", NULL, 0);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t M = 3, N = ns[s], n = M * N;
      float *x = malloc(sizeof *x * (size_t)(3 * n)), *V = x + n, *D = V + n;
      int32_t *I = malloc(sizeof *I * (size_t)(2 * n)), *DI = I + n;
      fill_ties(x, n, 41 + (uint64_t)s, 0);
      if (N > 4) { /* NaNs and infinities in row 1 */
        x[N + 1] = NAN;
        x[N + 3] = -INFINITY;
        x[N + 4] = INFINITY;
        x[2 * N - 1] = NAN;
      }
      void *ptr[5] = {x, V, I, D, DI};
      void *args[6] = {&ptr[0], &ptr[1], &ptr[2], &ptr[3], &ptr[4], &N};
      launch(&p, on_sim, args, M);
      int order[64];
      for (int r = 0; r < M; r++)
        for (int desc = 0; desc < 2; desc++) {
          const float *got = desc ? D : V;
          const int32_t *gi = desc ? DI : I;
          ref_order(x + r * N, N, desc, order);
          for (int c = 0; c < N; c++)
            ck_assert_msg(gi[r * N + c] == order[c] &&
                              same_float(got[r * N + c], x[r * N + order[c]]),
                          "%s N=%d row %d %s pos %d: %g@%d, want %g@%d",
                          target_name(on_sim), N, r, desc ? "desc" : "asc", c,
                          got[r * N + c], gi[r * N + c], x[r * N + order[c]],
                          order[c]);
        }
      free(x);
      free(I);
    }
  release(&p);
}
END_TEST

static void check_topk(const char *what, const float *x, int N, int K,
                       const float *v, const int32_t *idx) {
  int order[1024];
  ref_order(x, N, 1, order);
  for (int k = 0; k < K && k < N; k++)
    ck_assert_msg(idx[k] == order[k] && same_float(v[k], x[order[k]]),
                  "%s N=%d K=%d pos %d: %g@%d, want %g@%d", what, N, K, k, v[k],
                  idx[k], x[order[k]], order[k]);
}

START_TEST(test_topk_rows) {
  static const int ns[] = {5, 100, 128};
  prog p = build("topk_rows", NULL, 0);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t M = 6, N = ns[s], K = 8;
      float *x = malloc(sizeof *x * (size_t)(M * N)), V[6 * 8];
      int32_t I[6 * 8];
      fill_ties(x, M * N, 7 + (uint64_t)s, 23);
      void *px = x, *pv = V, *pi = I;
      void *args[5] = {&px, &pv, &pi, &M, &N};
      launch(&p, on_sim, args, (M + 3) / 4);
      for (int r = 0; r < M; r++)
        check_topk(target_name(on_sim), x + r * N, N, K, V + r * K, I + r * K);
      free(x);
    }
  release(&p);
}
END_TEST

START_TEST(test_topk_vec) {
  static const xk_constexpr over[] = {{"BN", 256}, {"K", 16}};
  static const int ns[] = {16, 200, 256};
  prog p = build("topk_vec", over, 2);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t N = ns[s];
      float x[256], V[16];
      int32_t I[16];
      fill_ties(x, N, 11 + (uint64_t)s, s == 1 ? 31 : 0);
      void *px = x, *pv = V, *pi = I;
      void *args[4] = {&px, &pv, &pi, &N};
      launch(&p, on_sim, args, 1);
      check_topk(target_name(on_sim), x, N, 16, V, I);
    }
  release(&p);
}
END_TEST

static int close_to(double got, double want, double atol, double rtol) {
  if (isnan(want) || isinf(want))
    return isnan(want) ? isnan(got) : got == want;
  return fabs(got - want) <= atol + rtol * fabs(want);
}

/* The reference of row k of math_ops and its tolerance (atol, rtol). */
static double math_ref(int k, double x, double y, double z, double *atol,
                       double *rtol) {
  static const double tol[][2] = {
      {0, 1e-6}, {0, 1e-6}, {2e-7, 1e-6},  {2e-7, 1e-6}, {3e-7, 1e-6}, {0, 0},
      {0, 0},    {0, 0},    {1e-30, 2e-5}, {0, 0},       {1e-30, 2e-5}};
  *atol = tol[k][0];
  *rtol = tol[k][1];
  switch (k) {
  case 0:
    return log2(x);
  case 1:
    return exp2(y);
  case 2:
    return tanh(y);
  case 3:
    return 1.0 / (1.0 + exp(-y));
  case 4:
    return erf(y);
  case 5:
    return floor(y);
  case 6:
    return ceil(y);
  case 7:
    return fmaf((float)x, (float)y, (float)z);
  case 8:
    return pow(y, z);
  case 9:
    return fabs(y);
  default:
    return pow(x, y);
  }
}

START_TEST(test_math_ops) {
  static const int ns[] = {1, 300};
  prog p = build("math_ops", NULL, 0);
  for (int s = 0; s < 2; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t N = ns[s];
      float *x = malloc(sizeof *x * (size_t)(14 * N)), *y = x + N, *z = y + N;
      float *o = z + N;
      int32_t *ia = malloc(sizeof *ia * (size_t)(4 * N)), *ib = ia + N;
      int32_t *u = ib + N, *w = u + N;
      uint64_t seed = 1234;
      for (int i = 0; i < N; i++) {
        x[i] = 0.1f + (float)(rng(&seed) % 1000) / 100.0f;
        /* tiny, integral and half-integral values among the random ones */
        y[i] = i % 7 == 0   ? (float)(i % 5) - 2.0f
               : i % 7 == 1 ? 1e-5f * (float)(i % 3 + 1)
               : i % 7 == 2 ? (float)(i % 9) * 0.5f - 2.0f
                            : (float)(rng(&seed) % 8000) / 1000.0f - 4.0f;
        z[i] = (float)((int)(rng(&seed) % 7) - 3);
        ia[i] = (int32_t)rng(&seed);
        ib[i] = i % 5 ? (int32_t)rng(&seed) : -1;
      }
      void *ptr[8] = {x, y, z, o, ia, ib, u, w};
      void *args[9] = {&ptr[0], &ptr[1], &ptr[2], &ptr[3], &ptr[4],
                       &ptr[5], &ptr[6], &ptr[7], &N};
      launch(&p, on_sim, args, (N + 127) / 128);
      for (int k = 0; k < 11; k++)
        for (int i = 0; i < N; i++) {
          double at, rt, want = math_ref(k, x[i], y[i], z[i], &at, &rt);
          ck_assert_msg(close_to(o[k * N + i], want, at, rt),
                        "%s row %d i %d (x %g y %g z %g): %.9g, want %.9g",
                        target_name(on_sim), k, i, x[i], y[i], z[i],
                        o[k * N + i], want);
        }
      for (int i = 0; i < N; i++) {
        uint64_t prod = (uint64_t)(uint32_t)ia[i] * (uint32_t)ib[i];
        ck_assert_int_eq(u[i], (int32_t)(uint32_t)(prod >> 32));
        ck_assert_int_eq(w[i], (i % 2 ? ib[i] : ia[i]) + 7);
      }
      free(x);
      free(ia);
    }
  release(&p);
}
END_TEST

/* f16 rows summed with an f32 accumulator: values k/64 make every partial
 * sum exact in f32 (so any order gives the same), while an f16
 * accumulator would round the partial sums above 32. */
START_TEST(test_reduce_opts) {
  static const int32_t sizes[][2] = {{1, 1}, {5, 200}, {8, 256}};
  prog p = build("reduce_opts", NULL, 0);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t M = sizes[s][0], N = sizes[s][1];
      uint16_t *x = malloc(sizeof *x * (size_t)(M * N)), S[8], U;
      float T[8], xf[8 * 256];
      uint64_t seed = 77;
      for (int i = 0; i < M * N; i++) {
        xf[i] = (float)((int)(rng(&seed) % 257) - 100) / 64.0f;
        x[i] = xk_f32_to_f16(xf[i]);
      }
      void *px = x, *ps = S, *pt = T, *pu = &U;
      void *args[6] = {&px, &ps, &pt, &pu, &M, &N};
      launch(&p, on_sim, args, 1);
      float mx = -1000;
      for (int r = 0; r < M; r++) {
        double sum = 0;
        for (int c = 0; c < N; c++) {
          sum += xf[r * N + c];
          mx = xf[r * N + c] > mx ? xf[r * N + c] : mx;
        }
        ck_assert_msg(S[r] == xk_f32_to_f16((float)sum) && T[r] == (float)sum,
                      "%s %dx%d row %d: f16 sum %g f32 sum %g, want %g",
                      target_name(on_sim), M, N, r, xk_f16_to_f32(S[r]), T[r],
                      sum);
      }
      ck_assert_msg(U == xk_f32_to_f16(mx), "%s: max %g, want %g",
                    target_name(on_sim), xk_f16_to_f32(U), mx);
      free(x);
    }
  release(&p);
}
END_TEST

/* f16 accumulation (XK_DOT_ACC_F16): from c, each k-block of 16 summed
 * in f32 and rounded to f16. */
static uint16_t dot_acc16(const float *a, const float *b, int K, int N,
                          uint16_t c) {
  float s = xk_f16_to_f32(c);
  for (int k = 0; k < K; k++) {
    s += a[k] * b[k * N];
    if (k % 16 == 15 || k == K - 1)
      s = xk_f16_to_f32(xk_f32_to_f16(s));
  }
  return xk_f32_to_f16(s);
}

/* Entries k/8 in [-2, 2]: products and their sums are exact in f32 in any
 * order, so the f32 result is the exact sum and the f16 ones differ from
 * it only by the rounding of dot_acc16. */
START_TEST(test_dot_opts) {
  static const int32_t sizes[][3] = {{1, 1, 1}, {20, 24, 40}, {32, 32, 64}};
  prog p = build("dot_opts", NULL, 0);
  for (int s = 0; s < 3; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
      uint16_t A[32 * 64], B[64 * 32], C[32 * 32], D[32 * 32];
      float af[32 * 64], bf[64 * 32], E[32 * 32];
      uint64_t seed = 8;
      for (int i = 0; i < M * K; i++)
        A[i] = xk_f32_to_f16(af[i] = (float)((int)(rng(&seed) % 33) - 16) / 8);
      for (int i = 0; i < K * N; i++)
        B[i] = xk_f32_to_f16(bf[i] = (float)((int)(rng(&seed) % 33) - 16) / 8);
      void *ptr[5] = {A, B, C, D, E};
      void *args[8] = {&ptr[0], &ptr[1], &ptr[2], &ptr[3], &ptr[4], &M, &N, &K};
      launch(&p, on_sim, args, 1);
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double sum = 0;
          for (int k = 0; k < K; k++)
            sum += (double)af[i * K + k] * bf[k * N + j];
          uint16_t c = dot_acc16(af + i * K, bf + j, K, N, 0);
          uint16_t d = dot_acc16(af + i * K, bf + j, K, N, c);
          ck_assert_msg(C[i * N + j] == c && D[i * N + j] == d &&
                            E[i * N + j] == (float)sum,
                        "%s %dx%dx%d (%d,%d): %g %g %g, want %g %g %g",
                        target_name(on_sim), M, N, K, i, j,
                        xk_f16_to_f32(C[i * N + j]),
                        xk_f16_to_f32(D[i * N + j]), E[i * N + j],
                        xk_f16_to_f32(c), xk_f16_to_f32(d), sum);
        }
    }
  release(&p);
}
END_TEST

/* ---- atomics ------------------------------------------------------------ */

typedef struct {
  const prog *p;
  void **args;
  int32_t nprog, first, step;
} host_share;

static void *host_worker(void *arg) {
  const host_share *w = arg;
  int32_t grid[3] = {w->nprog, 1, 1};
  for (int32_t pid = w->first; pid < w->nprog; pid += w->step) {
    int32_t id[3] = {pid, 0, 0};
    w->p->host(w->args, id, grid);
  }
  return NULL;
}

/* The host's programs on 4 threads at once, as the CPU device runs them. */
static void launch_parallel(const prog *p, void **args, int32_t nprog) {
  pthread_t t[4];
  host_share w[4];
  for (int k = 0; k < 4; k++) {
    w[k] = (host_share){p, args, nprog, k, 4};
    ck_assert_int_eq(pthread_create(&t[k], NULL, host_worker, &w[k]), 0);
  }
  for (int k = 0; k < 4; k++)
    pthread_join(t[k], NULL);
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return x < y ? -1 : x > y;
}

/* v[0..n) sorted is 0, 1, ..., n-1 */
static int is_permutation(int32_t *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_i32);
  for (int i = 0; i < n; i++)
    if (v[i] != i)
      return 0;
  return 1;
}

START_TEST(test_atomics) {
  static const int ns[] = {1, 1000};
  prog p = build("atomics", NULL, 0);
  for (int s = 0; s < 2; s++)
    for (int on_sim = 0; on_sim < 2; on_sim++) {
      int32_t N = ns[s], G = (N + 63) / 64;
      int32_t C[2] = {0, 0}, MX[3] = {-5, -5, -5}, XV = -1;
      int32_t BITS[4] = {0, 0x5a5a5a5a, -1, 1000}, L[8] = {0};
      float F = 0;
      int32_t *o = calloc((size_t)(6 * N + G), sizeof *o);
      int32_t *OLD = o, *MO = o + N, *XO = MO + N, *BO = XO + N, *LO = BO + N;
      int32_t *PS = LO + N;
      float *FO = calloc((size_t)N, sizeof *FO);
      void *ptr[13] = {C, OLD, MX, MO, &XV, XO, BITS, BO, L, LO, &F, FO, PS};
      void *args[14];
      for (int k = 0; k < 13; k++)
        args[k] = &ptr[k];
      args[13] = &N;
      if (on_sim)
        launch(&p, 1, args, G);
      else
        launch_parallel(&p, args, G);
      const char *tg = target_name(on_sim);
      /* add: each lane got a distinct old count; the scalar add one per
       * program */
      ck_assert_int_eq(C[0], N);
      ck_assert_int_eq(C[1], G);
      ck_assert_msg(is_permutation(OLD, N), "%s: add olds not 0..N-1", tg);
      ck_assert_msg(is_permutation(PS, G), "%s: scalar add olds", tg);
      /* max: final is the max written; every old is the initial value or a
       * value written to the same address, and at most the final */
      for (int k = 0; k < 3; k++) {
        int32_t want = -5;
        for (int i = k; i < N; i += 3)
          want = i * 7 % 101 > want ? i * 7 % 101 : want;
        ck_assert_int_eq(MX[k], want);
      }
      for (int i = 0; i < N; i++)
        ck_assert_msg(MO[i] <= MX[i % 3] && (MO[i] == -5 || MO[i] % 1 == 0),
                      "%s: max old %d", tg, MO[i]);
      /* xchg: the olds and the final value are the initial value and the
       * written ones, each once */
      int32_t *xs = malloc(sizeof *xs * (size_t)(N + 1));
      for (int i = 0; i < N; i++)
        xs[i] = XO[i] + 1;
      xs[N] = XV + 1;
      ck_assert_msg(is_permutation(xs, N + 1), "%s: xchg olds", tg);
      free(xs);
      /* or/xor/and/min: final values; or's olds are subsets of the final */
      int32_t bor = 0, bxor = 0x5a5a5a5a, band = -1, bmin = 1000;
      for (int i = 0; i < N; i++) {
        bor |= 1 << (i % 31);
        bxor ^= i;
        band &= ~(1 << (i % 31));
        bmin = i * 13 % 97 < bmin ? i * 13 % 97 : bmin;
      }
      /* against the final value: a lane may see bits of later lanes */
      for (int i = 0; i < N; i++)
        ck_assert_msg((BO[i] & ~bor) == 0, "%s: or old", tg);
      ck_assert_int_eq(BITS[0], bor);
      ck_assert_int_eq(BITS[1], bxor);
      ck_assert_int_eq(BITS[2], band);
      ck_assert_int_eq(BITS[3], bmin);
      /* cas: one lane per slot (any of the grid's, cas has no mask) swaps
       * 0 for its i + 1; every other lane of the slot sees that value */
      for (int i = 0; i < N; i++) {
        int32_t fin = L[i % 8];
        ck_assert_msg(fin > 0 && (fin - 1) % 8 == i % 8 && fin <= G * 64,
                      "%s: cas slot %d holds %d", tg, i % 8, fin);
        ck_assert_msg(LO[i] == (fin == i + 1 ? 0 : fin),
                      "%s: cas old %d at %d (slot %d)", tg, LO[i], i, fin);
      }
      /* f32 add of 0.5: exact, so the olds are 0, 0.5, ... in some order */
      ck_assert(F == 0.5f * (float)N);
      int32_t *fs = malloc(sizeof *fs * (size_t)N);
      for (int i = 0; i < N; i++)
        fs[i] = (int32_t)(FO[i] * 2);
      ck_assert_msg(is_permutation(fs, N), "%s: f32 add olds", tg);
      free(fs);
      free(o);
      free(FO);
    }
  release(&p);
}
END_TEST

static void open_dsl(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/tests/data/ops_kernels.xk", &dsl, &d))
    fprintf(stderr, "test_tile_ops: ops_kernels.xk not usable: %s\n", d.msg);
}

static void close_dsl(void) {
  xk_dsl_close(dsl);
  dsl = NULL;
}

int main(void) {
  Suite *s = suite_create("tile_ops");
  TCase *c = tcase_create("axis");
  tcase_set_timeout(c, 600);
  tcase_add_unchecked_fixture(c, open_dsl, close_dsl);
  tcase_add_test(c, test_argmax_argmin_rows);
  tcase_add_test(c, test_argmax_cols);
  tcase_add_test(c, test_scans);
  tcase_add_test(c, test_cumsum_f32_cols);
  tcase_add_test(c, test_sort_rows);
  tcase_add_test(c, test_topk_rows);
  tcase_add_test(c, test_topk_vec);
  tcase_add_test(c, test_math_ops);
  tcase_add_test(c, test_atomics);
  tcase_add_test(c, test_reduce_opts);
  tcase_add_test(c, test_dot_opts);
  suite_add_tcase(s, c);
  return xk_check_run(s);
}
