#include "cli.h"
#include "model.h"
#include "xkv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int eng_parse_int(const char *flag, const char *s, long lo, long hi, int *out,
                  eng_err *err) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return eng_fail(err, "%s: \"%s\" is not an integer in [%ld, %ld]", flag, s,
                    lo, hi);
  *out = (int)v;
  return 0;
}

int eng_parse_float(const char *flag, const char *s, double lo, double hi,
                    float *out, eng_err *err) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi))
    return eng_fail(err, "%s: \"%s\" is not a number in [%g, %g]", flag, s, lo,
                    hi);
  *out = (float)v;
  return 0;
}

int eng_common_flag(const char *flag, const char *v, const char **model,
                    const char **tok, eng_xkv_opts *x, eng_err *err) {
  if (strcmp(flag, "--model") == 0)
    *model = v;
  else if (strcmp(flag, "--tokenizer") == 0)
    *tok = v;
  else if (strcmp(flag, "--device") == 0)
    x->device = v;
  else if (strcmp(flag, "--dtype") == 0) {
    if (strcmp(v, "f16") && strcmp(v, "f32"))
      return eng_fail(err, "--dtype: \"%s\" is not f16 or f32", v);
    x->f32 = strcmp(v, "f32") == 0;
  } else
    return eng_fail(err, "unknown flag %s", flag);
  return 0;
}

int eng_flag_value(int argc, char **argv, int *i, const char **out,
                   eng_err *err) {
  if (*i + 1 >= argc)
    return eng_fail(err, "%s needs a value", argv[*i]);
  *out = argv[++*i];
  return 0;
}

int eng_read_text(const char *path, char **out, eng_err *err) {
  unsigned char *buf;
  size_t n;
  if (eng_read_file(path, &buf, &n, err))
    return -1;
  if (memchr(buf, 0, n)) {
    free(buf);
    return eng_fail(err, "%s: not a text file (contains NUL bytes)", path);
  }
  *out = (char *)buf;
  return 0;
}

void eng_blas_spin_limit(char **argv) {
  if (getenv("OPENBLAS_THREAD_TIMEOUT") ||
      setenv("OPENBLAS_THREAD_TIMEOUT", "20", 1))
    return;
  execv("/proc/self/exe", argv);
}

int eng_cli_main(const char *tool, const char *usage, int argc, char **argv,
                 void *opts, eng_parse_fn parse, eng_run_fn run) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--version") == 0) {
      printf("%s %s\n", tool, xkv_version());
      return 0;
    }
  eng_blas_spin_limit(argv);
  eng_err err = {{0}};
  if (parse(argc, argv, opts, &err)) {
    if (strcmp(err.msg, "help") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    fprintf(stderr, "%s: %s\n%s", tool, err.msg, usage);
    return 1;
  }
  if (run(opts, &err)) {
    /* a new line: the tool may have been streaming text */
    fprintf(stderr, "\n%s: %s\n", tool, err.msg);
    return 1;
  }
  return 0;
}
