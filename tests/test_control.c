/* Device control flow: if_, when, exit and return_if from
 * tests/data/control_kernels.xk, run on the host and under sim against C
 * references at ragged sizes, and accepted by ptxas for sm_80 and sm_90. */
#include "compile.h"
#include "ptxas.h"
#include "sim.h"

#include "check_main.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static xk_dsl *dsl;

static xk_func *trace(const char *name) {
  xk_func *f;
  xk_diag d;
  int k = xk_dsl_find(dsl, name);
  ck_assert_msg(k >= 0, "no kernel %s", name);
  ck_assert_msg(xk_compile_ir(dsl, k, NULL, 0, &f, &d) == 0, "%s", d.msg);
  return f;
}

/* A kernel of f for `target` ("host" or "sim"), run over a 1-D grid. */
typedef struct {
  xk_jit *jit;
  xk_host_fn fn;
  xk_nvptx_info info;
  int sim;
} kern;

static void build(const xk_func *f, const char *target, kern *k) {
  LLVMTargetMachineRef tm;
  LLVMModuleRef m;
  xk_diag d;
  memset(k, 0, sizeof *k);
  k->sim = !strcmp(target, "sim");
  ck_assert_msg(xk_target_machine(target, &tm, &d) == 0, "%s", d.msg);
  int rc = xk_compile_llvm(f, target, tm, f->name, 1, &m, &k->info, &d);
  LLVMDisposeTargetMachine(tm);
  ck_assert_msg(rc == 0, "%s: %s", target, d.msg);
  ck_assert_msg(xk_jit_new(&k->jit, &d) == 0, "%s", d.msg);
  ck_assert_msg(xk_jit_add(k->jit, m, &d) == 0 &&
                    xk_jit_lookup(k->jit, f->name, &k->fn, &d) == 0,
                "%s", d.msg);
}

static void launch(kern *k, void **args, int programs) {
  if (k->sim) {
    int32_t grid[3] = {programs, 1, 1};
    xk_sim_counters c;
    xk_diag d;
    ck_assert_msg(xk_sim_launch((xk_sim_fn)(void (*)(void))k->fn, args, grid,
                                k->info.threads, k->info.shared_bytes, &c,
                                &d) == 0,
                  "%s", d.msg);
    return;
  }
  int32_t np[3] = {programs, 1, 1};
  for (int p = 0; p < programs; p++) {
    int32_t pid[3] = {p, 0, 0};
    k->fn(args, pid, np);
  }
}

static const char *const targets[] = {"host", "sim"};

START_TEST(test_branchy) {
  xk_func *f = trace("branchy");
  kern k;
  build(f, targets[_i], &k);
  static const int32_t sizes[] = {1, 127, 300, 1000};
  for (int s = 0; s < 4; s++)
    for (int32_t flag = 0; flag < 2; flag++) {
      int32_t n = sizes[s], programs = (n + 127) / 128;
      float *x = calloc((size_t)programs * 128, sizeof *x);
      float *y = calloc((size_t)programs * 128 + 1, sizeof *y);
      for (int i = 0; i < n; i++)
        x[i] = (float)((i * 37) % 101) * 0.25f - 10.0f;
      y[n] = 12345.0f; /* past the end: masked off */
      void *px = x, *py = y;
      void *args[4] = {&px, &py, &n, &flag};
      launch(&k, args, programs);
      for (int p = 0; p < programs; p++) {
        double tot = 0;
        for (int i = p * 128; i < n && i < (p + 1) * 128; i++)
          tot += x[i];
        for (int i = p * 128; i < n && i < (p + 1) * 128; i++) {
          double want = (p % 2 ? -x[i] : 2.0 * x[i]) + (flag ? tot : 0.0) +
                        (p % 2 ? 0 : 1);
          ck_assert_msg(fabs(y[i] - want) <= 1e-3 * (1 + fabs(want)),
                        "%s n=%d flag=%d y[%d] = %g, want %g", targets[_i], n,
                        flag, i, y[i], want);
        }
      }
      ck_assert_float_eq(y[n], 12345.0f);
      free(x);
      free(y);
    }
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

START_TEST(test_marks_exit) {
  xk_func *f = trace("marks");
  kern k;
  build(f, targets[_i], &k);
  for (int32_t limit = 0; limit <= 8; limit += 3) {
    int32_t m[8] = {0};
    void *pm = m;
    void *args[2] = {&pm, &limit};
    launch(&k, args, 8);
    for (int p = 0; p < 8; p++)
      ck_assert_msg(m[p] == (p >= limit ? 0
                             : p == 0   ? 5
                                        : 1),
                    "%s limit %d: M[%d] = %d", targets[_i], limit, p, m[p]);
  }
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

START_TEST(test_loop_branch) {
  xk_func *f = trace("loop_branch");
  kern k;
  build(f, targets[_i], &k);
  static const int32_t ks[] = {0, 1, 5, 7};
  for (int s = 0; s < 4; s++) {
    float y[64];
    int32_t kk = ks[s];
    void *py = y;
    void *args[2] = {&py, &kk};
    launch(&k, args, 1);
    for (int i = 0; i < 64; i++) {
      float want = 0;
      for (int j = 0; j < kk; j++)
        want = j % 3 == 0 ? want + (float)i : want - 1.0f;
      ck_assert_msg(y[i] == want, "%s K=%d y[%d] = %g, want %g", targets[_i],
                    kk, i, y[i], want);
    }
  }
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

/* The fold keeps only the taken branch: no IF is left to lower. */
START_TEST(test_constant_condition_folds) {
  xk_func *f = trace("folded");
  char *ir = xk_func_print(f);
  ck_assert_msg(!strstr(ir, " if ") && !strstr(ir, "= if"), "%s", ir);
  ck_assert_msg(strstr(ir, "const") != NULL, "%s", ir);
  free(ir);
  kern k;
  build(f, "host", &k);
  int32_t y = 0;
  void *py = &y;
  void *args[1] = {&py};
  launch(&k, args, 1);
  ck_assert_int_eq(y, 7);
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

/* The IF survives the passes when the condition is a run-time value. */
START_TEST(test_ir_has_region) {
  xk_func *f = trace("branchy");
  char *ir = xk_func_print(f);
  ck_assert_msg(strstr(ir, "= if") != NULL && strstr(ir, "} else {"), "%s", ir);
  free(ir);
  xk_func_free(f);
}
END_TEST

static int cmp_line(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* text's lines sorted, each ending in a newline (malloc'd): the order of
 * device_print's lines across programs and threads is unspecified */
static char *sorted_lines(char *text) {
  char *lines[64], *out = calloc(strlen(text) + 2, 1);
  int nl = 0;
  for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
    ck_assert_int_lt(nl, 64);
    lines[nl++] = l;
  }
  qsort(lines, (size_t)nl, sizeof *lines, cmp_line);
  for (int i = 0; i < nl; i++)
    strcat(strcat(out, lines[i]), "\n");
  return out;
}

/* Runs k over 2 programs with stdout sent to a temporary file; returns
 * what it printed, sorted. */
static char *printed(kern *k, void **args) {
  char path[] = "/tmp/xk_print_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  fflush(stdout);
  int saved = dup(1);
  dup2(fd, 1);
  launch(k, args, 2);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  off_t n = lseek(fd, 0, SEEK_END);
  char *buf = calloc((size_t)n + 1, 1);
  ck_assert_int_eq(pread(fd, buf, (size_t)n, 0), n);
  close(fd);
  unlink(path);
  char *out = sorted_lines(buf);
  free(buf);
  return out;
}

static void expect_printed(kern *k, void **args, char *want) {
  char *got = printed(k, args), *w = sorted_lines(want);
  ck_assert_str_eq(got, w);
  free(got);
  free(w);
}

/* A [4] i32 tile and an f32 scalar per program */
START_TEST(test_device_print) {
  xk_func *f = trace("printer");
  kern k;
  build(f, targets[_i], &k);
  int32_t x[8] = {3, -1, 40, 7, 0, 12, -5, 99};
  float sv = 1.5f;
  void *args[] = {&(int32_t *){x}, &sv};
  char want[1024] = "";
  for (int p = 0; p < 2; p++) {
    for (int i = 0; i < 4; i++)
      snprintf(want + strlen(want), sizeof want - strlen(want),
               "pid (%d, 0, 0) idx (%d) x: %d\n", p, i, x[p * 4 + i]);
    snprintf(want + strlen(want), sizeof want - strlen(want),
             "pid (%d, 0, 0) s: %.9g\n", p, (double)sv);
  }
  expect_printed(&k, args, want);
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

/* A [2, 4] f16 tile: two indices, a half converted for printing */
START_TEST(test_device_print_2d) {
  xk_func *f = trace("printer2d");
  kern k;
  build(f, targets[_i], &k);
  float x[16];
  for (int i = 0; i < 16; i++)
    x[i] = (float)(i * 3 - 20) * 0.25f; /* exact in f16 */
  void *args[] = {&(float *){x}};
  char want[2048] = "";
  for (int p = 0; p < 2; p++)
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 4; j++)
        snprintf(want + strlen(want), sizeof want - strlen(want),
                 "pid (%d, 0, 0) idx (%d, %d) h: %.9g\n", p, i, j,
                 (double)x[p * 8 + i * 4 + j]);
  expect_printed(&k, args, want);
  xk_jit_free(k.jit);
  xk_func_free(f);
}
END_TEST

START_TEST(test_ptxas_accepts) {
  static const char *const names[] = {"branchy", "marks", "loop_branch",
                                      "printer", "printer2d"};
  static const char *const sms[] = {"sm_80", "sm_90"};
  const char *px = XK_PTXAS;
  int have = px[0] && access(px, X_OK) == 0;
  for (int n = 0; n < 5; n++)
    for (int s = 0; s < 2; s++) {
      xk_func *f = trace(names[n]);
      LLVMTargetMachineRef tm;
      LLVMModuleRef m;
      xk_diag d;
      xk_nvptx_info info;
      char *ptx;
      size_t len;
      ck_assert_msg(xk_target_machine(sms[s], &tm, &d) == 0, "%s", d.msg);
      ck_assert_msg(xk_compile_llvm(f, sms[s], tm, f->name, 1, &m, &info, &d) ==
                        0,
                    "%s %s: %s", names[n], sms[s], d.msg);
      ck_assert_msg(xk_target_emit(m, tm, 0, &ptx, &len, &d) == 0, "%s", d.msg);
      if (have) {
        xk_ptxas_info pi;
        ck_assert_msg(xk_ptxas_run_text(px, sms[s], ptx, len, &pi, &d) == 0,
                      "%s %s: %s", names[n], sms[s], d.msg);
        ck_assert_int_eq(pi.spill_bytes, 0);
        printf("ptxas %s %s: %d registers, %d spill bytes\n", names[n], sms[s],
               pi.registers, pi.spill_bytes);
      }
      free(ptx);
      LLVMDisposeModule(m);
      LLVMDisposeTargetMachine(tm);
      xk_func_free(f);
    }
}
END_TEST

static void open_dsl(void) {
  xk_diag d;
  if (xk_dsl_open(XK_SRC "/tests/data/control_kernels.xk", &dsl, &d))
    fprintf(stderr, "test_control: %s\n", d.msg);
}

static void close_dsl(void) {
  xk_dsl_close(dsl);
  dsl = NULL;
}

int main(void) {
  Suite *s = suite_create("control");
  TCase *tc = tcase_create("control");
  tcase_set_timeout(tc, 120);
  tcase_add_unchecked_fixture(tc, open_dsl, close_dsl);
  tcase_add_loop_test(tc, test_branchy, 0, 2);
  tcase_add_loop_test(tc, test_marks_exit, 0, 2);
  tcase_add_loop_test(tc, test_loop_branch, 0, 2);
  tcase_add_test(tc, test_constant_condition_folds);
  tcase_add_test(tc, test_ir_has_region);
  tcase_add_loop_test(tc, test_device_print, 0, 2);
  tcase_add_loop_test(tc, test_device_print_2d, 0, 2);
  tcase_add_test(tc, test_ptxas_accepts);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
