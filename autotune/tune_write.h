/* Writing tune caches: new records merged into the file's, written
 * atomically (temporary file + rename) under an flock on PATH.lock, so that
 * tuners running at once each leave a valid file holding both's records. */
#ifndef XK_TUNE_WRITE_H
#define XK_TUNE_WRITE_H

#include "diag.h"
#include "tune_cache.h"

#include <stdio.h>

/* Replaces, in the file at path (created when absent), every record of the
 * groups that `add` has records for, a group being (kernel, fingerprint,
 * source, key), and adds add's grids for kernels the file has none of.
 * An unreadable existing file is an error and is left as it is. */
int xk_tune_merge_write(const char *path, const rt_tune_cache *add, xk_diag *d);

/* The cache as JSON text (what the file holds). */
void xk_tune_print(FILE *o, const rt_tune_cache *c);

/* Same group (see above). */
int xk_tune_same_group(const rt_tune_record *a, const rt_tune_record *b);

#endif
