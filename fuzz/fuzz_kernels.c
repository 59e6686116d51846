/* libFuzzer: a kernel file through the DSL loader, then every kernel it
 * declares traced with its default constexprs (fuzz/CMakeLists.txt lowers
 * the Lua instruction and memory caps so that each input stays fast). */
#include "dsl.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  xk_diag d = {0};
  xk_dsl *dsl;
  if (xk_dsl_open_buffer("fuzz.xk", (const char *)data, size, &dsl, &d))
    return 0;
  for (int i = 0; i < xk_dsl_nkernels(dsl); i++) {
    xk_func *f;
    if (!xk_dsl_trace(dsl, i, NULL, 0, &f, &d))
      xk_func_free(f);
  }
  xk_dsl_close(dsl);
  return 0;
}
