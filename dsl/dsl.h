/* The Lua front end: loads kernels.xk, keeps each kernel's spec, and traces a
 * kernel body into tile IR once per specialization (constexpr assignment). */
#ifndef XK_DSL_H
#define XK_DSL_H

#include "bucket.h"
#include "ir.h"

typedef struct xk_dsl xk_dsl;

typedef struct {
  char *name;
  int n;
  int64_t *vals;
} xk_tune_dim;

/* How a call's key value falls into a key grid bucket (common/bucket.h). */
typedef struct {
  char *name; /* a key name */
  int n;
  int64_t *vals; /* ascending, positive */
  int round;     /* XK_ROUND_* */
} xk_key_grid;

typedef struct {
  char *name;
  int line; /* where `kernel "name"` stands in the file */
  xk_arg *args;
  int nargs;
  xk_constexpr *consts; /* defaults, in declaration order */
  int nconsts;
  xk_tune_dim *tune; /* may name consts, num_warps, num_stages */
  int ntune;
  char **key;
  int nkey;
  /* launch grid rule: one expression per axis over int args and consts,
   * e.g. "cdiv(L, BLOCK_N)"; NULL means 1 */
  char *grid[3];
  /* keys = { NAME = grid }: the points the tuner measures, in key order */
  xk_key_grid *keygrid;
  int nkeygrid;
} xk_kernel_spec;

/* Loads and runs the file (text chunks only). Errors carry file:line. */
int xk_dsl_open(const char *path, xk_dsl **out, xk_diag *d);
/* The same for a file already in memory; `name` stands for its path in
 * messages (and in xk_dsl_path). */
int xk_dsl_open_buffer(const char *name, const char *text, size_t len,
                       xk_dsl **out, xk_diag *d);
void xk_dsl_close(xk_dsl *dsl);
const char *xk_dsl_path(const xk_dsl *dsl);
int xk_dsl_nkernels(const xk_dsl *dsl);
const xk_kernel_spec *xk_dsl_kernel(const xk_dsl *dsl, int i);
int xk_dsl_find(const xk_dsl *dsl, const char *name); /* -1 when absent */

/* Traces kernel i with `over` (constexprs plus num_warps/num_stages) laid
 * over the defaults. Unknown names in `over` are an error. The function is
 * verified before it is returned. */
int xk_dsl_trace(xk_dsl *dsl, int i, const xk_constexpr *over, int nover,
                 xk_func **out, xk_diag *d);

#endif
