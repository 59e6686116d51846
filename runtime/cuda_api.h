/* The CUDA driver API through dlopen: the runtime never links libcuda, so
 * it loads (and runs on the CPU) on machines without a driver. */
#ifndef XKV_CUDA_API_H
#define XKV_CUDA_API_H

#include <cuda.h>

/* cuda.h maps many names to versioned symbols (cuMemAlloc -> cuMemAlloc_v2)
 * with macros; the table's members go through the same macros, so
 * api->cuMemAlloc(...) calls the versioned entry point. */
#define RT_CUDA_FUNCS(X)                                                       \
  X(cuInit)                                                                    \
  X(cuDriverGetVersion)                                                        \
  X(cuGetErrorName)                                                            \
  X(cuGetErrorString)                                                          \
  X(cuDeviceGetCount)                                                          \
  X(cuDeviceGet)                                                               \
  X(cuDeviceGetName)                                                           \
  X(cuDeviceGetAttribute)                                                      \
  X(cuDeviceTotalMem)                                                          \
  X(cuDevicePrimaryCtxRetain)                                                  \
  X(cuDevicePrimaryCtxRelease)                                                 \
  X(cuCtxGetCurrent)                                                           \
  X(cuCtxSetCurrent)                                                           \
  X(cuCtxSynchronize)                                                          \
  X(cuMemGetInfo)                                                              \
  X(cuMemAlloc)                                                                \
  X(cuMemFree)                                                                 \
  X(cuMemcpyHtoD)                                                              \
  X(cuMemcpyDtoH)                                                              \
  X(cuMemcpyDtoD)                                                              \
  X(cuMemcpyHtoDAsync)                                                         \
  X(cuMemcpyDtoHAsync)                                                         \
  X(cuMemcpyDtoDAsync)                                                         \
  X(cuMemsetD8)                                                                \
  X(cuMemsetD8Async)                                                           \
  X(cuStreamCreate)                                                            \
  X(cuStreamDestroy)                                                           \
  X(cuStreamSynchronize)                                                       \
  X(cuEventCreate)                                                             \
  X(cuEventDestroy)                                                            \
  X(cuEventRecord)                                                             \
  X(cuEventSynchronize)                                                        \
  X(cuEventElapsedTime)                                                        \
  X(cuModuleLoadData)                                                          \
  X(cuModuleLoadDataEx)                                                        \
  X(cuModuleUnload)                                                            \
  X(cuModuleGetFunction)                                                       \
  X(cuFuncSetAttribute)                                                        \
  X(cuLaunchKernel)

typedef struct {
  void *dl;
#define RT_CUDA_MEMBER(name) __typeof__(&name) name;
  RT_CUDA_FUNCS(RT_CUDA_MEMBER)
#undef RT_CUDA_MEMBER
} rt_cuda_api;

/* Loads XKV_LIBCUDA or libcuda.so.1. On failure returns -1 with a sentence
 * in err ("no CUDA driver: ..."). */
int rt_cuda_api_load(rt_cuda_api *api, char *err, size_t errlen);
void rt_cuda_api_unload(rt_cuda_api *api);
/* "CUDA_ERROR_OUT_OF_MEMORY (out of memory)", also when the driver cannot
 * name the code (the stub library). */
const char *rt_cuda_error_text(const rt_cuda_api *api, CUresult r, char *buf,
                               size_t n);

#endif
