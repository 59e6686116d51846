/* Tile IR: typed SSA over statically shaped tiles.
 *
 * A function owns flat arrays of values, ops and blocks; everything refers to
 * them by index, so passes can append without invalidating references.
 * Block 0 is the entry; its arguments are the kernel arguments (scalars).
 * A FOR op owns a body block whose arguments are (induction var, carried...)
 * and whose last op is YIELD(carried...). An IF op owns a then block and an
 * else block, neither with arguments, each ending with YIELD(results...).
 * Elementwise ops require operands of
 * identical shape: the front end inserts BROADCAST ops explicitly. */
#ifndef XK_IR_H
#define XK_IR_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

#define XK_MAX_RANK 3

typedef enum {
  XK_I1,
  XK_I32,
  XK_I64,
  XK_F16,
  XK_BF16,
  XK_F32,
  XK_PTR,
  XK_NDTYPES
} xk_dtype;

/* rank 0 is a scalar. Tile dims are powers of two (the verifier checks). */
typedef struct {
  uint8_t dtype;
  uint8_t elem; /* pointee dtype when dtype == XK_PTR */
  uint8_t rank;
  int32_t shape[XK_MAX_RANK];
} xk_type;

typedef enum {
  /* leaves */
  XK_OP_CONST,        /* attr.i (ints, i1) or attr.f (floats), splat to type */
  XK_OP_PROGRAM_ID,   /* attr.axis -> i32 scalar */
  XK_OP_NUM_PROGRAMS, /* attr.axis -> i32 scalar */
  XK_OP_ARANGE,       /* attr.lo, attr.hi -> i32 [hi-lo] */
  /* elementwise binary: operands share the result's type, except
   * ADD on pointers (ptr, int offset in elements -> ptr) */
  XK_OP_ADD,
  XK_OP_SUB,
  XK_OP_MUL,
  XK_OP_DIV, /* floats: IEEE; ints: C truncation */
  XK_OP_REM, /* ints: C remainder; floats: fmod */
  XK_OP_MIN,
  XK_OP_MAX,
  XK_OP_AND, /* ints and i1 */
  XK_OP_OR,
  XK_OP_XOR,
  XK_OP_SHL,
  XK_OP_SHR, /* arithmetic shift */
  XK_OP_CMP, /* attr.pred; operands same type -> i1 */
  /* elementwise unary */
  XK_OP_NEG,
  XK_OP_NOT, /* bitwise not; logical on i1 */
  XK_OP_EXP,
  XK_OP_EXP2,
  XK_OP_LOG,
  XK_OP_SQRT,
  XK_OP_RSQRT,
  XK_OP_SIN,
  XK_OP_COS,
  XK_OP_LOG2,
  XK_OP_FLOOR,
  XK_OP_CEIL,
  XK_OP_ABS,
  XK_OP_SELECT, /* (i1 cond, a, b), all same shape */
  XK_OP_FMA,    /* (a, b, c) floats -> a * b + c rounded once */
  XK_OP_CAST,   /* to the result dtype, same shape */
  /* shape ops */
  XK_OP_BROADCAST,   /* size-1 dims (same rank) or scalar -> result shape */
  XK_OP_EXPAND_DIMS, /* attr.axis: insert a size-1 dim */
  XK_OP_RESHAPE,     /* same element count, row-major order */
  /* along attr.axis of size n, result element c reads operand element
   * c - attr.i when that is in [0, n), else c itself (the scans' step) */
  XK_OP_SHIFT,
  /* along attr.axis, result element c reads operand element c ^ attr.i,
   * attr.i a power of two below n (the sorting network's exchange) */
  XK_OP_XORPERM,
  XK_OP_TRANS,  /* attr.perm: result dim i = operand dim perm[i] */
  XK_OP_REDUCE, /* attr.axis, attr.red: drops the axis */
  /* (a [M,K], b [K,N], acc f32 [M,N]) -> f32 [M,N]; attr.i =
   * XK_DOT_ACC_F16 (f16 a, b only) keeps the sum in f16: acc rounds to f16
   * on entry and the running sum after each k-block of 16 (k = 16j ..
   * 16j+15; the last may be shorter), each block summed in f32 in k order.
   * One block is one mma.m16n8k16 with f16 C/D, whose internal sum PTX
   * leaves unspecified; the sim and the host define it so. */
  XK_OP_DOT,
  /* memory */
  XK_OP_LOAD,       /* (ptr, [mask], [other]); attr.has_mask/has_other */
  XK_OP_STORE,      /* (ptr, value, [mask]); no result */
  XK_OP_ATOMIC_ADD, /* (ptr, value, [mask]); no result */
  /* read-modify-write returning the old values: (ptr, value, [mask]), CAS
   * (ptr, cmp, value, [mask]); attr.rmw, attr.sem, attr.scope,
   * attr.has_mask; masked-off lanes return 0 */
  XK_OP_ATOMIC,
  /* no operands, no result: a program's memory accesses before it happen
   * before those after it, across all of its threads (CUDA's
   * __syncthreads); for a tile stored and reloaded in another layout */
  XK_OP_BARRIER,
  /* (x) -> no result: writes each element of x (a scalar or a tile of an
   * int or float dtype) to stdout with the program id and its index,
   * after the prefix f->strs[attr.i] (Triton's device_print). A side
   * effect, ordered with memory; line order across programs unspecified */
  XK_OP_PRINT,
  /* control */
  XK_OP_FOR,   /* (lo, hi, step, init...) -> carried...; body block */
  XK_OP_YIELD, /* terminates a FOR body or an IF branch */
  /* (i1 scalar cond) -> results...; body block when cond, orelse block
   * otherwise. A scalar is the same in every thread of a program, so the
   * branch is uniform and may hold barriers and exchanges. */
  XK_OP_IF,
  /* ends the program instance (Triton's early return); never inside a
   * FOR body. Ops after it in its block do not run. */
  XK_OP_EXIT,
  /* (key) -> (sorted key, i32 indices): along attr.axis, ascending or,
   * when attr.i is 1, descending; equal keys keep the smaller index first
   * and NaN is the largest key. The body block (no arguments, pure tile
   * ops only, ending with YIELD(key, indices)) computes the same with tile
   * ops (a bitonic network over XORPERM) for the lowerings that have no
   * native sort; a lowering with one (the host's loops) ignores it. */
  XK_OP_SORT,
  XK_NOPS
} xk_opcode;

enum { XK_DOT_ACC_F32, XK_DOT_ACC_F16 }; /* DOT's attr.i */
#define XK_DOT_ACC_BLOCK 16

typedef enum { XK_EQ, XK_NE, XK_LT, XK_LE, XK_GT, XK_GE } xk_pred;
typedef enum { XK_RED_SUM, XK_RED_MAX, XK_RED_MIN } xk_red;
typedef enum {
  XK_RMW_ADD,
  XK_RMW_MAX, /* signed */
  XK_RMW_MIN,
  XK_RMW_AND,
  XK_RMW_OR,
  XK_RMW_XOR,
  XK_RMW_XCHG,
  XK_RMW_CAS,
  XK_NRMW
} xk_rmw;
/* Triton's sem and scope; the zero values are its defaults */
typedef enum {
  XK_SEM_ACQ_REL,
  XK_SEM_RELAXED,
  XK_SEM_ACQUIRE,
  XK_SEM_RELEASE,
  XK_NSEM
} xk_sem;
typedef enum { XK_SCOPE_GPU, XK_SCOPE_CTA, XK_SCOPE_SYS, XK_NSCOPE } xk_scope;
const char *xk_rmw_name(int rmw);
const char *xk_sem_name(int sem);
const char *xk_scope_name(int scope);

/* FOR keeps its num_stages override in i (0: the kernel's). */
typedef struct {
  int64_t i;
  double f;
  int axis;
  int lo, hi;
  int pred;
  int red;
  int perm[XK_MAX_RANK];
  int has_mask, has_other;
  int rmw, sem, scope; /* ATOMIC */
} xk_attr;

/* A source position in the kernel file; line 0 means unknown. */
typedef struct {
  int line;
} xk_loc;

typedef struct {
  uint16_t code;
  int nres, nopnd;
  int *res;   /* value ids */
  int *opnd;  /* value ids */
  int body;   /* block id for FOR, then block of IF, else -1 */
  int orelse; /* else block of IF, else -1 */
  int block;  /* block that contains this op */
  xk_attr attr;
  xk_loc loc;
  int dead; /* removed by a pass; skipped everywhere */
} xk_op;

typedef struct {
  int nargs, *args; /* value ids */
  int nops, cap, *ops;
  int parent_op; /* FOR or IF op owning this block, -1 for the entry */
} xk_block;

typedef struct {
  xk_type type;
  int def_op;    /* defining op, or -1 for a block argument */
  int def_block; /* block of the argument when def_op == -1 */
} xk_value;

/* A constexpr is an integer unless kind says otherwise; zero-initialized
 * overrides ({name, value}) stay integers. Floats and strings only select
 * code at trace time (c.ALPHA, c.ACTIVATION == "relu"). */
enum { XK_CONST_INT, XK_CONST_FLOAT, XK_CONST_STR };
typedef struct {
  char *name;
  int64_t value; /* XK_CONST_INT */
  int kind;      /* XK_CONST_* */
  double fvalue; /* XK_CONST_FLOAT */
  char *str;     /* XK_CONST_STR; owned wherever name is */
} xk_constexpr;

/* Argument specialization (Triton's, ahead of time): facts a variant may
 * assume about an argument's run-time value; the runtime's dispatcher only
 * launches a variant whose facts hold. XK_SPEC_ONE args are replaced by the
 * constant 1 before lowering, so lowerings only see ALIGN16 and DIV16. */
enum {
  XK_SPEC_ALIGN16 = 1, /* pointer: 16-byte aligned */
  XK_SPEC_DIV16 = 2,   /* integer: divisible by 16 */
  XK_SPEC_ONE = 4      /* integer: equal to 1 */
};

typedef struct {
  char *name;
  xk_type type;
  int spec; /* XK_SPEC_* bits */
} xk_arg;

typedef struct xk_func {
  char *name;
  char *file; /* kernel source, for diagnostics */
  xk_arg *args;
  int nargs;
  xk_constexpr *consts; /* the specialization this function was traced at */
  int nconsts;
  int num_warps, num_stages;
  xk_value *values;
  int nvalues, cap_values;
  xk_op *ops;
  int nops, cap_ops;
  xk_block *blocks;
  int nblocks, cap_blocks;
  char **strs; /* string attributes (PRINT's prefix), by index */
  int nstrs;
  /* bytes of C memory the arrays above have allocated (capacities), kept
   * by ir.c: what a trace's memory cap counts of the IR */
  size_t heap_bytes;
} xk_func;

/* types */
xk_type xk_type_scalar(xk_dtype dt);
xk_type xk_type_ptr(xk_dtype elem);
xk_type xk_type_tile(xk_dtype dt, int rank, const int32_t *shape);
int xk_type_eq(xk_type a, xk_type b);
int xk_type_same_shape(xk_type a, xk_type b);
int64_t xk_type_numel(xk_type t);
int xk_dtype_is_float(int dt);
int xk_dtype_is_int(int dt); /* i1, i32, i64 */
int xk_dtype_bits(int dt);   /* storage bits; pointers are 64 */
const char *xk_dtype_name(int dt);
int xk_dtype_parse(const char *s); /* -1 when unknown */
/* "f32[64,128]", "ptr<f16>", "i32" */
char *xk_type_str(xk_type t, char *buf, size_t n);

/* construction */
xk_func *xk_func_new(const char *name, const char *file);
void xk_func_free(xk_func *f);
int xk_func_add_arg(xk_func *f, const char *name, xk_type t); /* value id */
void xk_func_add_const(xk_func *f, const char *name, int64_t v);
/* Index of a copy of s in f->strs, for an op's attr.i. */
int xk_func_add_str(xk_func *f, const char *s);
/* Gives f's constexpr i the kind and value of c (the name stays). */
void xk_func_set_const(xk_func *f, int i, const xk_constexpr *c);
/* "1024", "0.5" (%.17g) or "\"relu\"": a constexpr's value as text. */
void xk_const_format(const xk_constexpr *c, char *buf, size_t n);
int xk_block_new(xk_func *f, int parent_op);
int xk_block_add_arg(xk_func *f, int block, xk_type t); /* value id */
/* Appends an op to a block; results get the given types. Returns op id. */
int xk_op_new(xk_func *f, int block, xk_opcode code, const int *opnd, int nopnd,
              const xk_type *res, int nres, xk_attr attr, xk_loc loc);
/* Adds a result of type t to op (an IF, whose types are known only after
 * its branches are traced); returns the value id. */
int xk_op_add_result(xk_func *f, int op, xk_type t);
/* Single-result convenience: returns the result value id. */
int xk_emit(xk_func *f, int block, xk_opcode code, const int *opnd, int nopnd,
            xk_type res, xk_attr attr, xk_loc loc);

static inline xk_type xk_vtype(const xk_func *f, int v) {
  return f->values[v].type;
}
const char *xk_op_name(int code);
int xk_op_is_elementwise(int code);
/* STORE, ATOMIC_ADD, ATOMIC, BARRIER, PRINT: ops that are kept without uses and
 * that loads must not be moved across */
int xk_op_orders_memory(int code);
/* FOR, IF, EXIT, YIELD: structure; never removed or merged */
int xk_op_is_control(int code);
/* FOR, IF: ops owning blocks, which may hold memory ops of any kind (SORT
 * owns a block of pure ops only) */
int xk_op_is_region(int code);

/* Replace every use of value `from` by `to`. */
void xk_func_replace_uses(xk_func *f, int from, int to);

/* printer: stable text form used by golden tests */
char *xk_func_print(const xk_func *f); /* malloc'd */
/* "BLOCK_M=128 BLOCK_N=64 num_warps=4 num_stages=3": the config a message
 * about one variant names. */
char *xk_func_config_str(const xk_func *f, char *buf, size_t n);

/* verifier: 0 or -1 with a message naming the op and its line */
int xk_func_verify(const xk_func *f, xk_diag *d);

#endif
