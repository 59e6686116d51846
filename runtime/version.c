/* The library's version, compiled in from xkv.h's macros. */
#include "xkv.h"

const char *xkv_version(void) {
  return XKV_VERSION;
}
