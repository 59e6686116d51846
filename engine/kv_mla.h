/* The latent KV cache of an MLA model (DeepSeek-V2/V3): per token and layer
 * the normalized latent c_kv (after kv_a_layernorm) and the RoPE'd k_pe,
 * shared by every head. Decode attends in the absorbed form, so the cache
 * never sees W_UK/W_UV: the forward pass projects the query into latent
 * space (q_lat = W_UK^T q_nope per head) and maps out_lat back through
 * W_UV. The exact and the xKV cache take the same inputs. */
#ifndef ENG_KV_MLA_H
#define ENG_KV_MLA_H

#include "err.h"
#include "kvcache.h"

typedef struct {
  int n_layers, n_heads;
  int kv_lora_rank; /* latent width (512 in DeepSeek-V2) */
  int rope_dim;     /* k_pe width (64) */
} eng_mla_dims;

typedef struct eng_kv_mla eng_kv_mla;
typedef struct {
  /* c_kv [n, kv_lora_rank], k_pe [n, rope_dim] (RoPE already applied) */
  int (*prefill)(eng_kv_mla *kv, int layer, const float *c_kv,
                 const float *k_pe, int n, eng_err *err);
  int (*append)(eng_kv_mla *kv, int layer, const float *c_kv, const float *k_pe,
                eng_err *err);
  /* q_lat [n_heads, kv_lora_rank], q_pe [n_heads, rope_dim] (RoPE'd);
   * score_t = scale * (q_lat . c_kv_t + q_pe . k_pe_t) over every cached
   * token; out_lat [n_heads, kv_lora_rank] = sum_t softmax_t * c_kv_t */
  int (*attend)(eng_kv_mla *kv, int layer, const float *q_lat,
                const float *q_pe, float scale, float *out_lat, eng_err *err);
  int (*stats)(eng_kv_mla *kv, eng_kv_stats *out, eng_err *err);
  void (*destroy)(eng_kv_mla *kv);
} eng_kv_mla_ops;

struct eng_kv_mla {
  const eng_kv_mla_ops *ops;
};

/* f32 latents, the reference the compressed cache is judged against */
int eng_kv_mla_exact_create(const eng_mla_dims *d, int max_tokens,
                            eng_kv_mla **out, eng_err *err);
/* xKV over groups of o->group layers' latents (runtime's xkv_mla_*);
 * fails with a clear message when the runtime has no MLA cache. */
int eng_kv_mla_xkv_create(const eng_mla_dims *d, int max_tokens,
                          const eng_xkv_opts *o, eng_kv_mla **out,
                          eng_err *err);

#endif
