/* Engine errors: every fallible call returns 0 or -1 and, on -1, leaves a
 * sentence naming the cause and the place (file, tensor, flag) in *err. */
#ifndef ENG_ERR_H
#define ENG_ERR_H

typedef struct {
  char msg[512];
} eng_err;

/* Formats into err (when not NULL) and returns -1. */
int eng_fail(eng_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Monotonic seconds, for the tokens/s and attention-share numbers. */
double eng_now(void);

#endif
