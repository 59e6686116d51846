/* Private runtime structures shared by the runtime's files. */
#ifndef XKV_INTERNAL_H
#define XKV_INTERNAL_H

#include "include/xkv.h"
#include "text.h"

#include <stdarg.h>

#define RT_MAX_ARGS 64

/* Argument specializations xkvgen may emit ("spec" in the manifest). */
typedef enum {
  RT_SPEC_NONE,
  RT_SPEC_DIV16,
  RT_SPEC_ONE,
  RT_SPEC_ALIGN16
} rt_spec;

/* A grid rule of a common shape, precompiled at load so that a launch does
 * not parse text: INT, NAME, or cdiv(X, Y) with X, Y each a NAME or INT.
 * Anything else (and any error) goes through xk_grid_eval. */
typedef struct {
  int arg;       /* int argument index, or -1 for the constant */
  int64_t value; /* the constant (a literal or a constexpr) */
} rt_operand;
typedef struct {
  enum { RT_RULE_GENERAL, RT_RULE_VALUE, RT_RULE_CDIV } kind;
  rt_operand a, b;
} rt_rule;

typedef struct rt_variant {
  char *kernel, *symbol, *target, *file, *cubin_file;
  char *ir_hash;      /* what tune records must match; NULL: not checked */
  const char *source; /* owned by the context's source list */
  xkv_const *consts;  /* the integer constexprs */
  int nconsts;
  /* The float and string constexprs, as "ALPHA=0.5 ACT=\"relu\" " (NULL
   * when none). xkv_const carries only integers, so these cannot be asked
   * for by value: they keep configurations apart, and such a variant is
   * reached as a kernel's default or through its integer constexprs. */
  char *other_consts;
  int num_warps, num_stages, threads, shared_bytes, dyn_shared, registers;
  int nargs;
  char **arg_names;
  uint8_t *arg_ptr, *arg_dtype, *arg_spec;
  int nspec;     /* how many arguments are specialized */
  char *grid[3]; /* "none" for each when no_grid */
  int no_grid;   /* the kernel has no grid rule: launches must give one */
  rt_rule rule[3];
  char *signature, *spec_str;
  /* artifacts: embedded ones are borrowed, directory ones are paths */
  xkv_host_fn host_fn;
  const char *ptx;
  const unsigned char *cubin;
  size_t cubin_len;
  char *ptx_path, *cubin_path;
  /* CUDA module cache (per context, since the registry is) */
  void *module, *function;
  struct xkv_kernel *kernel_handle;
} rt_variant;

/* A launchable configuration: variants with the same kernel, constexprs,
 * num_warps and num_stages, differing only in argument specialization,
 * most specialized first (the generic one last). */
struct xkv_kernel {
  rt_variant **v;
  int n, cap;
  /* A handle found with no tuned constexpr fixed while a tune cache is
   * loaded: launches pick the tuned configuration for their key from base's
   * (tune_choose.c), remembering the last key's choice. */
  struct xkv_kernel *base;
  const void *key_rec; /* the record naming the kernel's key, once found */
  struct xkv_kernel *memo;
  int64_t memo_key[8];
  int memo_valid;
};

struct xkv_stream {
  void *h; /* CUstream on CUDA; unused on the CPU */
};

struct xkv_event {
  void *h;  /* CUevent on CUDA */
  double t; /* CPU: seconds at record time */
  int recorded;
};

typedef struct {
  void **key;
  size_t *size;
  size_t cap, n;
} rt_alloc_table;

typedef struct rt_device_ops {
  void (*close)(xkv_context *ctx);
  xkv_status (*info)(xkv_context *ctx, xkv_device_info *out);
  xkv_status (*alloc)(xkv_context *ctx, size_t bytes, void **p);
  xkv_status (*free)(xkv_context *ctx, void *p);
  /* dir: 0 h2d, 1 d2h, 2 d2d */
  xkv_status (*copy)(xkv_context *ctx, void *dst, const void *src, size_t n,
                     int dir, xkv_stream *s);
  xkv_status (*memset)(xkv_context *ctx, void *dst, int byte, size_t n,
                       xkv_stream *s);
  xkv_status (*stream_create)(xkv_context *ctx, xkv_stream *s);
  xkv_status (*stream_destroy)(xkv_context *ctx, xkv_stream *s);
  xkv_status (*stream_sync)(xkv_context *ctx, xkv_stream *s);
  xkv_status (*sync)(xkv_context *ctx);
  xkv_status (*event_create)(xkv_context *ctx, xkv_event *e);
  xkv_status (*event_destroy)(xkv_context *ctx, xkv_event *e);
  xkv_status (*event_record)(xkv_context *ctx, xkv_event *e, xkv_stream *s);
  xkv_status (*event_elapsed)(xkv_context *ctx, xkv_event *a, xkv_event *b,
                              float *ms);
  /* 0 when artifacts for `target` run here, else sets the error. */
  xkv_status (*accept_target)(xkv_context *ctx, const char *target);
  xkv_status (*launch)(xkv_context *ctx, rt_variant *v, const uint32_t g[3],
                       void **params, xkv_stream *s);
  void (*unload)(xkv_context *ctx, rt_variant *v);
} rt_device_ops;

struct xkv_context {
  xkv_device_kind kind;
  const rt_device_ops *ops; /* NULL when opening failed */
  void *dev;                /* the device's private state */
  char note[512];
  char err[1024];
  rt_variant **vars;
  int nvars, capvars;
  struct xkv_kernel **kernels;
  int nkernels, capkernels;
  char **sources; /* one per registry load, for xkv_variant_info.source */
  void **dls;     /* dlopen handles of kernels.so files */
  int nsources;
  rt_alloc_table allocs;
  const char *last_kernel;    /* for naming asynchronous CUDA failures */
  struct rt_tune_cache *tune; /* NULL when none is loaded */
  char tune_fp[256];          /* the device's tune-cache fingerprint */
  struct xkv_kernel **autos;  /* handles with base set, owned here */
  int nautos, capautos;
};

/* error.c: sets ctx->err and returns s. */
xkv_status rt_err(xkv_context *ctx, xkv_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
xkv_status rt_verr(xkv_context *ctx, xkv_status s, const char *fmt, va_list ap);
char *rt_strdup(const char *s);
const char *rt_dtype_name(int dt);
int rt_dtype_parse(const char *s); /* -1 when unknown */

/* memory.c: the allocation table (lets xkv_free reject foreign pointers
 * and xkv_close release what is left). */
int rt_allocs_add(rt_alloc_table *t, void *p, size_t size);
int rt_allocs_remove(rt_alloc_table *t, void *p); /* -1 when absent */
void rt_allocs_free(rt_alloc_table *t);

/* device_cpu.c / device_cuda.c */
xkv_status rt_cpu_open(xkv_context *ctx);
/* ordinal >= 0; sets ctx->err on failure, ctx stays unopened. */
xkv_status rt_cuda_open(xkv_context *ctx, int ordinal);

/* manifest_read.c: parses a manifest into variants (not yet registered).
 * `where` names the file in messages. */
xkv_status rt_manifest_parse(xkv_context *ctx, const char *text, size_t len,
                             const char *where, char **target,
                             rt_variant ***out, int *n);
void rt_variant_free(rt_variant *v);

/* registry.c */
void rt_registry_free(xkv_context *ctx);

/* tune_choose.c */
void rt_tune_open_env(xkv_context *ctx); /* XKV_TUNE_CACHE, at xkv_open */
void rt_tune_close(xkv_context *ctx);
/* k itself, or an auto handle for it when a tune cache has records for the
 * kernel and consts fix none of their tuned names. NULL: out of memory. */
xkv_kernel *rt_tune_auto(xkv_context *ctx, xkv_kernel *k,
                         const xkv_const *consts, int nconsts);
/* The configuration an auto handle launches with for these arguments; any
 * other handle is returned as is. */
xkv_kernel *rt_tune_choose(xkv_context *ctx, xkv_kernel *k, const xkv_arg *args,
                           int nargs);

#endif
