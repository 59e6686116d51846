#include "results_file.h"

#include <sys/stat.h>
#include <time.h>

FILE *xk_bench_results_open(const char *stem, const char *ext, char *path,
                            size_t n, char *date) {
  char own[11], *day = date ? date : own;
  time_t now = time(NULL);
  strftime(day, 11, "%Y-%m-%d", gmtime(&now));
  mkdir(XK_SRC "/bench/results", 0777);
  snprintf(path, n, XK_SRC "/bench/results/%s-%s.%s", stem, day, ext);
  return fopen(path, "w");
}
