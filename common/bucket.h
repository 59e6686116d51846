/* Key-grid bucketing, shared by the tuner (which measures grid points) and
 * the runtime (which maps a call's key value to the bucket it looks up). */
#ifndef XK_BUCKET_H
#define XK_BUCKET_H

#include <stdint.h>

enum { XK_ROUND_NEAREST, XK_ROUND_UP, XK_ROUND_DOWN };

/* "nearest", "up", "down" -> XK_ROUND_*; -1 when unknown */
int xk_round_parse(const char *s);
const char *xk_round_name(int round);

/* The grid value x falls into: nearest in log space (ties go down), the
 * smallest >= x, or the largest <= x; clamped to the grid's ends. vals is
 * ascending and n >= 1. */
int64_t xk_bucket(const int64_t *vals, int n, int round, int64_t x);

/* |log2(a) - log2(b)| with values below 1 taken as 1: how far apart two
 * buckets are. */
double xk_log_distance(int64_t a, int64_t b);

#endif
