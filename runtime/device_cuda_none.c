/* Built when cuda.h was not found: the CUDA device reports why. */
#include "internal.h"

xkv_status rt_cuda_open(xkv_context *ctx, int ordinal) {
  return rt_err(ctx, XKV_ERR_NO_DRIVER,
                "no CUDA driver support: xkv was built without cuda.h");
}
