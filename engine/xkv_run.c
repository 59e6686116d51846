/* xkv-run: generates text with a real model, the KV cache exact or xKV
 * compressed, and reports tokens/s, cache bytes and the compression ratio. */
#include "cli.h"
#include "generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: xkv-run --model M [--tokenizer T] (--prompt TEXT | --prompt-file "
    "F)\n"
    "               [--max-new N] [--cache exact|xkv] [--group W] [--rank-k "
    "R]\n"
    "               [--rank-v R] [--ratio X] [--dtype f16|f32] [--device "
    "auto|cpu|cuda]\n"
    "               [--sr-budget TOKENS] [--seed S] [--temp T] [--top-p P]\n"
    "               [--no-chat]\n"
    "       xkv-run --version\n";

typedef struct {
  const char *model, *tok, *prompt, *prompt_file, *cache;
  int max_new, seed, no_chat;
  float temp, top_p;
  eng_xkv_opts x;
} run_opts;

static int parse(int argc, char **argv, run_opts *o, eng_err *err) {
  *o = (run_opts){.cache = "exact",
                  .max_new = 128,
                  .top_p = 0.9f,
                  .x = {.device = "auto", .group = 4, .ratio = 4.0f}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (strcmp(a, "--no-chat") == 0) {
      o->no_chat = 1;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return eng_fail(err, "%s", "help");
    if (eng_flag_value(argc, argv, &i, &v, err))
      return -1;
    int rc = 0;
    if (strcmp(a, "--prompt") == 0)
      o->prompt = v;
    else if (strcmp(a, "--prompt-file") == 0)
      o->prompt_file = v;
    else if (strcmp(a, "--cache") == 0)
      o->cache = v;
    else if (strcmp(a, "--max-new") == 0)
      rc = eng_parse_int(a, v, 0, 1 << 20, &o->max_new, err);
    else if (strcmp(a, "--group") == 0)
      rc = eng_parse_int(a, v, 1, 64, &o->x.group, err);
    else if (strcmp(a, "--rank-k") == 0)
      rc = eng_parse_int(a, v, 1, 1 << 20, &o->x.rank_k, err);
    else if (strcmp(a, "--rank-v") == 0)
      rc = eng_parse_int(a, v, 1, 1 << 20, &o->x.rank_v, err);
    else if (strcmp(a, "--ratio") == 0)
      rc = eng_parse_float(a, v, 1.0, 1e6, &o->x.ratio, err);
    else if (strcmp(a, "--sr-budget") == 0)
      rc = eng_parse_int(a, v, 8, 1 << 24, &o->x.sr_budget, err);
    else if (strcmp(a, "--seed") == 0)
      rc = eng_parse_int(a, v, 0, 0x7fffffff, &o->seed, err);
    else if (strcmp(a, "--temp") == 0)
      rc = eng_parse_float(a, v, 0.0, 100.0, &o->temp, err);
    else if (strcmp(a, "--top-p") == 0)
      rc = eng_parse_float(a, v, 0.0, 1.0, &o->top_p, err);
    else
      rc = eng_common_flag(a, v, &o->model, &o->tok, &o->x, err);
    if (rc)
      return -1;
  }
  if (!o->model)
    return eng_fail(err, "--model is required");
  if (!o->prompt == !o->prompt_file)
    return eng_fail(err, "give exactly one of --prompt and --prompt-file");
  if (o->x.rank_v && !o->x.rank_k)
    return eng_fail(err, "--rank-v needs --rank-k");
  if (strcmp(o->cache, "exact") && strcmp(o->cache, "xkv"))
    return eng_fail(err, "--cache: \"%s\" is not exact or xkv", o->cache);
  o->x.seed = (uint64_t)o->seed;
  return 0;
}

static void emit(void *user, const char *bytes, size_t n) {
  fwrite(bytes, 1, n, stdout);
  fflush(stdout);
}

static void progress(void *user, int done, int total) {
  int width = 30, fill = done * width / total;
  fprintf(stderr, "\rprefill [%.*s%*s] %d/%d layers", fill,
          "##############################", width - fill, "", done, total);
  if (done == total)
    fputc('\n', stderr);
}

/* The cache's size in terms a user can act on: the exact cache is
 * uncompressed (f32); xKV's against an exact f16 cache, and why a group
 * stayed uncompressed. */
static void print_cache_size(const run_opts *o, int n, const eng_kv_stats *st) {
  double kib = st->bytes / 1024.0, f16_kib = st->exact_bytes / 1024.0;
  if (strcmp(o->cache, "xkv") != 0) {
    printf("cache size: %.1f KiB, uncompressed f32 (%.1f KiB in f16); --cache "
           "xkv compresses the prompt\n",
           kib, f16_kib);
    return;
  }
  if (st->ratio >= 1.005)
    printf("cache size: %.1f KiB, %.2fx smaller than an exact f16 cache "
           "(%.1f KiB)\n",
           kib, st->ratio, f16_kib);
  else
    printf("cache size: %.1f KiB, no smaller than an exact f16 cache (%.1f "
           "KiB)\n",
           kib, f16_kib);
  if (st->groups_exact)
    printf("note: the prompt (%d tokens) is shorter than the ranks (k %d, v "
           "%d): %d of %d layer groups keep it exact, uncompressed; "
           "generated tokens are always exact\n",
           n, o->x.rank_k, o->x.rank_v, st->groups_exact,
           st->groups_exact + st->groups_compressed);
}

static int run(const run_opts *o, eng_err *err) {
  eng_model m;
  if (eng_model_open(o->model, o->tok, &m, err))
    return -1;
  char *text = NULL, *chat = NULL;
  int *ids = NULL, n = 0, rc = -1;
  eng_kv *kv = NULL;
  eng_sampler smp = {0};
  if (o->prompt_file && eng_read_text(o->prompt_file, &text, err))
    goto done;
  const char *prompt = o->prompt ? o->prompt : text;
  if (!o->no_chat)
    chat = eng_tok_chat(m.tok, prompt);
  if (eng_tok_encode(m.tok, chat ? chat : prompt, 1, &ids, &n, err))
    goto done;
  int max_new = o->max_new;
  if (n > m.cfg.seq_len) {
    eng_fail(err, "the prompt has %d tokens, the model's context is %d", n,
             m.cfg.seq_len);
    goto done;
  }
  if (n + max_new > m.cfg.seq_len) {
    max_new = m.cfg.seq_len - n;
    fprintf(stderr, "xkv-run: --max-new cut to %d (context %d)\n", max_new,
            m.cfg.seq_len);
  }
  if (eng_kv_create(o->cache, &m.cfg, n + max_new, &o->x, &kv, err))
    goto done;
  if (eng_sampler_init(&smp, m.cfg.vocab_size, o->temp, o->top_p,
                       (uint64_t)o->seed + 1)) {
    eng_fail(err, "out of memory for the sampler");
    goto done;
  }
  eng_gen_opts g = {.max_new = max_new,
                    .stop_at_eos = 1,
                    .sampler = &smp,
                    .tok = m.tok,
                    .emit = emit,
                    .progress = n >= 256 ? progress : NULL};
  eng_gen_result r;
  if (!chat)
    fputs(prompt, stdout);
  if (eng_generate(&m, kv, ids, n, &g, &r, err))
    goto done;
  eng_kv_stats st = {0};
  if (kv->ops->stats(kv, &st, err))
    goto done;
  int steps = r.n_gen > 1 ? r.n_gen - 1 : 0;
  printf("\n---\n");
  printf("model: %s (%s, %d layers, %d/%d heads, head_dim %d)\n", o->model,
         m.format, m.cfg.n_layers, m.cfg.n_heads, m.cfg.n_kv_heads,
         m.cfg.head_dim);
  printf("cache: %s", o->cache);
  if (strcmp(o->cache, "xkv") == 0 && st.groups_compressed)
    printf(" (W=%d, ranks k %d..%d v %d..%d, device %s)", o->x.group,
           st.rank_k_min, st.rank_k_max, st.rank_v_min, st.rank_v_max,
           eng_kv_xkv_device(kv));
  else if (strcmp(o->cache, "xkv") == 0)
    printf(" (W=%d, no group compressed, device %s)", o->x.group,
           eng_kv_xkv_device(kv));
  printf("\nprefill: %d tokens in %.3f s = %.1f tokens/s\n", n, r.t_prefill,
         n / (r.t_prefill > 0 ? r.t_prefill : 1e-9));
  printf("decode: %d tokens in %.3f s = %.1f tokens/s (attention %.1f%%)\n",
         steps, r.t_decode, steps / (r.t_decode > 0 ? r.t_decode : 1e-9),
         r.t_decode > 0 ? 100.0 * r.t_attn / r.t_decode : 0.0);
  print_cache_size(o, n, &st);
  if (o->x.sr_budget > 0)
    printf("selective reconstruction: budget %d tokens, chunk reuse %.1f%%\n",
           o->x.sr_budget, 100 * st.sr_hit_rate);
  rc = 0;
done:
  if (kv)
    kv->ops->destroy(kv);
  eng_sampler_free(&smp);
  free(ids);
  free(chat);
  free(text);
  eng_model_free(&m);
  return rc;
}

/* adapters from the tool's typed parse/run to eng_cli_main's */
static int parse_any(int argc, char **argv, void *o, eng_err *err) {
  return parse(argc, argv, o, err);
}
static int run_any(const void *o, eng_err *err) {
  return run(o, err);
}

int main(int argc, char **argv) {
  run_opts o;
  return eng_cli_main("xkv-run", usage, argc, argv, &o, parse_any, run_any);
}
