/* Where every benchmark writes its results: bench/results/ of the source
 * tree, one file per benchmark, device and day. */
#ifndef XK_BENCH_RESULTS_FILE_H
#define XK_BENCH_RESULTS_FILE_H

#include <stddef.h>
#include <stdio.h>

/* Opens XK_SRC/bench/results/STEM-DATE.EXT for writing (the folder made
 * when missing), DATE today's UTC date (YYYY-MM-DD), so reruns on one day
 * replace the file. The path goes to path[n] and, when date is not NULL,
 * DATE to date[11]. NULL when the file cannot be opened. */
FILE *xk_bench_results_open(const char *stem, const char *ext, char *path,
                            size_t n, char *date);

#endif
