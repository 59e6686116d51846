/* The device-neutral test case every kernel test shares: host buffers with
 * guard bytes, the launch layout (cuLaunchKernel-style args[] and a grid),
 * plain C references for one or more outputs, and the check against them.
 * A case file (kernel_cases.c, tutorial_cases.c) builds cases for its
 * kernels with the helpers below. */
#ifndef XK_CASE_UTIL_H
#define XK_CASE_UTIL_H

#include "lower.h"

#include <stddef.h>
#include <stdint.h>

#define XK_CASE_MAXARGS 16
#define XK_CASE_MAXOUT 3
/* bytes after every buffer that a correct kernel never writes */
#define XK_CASE_GUARD 64

typedef struct {
  int arg;     /* argument index of the output buffer */
  int dtype;   /* XK_F32, XK_F16 or XK_I32 (integers compare exactly) */
  double *ref; /* reference output, one per output element */
  int64_t n;
  double tol; /* max |out - ref| / max |ref| allowed */
} xk_case_out;

typedef struct {
  char kernel[32];
  char desc[128]; /* e.g. "gemm_f32 M=37 N=29 K=45 BLOCK_M=32 ..." */
  int nargs;
  void *args[XK_CASE_MAXARGS];   /* args[i] -> argument i's value */
  void *buf[XK_CASE_MAXARGS];    /* host buffer of pointer argument i */
  size_t bytes[XK_CASE_MAXARGS]; /* its size (without the guard) */
  int32_t ival[XK_CASE_MAXARGS]; /* value of i32 argument i */
  float fval[XK_CASE_MAXARGS];   /* value of f32 argument i */
  void *ptrval[XK_CASE_MAXARGS]; /* storage args[i] points at for pointers */
  int32_t grid[3];
  int nout;
  xk_case_out out[XK_CASE_MAXOUT];
} xk_case;

/* Fills a case for f's specialization: problem `size`, inputs drawn from
 * *rs. 0 or -1 + d. */
typedef int (*xk_case_setup_fn)(xk_case *c, const xk_func *f, int size,
                                uint64_t *rs, xk_diag *d);
typedef struct {
  const char *kernel;
  int nsizes;
  xk_case_setup_fn setup;
} xk_case_def;

/* The entry of defs (ended by a NULL kernel) for kernel, or NULL. */
const xk_case_def *xk_case_find(const xk_case_def *defs, const char *kernel);
/* Runs def->setup with a seed derived from size_idx, checks that every
 * argument was given, and appends the constexprs to desc. */
int xk_case_setup_def(const xk_case_def *def, const xk_func *f, int size_idx,
                      xk_case *c, xk_diag *d);

/* Runs every program of the grid in order on this thread. */
void xk_case_run_host(xk_case *c, xk_host_fn fn);
/* 0 when every output is within tolerance; the worst output's error is
 * returned either way. Also fails when the kernel wrote past the end of any
 * buffer. */
int xk_case_check(xk_case *c, double *err, xk_diag *d);
void xk_case_free(xk_case *c);

/* ---- for case files ---- */

/* uniform in [0, 1), splitmix64: deterministic across platforms */
double xk_case_urand(uint64_t *s);
int xk_case_const(const xk_func *f, const char *name, int64_t *v, xk_diag *d);
/* Pointer argument `name`: a buffer of n elements of dtype elem, or NULL. */
void *xk_case_buf(xk_case *c, const xk_func *f, const char *name, int elem,
                  size_t n, xk_diag *d);
int xk_case_i32(xk_case *c, const xk_func *f, const char *name, int32_t v,
                xk_diag *d);
int xk_case_f32(xk_case *c, const xk_func *f, const char *name, float v,
                xk_diag *d);
/* Output buffer `name` of n elements, filled with NaN (0xff bytes) so that
 * unwritten elements show; *ref gets its zeroed reference. */
void *xk_case_output(xk_case *c, const xk_func *f, const char *name, int dtype,
                     int64_t n, double tol, double **ref, xk_diag *d);
void xk_case_fill_f32(float *p, size_t n, double lo, double hi, uint64_t *s);
/* f16 inputs; a reference reads them back, so it sees the rounded values */
void xk_case_fill_f16(uint16_t *p, size_t n, double lo, double hi, uint64_t *s);
int xk_case_cdiv(int64_t a, int64_t b);

/* IEEE half <-> float, round to nearest even. */
uint16_t xk_f32_to_f16(float f);
float xk_f16_to_f32(uint16_t h);
/* bfloat16, round to nearest even; NaN stays NaN */
uint16_t xk_f32_to_bf16(float f);
float xk_bf16_to_f32(uint16_t h);

/* Row softmax of x ([m] rows of n, ldx apart) into ref ([m, n]), in f64. */
void xk_case_ref_softmax(const float *x, int32_t m, int32_t n, int32_t ldx,
                         double *ref);

#endif
