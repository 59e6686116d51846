#include "bucket.h"

#include <math.h>
#include <string.h>

static const char *const names[] = {"nearest", "up", "down"};

int xk_round_parse(const char *s) {
  for (int i = 0; s && i < 3; i++)
    if (!strcmp(s, names[i]))
      return i;
  return -1;
}

const char *xk_round_name(int round) {
  return round >= 0 && round < 3 ? names[round] : "?";
}

double xk_log_distance(int64_t a, int64_t b) {
  return fabs(log2((double)(a < 1 ? 1 : a)) - log2((double)(b < 1 ? 1 : b)));
}

int64_t xk_bucket(const int64_t *vals, int n, int round, int64_t x) {
  int i = 0; /* first value >= x, or n */
  while (i < n && vals[i] < x)
    i++;
  if (i < n && vals[i] == x)
    return x;
  if (i == 0)
    return vals[0];
  if (i == n)
    return vals[n - 1];
  if (round == XK_ROUND_UP)
    return vals[i];
  if (round == XK_ROUND_DOWN)
    return vals[i - 1];
  return xk_log_distance(x, vals[i]) < xk_log_distance(x, vals[i - 1])
             ? vals[i]
             : vals[i - 1];
}
