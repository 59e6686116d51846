/* xkvgen's output directory, written all at once: artifacts go to a
 * staging directory inside it and are renamed into place when the whole
 * build succeeded (manifest.json last, so that a manifest never names a
 * missing file); a failed build removes what it wrote. */
#ifndef XK_OUTDIR_H
#define XK_OUTDIR_H

#include "diag.h"

typedef struct {
  char dir[4096];   /* the output directory */
  char stage[4096]; /* where the build writes */
  int created;      /* dir did not exist before */
} xk_outdir;

/* Creates dir (and its parents) when missing, and the staging directory. */
int xk_outdir_open(xk_outdir *o, const char *dir, xk_diag *d);
/* Moves every staged file into dir and removes the staging directory. */
int xk_outdir_commit(xk_outdir *o, xk_diag *d);
/* Removes the staged files, the staging directory, and dir when this build
 * created it. */
void xk_outdir_abort(xk_outdir *o);

#endif
