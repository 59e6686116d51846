/* Malformed kernels: each tests/bad/NAME.xk starts with
 *   -- expect: SUBSTRING
 *   -- line: LINE
 *   -- env: NAME=VALUE     (optional: set while the file is opened and traced)
 * (the xkvgen CLI test reads the same header) and opening it, then tracing
 * every kernel, must fail with a message that names NAME.xk:LINE and contains
 * SUBSTRING; never crash. */
#include "dsl.h"

#include "check_main.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BAD_DIR XK_SRC "/tests/bad"

/* 0 when everything traced; else -1 with the first diagnostic */
static int open_and_trace(const char *path, xk_diag *d) {
  xk_dsl *D = NULL;
  if (xk_dsl_open(path, &D, d))
    return -1;
  int rc = 0;
  for (int i = 0; i < xk_dsl_nkernels(D) && !rc; i++) {
    xk_func *f = NULL;
    rc = xk_dsl_trace(D, i, NULL, 0, &f, d);
    ck_assert(rc == 0 ? f != NULL : f == NULL);
    xk_func_free(f);
  }
  xk_dsl_close(D);
  return rc;
}

static void check_bad(const char *path, const char *base, int line,
                      const char *want) {
  xk_diag d = {{0}};
  ck_assert_msg(open_and_trace(path, &d) != 0, "%s: no error", base);
  char loc[300];
  snprintf(loc, sizeof loc, "%s:%d: ", base, line);
  ck_assert_msg(strstr(d.msg, loc), "%s: want location '%s' in: %s", base, loc,
                d.msg);
  ck_assert_msg(strstr(d.msg, want), "%s: want '%s' in: %s", base, want, d.msg);
  /* the location is the full path, as given, at the start */
  ck_assert_msg(!strncmp(d.msg, path, strlen(path)), "%s", d.msg);
}

START_TEST(bad_files) {
  DIR *dir = opendir(BAD_DIR);
  ck_assert_ptr_nonnull(dir);
  int n = 0;
  struct dirent *ent;
  while ((ent = readdir(dir))) {
    size_t len = strlen(ent->d_name);
    if (len < 4 || strcmp(ent->d_name + len - 3, ".xk"))
      continue;
    char path[512], head[512] = {0}, second[64] = {0}, third[128] = {0};
    snprintf(path, sizeof path, "%s/%s", BAD_DIR, ent->d_name);
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    ck_assert_ptr_nonnull(fgets(head, sizeof head, fp));
    ck_assert_ptr_nonnull(fgets(second, sizeof second, fp));
    char env[128] = {0};
    if (fgets(third, sizeof third, fp))
      sscanf(third, "-- env: %127s", env);
    fclose(fp);
    char *eq = strchr(env, '=');
    if (eq) {
      *eq = 0;
      setenv(env, eq + 1, 1);
    }
    head[strcspn(head, "\n")] = 0;
    int line = 0, off = 0;
    sscanf(head, "-- expect: %n", &off);
    ck_assert_msg(off > 0 && sscanf(second, "-- line: %d", &line) == 1,
                  "%s: bad header '%s' '%s'", ent->d_name, head, second);
    check_bad(path, ent->d_name, line, head + off);
    if (eq)
      unsetenv(env);
    n++;
  }
  closedir(dir);
  ck_assert_int_ge(n, 14);
}
END_TEST

/* Binary chunks can crash the Lua VM, so only text is loaded. */
START_TEST(binary_chunk) {
  char path[] = "/tmp/xk_bin_XXXXXX.xk";
  int fd = mkstemps(path, 3);
  ck_assert_int_ge(fd, 0);
  static const char chunk[] = "\x1bLuaT\x00\x19\x93\r\n\x1a\n\x04\x08\x08"
                              "garbage that must never be parsed";
  ck_assert_int_eq(write(fd, chunk, sizeof chunk - 1),
                   (ssize_t)sizeof chunk - 1);
  close(fd);
  const char *base = strrchr(path, '/') + 1;
  check_bad(path, base, 1, "binary chunk");
  unlink(path);
}
END_TEST

START_TEST(missing_file) {
  xk_diag d = {{0}};
  xk_dsl *D = (xk_dsl *)&d; /* must be reset to NULL */
  ck_assert_int_eq(xk_dsl_open("/nonexistent/k.xk", &D, &d), -1);
  ck_assert_ptr_null(D);
  ck_assert_ptr_nonnull(strstr(d.msg, "cannot open /nonexistent/k.xk"));
}
END_TEST

/* A long path is abbreviated by Lua ("...tail"); messages still carry the
 * path as given. */
START_TEST(long_path) {
  char dir[] = "/tmp/xk_long_directory_name_for_messages_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[600];
  snprintf(path, sizeof path,
           "%s/a_rather_long_kernel_file_name_to_pass_sixty_chars.xk", dir);
  FILE *fp = fopen(path, "w");
  ck_assert_ptr_nonnull(fp);
  fputs("kernel 'k' { args = { {'X', ptr(f32)} } }(function(a, c)\n"
        "  local x = nil + 1\n"
        "end)\n",
        fp);
  fclose(fp);
  xk_diag d = {{0}};
  ck_assert_int_ne(open_and_trace(path, &d), 0);
  char want[700];
  snprintf(want, sizeof want, "%s:2: in kernel 'k': attempt to perform", path);
  ck_assert_msg(!strncmp(d.msg, want, strlen(want)), "%s", d.msg);
  unlink(path);
  rmdir(dir);
}
END_TEST

int main(void) {
  Suite *s = suite_create("bad_kernels");
  TCase *tc = tcase_create("bad");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, bad_files);
  tcase_add_test(tc, binary_chunk);
  tcase_add_test(tc, missing_file);
  tcase_add_test(tc, long_path);
  suite_add_tcase(s, tc);
  return xk_check_run(s);
}
