/* What a kernel's entry in problem.c's table is written with: the key
 * values it is set up at, buffer and scalar argument helpers, and the
 * setups of each family (problem_gemm.c, problem_xkv.c). */
#ifndef XK_TUNE_PROBLEM_INT_H
#define XK_TUNE_PROBLEM_INT_H

#include "problem.h"

/* Above this many multiply-adds a C reference takes longer than tuning. */
#define XK_C_REF_MAX_MACS (1LL << 27)

typedef struct {
  const char *kernel;
  const char *const *names;
  const int64_t *vals;
  int n;
  xkv_dtype dt; /* from the kernel's dtype suffix (f32 without one) */
  int units;    /* the device's SMs or CPU pool threads */
} xk_problem_key;

/* Sets up p (arguments, outputs, tolerance, reference); error in d. */
typedef int (*xk_problem_setup)(xk_problem *p, const xk_problem_key *k,
                                xk_diag *d);

/* The key's value, or dflt when the key does not name it. */
int64_t xk_pkey(const xk_problem_key *k, const char *name, int64_t dflt);
/* Argument i: n elements of dtype dt, random multiples of 1/64 in
 * [-scale, scale] (exact in f16 and bf16 for a power-of-two scale);
 * NULL out of memory. */
void *xk_pbuf(xk_problem *p, int i, size_t n, xkv_dtype dt, float scale,
              uint64_t *seed);
/* Argument i: an i32 buffer holding v[0..n). */
int32_t *xk_pbuf_i32(xk_problem *p, int i, size_t n);
/* Argument i as an output of n elements of dtype dt (poisoned). */
void *xk_pout(xk_problem *p, int i, size_t n, xkv_dtype dt);
void xk_pi32(xk_problem *p, int i, int64_t v);
void xk_pf32(xk_problem *p, int i, float v);
/* Element j of argument i's buffer as a double. */
double xk_pget(const xk_problem *p, int i, size_t j);
/* x rounded to dtype dt (what a store or :to(dt) keeps). */
double xk_pround(xkv_dtype dt, double x);
/* The reference: p->out_elems zeros (by default the first output's
 * size); NULL out of memory. */
double *xk_pref(xk_problem *p);
/* tolerance for results stored in dt */
double xk_ptol(xkv_dtype dt);
/* 0 when every allocation so far succeeded, else "out of memory" in d. */
int xk_pcheck(const xk_problem *p, xk_diag *d);

int xk_setup_gemm(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_gemm_st(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_gemm_sk(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_vadd(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_softmax(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_sumsq(xk_problem *p, const xk_problem_key *k, xk_diag *d);

int xk_setup_rows(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_decode_lr(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_decode_exact(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_sr_rebuild(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_scores_exact(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_combine(xk_problem *p, const xk_problem_key *k, xk_diag *d);
int xk_setup_rebuild_k(xk_problem *p, const xk_problem_key *k, xk_diag *d);

#endif
