/* Inputs and C references of the xKV cache's kernels (kernels.xk "xKV")
 * at the shapes the cache launches them with. Besides the key (D, and the
 * ranks RK, RV), a shape comes from the model the head dim stands for:
 * d = 64 is SmolLM2 (3 KV heads, 9 query heads), d = 128 Llama-3.1-8B
 * (8 KV heads, 32 query heads); prompt lengths are kept small enough
 * that a C reference in doubles takes seconds, not minutes. */
#include "problem_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SPLITS 128 /* XKV_MAX_SPLITS: the partials' row stride */

typedef struct {
  int64_t D, Hkv, G, L; /* head dim, KV heads, GQA group, prompt length */
} model_shape;

static model_shape shape_of(int64_t D) {
  return D >= 128 ? (model_shape){D, 8, 4, 1024} : (model_shape){D, 3, 3, 2048};
}

/* The splits the cache cuts T tokens into (xkv_cache_nsplits): enough
 * programs to fill the device twice, at least 256 tokens each. */
static int64_t nsplits(const xk_problem_key *k, const model_shape *m,
                       int64_t T) {
  int64_t progs = m->Hkv * ((m->G + 7) / 8);
  int64_t units = k->units > 0 ? k->units : 1;
  int64_t n = (2 * units + progs - 1) / progs, most = (T + 255) / 256;
  n = n < most ? n : most;
  n = n < 64 ? n : 64;
  return n > 0 ? n : 1;
}

static int need(const xk_problem_key *k, const char *name, int64_t *v,
                xk_diag *d) {
  *v = xk_pkey(k, name, 0);
  return *v > 0 ? 0 : xk_diag_set(d, "%s needs key %s", k->kernel, name);
}

/* A factor's scale: keeps rows of A B near unit size for any rank. */
static float factor_scale(int64_t r) {
  int b = 0;
  while ((1LL << (2 * (b + 1))) <= r)
    b++;
  return 1.0f / (float)(1 << b);
}

static double rope_sign(int64_t d) {
  return d & 1 ? 1.0 : -1.0;
}

/* Rows n of A [., R] B [R, D] (arguments a, b; B at row offset b0) into
 * out [D]. */
static void lowrank_row(const xk_problem *p, int a, int b, size_t b0, int64_t R,
                        int64_t D, int64_t n, double *out) {
  for (int64_t j = 0; j < D; j++)
    out[j] = 0;
  for (int64_t r = 0; r < R; r++) {
    double x = xk_pget(p, a, (size_t)(n * R + r));
    for (int64_t j = 0; j < D; j++)
      out[j] += x * xk_pget(p, b, b0 + (size_t)(r * D + j));
  }
}

/* k [D] rotated in place by the cos/sin row at table row `row`. */
static void rope_row(const xk_problem *p, int cos_i, int sin_i, int64_t row,
                     int64_t D, double *k) {
  double t[512];
  for (int64_t j = 0; j < D; j++) {
    size_t cs = (size_t)(row * (D / 2) + j / 2);
    t[j] = k[j] * xk_pget(p, cos_i, cs) +
           k[j ^ 1] * xk_pget(p, sin_i, cs) * rope_sign(j);
  }
  memcpy(k, t, (size_t)D * sizeof *k);
}

/* The merged attention out [Hq, D] of split partials O [Hq, ldo, D],
 * M, Lsum [Hq, ldo] (dims: Hq, D, NS, ldo, and the argument indices of O,
 * M, Lsum); an empty split (max -inf) weighs 0. */
static void merge_partials(const xk_problem *p, double *out) {
  int64_t Hq = p->dims[0], D = p->dims[1], NS = p->dims[2], ldo = p->dims[3];
  int io = (int)p->dims[4], im = (int)p->dims[5], il = (int)p->dims[6];
  for (int64_t h = 0; h < Hq; h++) {
    double m = -INFINITY, l = 0;
    for (int64_t s = 0; s < NS; s++) {
      double ms = xk_pget(p, im, (size_t)(h * ldo + s));
      m = isnan(ms) ? NAN : fmax(m, ms);
    }
    for (int64_t j = 0; j < D; j++)
      out[h * D + j] = 0;
    for (int64_t s = 0; s < NS; s++) {
      double ms = xk_pget(p, im, (size_t)(h * ldo + s));
      double w = isinf(ms) && ms < 0 ? 0 : exp(ms - m);
      l += w * xk_pget(p, il, (size_t)(h * ldo + s));
      for (int64_t j = 0; j < D; j++)
        out[h * D + j] += w * xk_pget(p, io, (size_t)((h * ldo + s) * D + j));
    }
    for (int64_t j = 0; j < D; j++)
      out[h * D + j] /= l;
  }
}

/* Split-kernel outputs O, M, Lsum at arguments io.. io+2, checked merged. */
static void partial_outputs(xk_problem *p, const model_shape *m, int io,
                            int64_t ns) {
  int64_t Hq = m->Hkv * m->G;
  xk_pout(p, io, (size_t)(Hq * MAX_SPLITS * m->D), XKV_F32);
  xk_pout(p, io + 1, (size_t)(Hq * MAX_SPLITS), XKV_F32);
  xk_pout(p, io + 2, (size_t)(Hq * MAX_SPLITS), XKV_F32);
  int64_t dims[] = {Hq, m->D, ns, MAX_SPLITS, io, io + 1, io + 2};
  memcpy(p->dims, dims, sizeof dims);
  p->view = merge_partials;
  p->out_elems = (size_t)(Hq * m->D);
}

/* Softmax attention of query head hq over n tokens: scores s[n] (rewritten
 * as probabilities), values rows v(t) [D] from `value`, into out [D]; the
 * probabilities rounded to dt as the kernels feed them to their dots. */
typedef void (*value_fn)(const xk_problem *p, int64_t h, int64_t t, double *v);

static void attend(const xk_problem *p, double *s, int64_t n, int64_t h,
                   int64_t D, xkv_dtype dt, value_fn value, double *out) {
  double m = -INFINITY, l = 0, v[512];
  for (int64_t t = 0; t < n; t++)
    m = fmax(m, s[t]);
  for (int64_t j = 0; j < D; j++)
    out[j] = 0;
  for (int64_t t = 0; t < n; t++) {
    double e = exp(s[t] - m);
    l += e;
    value(p, h, t, v);
    for (int64_t j = 0; j < D; j++)
      out[j] += xk_pround(dt, e) * v[j];
  }
  for (int64_t j = 0; j < D; j++)
    out[j] /= l;
}

/* ---- xkv_decode_exact_<dt> ------------------------------------------- */

/* (K, V, Q, O, M, Lsum, T, Hkv, G, NS, ldo, s0) */
static void exact_value(const xk_problem *p, int64_t h, int64_t t, double *v) {
  int64_t D = p->dims[1], Hkv = p->dims[7];
  for (int64_t j = 0; j < D; j++)
    v[j] = xk_pget(p, 1, (size_t)((t * Hkv + h) * D + j));
}

int xk_setup_decode_exact(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t D;
  if (need(k, "D", &D, d))
    return -1;
  model_shape m = shape_of(D);
  int64_t Hq = m.Hkv * m.G, T = m.L;
  uint64_t s = 11;
  xk_pbuf(p, 0, (size_t)(T * m.Hkv * D), k->dt, 1, &s);
  xk_pbuf(p, 1, (size_t)(T * m.Hkv * D), k->dt, 1, &s);
  xk_pbuf(p, 2, (size_t)(Hq * D), XKV_F32, 0.125f, &s);
  int64_t ns = nsplits(k, &m, T);
  partial_outputs(p, &m, 3, ns);
  int64_t ints[] = {T, m.Hkv, m.G, ns, MAX_SPLITS, 0};
  for (int i = 0; i < 6; i++)
    xk_pi32(p, 6 + i, ints[i]);
  p->dims[7] = m.Hkv;
  p->tol = xk_ptol(k->dt);
  p->flops = 4.0 * (double)Hq * T * D;
  double *r = xk_pcheck(p, d) ? NULL : xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  double *sc = malloc((size_t)T * sizeof *sc);
  if (!sc)
    return xk_diag_set(d, "out of memory");
  for (int64_t hq = 0; hq < Hq; hq++) {
    int64_t h = hq / m.G;
    for (int64_t t = 0; t < T; t++) {
      sc[t] = 0;
      for (int64_t j = 0; j < D; j++)
        sc[t] += xk_pget(p, 0, (size_t)((t * m.Hkv + h) * D + j)) *
                 xk_pround(k->dt, xk_pget(p, 2, (size_t)(hq * D + j)));
    }
    attend(p, sc, T, h, D, k->dt, exact_value, r + hq * D);
  }
  free(sc);
  return 0;
}

/* ---- xkv_decode_lr_<dt> ---------------------------------------------- */

/* (Ak, Bk, Av, Bv, Q, cos, sin, S, O, M, Lsum, L, RK, RV, Hkv, G, lds, NS,
 *  ldo, s0); values are rows of A_v B_v[h] */
static void lr_value(const xk_problem *p, int64_t h, int64_t t, double *v) {
  int64_t D = p->dims[1], RV = p->dims[7];
  lowrank_row(p, 2, 3, (size_t)(h * RV * D), RV, D, t, v);
}

int xk_setup_decode_lr(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t D, RK, RV;
  if (need(k, "D", &D, d) || need(k, "RK", &RK, d) || need(k, "RV", &RV, d))
    return -1;
  if (D > 512)
    return xk_diag_set(d, "%s: D %lld is above 512", k->kernel, (long long)D);
  model_shape m = shape_of(D);
  int64_t Hq = m.Hkv * m.G, L = m.L;
  uint64_t s = 12;
  xk_pbuf(p, 0, (size_t)(L * RK), k->dt, factor_scale(RK), &s);
  xk_pbuf(p, 1, (size_t)(m.Hkv * RK * D), k->dt, 1, &s);
  xk_pbuf(p, 2, (size_t)(L * RV), k->dt, factor_scale(RV), &s);
  xk_pbuf(p, 3, (size_t)(m.Hkv * RV * D), k->dt, 1, &s);
  xk_pbuf(p, 4, (size_t)(Hq * D), XKV_F32, 0.125f, &s);
  xk_pbuf(p, 5, (size_t)(L * D / 2), XKV_F32, 1, &s);
  xk_pbuf(p, 6, (size_t)(L * D / 2), XKV_F32, 1, &s);
  xk_pout(p, 7, (size_t)(Hq * L), XKV_F32); /* the scores' scratch */
  int64_t ns = nsplits(k, &m, L);
  partial_outputs(p, &m, 8, ns);
  int64_t ints[] = {L, RK, RV, m.Hkv, m.G, L, ns, MAX_SPLITS, 0};
  for (int i = 0; i < 9; i++)
    xk_pi32(p, 11 + i, ints[i]);
  p->dims[7] = RV;
  p->tol = xk_ptol(k->dt);
  p->flops = 2.0 * (double)L * m.Hkv * D * (RK + 2.0 * m.G) +
             2.0 * (double)L * Hq * RV + 2.0 * (double)Hq * RV * D;
  double *r = xk_pcheck(p, d) ? NULL : xk_pref(p);
  double *sc = malloc((size_t)(m.G * L) * sizeof *sc);
  if (!r || !sc) {
    free(sc);
    return xk_diag_set(d, "out of memory");
  }
  double kr[512];
  for (int64_t h = 0; h < m.Hkv; h++) {
    for (int64_t n = 0; n < L; n++) {
      lowrank_row(p, 0, 1, (size_t)(h * RK * D), RK, D, n, kr);
      rope_row(p, 5, 6, n, D, kr);
      for (int64_t g = 0; g < m.G; g++) {
        double x = 0;
        for (int64_t j = 0; j < D; j++)
          x += kr[j] *
               xk_pround(k->dt, xk_pget(p, 4, (size_t)((h * m.G + g) * D + j)));
        sc[g * L + n] = x;
      }
    }
    for (int64_t g = 0; g < m.G; g++)
      attend(p, sc + g * L, L, h, D, k->dt, lr_value, r + (h * m.G + g) * D);
  }
  free(sc);
  return 0;
}

/* The outputs Ko, Vo one after the other. */
static void two_outputs(const xk_problem *p, double *out) {
  size_t n = p->nelem[p->outs[0]];
  for (size_t j = 0; j < n; j++) {
    out[j] = xk_pget(p, p->outs[0], j);
    out[n + j] = xk_pget(p, p->outs[1], j);
  }
}

/* ---- xkv_sr_rebuild_<dt> --------------------------------------------- */

/* (Ak, Bk, Av, Bv, cos, sin, idx, Ko, Vo, L, RK, RV, Hkv, row0, NJ), CHUNK
 * 8: per KV head `nsel` chunks spread over a prompt of 4 L tokens, each
 * at its own slot; Ko and Vo checked one after the other */
int xk_setup_sr_rebuild(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t D, RK, RV;
  if (need(k, "D", &D, d) || need(k, "RK", &RK, d) || need(k, "RV", &RV, d))
    return -1;
  if (D > 512)
    return xk_diag_set(d, "%s: D %lld is above 512", k->kernel, (long long)D);
  model_shape m = shape_of(D);
  const int64_t chunk = 8, L = 4 * m.L, nsel = D >= 128 ? 64 : 256;
  int64_t NJ = m.Hkv * nsel, rows = nsel * chunk;
  uint64_t s = 13;
  xk_pbuf(p, 0, (size_t)(L * RK), k->dt, factor_scale(RK), &s);
  xk_pbuf(p, 1, (size_t)(m.Hkv * RK * D), k->dt, 1, &s);
  xk_pbuf(p, 2, (size_t)(L * RV), k->dt, factor_scale(RV), &s);
  xk_pbuf(p, 3, (size_t)(m.Hkv * RV * D), k->dt, 1, &s);
  xk_pbuf(p, 4, (size_t)(L * D / 2), XKV_F32, 1, &s);
  xk_pbuf(p, 5, (size_t)(L * D / 2), XKV_F32, 1, &s);
  int32_t *idx = xk_pbuf_i32(p, 6, (size_t)(3 * NJ));
  size_t on = (size_t)(rows * m.Hkv * D);
  xk_pout(p, 7, on, k->dt);
  xk_pout(p, 8, on, k->dt);
  int64_t ints[] = {L, RK, RV, m.Hkv, 0, NJ};
  for (int i = 0; i < 6; i++)
    xk_pi32(p, 9 + i, ints[i]);
  p->tol = xk_ptol(k->dt);
  p->flops = 2.0 * (double)NJ * chunk * D * (2.0 * RK + RV);
  p->out_elems = 2 * on;
  p->view = two_outputs;
  double *r = xk_pcheck(p, d) ? NULL : xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  int64_t stride = L / chunk / nsel;
  for (int64_t j = 0; j < NJ; j++) {
    int64_t h = j / nsel, slot = j % nsel, c = slot * stride + h % stride;
    idx[3 * j] = (int32_t)h;
    idx[3 * j + 1] = (int32_t)c;
    idx[3 * j + 2] = (int32_t)slot;
    for (int64_t i = 0; i < chunk; i++) {
      int64_t n = c * chunk + i;
      double *ko = r + ((slot * chunk + i) * m.Hkv + h) * D;
      lowrank_row(p, 0, 1, (size_t)(h * RK * D), RK, D, n, ko);
      rope_row(p, 4, 5, n, D, ko);
      lowrank_row(p, 2, 3, (size_t)(h * RV * D), RV, D, n, ko + on);
    }
  }
  for (size_t i = 0; i < 2 * on; i++)
    r[i] = xk_pround(k->dt, r[i]);
  return 0;
}

/* ---- xkv_scores_exact_<dt> -------------------------------------------- */

/* (K, Q, S, T, Hkv, G, lds): the landmark scores of a 4 L-token prompt
 * (one landmark per 8-token chunk) */
int xk_setup_scores_exact(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t D;
  if (need(k, "D", &D, d))
    return -1;
  model_shape m = shape_of(D);
  int64_t Hq = m.Hkv * m.G, T = m.L / 2;
  uint64_t s = 14;
  xk_pbuf(p, 0, (size_t)(T * m.Hkv * D), k->dt, 1, &s);
  xk_pbuf(p, 1, (size_t)(Hq * D), XKV_F32, 0.125f, &s);
  xk_pout(p, 2, (size_t)(Hq * T), XKV_F32);
  int64_t ints[] = {T, m.Hkv, m.G, T};
  for (int i = 0; i < 4; i++)
    xk_pi32(p, 3 + i, ints[i]);
  p->tol = 1e-4;
  p->flops = 2.0 * (double)Hq * T * D;
  double *r = xk_pcheck(p, d) ? NULL : xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  for (int64_t hq = 0; hq < Hq; hq++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t j = 0; j < D; j++)
        r[hq * T + t] +=
            xk_pget(p, 1, (size_t)(hq * D + j)) *
            xk_pget(p, 0, (size_t)((t * m.Hkv + hq / m.G) * D + j));
  return 0;
}

/* ---- xkv_decode_combine ------------------------------------------------ */

/* (O, M, Lsum, Out, Hq, NS, ldo) */
int xk_setup_combine(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t D;
  if (need(k, "D", &D, d))
    return -1;
  model_shape m = shape_of(D);
  int64_t Hq = m.Hkv * m.G, n = Hq * MAX_SPLITS;
  uint64_t s = 15;
  xk_pbuf(p, 0, (size_t)(n * D), XKV_F32, 1, &s);
  xk_pbuf(p, 1, (size_t)n, XKV_F32, 4, &s);
  float *l = xk_pbuf(p, 2, (size_t)n, XKV_F32, 1, &s);
  for (int64_t i = 0; l && i < n; i++)
    l[i] = 1.0f + fabsf(l[i]);
  xk_pout(p, 3, (size_t)(Hq * D), XKV_F32);
  int64_t ns = nsplits(k, &m, m.L);
  int64_t ints[] = {Hq, ns, MAX_SPLITS};
  for (int i = 0; i < 3; i++)
    xk_pi32(p, 4 + i, ints[i]);
  p->tol = 1e-5;
  if (xk_pcheck(p, d))
    return -1;
  /* the reference: the inputs as split partials, merged */
  int64_t dims[] = {Hq, D, ns, MAX_SPLITS, 0, 1, 2};
  memcpy(p->dims, dims, sizeof dims);
  p->out_elems = (size_t)(Hq * D);
  if (!xk_pref(p))
    return xk_diag_set(d, "out of memory");
  merge_partials(p, p->c_ref);
  return 0;
}

/* ---- xkv_rows_<dt> ------------------------------------------------------ */

/* (X, Out, cos, sin, T, H, pos0, half, rot, scale): appended keys of 128
 * tokens, half-style pairs, rotated at 16.., scaled */
int xk_setup_rows(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t D;
  if (need(k, "D", &D, d))
    return -1;
  model_shape m = shape_of(D);
  const int64_t T = 128, pos0 = 16, H = m.Hkv;
  const float scale = 0.125f;
  uint64_t s = 16;
  xk_pbuf(p, 0, (size_t)(T * H * D), XKV_F32, 1, &s);
  xk_pout(p, 1, (size_t)(T * H * D), k->dt);
  xk_pbuf(p, 2, (size_t)((pos0 + T) * D / 2), XKV_F32, 1, &s);
  xk_pbuf(p, 3, (size_t)((pos0 + T) * D / 2), XKV_F32, 1, &s);
  int64_t ints[] = {T, H, pos0, 1, 1};
  for (int i = 0; i < 5; i++)
    xk_pi32(p, 4 + i, ints[i]);
  xk_pf32(p, 9, scale);
  p->tol = xk_ptol(k->dt);
  double *r = xk_pcheck(p, d) ? NULL : xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  for (int64_t t = 0; t < T; t++)
    for (int64_t h = 0; h < H; h++) {
      double x[512];
      size_t row = (size_t)((t * H + h) * D);
      for (int64_t j = 0; j < D; j++) /* half pairs made adjacent */
        x[j] = xk_pget(p, 0, row + (size_t)(j / 2 + (j % 2) * (D / 2)));
      rope_row(p, 2, 3, pos0 + t, D, x);
      for (int64_t j = 0; j < D; j++)
        r[row + (size_t)j] = xk_pround(k->dt, x[j] * scale);
    }
  return 0;
}

/* ---- rebuild_k ------------------------------------------------------------
 */

/* (A, B, pos, cos, sin, K, L): R and D are constexprs (the key); 2048
 * tokens at scattered positions */
int xk_setup_rebuild_k(xk_problem *p, const xk_problem_key *k, xk_diag *d) {
  int64_t R, D;
  if (need(k, "R", &R, d) || need(k, "D", &D, d))
    return -1;
  if (D > 512)
    return xk_diag_set(d, "%s: D %lld is above 512", k->kernel, (long long)D);
  const int64_t L = 2048;
  uint64_t s = 17;
  xk_pbuf(p, 0, (size_t)(L * R), XKV_F16, factor_scale(R), &s);
  xk_pbuf(p, 1, (size_t)(R * D), XKV_F16, 1, &s);
  int32_t *pos = xk_pbuf_i32(p, 2, (size_t)L);
  xk_pbuf(p, 3, (size_t)(L * D / 2), XKV_F32, 1, &s);
  xk_pbuf(p, 4, (size_t)(L * D / 2), XKV_F32, 1, &s);
  xk_pout(p, 5, (size_t)(L * D), XKV_F16);
  xk_pi32(p, 6, L);
  p->tol = xk_ptol(XKV_F16);
  p->flops = 4.0 * (double)L * R * D;
  double *r = xk_pcheck(p, d) ? NULL : xk_pref(p);
  if (!r)
    return xk_diag_set(d, "out of memory");
  for (int64_t n = 0; n < L; n++) {
    pos[n] = (int32_t)((n * 7) % L);
    double *kr = r + n * D;
    lowrank_row(p, 0, 1, 0, R, D, n, kr);
    rope_row(p, 3, 4, pos[n], D, kr);
    for (int64_t j = 0; j < D; j++)
      kr[j] = xk_pround(XKV_F16, kr[j]);
  }
  return 0;
}
