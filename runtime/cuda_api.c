#include "cuda_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RT_STR2(x) #x
#define RT_STR(x) RT_STR2(x) /* expands versioning macros first */

int rt_cuda_api_load(rt_cuda_api *api, char *err, size_t errlen) {
  memset(api, 0, sizeof *api);
  const char *path = getenv("XKV_LIBCUDA");
  if (!path || !*path)
    path = "libcuda.so.1";
  api->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!api->dl) {
    const char *why = dlerror();
    snprintf(err, errlen, "no CUDA driver: cannot load %s (%s)", path,
             why ? why : "unknown reason");
    return -1;
  }
#define RT_CUDA_LOAD(name)                                                     \
  *(void **)&api->name = dlsym(api->dl, RT_STR(name));                         \
  if (!api->name) {                                                            \
    snprintf(err, errlen,                                                      \
             "CUDA driver %s lacks %s: the driver is older than the CUDA "     \
             "%d headers xkv was built with",                                  \
             path, RT_STR(name), CUDA_VERSION);                                \
    rt_cuda_api_unload(api);                                                   \
    return -1;                                                                 \
  }
  RT_CUDA_FUNCS(RT_CUDA_LOAD)
#undef RT_CUDA_LOAD
  return 0;
}

void rt_cuda_api_unload(rt_cuda_api *api) {
  if (api->dl)
    dlclose(api->dl);
  memset(api, 0, sizeof *api);
}

/* Names for the codes a caller is most likely to meet when the driver
 * cannot name them itself (the toolkit stub answers every call with 34). */
static const char *fallback_name(CUresult r) {
  switch (r) {
  case CUDA_ERROR_INVALID_VALUE:
    return "CUDA_ERROR_INVALID_VALUE";
  case CUDA_ERROR_OUT_OF_MEMORY:
    return "CUDA_ERROR_OUT_OF_MEMORY";
  case CUDA_ERROR_NOT_INITIALIZED:
    return "CUDA_ERROR_NOT_INITIALIZED";
  case CUDA_ERROR_STUB_LIBRARY:
    return "CUDA_ERROR_STUB_LIBRARY";
  case CUDA_ERROR_NO_DEVICE:
    return "CUDA_ERROR_NO_DEVICE";
  case CUDA_ERROR_INVALID_DEVICE:
    return "CUDA_ERROR_INVALID_DEVICE";
  case CUDA_ERROR_INVALID_PTX:
    return "CUDA_ERROR_INVALID_PTX";
  case CUDA_ERROR_NOT_FOUND:
    return "CUDA_ERROR_NOT_FOUND";
  case CUDA_ERROR_ILLEGAL_ADDRESS:
    return "CUDA_ERROR_ILLEGAL_ADDRESS";
  case CUDA_ERROR_LAUNCH_FAILED:
    return "CUDA_ERROR_LAUNCH_FAILED";
  case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES:
    return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
  default:
    return NULL;
  }
}

const char *rt_cuda_error_text(const rt_cuda_api *api, CUresult r, char *buf,
                               size_t n) {
  const char *name = NULL, *desc = NULL;
  if (api && api->cuGetErrorName && api->cuGetErrorName(r, &name))
    name = NULL;
  if (api && api->cuGetErrorString && api->cuGetErrorString(r, &desc))
    desc = NULL;
  if (!name)
    name = fallback_name(r);
  if (name && desc)
    snprintf(buf, n, "%s (%s)", name, desc);
  else if (name)
    snprintf(buf, n, "%s", name);
  else
    snprintf(buf, n, "CUDA error %d", (int)r);
  return buf;
}
