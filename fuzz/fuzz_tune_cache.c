/* libFuzzer: a tune cache (xkv-tune-1 JSON) through the runtime's reader,
 * then what the runtime does with a parsed one: each record's winner
 * looked up at its own key and at a key off the grid (nearest bucket in
 * log space), under its own fingerprint and a prefix of it, and its key
 * grids asked for. A bad file must be an error message, never a crash. */
#include "tune_cache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void probe(const rt_tune_cache *c, const rt_tune_record *r) {
  const char *names[RT_TUNE_MAX_KEY];
  int64_t vals[RT_TUNE_MAX_KEY], off[RT_TUNE_MAX_KEY];
  int n = r->nkey < RT_TUNE_MAX_KEY ? r->nkey : RT_TUNE_MAX_KEY, exact;
  for (int i = 0; i < n; i++) {
    names[i] = r->key[i].name;
    vals[i] = r->key[i].value;
    off[i] = r->key[i].value / 2 + 1; /* no overflow at INT64_MAX */
    rt_tune_grid_of(c, r->kernel, names[i]);
  }
  rt_tune_lookup(c, r->kernel, r->fingerprint, names, vals, n, &exact);
  rt_tune_lookup(c, r->kernel, r->fingerprint, names, off, n, &exact);
  char prefix[64];
  const char *colon = strchr(r->fingerprint, ':');
  size_t len = colon ? (size_t)(colon - r->fingerprint) + 1 : 0;
  if (len < sizeof prefix) {
    memcpy(prefix, r->fingerprint, len);
    prefix[len] = 0;
    rt_tune_lookup(c, r->kernel, prefix, names, off, n, &exact);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[512], *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = 0; /* as rt_tune_read hands it over */
  rt_tune_cache *c = rt_tune_parse(text, size, "fuzz", err, sizeof err);
  free(text);
  if (!c)
    return 0;
  for (int i = 0; i < c->n; i++)
    probe(c, &c->r[i]);
  rt_tune_free(c);
  return 0;
}
