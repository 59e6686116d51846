/* Flag parsing shared by xkv-run and xkv-eval. */
#ifndef ENG_CLI_H
#define ENG_CLI_H

#include "err.h"
#include "kvcache.h"

/* Whole-string numbers within [lo, hi]; errors name the flag. */
int eng_parse_int(const char *flag, const char *s, long lo, long hi, int *out,
                  eng_err *err);
int eng_parse_float(const char *flag, const char *s, double lo, double hi,
                    float *out, eng_err *err);
/* The flags both tools take, the model and where and how its xKV cache
 * runs: --model, --tokenizer, --device, --dtype f16|f32. Stores v; -1 for
 * a bad value or a flag that is none of these ("unknown flag"), so a tool
 * tries its own flags first. */
int eng_common_flag(const char *flag, const char *v, const char **model,
                    const char **tok, eng_xkv_opts *x, eng_err *err);
/* argv[*i + 1] as the value of flag argv[*i]. */
int eng_flag_value(int argc, char **argv, int *i, const char **out,
                   eng_err *err);
/* OpenBLAS's idle workers spin for 2^28 cycles (~0.1 s) after each call,
 * taking the cores the xKV runtime's pool needs for attention in between
 * (measured: xKV decode 5.1 -> 7.8 tok/s, exact 29.7 -> 33.4 tok/s with
 * 2^20). OpenBLAS reads OPENBLAS_THREAD_TIMEOUT when it loads, before
 * main(), so when it is unset this sets it and re-executes the program;
 * if that fails the program simply goes on. Call first thing in main(). */
void eng_blas_spin_limit(char **argv);
/* main() of a tool: --version anywhere prints the tool's name and the
 * library's version; else parse (which fails with the message "help" for
 * -h), then run; prints usage or the error, returns the exit status. */
typedef int (*eng_parse_fn)(int argc, char **argv, void *opts, eng_err *err);
typedef int (*eng_run_fn)(const void *opts, eng_err *err);
int eng_cli_main(const char *tool, const char *usage, int argc, char **argv,
                 void *opts, eng_parse_fn parse, eng_run_fn run);
/* A text file's contents (NUL-terminated), malloc'ed. */
int eng_read_text(const char *path, char **out, eng_err *err);

#endif
