/* Hand-written kernels following the host ABI (codegen/lower.h), standing
 * in for xkvgen --target host output in runtime tests. Their manifest is
 * tests/data/rt_host/manifest.json. */
#ifndef RT_KERNELS_H
#define RT_KERNELS_H

#include <stdint.h>

#define RT_HOST_KERNELS(X)                                                     \
  X(rt_vadd_b256)                                                              \
  X(rt_vadd_b64)                                                               \
  X(rt_vadd_b256_spec)                                                         \
  X(rt_vadd_b256_w8)                                                           \
  X(rt_pid3)                                                                   \
  X(rt_axpy)                                                                   \
  X(rt_empty)

#define RT_DECL(name)                                                          \
  int32_t name(void **args, const int32_t *pid, const int32_t *nprog);
RT_HOST_KERNELS(RT_DECL)
#undef RT_DECL

/* How often the specialized vadd ran (tests check the dispatcher). */
extern int rt_spec_calls;

#endif
