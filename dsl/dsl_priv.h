/* Shared between the DSL's C files: the loader (dsl.c) and the tracer
 * (trace.c). Not part of the public API. */
#ifndef XK_DSL_PRIV_H
#define XK_DSL_PRIV_H

#include "dsl.h"

#include <lauxlib.h>
#include <lua.h>

/* Registry keys. The trace state lives in the Lua registry (not in a C
 * global) so that several xk_dsl instances can coexist. */
#define XK_REG_TRACE "xk.trace" /* light userdata: xk_trace * or nil */
#define XK_REG_MSGH "xk.msgh"   /* the message handler (a C closure) */
#define XK_TILE_MT "xk.tile"    /* metatable of tile userdata */
#define XK_SHAPE_MT "xk.shape"  /* metatable of x.shape tables (0-based) */

/* mem_budget.c: the memory a kernel file may hold, Lua and IR together */
#define XK_BUDGET_MAX_MIB 65536
typedef struct {
  size_t lua;        /* bytes the Lua state holds */
  size_t cap;        /* for lua plus ir's heap_bytes */
  const xk_func *ir; /* the function being traced, or NULL */
} xk_mem_budget;
/* default_mib, or XK_DSL_MEM_MIB from the environment (a test's small
 * cap); -1 + d when that is not a number of MiB. */
int xk_budget_init(xk_mem_budget *b, size_t default_mib, xk_diag *d);
size_t xk_budget_used(const xk_mem_budget *b);
void *xk_budget_alloc(void *ud, void *p, size_t osize, size_t nsize);
/* "ran out of its N MiB of memory (Lua .., IR ..; ...)" */
void xk_budget_describe(const xk_mem_budget *b, char *buf, size_t n);

/* The state of one trace: the function being built and where ops go. */
typedef struct {
  xk_func *f;
  int block;       /* block receiving new ops */
  unsigned serial; /* tiles of other traces are refused */
  const char *path;
  const char *kname;
  const char *op; /* op being traced, for messages */
  int line;       /* its line in the kernel file */
} xk_trace;

/* Line of the innermost stack frame running code of the file `path`; 0
 * when none is. */
int xk_lua_file_line(lua_State *L, const char *path);

/* Registers the ops (load, dot, for_range, ...) as globals and creates the
 * tile metatable. */
void xk_trace_open(lua_State *L);

/* Pushes a tile for value v of the current trace. */
void xk_trace_push_tile(lua_State *L, xk_trace *t, int v);

/* --- helpers shared by trace.c (tiles, arithmetic) and ops.c (the rest) */

/* An operand as written in kernel code: a tile or a Lua number. */
enum { XK_K_TILE, XK_K_INT, XK_K_FLT, XK_K_NONE };
typedef struct {
  int kind;
  int v; /* value id when a tile */
  lua_Integer i;
  lua_Number x;
} xk_opnd;

/* "tile<f32[64,128]>", "3", "0.5": printable in a message */
typedef struct {
  char s[96];
} xk_tname;
xk_tname xk_tn(xk_type t);
xk_tname xk_opnd_str(const xk_trace *t, xk_opnd o);

/* Starts an op: finds the trace (error outside kernel bodies) and the
 * kernel-file line the op is called from. */
xk_trace *xk_cur(lua_State *L, const char *op);
/* Raises "file:line: in kernel 'k': op: <message>". */
__attribute__((noreturn, format(printf, 3, 4))) void
xk_fail(lua_State *L, const xk_trace *t, const char *fmt, ...);

static inline xk_type xk_tvt(const xk_trace *t, int v) {
  return t->f->values[v].type;
}
int xk_temit(xk_trace *t, xk_opcode code, const int *o, int n, xk_type r,
             xk_attr a);
/* A value type; fails unless dims are powers of two, rank <= 3 and the
 * tile is not absurdly large. */
xk_type xk_new_type(lua_State *L, const xk_trace *t, int dtype, int elem,
                    int rank, const int32_t *shape);

/* The tile at idx (NULL when idx is no tile); checks trace and scope. */
int xk_is_tile(lua_State *L, int idx);
int xk_tile_arg(lua_State *L, xk_trace *t, int idx, const char *what);
xk_opnd xk_get_opnd(lua_State *L, xk_trace *t, int idx, const char *what);
int xk_dtype_arg(lua_State *L, xk_trace *t, int idx, const char *what);
xk_type xk_shape_arg(lua_State *L, xk_trace *t, int idx, const char *what);

int xk_cast_to(lua_State *L, xk_trace *t, int v, int dtype);
/* Broadcasts v to the shape of `shape` (numpy rules; caller checked). */
int xk_bcast_to(lua_State *L, xk_trace *t, int v, xk_type shape);
/* numpy broadcast of two shapes, failing with both types named */
xk_type xk_bcast_shape(lua_State *L, xk_trace *t, xk_type a, xk_type b);
xk_type xk_opnd_type(const xk_trace *t, xk_opnd o);
/* dtype both operands promote to (numbers adapt to tiles) */
int xk_common_dtype(const xk_trace *t, xk_opnd a, xk_opnd b);
/* The operand as a value of dtype and shape (numbers become constants). */
int xk_materialize(lua_State *L, xk_trace *t, xk_opnd o, int dtype,
                   xk_type shape);

/* ops.c registers the ops that are not operators */
void xk_ops_open(lua_State *L);
/* cond_lint.c: the kernel file's source with its Lua conditions guarded
 * against tiles (malloc'd, NUL-terminated; NULL when out of memory, or
 * with *overlap = the line where two rewrites overlap) */
char *xk_cond_lint(const char *src, size_t n, size_t *outn, int *overlap);
/* op_sigs.c: wraps the ops (globals and methods) in a check of their
 * positional argument counts; after every op is registered */
void xk_sigs_apply(lua_State *L);
/* control.c: if_, exit and the guards the lint calls */
void xk_control_open(lua_State *L);
/* ops_scan.c: argmax/argmin, scans, sort/topk (called by xk_ops_open) */
void xk_ops_scan_open(lua_State *L);
/* ops_math.c: tanh, sigmoid, erf, pow, fma, umulhi */
void xk_ops_math_open(lua_State *L);
/* ops_atomic.c: atomic_add ... atomic_cas */
void xk_ops_atomic_open(lua_State *L);
/* ops_print.c: device_print */
void xk_ops_print_open(lua_State *L);

#endif
