/* xkv-eval: accuracy of xKV configurations against the exact cache on real
 * text. Protocol (tokens L, tail T = min(64, L/4), prompt P = L - T):
 *  - teacher forcing: prefill P tokens, decode the next T text tokens; mean
 *    KL(exact || config) and top-1 agreement of the T next-token
 *    distributions;
 *  - greedy: prefill P tokens, generate T greedily; the share of the
 *    exact cache's continuation matched before the first difference;
 *  - K/V error: the relative Frobenius error of the best rank-r
 *    approximation of each group's prompt K (pre-RoPE) / V at the ranks the
 *    configuration implies (from singular values; a floor for what the
 *    cache's randomized SVD reaches);
 *  - needle: a sentence inserted at depths 10..90% of an essay haystack of
 *    L tokens, asked for at the end; hit when every answer token is the
 *    argmax under teacher forcing, and the answer's log-probability. */
#include "cli.h"
#include "eval.h"
#include "generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIGS 32
#define N_DEPTHS 5
static const float depths[N_DEPTHS] = {0.1f, 0.3f, 0.5f, 0.7f, 0.9f};
static const char needle[] = " The magic word is pineapple. ";
static const char question[] = "\nWhat is the magic word? The magic word is";
static const char answer[] = " pineapple";

static const char usage[] =
    "usage: xkv-eval --model M [--tokenizer T] --text F [--tokens L]\n"
    "                [--configs \"exact;W=1,ratio=4;W=4,rank_k=16,rank_v=16\"]"
    "\n                [--haystack F] [--json OUT] [--dtype f16|f32] "
    "[--device auto|cpu|cuda]\n"
    "       xkv-eval --version\n";

typedef struct {
  char label[64];
  int exact;
  eng_xkv_opts x;
} config;

typedef struct {
  double kl, top1, greedy, err_k, err_v, ratio, needle_hit, needle_lp;
  unsigned long long bytes;
  int rk_min, rk_max, rv_min, rv_max;
} result;

/* haystack = ids[0..h) is the prefill; the question ids[h..p) and the
 * answer ids[p..n) go through decode, so they attend through the cache */
typedef struct {
  int *ids, n, h, p;
} needle_case;

static int parse_config(const char *s, config *c, const eng_xkv_opts *base,
                        eng_err *err) {
  memset(c, 0, sizeof *c);
  snprintf(c->label, sizeof c->label, "%s", s);
  if (strcmp(s, "exact") == 0) {
    c->exact = 1;
    return 0;
  }
  c->x = *base;
  char buf[128];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    char *eq = strchr(tok, '=');
    if (!eq)
      return eng_fail(err, "--configs: \"%s\": expected key=value in \"%s\"",
                      tok, s);
    *eq = 0;
    const char *k = tok, *v = eq + 1;
    int rc;
    if (strcmp(k, "W") == 0)
      rc = eng_parse_int("W", v, 1, 64, &c->x.group, err);
    else if (strcmp(k, "ratio") == 0)
      rc = eng_parse_float("ratio", v, 1.0, 1e6, &c->x.ratio, err);
    else if (strcmp(k, "rank_k") == 0)
      rc = eng_parse_int("rank_k", v, 1, 1 << 20, &c->x.rank_k, err);
    else if (strcmp(k, "rank_v") == 0)
      rc = eng_parse_int("rank_v", v, 1, 1 << 20, &c->x.rank_v, err);
    else
      rc = eng_fail(err,
                    "--configs: unknown key \"%s\" (W, ratio, rank_k, "
                    "rank_v)",
                    k);
    if (rc)
      return -1;
  }
  if (c->x.rank_v && !c->x.rank_k)
    return eng_fail(err, "--configs: \"%s\": rank_v needs rank_k", s);
  return 0;
}

static eng_kv *make_kv(const eng_model *m, const config *c, int cap,
                       eng_err *err) {
  eng_kv *kv;
  return eng_kv_create(c->exact ? "exact" : "xkv", &m->cfg, cap, &c->x, &kv,
                       err)
             ? NULL
             : kv;
}

/* The rank a configuration gives a group of w layers over n tokens. */
static int group_rank(const config *c, int fixed, int n, int features) {
  int cap = n < features ? n : features;
  if (c->exact)
    return cap;
  if (fixed > 0)
    return fixed < cap ? fixed : cap;
  return eng_rank_for_ratio(n, features, c->x.ratio);
}

/* Over the layers xKV compresses: all, or the global ones of a model with
 * sliding-window layers (those stay exact; see kv_split.c). */
static int svd_errors(const eng_model *m, const eng_kv *rec, const config *c,
                      result *r, eng_err *err) {
  int kvd = m->cfg.n_kv_heads * m->cfg.head_dim;
  int W = c->exact ? 1 : c->x.group, L = 0;
  int *layers = malloc((size_t)m->cfg.n_layers * sizeof *layers);
  if (!layers)
    return eng_fail(err, "xkv-eval: out of memory");
  for (int l = 0; l < m->cfg.n_layers; l++)
    if (!eng_layer_window(&m->cfg, l))
      layers[L++] = l;
  const float *parts[64];
  double sum[2] = {0, 0};
  int rc = 0;
  for (int l0 = 0; l0 < L && !rc; l0 += W) {
    int w = L - l0 < W ? L - l0 : W, n = 0;
    for (int want_v = 0; want_v < 2 && !rc; want_v++) {
      for (int l = 0; l < w; l++)
        parts[l] = eng_kv_recorded(rec, layers[l0 + l], want_v, &n);
      int fixed =
          want_v ? (c->x.rank_v ? c->x.rank_v : c->x.rank_k) : c->x.rank_k;
      double e;
      rc = eng_svd_tail_error(parts, w, n, kvd,
                              group_rank(c, fixed, n, w * kvd), &e, err);
      sum[want_v] += e * w;
    }
  }
  free(layers);
  r->err_k = sum[0] / L;
  r->err_v = sum[1] / L;
  return rc;
}

static int needle_score(const eng_model *m, const config *c,
                        const needle_case *cases, result *r, eng_err *err) {
  int V = m->cfg.vocab_size;
  r->needle_hit = r->needle_lp = 0;
  for (int d = 0; d < N_DEPTHS; d++) {
    const needle_case *nc = &cases[d];
    int T = nc->n - nc->h, q = nc->p - nc->h;
    float *logits = malloc((size_t)T * V * sizeof(float));
    float *lp = malloc((size_t)V * sizeof(float));
    eng_kv *kv = logits && lp ? make_kv(m, c, nc->n, err) : NULL;
    int rc =
        kv ? eng_teacher_force(m, kv, nc->ids, nc->h, nc->n, logits, err) : -1;
    int hit = 1;
    for (int t = q; !rc && t < T; t++) {
      const float *row = logits + (size_t)t * V;
      hit &= eng_argmax(row, V) == nc->ids[nc->h + t];
      eng_log_softmax(row, V, lp);
      r->needle_lp += lp[nc->ids[nc->h + t]] / N_DEPTHS;
    }
    r->needle_hit += (double)hit / N_DEPTHS;
    if (kv)
      kv->ops->destroy(kv);
    free(logits);
    free(lp);
    if (rc)
      return rc == -1 && !kv && !logits ? eng_fail(err, "out of memory") : -1;
  }
  return 0;
}

/* Haystack with the needle at `depth`, then the question, within `limit`
 * tokens; the answer's tokens follow. */
static int build_needle(const eng_model *m, const char *hay, float depth,
                        int limit, needle_case *nc, eng_err *err) {
  size_t hay_len = strlen(hay), chars = (size_t)limit * 4;
  for (int iter = 0; iter < 12; iter++) {
    if (chars > hay_len)
      chars = hay_len;
    size_t at = (size_t)(depth * (float)chars);
    const char *dot = strstr(hay + at, ". ");
    if (dot && (size_t)(dot - hay) + 2 < chars)
      at = (size_t)(dot - hay) + 2;
    size_t len = chars + sizeof needle + sizeof question + sizeof answer;
    char *text = malloc(len);
    if (!text)
      return eng_fail(err, "out of memory");
    int np = snprintf(text, len, "%.*s%s%.*s%s", (int)at, hay, needle,
                      (int)(chars - at), hay + at, question);
    snprintf(text + np, len - (size_t)np, "%s", answer);
    int *pids, pn;
    if (eng_tok_encode(m->tok, text, 1, &nc->ids, &nc->n, err)) {
      free(text);
      return -1;
    }
    text[np] = 0;
    if (eng_tok_encode(m->tok, text, 1, &pids, &pn, err)) {
      free(text);
      return -1;
    }
    int prefix = pn < nc->n && memcmp(pids, nc->ids, pn * sizeof(int)) == 0;
    free(pids);
    nc->p = pn;
    text[np - strlen(question)] = 0; /* the haystack alone */
    int *hids = NULL, hn = 0;
    if (prefix && eng_tok_encode(m->tok, text, 1, &hids, &hn, err)) {
      free(text);
      return -1;
    }
    prefix = prefix && hn <= nc->p &&
             memcmp(hids, nc->ids, (size_t)hn * sizeof(int)) == 0;
    free(hids);
    free(text);
    nc->h = hn;
    if (!prefix) {
      free(nc->ids);
      nc->ids = NULL;
      return eng_fail(err, "needle: the question's or the answer's tokens "
                           "merge with what precedes them");
    }
    if (nc->n <= limit)
      return 0;
    free(nc->ids);
    nc->ids = NULL;
    chars = (size_t)((double)chars * (limit - 4) / nc->n * 0.98);
    if (chars < 64)
      break;
  }
  return eng_fail(err, "needle: cannot fit the haystack into %d tokens", limit);
}

typedef struct {
  const char *model, *tok, *text, *hay, *json, *configs;
  int tokens;
  eng_xkv_opts base;
} eval_opts;

static int parse(int argc, char **argv, eval_opts *o, eng_err *err) {
  *o = (eval_opts){.configs = "exact;W=1,ratio=4;W=2,ratio=4;W=4,ratio=4",
                   .hay = XK_DATA "/paul_graham_essays.txt",
                   .base = {.device = "auto", .group = 1, .ratio = 4.0f}};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return eng_fail(err, "help");
    if (eng_flag_value(argc, argv, &i, &v, err))
      return -1;
    int rc = 0;
    if (strcmp(a, "--text") == 0)
      o->text = v;
    else if (strcmp(a, "--haystack") == 0)
      o->hay = v;
    else if (strcmp(a, "--json") == 0)
      o->json = v;
    else if (strcmp(a, "--configs") == 0)
      o->configs = v;
    else if (strcmp(a, "--tokens") == 0)
      rc = eng_parse_int(a, v, 16, 1 << 20, &o->tokens, err);
    else
      rc = eng_common_flag(a, v, &o->model, &o->tok, &o->base, err);
    if (rc)
      return -1;
  }
  if (!o->model || !o->text)
    return eng_fail(err, "--model and --text are required");
  return 0;
}

static void write_json(FILE *f, const eval_opts *o, const eng_model *m, int L,
                       int P, int T, const config *cs, const result *rs,
                       int nc) {
  fprintf(f,
          "{\n  \"model\": \"%s\", \"format\": \"%s\", \"layers\": %d, "
          "\"kv_heads\": %d, \"head_dim\": %d,\n  \"text\": \"%s\", "
          "\"tokens\": %d, \"prompt\": %d, \"tail\": %d,\n  \"needle\": "
          "{\"depths\": [0.1, 0.3, 0.5, 0.7, 0.9], \"answer\": \"%s\"},\n"
          "  \"configs\": [\n",
          o->model, m->format, m->cfg.n_layers, m->cfg.n_kv_heads,
          m->cfg.head_dim, o->text, L, P, T, answer + 1);
  for (int i = 0; i < nc; i++) {
    const config *c = &cs[i];
    const result *r = &rs[i];
    fprintf(f,
            "    {\"config\": \"%s\", \"exact\": %s, \"W\": %d, "
            "\"target_ratio\": %g, \"ratio\": %.4f, \"bytes\": %llu, "
            "\"rank_k\": [%d, %d], \"rank_v\": [%d, %d], \"kv_err_k\": %.6f, "
            "\"kv_err_v\": %.6f, \"kl\": %.6g, \"top1\": %.4f, "
            "\"greedy_match\": %.4f, \"needle_hit\": %.3f, "
            "\"needle_logprob\": %.4f}%s\n",
            c->label, c->exact ? "true" : "false", c->exact ? 1 : c->x.group,
            c->exact || c->x.rank_k ? 0.0 : c->x.ratio, r->ratio, r->bytes,
            r->rk_min, r->rk_max, r->rv_min, r->rv_max, r->err_k, r->err_v,
            r->kl, r->top1, r->greedy, r->needle_hit, r->needle_lp,
            i + 1 < nc ? "," : "");
  }
  fprintf(f, "  ]\n}\n");
}

static int run_config(const eng_model *m, const config *c, const int *ids,
                      int L, int P, const float *ref, const int *ref_greedy,
                      const needle_case *cases, result *r, eng_err *err) {
  int T = L - P, V = m->cfg.vocab_size, rc = -1;
  float *logits = malloc((size_t)T * V * sizeof(float));
  int *greedy = malloc((size_t)T * sizeof(int));
  eng_kv *kv = NULL, *inner = logits && greedy ? make_kv(m, c, L, err) : NULL;
  if (!inner || eng_kv_recorder_create(inner, &m->cfg, &kv, err))
    goto done;
  eng_kv_stats st;
  if (eng_teacher_force(m, kv, ids, P, L, logits, err) ||
      kv->ops->stats(kv, &st, err) || svd_errors(m, kv, c, r, err))
    goto done;
  eng_compare_logits(ref, logits, T, V, &r->kl, &r->top1);
  r->ratio = c->exact ? 1.0 : st.ratio;
  r->bytes = st.bytes;
  r->rk_min = st.rank_k_min;
  r->rk_max = st.rank_k_max;
  r->rv_min = st.rank_v_min;
  r->rv_max = st.rank_v_max;
  kv->ops->destroy(kv);
  kv = make_kv(m, c, L, err);
  eng_gen_opts g = {.max_new = T, .out = greedy};
  eng_gen_result gr;
  if (!kv || eng_generate(m, kv, ids, P, &g, &gr, err))
    goto done;
  int same = 0;
  while (same < T && greedy[same] == ref_greedy[same])
    same++;
  r->greedy = (double)same / T;
  rc = needle_score(m, c, cases, r, err);
done:
  if (kv)
    kv->ops->destroy(kv);
  free(logits);
  free(greedy);
  return rc;
}

static int eval(const eval_opts *o, eng_err *err) {
  eng_model m;
  if (eng_model_open(o->model, o->tok, &m, err))
    return -1;
  config cs[MAX_CONFIGS];
  result rs[MAX_CONFIGS];
  needle_case cases[N_DEPTHS] = {{0}};
  char *text = NULL, *hay = NULL, *list = strdup(o->configs);
  int *ids = NULL, n = 0, nc = 0, rc = -1, *ref_greedy = NULL;
  float *ref = NULL;
  memset(rs, 0, sizeof rs);
  if (!list) {
    eng_fail(err, "out of memory");
    goto done;
  }
  for (char *save, *s = strtok_r(list, ";", &save); s;
       s = strtok_r(NULL, ";", &save)) {
    if (nc == MAX_CONFIGS) {
      eng_fail(err, "--configs: more than %d configurations", MAX_CONFIGS);
      goto done;
    }
    if (parse_config(s, &cs[nc++], &o->base, err))
      goto done;
  }
  int L = o->tokens ? o->tokens : m.cfg.seq_len < 2048 ? m.cfg.seq_len : 2048;
  if (L > m.cfg.seq_len) {
    eng_fail(err, "--tokens %d exceeds the model's context %d", L,
             m.cfg.seq_len);
    goto done;
  }
  if (eng_read_text(o->text, &text, err) || eng_read_text(o->hay, &hay, err))
    goto done;
  size_t cut = (size_t)L * 12 + 1024; /* enough bytes for L tokens */
  if (strlen(text) > cut)
    text[cut] = 0;
  if (eng_tok_encode(m.tok, text, 1, &ids, &n, err))
    goto done;
  if (n < L) {
    eng_fail(err, "%s: only %d tokens, --tokens asks for %d", o->text, n, L);
    goto done;
  }
  int T = L / 4 < 64 ? L / 4 : 64, P = L - T, V = m.cfg.vocab_size;
  for (int d = 0; d < N_DEPTHS; d++)
    if (build_needle(&m, hay, depths[d], L, &cases[d], err))
      goto done;
  ref = malloc((size_t)T * V * sizeof(float));
  ref_greedy = malloc((size_t)T * sizeof(int));
  config exact = {.label = "exact", .exact = 1};
  eng_kv *kv = ref && ref_greedy ? make_kv(&m, &exact, L, err) : NULL;
  if (!kv)
    goto done;
  int bad = eng_teacher_force(&m, kv, ids, P, L, ref, err);
  kv->ops->destroy(kv);
  kv = bad ? NULL : make_kv(&m, &exact, L, err);
  eng_gen_opts g = {.max_new = T, .out = ref_greedy};
  eng_gen_result gr;
  bad = !kv || eng_generate(&m, kv, ids, P, &g, &gr, err);
  if (kv)
    kv->ops->destroy(kv);
  if (bad)
    goto done;
  printf("%s: %d tokens of %s (prompt %d, teacher-forced/greedy tail %d), "
         "needle at %d depths\n",
         o->model, L, o->text, P, T, N_DEPTHS);
  printf("%-24s %7s %9s %9s %9s %10s %6s %7s %7s %8s\n", "config", "ratio",
         "ranks k", "err K", "err V", "KL", "top1", "greedy", "needle",
         "ans lp");
  for (int i = 0; i < nc; i++) {
    if (run_config(&m, &cs[i], ids, L, P, ref, ref_greedy, cases, &rs[i], err))
      goto done;
    char ranks[32];
    snprintf(ranks, sizeof ranks, "%d-%d", rs[i].rk_min, rs[i].rk_max);
    printf("%-24s %6.2fx %9s %9.4f %9.4f %10.3g %6.3f %7.3f %7.2f %8.3f\n",
           cs[i].label, rs[i].ratio, ranks, rs[i].err_k, rs[i].err_v, rs[i].kl,
           rs[i].top1, rs[i].greedy, rs[i].needle_hit, rs[i].needle_lp);
    fflush(stdout);
  }
  if (o->json) {
    FILE *f = fopen(o->json, "w");
    if (!f) {
      eng_fail(err, "%s: cannot write the JSON", o->json);
      goto done;
    }
    write_json(f, o, &m, L, P, T, cs, rs, nc);
    fclose(f);
  }
  rc = 0;
done:
  for (int d = 0; d < N_DEPTHS; d++)
    free(cases[d].ids);
  free(ref);
  free(ref_greedy);
  free(ids);
  free(text);
  free(hay);
  free(list);
  eng_model_free(&m);
  return rc;
}

/* adapters from the tool's typed parse/eval to eng_cli_main's */
static int parse_any(int argc, char **argv, void *o, eng_err *err) {
  return parse(argc, argv, o, err);
}
static int run_any(const void *o, eng_err *err) {
  return eval(o, err);
}

int main(int argc, char **argv) {
  eval_opts o;
  return eng_cli_main("xkv-eval", usage, argc, argv, &o, parse_any, run_any);
}
