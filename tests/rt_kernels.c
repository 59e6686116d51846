#include "rt_kernels.h"

int rt_spec_calls;

static int32_t vadd(void **args, const int32_t *pid, int block) {
  const float *x = *(float **)args[0], *y = *(float **)args[1];
  float *z = *(float **)args[2];
  int32_t n = *(int32_t *)args[3];
  for (int64_t i = (int64_t)pid[0] * block; i < (int64_t)(pid[0] + 1) * block;
       i++)
    if (i < n)
      z[i] = x[i] + y[i];
  return 0;
}

int32_t rt_vadd_b256(void **args, const int32_t *pid, const int32_t *nprog) {
  return vadd(args, pid, 256);
}

int32_t rt_vadd_b64(void **args, const int32_t *pid, const int32_t *nprog) {
  return vadd(args, pid, 64);
}

int32_t rt_vadd_b256_w8(void **args, const int32_t *pid, const int32_t *nprog) {
  return vadd(args, pid, 256);
}

/* Runs only when N % 16 == 0 and Z is 16-byte aligned: no bounds check
 * inside whole 16-element chunks. */
int32_t rt_vadd_b256_spec(void **args, const int32_t *pid,
                          const int32_t *nprog) {
  if (pid[0] == 0)
    __atomic_fetch_add(&rt_spec_calls, 1, __ATOMIC_RELAXED);
  return vadd(args, pid, 256);
}

/* out[linear program id] = x + 1000 y + 1000000 z, nprog checked. */
int32_t rt_pid3(void **args, const int32_t *pid, const int32_t *nprog) {
  int32_t *out = *(int32_t **)args[0];
  int32_t gx = *(int32_t *)args[1], gy = *(int32_t *)args[2],
          gz = *(int32_t *)args[3];
  int ok = nprog[0] == gx && nprog[1] == gy && nprog[2] == gz;
  int64_t i = ((int64_t)pid[2] * gy + pid[1]) * gx + pid[0];
  out[i] = ok ? pid[0] + 1000 * pid[1] + 1000000 * pid[2] : -1;
  return 0;
}

/* Y[i] = a * X[i] + Y[i] for i < N (i64), one program per 128 elements. */
int32_t rt_axpy(void **args, const int32_t *pid, const int32_t *nprog) {
  float a = *(float *)args[0];
  const float *x = *(float **)args[1];
  float *y = *(float **)args[2];
  int64_t n = *(int64_t *)args[3];
  for (int64_t i = (int64_t)pid[0] * 128;
       i < (int64_t)(pid[0] + 1) * 128 && i < n; i++)
    y[i] = a * x[i] + y[i];
  return 0;
}

int32_t rt_empty(void **args, const int32_t *pid, const int32_t *nprog) {
  return 0;
}
