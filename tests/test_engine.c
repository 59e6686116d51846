/* The engine on the real stories260K: greedy text with the exact cache
 * against an independent plain-loop forward pass (no BLAS, llama2.c
 * style: RoPE applied to q and k at each position, post-RoPE key cache),
 * and xKV at full rank against the exact cache's logits. */
#include "cli.h"
#include "eval.h"
#include "generate.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA XK_SRC "/../shared/data/"
#define NEW 48

static eng_model model;

static void setup(void) {
  eng_err err;
  if (eng_model_open(DATA "stories260K.bin", DATA "tok512.bin", &model, &err))
    ck_abort_msg("%s", err.msg);
}

static void teardown(void) {
  eng_model_free(&model);
}

/* ---- the reference forward pass --------------------------------------- */
typedef struct {
  float *kc, *vc; /* [layer][pos][kv_dim], keys rotated */
} ref_cache;

static void ref_rmsnorm(float *o, const float *x, const float *w, int n) {
  double ss = 0;
  for (int i = 0; i < n; i++)
    ss += (double)x[i] * x[i];
  float r = (float)(1.0 / sqrt(ss / n + 1e-5));
  for (int i = 0; i < n; i++)
    o[i] = x[i] * r * w[i];
}

static void ref_matvec(float *o, const float *W, const float *x, int rows,
                       int cols) {
  for (int i = 0; i < rows; i++) {
    double s = 0;
    for (int j = 0; j < cols; j++)
      s += (double)W[(size_t)i * cols + j] * x[j];
    o[i] = (float)s;
  }
}

static void ref_rotate(float *v, int n, int hd, int pos) {
  for (int i = 0; i < n; i += 2) {
    double freq = 1.0 / pow(10000.0, (double)(i % hd) / hd);
    double a = pos * freq, c = cos(a), s = sin(a);
    double x0 = v[i], x1 = v[i + 1];
    v[i] = (float)(x0 * c - x1 * s);
    v[i + 1] = (float)(x0 * s + x1 * c);
  }
}

/* One token through the model; returns the logits (static buffer). */
static const float *ref_step(ref_cache *rc, int token, int pos) {
  const eng_config *c = &model.cfg;
  int d = c->dim, hd = c->head_dim, kvd = c->n_kv_heads * hd;
  int f = c->hidden_dim, S = c->seq_len;
  static float x[1024], xb[1024], q[1024], k[1024], v[1024], att[1024];
  static float h1[4096], h3[4096], o[1024], logits[65536], sc[4096];
  memcpy(x, model.tok_emb + (size_t)token * d, d * sizeof(float));
  for (int l = 0; l < c->n_layers; l++) {
    const eng_layer *y = &model.layers[l];
    ref_rmsnorm(xb, x, y->rms_att, d);
    ref_matvec(q, y->wq, xb, d, d);
    ref_matvec(k, y->wk, xb, kvd, d);
    ref_matvec(v, y->wv, xb, kvd, d);
    ref_rotate(q, d, hd, pos);
    ref_rotate(k, kvd, hd, pos);
    float *K = rc->kc + (size_t)l * S * kvd, *V = rc->vc + (size_t)l * S * kvd;
    memcpy(K + (size_t)pos * kvd, k, kvd * sizeof(float));
    memcpy(V + (size_t)pos * kvd, v, kvd * sizeof(float));
    for (int h = 0; h < c->n_heads; h++) {
      int g = h / (c->n_heads / c->n_kv_heads);
      double mx = -1e30, sum = 0;
      for (int t = 0; t <= pos; t++) {
        double s = 0;
        for (int i = 0; i < hd; i++)
          s += (double)q[h * hd + i] * K[(size_t)t * kvd + g * hd + i];
        sc[t] = (float)(s / sqrt(hd));
        mx = sc[t] > mx ? sc[t] : mx;
      }
      for (int t = 0; t <= pos; t++)
        sum += sc[t] = (float)exp(sc[t] - mx);
      for (int i = 0; i < hd; i++) {
        double a = 0;
        for (int t = 0; t <= pos; t++)
          a += sc[t] / sum * V[(size_t)t * kvd + g * hd + i];
        att[h * hd + i] = (float)a;
      }
    }
    ref_matvec(o, y->wo, att, d, d);
    for (int i = 0; i < d; i++)
      x[i] += o[i];
    ref_rmsnorm(xb, x, y->rms_ffn, d);
    ref_matvec(h1, y->w1, xb, f, d);
    ref_matvec(h3, y->w3, xb, f, d);
    for (int i = 0; i < f; i++)
      h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
    ref_matvec(o, y->w2, h1, d, f);
    for (int i = 0; i < d; i++)
      x[i] += o[i];
  }
  ref_rmsnorm(xb, x, model.rms_final, d);
  ref_matvec(logits, model.wcls, xb, c->vocab_size, d);
  return logits;
}

START_TEST(greedy_matches_reference) {
  const eng_config *c = &model.cfg;
  ck_assert_int_le(c->dim, 1024);
  ck_assert_int_le(c->vocab_size, 65536);
  eng_err err;
  int *ids, n;
  ck_assert_int_eq(
      eng_tok_encode(model.tok, "Once upon a time", 1, &ids, &n, &err), 0);
  /* reference: prompt then greedy, token by token */
  size_t cache = (size_t)c->n_layers * c->seq_len * c->n_kv_heads * c->head_dim;
  ref_cache rc = {malloc(cache * sizeof(float)), malloc(cache * sizeof(float))};
  int ref[NEW];
  const float *lg = NULL;
  for (int i = 0; i < n; i++)
    lg = ref_step(&rc, ids[i], i);
  for (int i = 0; i < NEW; i++) {
    int best = 0;
    for (int j = 1; j < c->vocab_size; j++)
      best = lg[j] > lg[best] ? j : best;
    ref[i] = best;
    lg = ref_step(&rc, best, n + i);
  }
  free(rc.kc);
  free(rc.vc);
  /* the engine with the exact cache */
  eng_kv *kv;
  ck_assert_int_eq(eng_kv_exact_create(c, n + NEW, &kv, &err), 0);
  int got[NEW];
  eng_gen_opts g = {.max_new = NEW, .out = got};
  eng_gen_result r;
  ck_assert_msg(eng_generate(&model, kv, ids, n, &g, &r, &err) == 0, "%s",
                err.msg);
  kv->ops->destroy(kv);
  char text[4096], piece[512];
  size_t len = 0;
  int prev = ids[n - 1];
  for (int i = 0; i < NEW; i++) {
    ck_assert_msg(got[i] == ref[i], "token %d: engine %d, reference %d", i,
                  got[i], ref[i]);
    size_t k = eng_tok_decode(model.tok, prev, got[i], piece, sizeof piece);
    if (len + k < sizeof text) {
      memcpy(text + len, piece, k);
      len += k;
    }
    prev = got[i];
  }
  text[len] = 0;
  printf("stories260K greedy: Once upon a time%s\n", text);
  /* coherent: mostly letters and spaces, words of plausible length */
  int letters = 0, spaces = 0;
  for (size_t i = 0; i < len; i++) {
    letters += (text[i] >= 'a' && text[i] <= 'z') ||
               (text[i] >= 'A' && text[i] <= 'Z');
    spaces += text[i] == ' ';
  }
  ck_assert_int_gt(letters, (int)len * 6 / 10);
  ck_assert_int_gt(spaces, (int)len / 10);
  free(ids);
}
END_TEST

/* xKV at full rank (rank = group features, f32 factors) reproduces the
 * exact cache's decode logits. */
START_TEST(xkv_full_rank_matches_exact) {
  const eng_config *c = &model.cfg;
  const char *text = "Once upon a time, there was a little dog named Max. "
                     "Max liked to run in the park with his friend.";
  eng_err err;
  int *ids, n;
  ck_assert_int_eq(eng_tok_encode(model.tok, text, 1, &ids, &n, &err), 0);
  int p = n - 8, T = n - p, V = c->vocab_size;
  static const int groups[] = {1, 2, 4};
  for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
    int W = groups[gi];
    int full = W * c->n_kv_heads * c->head_dim;
    full = full < p ? full : p;
    eng_xkv_opts o = {.device = "cpu",
                      .group = W,
                      .rank_k = full,
                      .rank_v = full,
                      .f32 = 1,
                      .seed = 7};
    eng_kv *ex, *xk;
    ck_assert_int_eq(eng_kv_exact_create(c, n, &ex, &err), 0);
    ck_assert_msg(eng_kv_xkv_create(c, n, &o, &xk, &err) == 0, "%s", err.msg);
    float *a = malloc((size_t)T * V * sizeof(float));
    float *b = malloc((size_t)T * V * sizeof(float));
    ck_assert_int_eq(eng_teacher_force(&model, ex, ids, p, n, a, &err), 0);
    ck_assert_msg(eng_teacher_force(&model, xk, ids, p, n, b, &err) == 0, "%s",
                  err.msg);
    double worst = 0;
    for (size_t i = 0; i < (size_t)T * V; i++)
      worst = fmax(worst, fabs((double)a[i] - b[i]));
    printf("xKV full rank W=%d: max |logit diff| = %.3g\n", W, worst);
    ck_assert_msg(worst < 1e-3, "W=%d: max abs logit diff %g", W, worst);
    ex->ops->destroy(ex);
    xk->ops->destroy(xk);
    free(a);
    free(b);
  }
  free(ids);
}
END_TEST

/* Low rank compresses and stays close; bad settings are refused. */
START_TEST(xkv_ratio_and_errors) {
  const eng_config *c = &model.cfg;
  eng_err err;
  eng_kv *kv;
  ck_assert_int_eq(eng_kv_create("lossy", c, 16, NULL, &kv, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "unknown cache"));
  eng_xkv_opts o = {.device = "nosuchdevice", .group = 2, .ratio = 4};
  ck_assert_int_eq(eng_kv_xkv_create(c, 16, &o, &kv, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "nosuchdevice"));
  /* the rank rule: equal storage per layer for any group width */
  int r1 = eng_rank_for_ratio(448, 32, 4), r4 = eng_rank_for_ratio(448, 128, 4);
  ck_assert_int_eq(r1, (int)(448.0 * 32 / (4 * (448 + 32))));
  ck_assert_int_eq(r4, (int)(448.0 * 128 / (4 * (448 + 128))));
  ck_assert_int_eq(eng_rank_for_ratio(4, 8, 1000), 1); /* at least 1 */
}
END_TEST

/* The flags xkv-run and xkv-eval share store their values; a bad dtype
 * and a flag neither tool knows are refused, naming the flag. */
START_TEST(common_flags) {
  const char *model = NULL, *tok = NULL;
  eng_xkv_opts x = {.device = "auto"};
  eng_err err;
  static const char *const set[][2] = {{"--model", "m.gguf"},
                                       {"--tokenizer", "t.bin"},
                                       {"--device", "cpu"},
                                       {"--dtype", "f32"}};
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(
        eng_common_flag(set[i][0], set[i][1], &model, &tok, &x, &err), 0);
  ck_assert_str_eq(model, "m.gguf");
  ck_assert_str_eq(tok, "t.bin");
  ck_assert_str_eq(x.device, "cpu");
  ck_assert_int_eq(x.f32, 1);
  ck_assert_int_eq(eng_common_flag("--dtype", "f16", &model, &tok, &x, &err),
                   0);
  ck_assert_int_eq(x.f32, 0);
  ck_assert_int_eq(eng_common_flag("--dtype", "f8", &model, &tok, &x, &err),
                   -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "--dtype: \"f8\""));
  ck_assert_int_eq(x.f32, 0);
  ck_assert_int_eq(eng_common_flag("--modle", "m", &model, &tok, &x, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "unknown flag --modle"));
  ck_assert_str_eq(model, "m.gguf");
}
END_TEST

/* Two ragged sequences decoded together (eng_decode_batch, their f32 xKV
 * caches in one context: one xkv_attention_batch per layer) give each the
 * logits it gets decoded alone (f16 storage differs by its rounding); a batch
 * of caches that cannot attend together, or larger than the state, is refused
 * with the reason. */
START_TEST(batch_decode_matches_single) {
  const eng_config *c = &model.cfg;
  eng_err err;
  static const char *const text[2] = {
      "Once upon a time, there was a little girl named Lily. She loved to "
      "play outside with her friends and her dog.",
      "The little dog ran to the park and saw a big tree."};
  int *ids[2], n[2], V = c->vocab_size, steps = 6, cap[2];
  for (int b = 0; b < 2; b++) {
    ck_assert_int_eq(
        eng_tok_encode(model.tok, text[b], 1, &ids[b], &n[b], &err), 0);
    ck_assert_int_gt(n[b], steps + 8);
    cap[b] = n[b] + 1; /* room for the refused step */
  }
  ck_assert_int_ne(n[0], n[1]);
  eng_xkv_opts o = {
      .device = "cpu", .group = 2, .rank_k = 6, .rank_v = 6, .f32 = 1};
  eng_kv *one[2], *two[2];
  ck_assert_msg(!eng_kv_create_batch("xkv", c, 2, cap, &o, two, &err), "%s",
                err.msg);
  for (int b = 0; b < 2; b++)
    ck_assert_msg(!eng_kv_xkv_create(c, cap[b], &o, &one[b], &err), "%s",
                  err.msg);
  eng_state s1, s2;
  ck_assert_int_eq(eng_state_init(&s1, &model, &err), 0);
  ck_assert_int_eq(eng_state_init_rows(&s2, &model, 2, &err), 0);
  float *want = malloc((size_t)V * sizeof(float));
  float *got = malloc(2 * (size_t)V * sizeof(float));
  int p[2] = {n[0] - steps, n[1] - steps}, tok[2], pos[2];
  for (int b = 0; b < 2; b++) {
    ck_assert_int_eq(
        eng_prefill(&s1, one[b], ids[b], p[b], NULL, NULL, NULL, &err), 0);
    ck_assert_int_eq(
        eng_prefill(&s2, two[b], ids[b], p[b], NULL, NULL, NULL, &err), 0);
  }
  double worst = 0;
  for (int t = 0; t < steps; t++) {
    for (int b = 0; b < 2; b++) {
      tok[b] = ids[b][p[b] + t];
      pos[b] = p[b] + t;
    }
    ck_assert_msg(!eng_decode_batch(&s2, two, tok, pos, 2, got, &err), "%s",
                  err.msg);
    for (int b = 0; b < 2; b++) {
      ck_assert_int_eq(eng_decode(&s1, one[b], tok[b], pos[b], want, &err), 0);
      for (int i = 0; i < V; i++)
        worst = fmax(worst, fabs((double)want[i] - got[(size_t)b * V + i]));
    }
  }
  printf("batch of 2 vs alone: max |logit diff| = %.3g\n", worst);
  ck_assert_msg(worst < 1e-4, "max abs logit diff %g", worst);
  /* caches of two contexts, a state of one row, a bad batch size */
  tok[0] = tok[1] = 1;
  pos[0] = n[0];
  pos[1] = n[1];
  ck_assert_int_eq(eng_decode_batch(&s2, one, tok, pos, 2, got, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "not in sequence 0's context"));
  ck_assert_int_eq(eng_decode_batch(&s1, two, tok, pos, 2, got, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "2 sequences (the state holds 1..1)"));
  eng_kv *kv[2];
  ck_assert_int_eq(eng_kv_create_batch("xkv", c, 0, cap, &o, kv, &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "a batch of 0 caches"));
  ck_assert_int_eq(eng_kv_create_batch("lossy", c, 2, cap, &o, kv, &err), -1);
  ck_assert_ptr_null(kv[0]);
  eng_kv *ex;
  ck_assert_int_eq(eng_kv_exact_create(c, 16, &ex, &err), 0);
  ck_assert_int_eq(eng_kv_xkv_create_shared(ex, c, 16, &o, &kv[0], &err), -1);
  ck_assert_ptr_nonnull(strstr(err.msg, "not an xKV cache"));
  ex->ops->destroy(ex);
  /* the context outlives its first cache */
  two[0]->ops->destroy(two[0]);
  ck_assert_msg(!eng_decode(&s1, two[1], tok[1], pos[1], want, &err), "%s",
                err.msg);
  for (int b = 0; b < 2; b++) {
    one[b]->ops->destroy(one[b]);
    free(ids[b]);
  }
  two[1]->ops->destroy(two[1]);
  eng_state_free(&s1);
  eng_state_free(&s2);
  free(want);
  free(got);
}
END_TEST

int main(void) {
  Suite *s = suite_create("engine");
  TCase *cli = tcase_create("cli");
  tcase_add_test(cli, common_flags);
  suite_add_tcase(s, cli);
  TCase *tc = tcase_create("stories260K");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, greedy_matches_reference);
  tcase_add_test(tc, xkv_full_rank_matches_exact);
  tcase_add_test(tc, xkv_ratio_and_errors);
  tcase_add_test(tc, batch_decode_matches_single);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
