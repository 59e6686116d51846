/* The tune cache (format "xkv-tune-1", written by autotune/): records of
 * (kernel, key bucket, config) with their times, and each kernel's key
 * grid. Parsed here without LLVM; shared by the runtime's dispatch and by
 * xkv-tune and xkvgen, which merge into and select from the same records. */
#ifndef XKV_TUNE_CACHE_H
#define XKV_TUNE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define RT_TUNE_FORMAT "xkv-tune-1"
#define RT_TUNE_MAX_KEY 8
#define RT_TUNE_MAX_CONF 16

typedef struct {
  char *name;
  int64_t value;
} rt_tune_pair;

/* One measured (or modeled, or refused) configuration at one key bucket. */
typedef struct {
  char *kernel, *ir_hash, *compiler, *fingerprint;
  char *source; /* "measured" or "model" */
  char *status; /* "ok", "infeasible", "compile_failed", "run_failed",
                   "wrong" */
  char *why;    /* for the statuses other than ok; may be NULL */
  rt_tune_pair key[RT_TUNE_MAX_KEY];
  int nkey;
  rt_tune_pair conf[RT_TUNE_MAX_CONF];
  int nconf;
  double time_us, spread; /* median, (p90 - p10) / median; ok only */
  int winner;             /* the chosen config of its (kernel, key) */
  double margin;          /* winner: runner-up time / winner time - 1 */
} rt_tune_record;

typedef struct {
  char *kernel, *name;
  int64_t *vals;
  int n, round;
} rt_tune_grid;

typedef struct rt_tune_cache {
  rt_tune_record *r;
  int n, cap;
  rt_tune_grid *g;
  int ng, capg;
  char **reported; /* misses already reported, "kernel key..." */
  int nreported;
  char *misses_path; /* where misses are appended, or NULL */
} rt_tune_cache;

/* Parses the file text; returns NULL with "why" in err (which names
 * `where`) when the text is not a valid tune cache of this format. */
rt_tune_cache *rt_tune_parse(const char *text, size_t len, const char *where,
                             char *err, size_t errlen);
/* Reads and parses a file; a missing file is an error too. */
rt_tune_cache *rt_tune_read(const char *path, char *err, size_t errlen);
void rt_tune_free(rt_tune_cache *c);

/* The key grid of kernel's key `name`, or NULL. */
const rt_tune_grid *rt_tune_grid_of(const rt_tune_cache *c, const char *kernel,
                                    const char *name);

/* The winner for kernel at key values vals (named as in key names, n of
 * them) among records with the given fingerprint (one ending in ':'
 * matches as a prefix, e.g. "model:sm_90:"): the exact bucket, else
 * the nearest by summed log-distance (ties: the earlier record). NULL when
 * none. *exact says which. */
const rt_tune_record *rt_tune_lookup(const rt_tune_cache *c, const char *kernel,
                                     const char *fingerprint,
                                     const char *const *names,
                                     const int64_t *vals, int n, int *exact);

/* "cpu:x86_64:avx2,avx512f,fma:cores=8": what CPU records are keyed on.
 * `cores` is how many threads the CPU device runs. */
void rt_tune_cpu_fingerprint(int cores, char *buf, size_t n);

/* Adds a copy of r (the strings are duplicated). 0, or -1 out of memory. */
int rt_tune_add(rt_tune_cache *c, const rt_tune_record *r);
int rt_tune_add_grid(rt_tune_cache *c, const char *kernel, const char *name,
                     const int64_t *vals, int n, int round);

#endif
