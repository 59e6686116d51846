/* Built while the runtime does not define xkv_cache_* yet: the xKV cache
 * reports why it is unavailable instead of failing to link. */
#include "kvcache.h"

int eng_kv_xkv_create(const eng_config *c, int max_tokens,
                      const eng_xkv_opts *o, eng_kv **out, eng_err *err) {
  *out = NULL;
  return eng_fail(err, "xKV cache unavailable: this build's runtime does not "
                       "implement xkv_cache_* yet (use --cache exact)");
}

const char *eng_kv_xkv_device(const eng_kv *kv) {
  return "";
}
