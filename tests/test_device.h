/* The device the xKV cache tests run on: XKV_TEST_DEVICE (default "cpu");
 * ctest runs them again with "cuda" under the label gpu, where a machine
 * without a GPU skips (exit 77) rather than fails. */
#ifndef XK_TEST_DEVICE_H
#define XK_TEST_DEVICE_H

#include "xkv.h"

#include <stdio.h>
#include <stdlib.h>

static inline const char *xk_test_device(void) {
  const char *d = getenv("XKV_TEST_DEVICE");
  return d && *d ? d : "cpu";
}

/* 0 when the test device opens; else prints why and returns 77 */
static inline int xk_test_device_skip(const char *test) {
  xkv_context *ctx;
  xkv_status s = xkv_open(&ctx, xk_test_device());
  if (s)
    printf("SKIP %s on %s: %s\n", test, xk_test_device(),
           ctx ? xkv_last_error(ctx) : "no memory");
  xkv_close(ctx);
  return s ? 77 : 0;
}

#endif
