/* xkv runtime: launches kernels that xkvgen compiled ahead of time, on a
 * CUDA GPU (driver API, loaded with dlopen) or on the CPU (thread pool).
 *
 * Conventions: every call returns an xkv_status; xkv_last_error(ctx) then
 * holds a sentence naming the cause (kernel, argument, CUDA error name).
 * There is no global state: everything hangs off a context. A context is
 * used by one thread at a time. Device pointers are plain `void *` (CUDA
 * device addresses on the GPU, host memory on the CPU device). */
#ifndef XKV_H
#define XKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The release; CMake's project(VERSION) is read from these three lines. */
#define XKV_VERSION_MAJOR 0
#define XKV_VERSION_MINOR 1
#define XKV_VERSION_PATCH 0
#define XKV_VERSION_STR_(a, b, c) #a "." #b "." #c
#define XKV_VERSION_STR(a, b, c) XKV_VERSION_STR_(a, b, c)
#define XKV_VERSION                                                            \
  XKV_VERSION_STR(XKV_VERSION_MAJOR, XKV_VERSION_MINOR, XKV_VERSION_PATCH)
/* The library's version, "MAJOR.MINOR.PATCH": what the program runs
 * against, which can differ from the XKV_VERSION it was compiled with. */
const char *xkv_version(void);

typedef enum {
  XKV_OK = 0,
  XKV_ERR_INVALID,       /* NULL handle, bad device name, bad setting */
  XKV_ERR_NO_DRIVER,     /* libcuda.so.1 cannot be loaded */
  XKV_ERR_NO_DEVICE,     /* a driver but no usable GPU (or the stub lib) */
  XKV_ERR_CUDA,          /* any other CUDA driver error (named in text) */
  XKV_ERR_OUT_OF_MEMORY, /* device or host allocation failed */
  XKV_ERR_NOT_FOUND,     /* no such kernel, constexpr or variant */
  XKV_ERR_ARGS,          /* wrong argument count or type */
  XKV_ERR_MANIFEST,      /* missing/corrupt manifest or artifact */
  XKV_ERR_TARGET,        /* artifacts built for another target */
  XKV_ERR_GRID,          /* the launch grid rule failed */
  XKV_ERR_LAUNCH         /* the kernel could not be loaded or launched */
} xkv_status;

/* "XKV_OK", "XKV_ERR_ARGS", ... */
const char *xkv_status_name(xkv_status s);

typedef struct xkv_context xkv_context;
typedef struct xkv_stream xkv_stream;
typedef struct xkv_event xkv_event;
typedef struct xkv_kernel xkv_kernel;

/* ---- context ------------------------------------------------------------
 * device: "cpu", "cuda", "cuda:N" (ordinal), "auto" (CUDA when a driver and
 * a GPU exist, else the CPU; the reason is kept in xkv_device_info.note and
 * in xkv_last_error, with XKV_OK returned).
 * Like sqlite3_open, *ctx is set even when opening fails (unless memory ran
 * out), so xkv_last_error(*ctx) explains; xkv_close it in every case.
 * Environment: XKV_NUM_THREADS (CPU pool size, default all cores),
 * XKV_LIBCUDA (path of the CUDA driver library, default libcuda.so.1). */
xkv_status xkv_open(xkv_context **ctx, const char *device);
void xkv_close(xkv_context *ctx); /* frees everything the context owns */
/* The last error's sentence; "" when none. Valid until the next call. */
const char *xkv_last_error(const xkv_context *ctx);

typedef enum { XKV_DEVICE_CPU = 0, XKV_DEVICE_CUDA = 1 } xkv_device_kind;

typedef struct {
  xkv_device_kind kind;
  char name[128];         /* GPU name, or "cpu" */
  char arch[16];          /* "sm_90", or "host" */
  int cc_major, cc_minor; /* compute capability; 0 on the CPU */
  int driver_version;     /* CUDA driver version (e.g. 13000); 0 on CPU */
  int units;              /* multiprocessors, or CPU pool threads */
  uint64_t total_memory;  /* bytes */
  uint64_t free_memory;   /* bytes, as reported now */
  char note[512];         /* why "auto" chose the CPU; "" otherwise */
} xkv_device_info;

xkv_status xkv_device_get_info(xkv_context *ctx, xkv_device_info *out);

/* ---- memory -------------------------------------------------------------
 * A NULL stream means synchronous: the copy/memset has completed (after all
 * earlier work on the default stream) when the call returns. With a stream
 * the operation is queued; host buffers must live until it is synced. */
xkv_status xkv_alloc(xkv_context *ctx, size_t bytes, void **dptr);
xkv_status xkv_free(xkv_context *ctx, void *dptr); /* NULL is a no-op */
xkv_status xkv_copy_h2d(xkv_context *ctx, void *dst, const void *src,
                        size_t bytes, xkv_stream *stream);
xkv_status xkv_copy_d2h(xkv_context *ctx, void *dst, const void *src,
                        size_t bytes, xkv_stream *stream);
xkv_status xkv_copy_d2d(xkv_context *ctx, void *dst, const void *src,
                        size_t bytes, xkv_stream *stream);
xkv_status xkv_memset(xkv_context *ctx, void *dst, int byte, size_t bytes,
                      xkv_stream *stream);

/* ---- streams, events, sync ---------------------------------------------- */
xkv_status xkv_stream_create(xkv_context *ctx, xkv_stream **out);
xkv_status xkv_stream_destroy(xkv_context *ctx, xkv_stream *s);
xkv_status xkv_stream_sync(xkv_context *ctx, xkv_stream *s); /* NULL: def. */
xkv_status xkv_sync(xkv_context *ctx); /* waits for all work */
xkv_status xkv_event_create(xkv_context *ctx, xkv_event **out);
xkv_status xkv_event_destroy(xkv_context *ctx, xkv_event *e);
xkv_status xkv_event_record(xkv_context *ctx, xkv_event *e, xkv_stream *s);
/* Waits for `end`, then gives the time between the two records. */
xkv_status xkv_event_elapsed_ms(xkv_context *ctx, xkv_event *start,
                                xkv_event *end, float *ms);

/* ---- kernel registry ----------------------------------------------------
 * Artifacts come from an xkvgen output directory (DIR/manifest.json plus
 * DIR/kernels.so for host targets, SYMBOL.ptx / .cubin for GPU targets) or
 * from a table compiled into the program with `xkvgen --embed NAME`.
 * Artifacts built for another target than the context's device give
 * XKV_ERR_TARGET and are not added. */
/* A host kernel's program: 0, or 1 when it could not allocate its heap
 * tiles and did nothing (the CPU device's launch then fails with
 * XKV_ERR_OUT_OF_MEMORY). */
typedef int32_t (*xkv_host_fn)(void **args, const int32_t *pid,
                               const int32_t *nprog);
typedef struct {
  const char *symbol;
  xkv_host_fn host_fn;        /* NULL for GPU variants */
  const char *ptx;            /* NULL for host variants; NUL-terminated */
  const unsigned char *cubin; /* NULL when absent */
  size_t cubin_len;
} xkv_embedded_variant;
typedef struct {
  const char *manifest_json; /* the manifest.json text, same format */
  const char *target;        /* "host" or "sm_XX" */
  int nvariants;
  const xkv_embedded_variant *variants; /* same order as manifest variants */
} xkv_embedded;

xkv_status xkv_registry_load(xkv_context *ctx, const char *dir);
xkv_status xkv_registry_add_embedded(xkv_context *ctx, const xkv_embedded *e);

/* Introspection (xkv-info, tests). Strings live as long as the context. */
typedef struct {
  const char *name;
  int64_t value;
} xkv_const;

typedef struct {
  const char *kernel, *symbol, *target;
  const char *source;    /* manifest directory or "embedded" */
  const char *signature; /* "X: ptr<f32>, N: i32" */
  const char *grid[3];   /* grid rules */
  const char *spec;      /* "N: div16, X: align16", or "" when generic */
  const xkv_const *consts;
  int nconsts;
  int num_warps, num_stages, threads, shared_bytes, registers;
} xkv_variant_info;

int xkv_num_variants(const xkv_context *ctx);
xkv_status xkv_variant_get_info(xkv_context *ctx, int i, xkv_variant_info *out);

/* ---- launching ----------------------------------------------------------
 * Argument tags are checked against the manifest signature. Build them
 * with the helpers below: xkv_arg_ptr(XKV_F32, x), xkv_arg_i32(n), ... */
typedef enum { XKV_I1, XKV_I32, XKV_I64, XKV_F16, XKV_BF16, XKV_F32 } xkv_dtype;

typedef struct {
  uint8_t is_ptr; /* 1: a device pointer to elements of `dtype` */
  uint8_t dtype;  /* xkv_dtype */
  union {
    void *p;
    int32_t i32;
    int64_t i64;
    float f32;
  } v;
} xkv_arg;

static inline xkv_arg xkv_arg_ptr(xkv_dtype elem, void *p) {
  xkv_arg a = {1, (uint8_t)elem, {0}};
  a.v.p = p;
  return a;
}
static inline xkv_arg xkv_arg_i32(int32_t x) {
  xkv_arg a = {0, XKV_I32, {0}};
  a.v.i32 = x;
  return a;
}
static inline xkv_arg xkv_arg_i64(int64_t x) {
  xkv_arg a = {0, XKV_I64, {0}};
  a.v.i64 = x;
  return a;
}
static inline xkv_arg xkv_arg_f32(float x) {
  xkv_arg a = {0, XKV_F32, {0}};
  a.v.f32 = x;
  return a;
}

typedef struct {
  uint32_t x, y, z; /* programs per axis; any 0 launches nothing */
} xkv_grid;

/* Resolves a kernel and (a subset of) its constexprs to a launchable
 * handle: a variant whose constexprs equal exactly the given ones wins,
 * else the first variant in registry order whose constexprs match the
 * given subset. "num_warps" and "num_stages" may be given like
 * constexprs. The handle lives as long as the context. */
xkv_status xkv_kernel_find(xkv_context *ctx, const char *kernel,
                           const xkv_const *consts, int nconsts,
                           xkv_kernel **out);

/* grid NULL: computed from the manifest's grid rule over the int arguments
 * and constexprs. Among variants that differ only in argument
 * specialization (pointer alignment, ints divisible by 16 or equal to 1),
 * the most specialized one whose assumptions hold runs. On the CPU device
 * the launch has completed on return; on CUDA it is queued on `stream`
 * (NULL: the default stream). */
xkv_status xkv_launch(xkv_context *ctx, xkv_kernel *k, const xkv_grid *grid,
                      const xkv_arg *args, int nargs, xkv_stream *stream);
/* xkv_kernel_find + xkv_launch. */
xkv_status xkv_launch_named(xkv_context *ctx, const char *kernel,
                            const xkv_const *consts, int nconsts,
                            const xkv_grid *grid, const xkv_arg *args,
                            int nargs, xkv_stream *stream);

/* ---- tune cache --------------------------------------------------------
 * A tune cache (xkv-tune's JSON) makes xkv_kernel_find/xkv_launch pick, per
 * launch, the tuned configuration for the call's key (the kernel's key args
 * and constexprs, bucketed by its key grid): the exact bucket, else the
 * nearest bucket in log space, else the default; a handle found with a
 * tuned constexpr fixed keeps it. Only records for this device's
 * fingerprint count, and only configurations in the registry can be chosen
 * (xkvgen --variants tuned). Load it before finding kernels; xkv_open
 * loads $XKV_TUNE_CACHE (a bad file there is reported on stderr, and the
 * defaults are used). A miss is reported once on stderr and, with a misses
 * file ($XKV_TUNE_MISSES or the call below), appended to it for xkv-tune. A
 * bad file is an error and leaves the previous cache in place. */
xkv_status xkv_tune_cache_load(xkv_context *ctx, const char *path);
xkv_status xkv_tune_misses_file(xkv_context *ctx, const char *path);
/* The fingerprint this device's records are keyed on. */
const char *xkv_tune_fingerprint(xkv_context *ctx);

/* What a launch with these arguments would use, without launching. */
xkv_status xkv_kernel_grid(xkv_context *ctx, xkv_kernel *k, const xkv_arg *args,
                           int nargs, xkv_grid *out);
xkv_status xkv_kernel_select(xkv_context *ctx, xkv_kernel *k,
                             const xkv_arg *args, int nargs,
                             const char **symbol);

/* ---- xKV: cross-layer low-rank KV cache --------------------------------
 * One cache per model. Keys enter pre-RoPE; the cache owns RoPE (it
 * re-applies it at each token's position when rebuilding keys, and rotates
 * queries), so the engine never mixes conventions. Prompt keys/values of a
 * group of `group` consecutive layers are compressed together when the
 * group's last layer arrives (one truncated SVD over [K_l1 | ... | K_lW]);
 * tokens appended after prefill stay exact. All tensor pointers are device
 * pointers of the cache's context (plain host memory on the CPU device),
 * f32, row-major. */
typedef enum {
  XKV_ROPE_INTERLEAVED = 0, /* pairs (2i, 2i+1): llama2.c, GGUF llama */
  XKV_ROPE_HALF = 1         /* pairs (i, i + d/2): Hugging Face */
} xkv_rope_style;

typedef enum {
  XKV_RANK_FIXED = 0, /* rank_k / rank_v as given */
  XKV_RANK_RATIO = 1, /* ranks that reach target_ratio for this group */
  XKV_RANK_ENERGY = 2 /* smallest ranks keeping `energy` of sum(sigma^2) */
} xkv_rank_policy;

/* How a group's truncated SVD is computed (keys and values choose apart). */
typedef enum {
  XKV_SVD_AUTO = 0,       /* Gram when its estimated time is lower, F <= 2048,
                             F <= L and an energy target leaves >= 1e-6 */
  XKV_SVD_RANDOMIZED = 1, /* sketch r + 10, 2 power iterations, CholQR */
  XKV_SVD_GRAM = 2 /* eigenvectors of X^T X (F x F, host LAPACK), O(L F^2 +
                      F^3): the optimal rank-r factors down to a relative
                      error near 1e-3 (X^T X is f32: it floors at ~3e-4) */
} xkv_svd_method;

typedef struct {
  int n_layers, n_heads, n_kv_heads, head_dim;
  int max_tokens; /* capacity: prompt + generated */
  int group;      /* W: layers sharing one basis (1, 2, 4, 8) */
  xkv_rank_policy policy;
  int rank_k, rank_v; /* XKV_RANK_FIXED; XKV_RANK_ENERGY: caps (0: none) */
  float target_ratio; /* XKV_RANK_RATIO */
  float energy;       /* XKV_RANK_ENERGY, in (0, 1] */
  int exact;          /* 1: no compression (the reference path) */
  xkv_dtype dtype;    /* factor storage: XKV_F16, XKV_BF16 or XKV_F32 */
  float rope_theta;   /* 10000 for llama2.c */
  xkv_rope_style rope_style;
  uint64_t seed; /* randomized SVD */
  /* Selective reconstruction (xKV v2 / ShadowKV; 0 = dense decode): per
   * decode step and KV head only the prompt chunks (8 tokens) whose
   * landmarks (chunk means of the post-RoPE keys) score highest are
   * rebuilt, reusing the chunks rebuilt for the previous step; a local
   * window (the prompt's last tokens) and outlier chunks (lowest min-cosine
   * of their keys to the landmark) are kept exact. Zero fields take the
   * defaults given; a budget >= the prompt length decodes densely. */
  int sr;                /* 1: selective reconstruction */
  int sr_budget;         /* selected tokens per KV head, multiple of 8 (2048) */
  int sr_local_window;   /* exact prompt tail tokens (64) */
  float sr_outlier_frac; /* share of chunks kept exact as outliers (0.01) */
  /* Compression route of X = [K_l1 | ... | K_lW] (L x F, F = W * n_kv_heads
   * * head_dim); 0 = AUTO. XKV_RANK_ENERGY is exact on the Gram route (all
   * of sigma^2 up to the cap are eigenvalues); the randomized route sees
   * only the sketch's r + 10. */
  xkv_svd_method svd;
} xkv_cache_config;

typedef struct {
  uint64_t bytes;       /* bytes the cache stores now */
  uint64_t exact_bytes; /* what an exact f16 cache would store */
  double ratio;         /* exact_bytes / bytes */
  int tokens;           /* prompt + appended */
  int prompt_tokens;
  int groups_compressed;
  /* groups that keep their prompt exact because it is shorter than the
   * fixed ranks (rank-r factors of L < r tokens would store more than the
   * tokens themselves); counted in bytes like appended tokens */
  int groups_exact;
  int rank_k_min, rank_k_max, rank_v_min, rank_v_max;
  /* selective reconstruction, over the xkv_attention calls that selected
   * chunks: chunks selected (per KV head) that the reuse cache held, and
   * chunks rebuilt; the last call's share of hits and tokens rebuilt */
  int sr_steps;
  uint64_t sr_chunks_hit, sr_chunks_rebuilt;
  double sr_hit_rate, sr_last_hit_rate;
  int sr_last_tokens_rebuilt;
} xkv_cache_stats;

typedef struct xkv_cache xkv_cache;

xkv_status xkv_cache_create(xkv_context *ctx, const xkv_cache_config *cfg,
                            xkv_cache **out);
void xkv_cache_destroy(xkv_cache *c);
/* Prompt of L tokens for one layer: k_pre_rope and v are [L, n_kv_heads,
 * head_dim]. Layers arrive in order 0..n_layers-1, each once. */
xkv_status xkv_cache_prefill(xkv_cache *c, int layer, const float *k_pre_rope,
                             const float *v, int L);
/* One generated token for one layer ([n_kv_heads, head_dim] each); its
 * position is the layer's current length. */
xkv_status xkv_cache_append(xkv_cache *c, int layer, const float *k_pre_rope,
                            const float *v);
/* Decode attention for one layer: q is [n_heads, head_dim] pre-RoPE at
 * position `pos` (rotated here), out is [n_heads, head_dim]: softmax(q K^T /
 * sqrt(d)) V over every cached token of the layer (GQA by head groups). */
xkv_status xkv_attention(xkv_cache *c, int layer, const float *q, int pos,
                         float *out);
/* Decode attention for layer `layer` of a batch of n sequences of any
 * lengths, each its own cache (one context; the same layers, heads,
 * head_dim, dtype and RoPE; prompts may decode each way: compressed,
 * selective reconstruction, exact): q and out are [n, n_heads, head_dim]
 * (device), pos [n] (host) the queries' positions. Equal to n calls of
 * xkv_attention (to the rounding of its splits, which share the device),
 * but each of the layer's sources is one launch for the
 * whole batch. The first cache keeps the batch's scratch (grown to the
 * largest n seen; freed with it). */
xkv_status xkv_attention_batch(xkv_cache *const *caches, int n, int layer,
                               const float *q, const int *pos, float *out);
xkv_status xkv_cache_get_stats(const xkv_cache *c, xkv_cache_stats *out);

/* ---- xKV for MLA: DeepSeek-V2/V3's latent cache ---------------------
 * Per token and layer an MLA model caches the latent c_kv [R] (R =
 * kv_lora_rank, 512) and the RoPE'd k_pe [P] (P = rope dim, 64), shared by
 * every head. This cache compresses the prompt's latents of each group of
 * W layers with one truncated SVD over [c_l1 | ... | c_lW] (L x W R): A [L,
 * r] shared by the group, B_l [r, R] per layer. k_pe and the tokens
 * appended after prefill stay exact. The latents are taken AFTER
 * kv_a_layernorm (the xKV paper's code compresses before it): that is what
 * llama.cpp and the engine cache, and with the norm applied nothing
 * nonlinear sits between the stored factors and the scores, so decode
 * attends to the compressed prompt in rank space (see
 * xkv_mla_attention); before the norm, each token's RMS scale would have to
 * be rebuilt from the full latent. Tensors are device pointers of the
 * context, f32, row-major. */
typedef struct {
  int n_layers, n_heads;
  int kv_lora_rank;       /* R: a multiple of 16, at most 1024 (512 in V2/V3) */
  int rope_dim;           /* P: 64, the kernels' k_pe width */
  int max_tokens;         /* capacity: prompt + generated */
  int group;              /* W: layers sharing one basis (1, 2, 4, 8) */
  xkv_rank_policy policy; /* XKV_RANK_FIXED or XKV_RANK_ENERGY */
  int rank;        /* FIXED: the rank; ENERGY: a cap (0: none); <= 1024 */
  float energy;    /* XKV_RANK_ENERGY, in (0, 1] */
  int exact;       /* 1: no compression (the reference path) */
  xkv_dtype dtype; /* storage: XKV_F16, XKV_BF16 or XKV_F32 */
  uint64_t seed;   /* randomized SVD */
  xkv_svd_method svd;
} xkv_mla_config;

/* Sizes by the xKV paper's accounting: an exact cache stores (R + P) f16
 * values per token and layer; the compressed one A and B_l of each
 * compressed group, the exact latent rows (appended tokens, exact groups)
 * and k_pe of every token, in the storage dtype (f32 while a group's
 * latents wait for its last layer). */
typedef struct {
  uint64_t bytes;       /* bytes the cache stores now */
  uint64_t exact_bytes; /* what an exact f16 latent cache would store */
  double ratio;         /* exact_bytes / bytes: counting k_pe */
  uint64_t rope_bytes;  /* of bytes: k_pe */
  double ratio_latent;  /* the latents alone (exact R f16 per token and layer
                           over bytes - rope_bytes) */
  int tokens, prompt_tokens;
  int groups_compressed;
  int groups_exact; /* prompt shorter than the fixed rank: kept exact */
  int rank_min, rank_max;
} xkv_mla_stats;

typedef struct xkv_mla_cache xkv_mla_cache;

xkv_status xkv_mla_create(xkv_context *ctx, const xkv_mla_config *cfg,
                          xkv_mla_cache **out);
void xkv_mla_destroy(xkv_mla_cache *m);
/* Prompt of L tokens for one layer: c_kv [L, R] (after kv_a_layernorm),
 * k_pe [L, P] (RoPE applied). Layers arrive in order, each once; a group
 * is compressed when its last layer arrives. */
xkv_status xkv_mla_prefill(xkv_mla_cache *m, int layer, const float *c_kv,
                           const float *k_pe, int L);
/* One generated token: c_kv [R], k_pe [P]; kept exact. */
xkv_status xkv_mla_append(xkv_mla_cache *m, int layer, const float *c_kv,
                          const float *k_pe);
/* Absorbed decode: q_lat [n_heads, R] (W_UK^T q_nope per head), q_pe
 * [n_heads, P] (RoPE'd); out_lat [n_heads, R] = sum_t softmax_t(scale
 * (q_lat . c_t + q_pe . k_pe_t)) c_t over every cached token of the layer
 * (the caller applies W_UV). The compressed prompt is attended in rank
 * space: q_r = B_l q_lat scores against A, the output sum p A maps back
 * through B_l once. */
xkv_status xkv_mla_attention(xkv_mla_cache *m, int layer, const float *q_lat,
                             const float *q_pe, float scale, float *out_lat);
xkv_status xkv_mla_get_stats(const xkv_mla_cache *m, xkv_mla_stats *out);
/* The stats a cache of this config would report with a prompt of `prompt`
 * tokens compressed at the fixed rank cfg->rank (groups with a shorter
 * prompt exact) and `appended` tokens per layer, without building one:
 * what the paper's tables count (DeepSeek-Coder-V2-Lite, 27 layers, R 512,
 * P 64, W 4, rank 512, f16, 64K tokens: 2.87x). ctx carries the error. */
xkv_status xkv_mla_stats_model(xkv_context *ctx, const xkv_mla_config *cfg,
                               int prompt, int appended, xkv_mla_stats *out);

#ifdef __cplusplus
}
#endif

#endif
