/* xkv-run: generates text with a real model, the KV cache exact or xKV
 * compressed, and reports tokens/s, cache bytes and the compression ratio;
 * --batch N decodes N sequences together (eng_generate_batch) for
 * throughput runs. */
#include "cli.h"
#include "generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: xkv-run --model M [--tokenizer T] (--prompt TEXT | --prompt-file "
    "F)...\n"
    "               [--batch N] [--max-new N] [--cache exact|xkv] [--group W]\n"
    "               [--rank-k R] [--rank-v R] [--ratio X] [--dtype f16|f32]\n"
    "               [--device auto|cpu|cuda] [--sr-budget TOKENS] [--seed S]\n"
    "               [--temp T] [--top-p P] [--no-chat]\n"
    "       xkv-run --version\n"
    "--batch N decodes N sequences together, sequence i with the i-th prompt\n"
    "(prompts repeat when fewer than N are given) and seed S + i, and prints\n"
    "each sequence's text after the run.\n";

enum { MAX_BATCH = 256 };

typedef struct {
  const char *model, *tok, *cache;
  /* --prompt TEXT and --prompt-file F in order: file[i] says which */
  const char *prompt[MAX_BATCH];
  int file[MAX_BATCH], n_prompts;
  int max_new, seed, no_chat, batch;
  float temp, top_p;
  eng_xkv_opts x;
} run_opts;

static int parse(int argc, char **argv, void *opts, eng_err *err) {
  run_opts *o = opts;
  *o = (run_opts){.cache = "exact",
                  .max_new = 128,
                  .batch = 1,
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
    if (strcmp(a, "--prompt") == 0 || strcmp(a, "--prompt-file") == 0) {
      if (o->n_prompts == MAX_BATCH)
        return eng_fail(err, "more than %d prompts", MAX_BATCH);
      o->file[o->n_prompts] = strcmp(a, "--prompt-file") == 0;
      o->prompt[o->n_prompts++] = v;
    } else if (strcmp(a, "--cache") == 0)
      o->cache = v;
    else if (strcmp(a, "--batch") == 0)
      rc = eng_parse_int(a, v, 1, MAX_BATCH, &o->batch, err);
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
  if (!o->n_prompts)
    return eng_fail(err, "give a --prompt or a --prompt-file");
  if (o->n_prompts > o->batch)
    return eng_fail(err, "%d prompts for --batch %d (at most one a sequence)",
                    o->n_prompts, o->batch);
  if (o->x.rank_v && !o->x.rank_k)
    return eng_fail(err, "--rank-v needs --rank-k");
  if (strcmp(o->cache, "exact") && strcmp(o->cache, "xkv"))
    return eng_fail(err, "--cache: \"%s\" is not exact or xkv", o->cache);
  o->x.seed = (uint64_t)o->seed;
  return 0;
}

/* A sequence of the batch: its prompt, tokens, sampler and, in a batch of
 * more than one, its text as generated (printed after the run). */
typedef struct {
  char *text, *chat; /* text: a --prompt-file's contents */
  const char *prompt;
  int *ids, n;
  eng_sampler smp;
  char *out;
  size_t out_len, out_cap;
  int failed; /* out of memory for out */
} run_seq;

typedef struct {
  run_seq *seqs;
  int batch;
} run_out;

static void emit(void *user, int seq, const char *bytes, size_t n) {
  const run_out *ro = user;
  if (ro->batch == 1) {
    fwrite(bytes, 1, n, stdout);
    fflush(stdout);
    return;
  }
  run_seq *q = &ro->seqs[seq];
  if (q->out_len + n + 1 > q->out_cap) {
    size_t cap = 2 * (q->out_len + n + 1);
    char *p = q->failed ? NULL : realloc(q->out, cap);
    if (!p) {
      q->failed = 1;
      return;
    }
    q->out = p;
    q->out_cap = cap;
  }
  memcpy(q->out + q->out_len, bytes, n);
  q->out[q->out_len += n] = 0;
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
 * stayed uncompressed. n: the shortest prompt. */
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

/* The batch's caches as one: bytes and groups summed, the rank ranges
 * those of the caches that compressed a group, the hit rate averaged over
 * the sequences. */
static int batch_stats(eng_kv *const *kvs, int n, eng_kv_stats *st,
                       eng_err *err) {
  *st = (eng_kv_stats){0};
  for (int b = 0; b < n; b++) {
    eng_kv_stats s = {0};
    if (kvs[b]->ops->stats(kvs[b], &s, err))
      return -1;
    if (s.groups_compressed) {
      int first = !st->groups_compressed;
      if (first || s.rank_k_min < st->rank_k_min)
        st->rank_k_min = s.rank_k_min;
      if (first || s.rank_v_min < st->rank_v_min)
        st->rank_v_min = s.rank_v_min;
      if (s.rank_k_max > st->rank_k_max)
        st->rank_k_max = s.rank_k_max;
      if (s.rank_v_max > st->rank_v_max)
        st->rank_v_max = s.rank_v_max;
    }
    st->bytes += s.bytes;
    st->exact_bytes += s.exact_bytes;
    st->tokens += s.tokens;
    st->groups_compressed += s.groups_compressed;
    st->groups_exact += s.groups_exact;
    st->sr_hit_rate += s.sr_hit_rate / n;
  }
  st->ratio = st->bytes ? (double)st->exact_bytes / (double)st->bytes : 1.0;
  return 0;
}

/* Prompt b of the batch read, wrapped in the chat template and encoded. */
static int prepare(const run_opts *o, const eng_model *m, int b, run_seq *q,
                   eng_err *err) {
  int i = b % o->n_prompts;
  if (o->file[i] && eng_read_text(o->prompt[i], &q->text, err))
    return -1;
  q->prompt = o->file[i] ? q->text : o->prompt[i];
  if (!o->no_chat)
    q->chat = eng_tok_chat(m->tok, q->prompt);
  if (eng_tok_encode(m->tok, q->chat ? q->chat : q->prompt, 1, &q->ids, &q->n,
                     err))
    return -1;
  if (q->n > m->cfg.seq_len)
    return eng_fail(err, "prompt %d has %d tokens, the model's context is %d",
                    i + 1, q->n, m->cfg.seq_len);
  if (eng_sampler_init(&q->smp, m->cfg.vocab_size, o->temp, o->top_p,
                       (uint64_t)o->seed + 1 + (uint64_t)b))
    return eng_fail(err, "out of memory for the sampler");
  return 0;
}

/* The run's figures; a sequence's first token comes from its prefill, so
 * decode counts the tokens after it. */
static void print_report(const run_opts *o, const eng_model *m,
                         eng_kv *const *kvs, const eng_gen_seq *gs,
                         const eng_gen_result *r, const eng_kv_stats *st) {
  int steps = 0, shortest = gs[0].n;
  for (int b = 0; b < o->batch; b++) {
    steps += gs[b].n_gen > 1 ? gs[b].n_gen - 1 : 0;
    if (gs[b].n < shortest)
      shortest = gs[b].n;
  }
  /* a batch's texts end with their newline; a streamed one does not */
  printf("%s---\n", o->batch > 1 ? "" : "\n");
  printf("model: %s (%s, %d layers, %d/%d heads, head_dim %d)\n", o->model,
         m->format, m->cfg.n_layers, m->cfg.n_heads, m->cfg.n_kv_heads,
         m->cfg.head_dim);
  printf("cache: %s", o->cache);
  if (strcmp(o->cache, "xkv") == 0 && st->groups_compressed)
    printf(" (W=%d, ranks k %d..%d v %d..%d, device %s)", o->x.group,
           st->rank_k_min, st->rank_k_max, st->rank_v_min, st->rank_v_max,
           eng_kv_xkv_device(kvs[0]));
  else if (strcmp(o->cache, "xkv") == 0)
    printf(" (W=%d, no group compressed, device %s)", o->x.group,
           eng_kv_xkv_device(kvs[0]));
  printf("\nprefill: %d tokens in %.3f s = %.1f tokens/s\n", r->n_prompt,
         r->t_prefill, r->n_prompt / (r->t_prefill > 0 ? r->t_prefill : 1e-9));
  printf("decode: %d tokens in %.3f s = %.1f tokens/s (attention %.1f%%)\n",
         steps, r->t_decode, steps / (r->t_decode > 0 ? r->t_decode : 1e-9),
         r->t_decode > 0 ? 100.0 * r->t_attn / r->t_decode : 0.0);
  if (o->batch > 1)
    printf("batch: %d sequences decoded together, %.1f tokens/s per "
           "sequence\n",
           o->batch, steps / (r->t_decode > 0 ? r->t_decode : 1e-9) / o->batch);
  print_cache_size(o, shortest, st);
  if (o->x.sr_budget > 0)
    printf("selective reconstruction: budget %d tokens, chunk reuse %.1f%%\n",
           o->x.sr_budget, 100 * st->sr_hit_rate);
}

static void print_texts(const run_opts *o, const run_seq *seqs,
                        const eng_gen_seq *gs) {
  for (int b = 0; b < o->batch; b++) {
    printf("=== sequence %d: %d prompt tokens, %d generated ===\n", b, gs[b].n,
           gs[b].n_gen);
    if (!seqs[b].chat)
      fputs(seqs[b].prompt, stdout);
    fputs(seqs[b].out ? seqs[b].out : "", stdout);
    if (seqs[b].failed)
      fputs(" [text cut: out of memory]", stdout);
    fputc('\n', stdout);
  }
}

static int run(const void *opts, eng_err *err) {
  const run_opts *o = opts;
  eng_model m;
  if (eng_model_open(o->model, o->tok, &m, err))
    return -1;
  int nb = o->batch, rc = -1;
  run_seq *seqs = calloc((size_t)nb, sizeof *seqs);
  eng_gen_seq *gs = calloc((size_t)nb, sizeof *gs);
  eng_kv **kvs = calloc((size_t)nb, sizeof *kvs);
  int *cap = calloc((size_t)nb, sizeof *cap);
  if (!seqs || !gs || !kvs || !cap) {
    eng_fail(err, "out of memory for a batch of %d", nb);
    goto done;
  }
  int max_new = o->max_new, longest = 0;
  for (int b = 0; b < nb; b++) {
    if (prepare(o, &m, b, &seqs[b], err))
      goto done;
    if (seqs[b].n > longest)
      longest = seqs[b].n;
  }
  if (longest + max_new > m.cfg.seq_len) {
    max_new = m.cfg.seq_len - longest;
    fprintf(stderr, "xkv-run: --max-new cut to %d (context %d)\n", max_new,
            m.cfg.seq_len);
  }
  for (int b = 0; b < nb; b++) {
    cap[b] = seqs[b].n + max_new;
    gs[b] = (eng_gen_seq){
        .prompt = seqs[b].ids, .n = seqs[b].n, .sampler = &seqs[b].smp};
  }
  if (eng_kv_create_batch(o->cache, &m.cfg, nb, cap, &o->x, kvs, err))
    goto done;
  run_out ro = {seqs, nb};
  eng_gen_opts g = {.max_new = max_new,
                    .stop_at_eos = 1,
                    .tok = m.tok,
                    .emit = emit,
                    .user = &ro,
                    .progress = longest >= 256 ? progress : NULL};
  eng_gen_result r;
  if (nb == 1 && !seqs[0].chat)
    fputs(seqs[0].prompt, stdout);
  if (eng_generate_batch(&m, kvs, gs, nb, &g, &r, err))
    goto done;
  eng_kv_stats st = {0};
  if (batch_stats(kvs, nb, &st, err))
    goto done;
  if (nb > 1)
    print_texts(o, seqs, gs);
  print_report(o, &m, kvs, gs, &r, &st);
  rc = 0;
done:
  for (int b = 0; kvs && b < nb; b++)
    if (kvs[b])
      kvs[b]->ops->destroy(kvs[b]);
  for (int b = 0; seqs && b < nb; b++) {
    eng_sampler_free(&seqs[b].smp);
    free(seqs[b].ids);
    free(seqs[b].chat);
    free(seqs[b].text);
    free(seqs[b].out);
  }
  free(seqs);
  free(gs);
  free(kvs);
  free(cap);
  eng_model_free(&m);
  return rc;
}

int main(int argc, char **argv) {
  run_opts o;
  return eng_cli_main("xkv-run", usage, argc, argv, &o, parse, run);
}
