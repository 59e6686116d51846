/* Internals of the per-thread (SIMT) lowering shared by lower_nvptx_*.c.
 *
 * Every tile value lives in registers: a value in layout L is an array of
 * xk_layout_nregs(L) scalars per thread. Values that are pure functions of
 * element coordinates (arange, constants, and elementwise/shape ops over
 * them and over uniform scalars) are not materialized: each consumer
 * evaluates them per register in its own layout, so address and mask
 * arithmetic never moves data between threads.
 *
 * GPU-specific primitives go through nv_prims so that a CPU SIMT emulator
 * (the future `sim` target) can substitute calls into itself. */
#ifndef XK_LOWER_NVPTX_INT_H
#define XK_LOWER_NVPTX_INT_H

#include "layout.h"
#include "lower.h"
#include "sim.h"

typedef struct nv nv;

typedef struct {
  LLVMValueRef (*tid)(nv *s); /* i32 thread index in the block */
  LLVMValueRef (*ctaid)(nv *s, int axis);
  LLVMValueRef (*nctaid)(nv *s, int axis);
  void (*barrier)(nv *s);
  /* butterfly shuffle of an i32 across the full warp */
  LLVMValueRef (*shfl_bfly)(nv *s, LLVMValueRef v, int lanemask);
  /* f32 math (EXP, EXP2, LOG, LOG2, SQRT, RSQRT, SIN, COS) */
  LLVMValueRef (*math)(nv *s, int code, LLVMValueRef x);
  /* marks `fn` as a kernel entry with `threads` threads per block */
  void (*mark_kernel)(nv *s, LLVMValueRef fn, int threads);
  /* a global load of `ty` that only touches memory when `mask` (i1) is
   * set, else yields `other` (already in `ty`) */
  LLVMValueRef (*load_masked)(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                              LLVMValueRef mask, LLVMValueRef other);
  /* base of the block's shared scratch (nv_smem sizes it) */
  LLVMValueRef (*smem_base)(nv *s);
  int global_as; /* address space of kernel pointer arguments */
  /* printf(fmt, args...) of the target (lower_nvptx_print.c) */
  void (*print)(nv *s, LLVMValueRef fmt, LLVMValueRef *args, int n);
  /* Optional instrumentation (the sim target; NULL for NVPTX), emitted
   * before a memory access of type `ty` at `ptr` whose execution by this
   * thread `active` (i1, NULL = always) says, and for instruction counts
   * (n instructions of XK_SIM_* `kind`). */
  void (*count_global)(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                       LLVMValueRef active, int is_store);
  void (*count_shared)(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                       LLVMValueRef active, int is_store);
  void (*count)(nv *s, int kind, int n);
  /* Tensor cores and async copies (NULL: dots run on FMAs, loop loads on
   * ordinary loads). ldmatrix: `n` (1, 2, 4) 8x8 b16 matrices whose rows
   * lanes 8q..8q+7 address in shared memory, optionally transposed; out[q]
   * is an i32 (two b16). mma: m16n8k16 row.col on `dtype` (XK_F16,
   * XK_BF16) inputs accumulating as `acc` (XK_DOT_ACC_*; f16 only for f16
   * inputs), a = 4, b = 2 i32 fragment registers, c and d 4 floats (an f16
   * accumulator packs them into two f16x2 registers and back). cp_async: copies
   * src_bytes (i32, 0..bytes) from global `src` to shared `dst` and zero-fills
   * up to bytes (4, 8, 16); visible after cp_async_wait(n) leaves at most n
   * newer groups pending. */
  void (*ldmatrix)(nv *s, LLVMValueRef addr, int n, int trans,
                   LLVMValueRef *out);
  void (*mma)(nv *s, int dtype, int acc, LLVMValueRef *a, LLVMValueRef *b,
              LLVMValueRef *c, LLVMValueRef *d);
  void (*cp_async)(nv *s, LLVMValueRef dst, LLVMValueRef src, int bytes,
                   LLVMValueRef src_bytes);
  void (*cp_async_commit)(nv *s);
  void (*cp_async_wait)(nv *s, int n);
  /* one ATOMIC element (attr rmw, sem, scope) of `dtype` at `ptr`, cmp
   * only for CAS; returns the old value */
  LLVMValueRef (*atomic)(nv *s, int rmw, int sem, int scope, int dtype,
                         LLVMValueRef ptr, LLVMValueRef cmp, LLVMValueRef val);
} nv_prims;

extern const nv_prims xk_nvptx_prims;

/* NV_VIEW: a broadcast of a materialized tile, resolved by each consumer
 * in the consumer's layout (usually a register permutation). */
/* NV_DEFER: a load whose only users are dot operands later in its block;
 * it is issued at the dot so its registers are not live across earlier
 * work (another dot's K loop). */
/* NV_RES: a loop-invariant dot operand kept in shared memory for the
 * kernel's lifetime (lower_nvptx_resident.c); s is its tile. */
enum {
  NV_NONE,
  NV_SCALAR,
  NV_PURE,
  NV_MAT,
  NV_VIEW,
  NV_DEFER,
  NV_LAZY,
  NV_RES
};

typedef struct {
  int kind;
  const xk_op *defer; /* NV_DEFER: the load */
  LLVMValueRef s;     /* NV_SCALAR */
  xk_layout lay;      /* NV_MAT */
  LLVMValueRef *regs;
} nv_val;

/* Axis facts of a value (lower_nvptx_axis.c). */
typedef struct {
  int contig[XK_MAX_RANK], cnst[XK_MAX_RANK], div[XK_MAX_RANK];
} nv_axis;

typedef struct {
  xk_layout lay;
  LLVMValueRef base[XK_MAX_RANK];  /* thread part of each tile dim */
  LLVMValueRef pbase[XK_MAX_RANK]; /* thread part of each parent dim */
} nv_bases;

struct nv {
  const xk_func *f;
  LLVMModuleRef mod;
  LLVMContextRef ctx;
  LLVMBuilderRef b;  /* the current insertion point */
  LLVMBuilderRef pb; /* end of the prologue: thread-invariant setup */
  LLVMValueRef fn;
  const nv_prims *pr;
  xk_diag *d;
  nv_val *vals;
  char *defer;     /* per value: a load that waits for its dot */
  char *lazy;      /* per value: fused into its single consumer */
  char *resident;  /* per value: a tile staged once for its dots */
  nv_axis *axis;   /* per value, computed on demand */
  char *axis_done; /* ... once computed */
  int nw;
  LLVMValueRef tid, lane, warp; /* in the prologue */
  LLVMValueRef smem;            /* placeholder global, replaced at the end */
  int smem_bytes;
  int smem_limit; /* the most the target lets one block have */
  const char *arch;
  /* the dot `a` operand whose tile is still staged at shared offset 0
   * (-1 when none): consecutive dots sharing `a` skip restaging it */
  int staged_a;
  int staged_swz; /* ... in the swizzled layout of a tensor-core dot */
  nv_bases *bases;
  int nbases, cap_bases;
  void **arena;
  int narena, cap_arena;
  struct nv_pipe *pipe; /* the software-pipelined loop being lowered */
  int smem_pin;         /* bytes at the start of shared memory it holds */
  int smem_res;         /* ... of which resident dot operands (NV_RES) */
  const xk_op *op;      /* for diagnostics */
  LLVMValueRef smem_rt; /* sim: the block's shared memory, in the prologue */
  int ninstr;           /* sim: memory instructions instrumented so far */
};

/* lower_nvptx.c */
/* The per-thread lowering with primitives `pr`: xk_lower_nvptx and
 * xk_lower_sim. `arch` names the architecture whose shared memory limit
 * applies, NULL for the largest of any (the sim's launch checks its own). */
int xk_lower_simt(const xk_func *f, LLVMModuleRef mod, const char *sym,
                  const char *arch, const nv_prims *pr, xk_nvptx_info *info,
                  xk_diag *d);
/* The optional instrumentation hooks of s->pr (no-ops when absent). */
void nv_note_global(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                    LLVMValueRef active, int is_store);
void nv_note_shared(nv *s, LLVMTypeRef ty, LLVMValueRef ptr, int is_store);
void nv_note_count(nv *s, int kind, int n);
void *nv_alloc(nv *s, size_t n);
int nv_err(nv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
LLVMTypeRef nv_reg_ty(nv *s, int dtype);
LLVMTypeRef nv_mem_ty(nv *s, int dtype);
/* A register value as stored in memory (i1 as i8), and back. */
LLVMValueRef nv_to_mem(nv *s, int dtype, LLVMValueRef v);
LLVMValueRef nv_from_mem(nv *s, int dtype, LLVMValueRef v);
LLVMValueRef nv_i32(nv *s, int64_t v);
/* A call of the function `name`, declared on first use; nargs <= 16. */
LLVMValueRef nv_call(nv *s, const char *name, LLVMTypeRef ret,
                     LLVMValueRef *args, int nargs);
/* Run-time coordinates (i32, wrapped into the shape) of register `reg` in
 * layout `l` for the current thread; returns the canonical flag (i1). */
LLVMValueRef nv_coords(nv *s, const xk_layout *l, int reg, LLVMValueRef *c);
/* Raw (unwrapped) coordinate along tile dim `t`. */
LLVMValueRef nv_raw(nv *s, const xk_layout *l, int reg, int t);
/* Thread part of parent dim p (lane/warp coordinate, scaled). */
LLVMValueRef nv_pbase(nv *s, const xk_layout *l, int p);
LLVMValueRef nv_rowmajor(nv *s, const LLVMValueRef *c, const int32_t *shape,
                         int rank);
/* v's registers in layout l (converting, broadcasting scalars, evaluating
 * pure values as needed). */
LLVMValueRef *nv_get(nv *s, int v, const xk_layout *l);
/* v materialized in some layout: its own, or the default for its shape. */
LLVMValueRef *nv_get_any(nv *s, int v, xk_layout *l);
/* Reserves `bytes` of shared memory; returns its base (addrspace 3). */
LLVMValueRef nv_smem(nv *s, int bytes);
LLVMValueRef nv_ext_f32(nv *s, int dtype, LLVMValueRef x);
LLVMValueRef nv_trunc_from_f32(nv *s, int dtype, LLVMValueRef x);

/* An operand read register by register (lower_nvptx.c). Pure values are
 * evaluated at the register that needs them, and so are lazy values
 * (NV_LAZY: single-use loads and elementwise ops fused into their
 * consumer), so a whole tile of addresses or loaded values is never live at
 * once; anything else is materialized in the consumer's layout up front
 * (nv_src_init), which is also where a lazy value's own operands are
 * prepared. */
typedef struct nv_src {
  int v;
  LLVMValueRef *regs;
  struct nv_src *ops; /* NV_LAZY: the defining op's operands */
} nv_src;
int nv_src_init(nv *s, nv_src *g, int v, const xk_layout *l);
LLVMValueRef nv_src_elem(nv *s, const nv_src *g, const xk_layout *l, int i);
int nv_lower_op(nv *s, const xk_op *op);
/* A global load of `ty` that only touches memory when `mask` (i1, NULL =
 * always) is set, else yields `other`. */
LLVMValueRef nv_guarded_load(nv *s, LLVMTypeRef ty, LLVMValueRef ptr,
                             LLVMValueRef mask, LLVMValueRef other);

/* lower_nvptx_pipe.c: software pipelining of a FOR whose body loads the
 * operands of its dot (f->num_stages > 1): the loads become copies into
 * num_stages shared-memory buffers, issued num_stages - 1 iterations
 * ahead (cp.async where the access allows), and the dot reads its
 * operands straight from the current buffer. */
typedef struct nv_pipe {
  const xk_op *loop, *dot;
  const xk_op *ld[2]; /* per dot operand: its pipelined load, or NULL */
  int ncopy[2];       /* elements per copy (group of contiguous columns) */
  int off[2];         /* byte offset of the operand's tile in a stage */
  int swz;            /* tensor-core dot: swizzled tiles, else padded rows */
  int stages, stage_bytes;
  char *slice;       /* per op: computes a pipelined load's operands */
  LLVMValueRef slot; /* the current iteration's buffer (i32) */
} nv_pipe;
/* Plans the pipelining of `loop` (1) or says it runs as written (0). */
int nv_pipe_plan(nv *s, const xk_op *loop, nv_pipe *p);
/* Issues iteration `it`'s copies into buffer `slot` when it < hi (both
 * i32), then commits a group. */
int nv_pipe_issue(nv *s, nv_pipe *p, LLVMValueRef it, LLVMValueRef hi,
                  LLVMValueRef slot);
/* Top of an iteration: its copies have landed and are visible. */
void nv_pipe_wait(nv *s, nv_pipe *p);
/* The current buffer's tile of dot operand `k` when it is pipelined (the
 * dot reads it in place), else NULL. */
LLVMValueRef nv_pipe_tile(nv *s, const xk_op *dot, int k);

/* Copies load ld's 2-D tile into shared `tile` (swizzled for tensor cores
 * when swz, else rows padded to nv_dot_pitch), in groups of g contiguous
 * columns (cp.async where g elements make 4 bytes or more; masked groups
 * zero-fill); nv_copy_width is the widest g the access allows. The caller
 * commits and waits. */
int nv_copy_width(nv *s, const xk_op *ld, int swz);
/* v is a zero constant (through broadcasts and reshapes). */
int nv_is_zero(const xk_func *f, int v);
int nv_copy_tile(nv *s, const xk_op *ld, int g, int swz, LLVMValueRef tile);

/* lower_nvptx_resident.c: a 2-D load (or f16/bf16 cast) at the kernel's
 * top level whose only
 * users are tensor-core dots inside loops is copied once into shared
 * memory held to the end of the kernel (a loop-invariant factor, e.g. a
 * weight tile), so its dots read it in place each iteration instead of
 * keeping it in registers and restaging it. nv_find_resident fills
 * s->resident; nv_lower_resident copies such a load; nv_resident_tile is
 * the tile of a resident value, else NULL. */
void nv_find_resident(nv *s);
int nv_lower_resident(nv *s, const xk_op *ld);
/* Stages the materialized f16/bf16 tile of a resident cast v (its
 * registers) into its held region. */
int nv_stage_resident(nv *s, int v);
LLVMValueRef nv_resident_tile(nv *s, int v);

/* lower_nvptx_arith.c: one element of an elementwise op (operand values
 * in a[]), and a CONST op's scalar */
LLVMValueRef nv_ew(nv *s, const xk_op *op, LLVMValueRef *a);
LLVMValueRef nv_const_of(nv *s, const xk_op *op);

/* lower_nvptx_axis.c: the axis facts of value v; and the widest vector
 * (elements, a power of two, 1 = scalar) a load/store/atomic may access
 * along its pointer's most contiguous dim *fast with alignment, contiguity
 * and mask uniformity proven (a 16-byte access at most). */
const nv_axis *nv_axis_of(nv *s, int v);
int nv_mem_vec(nv *s, const xk_op *op, int *fast);

/* lower_nvptx_sched.c: fill s->defer and s->lazy */
void nv_find_deferrable(nv *s);
void nv_find_lazy(nv *s);

/* lower_nvptx_xfer.c: data movement between threads */
typedef struct {
  /* XK_OP_BROADCAST, EXPAND_DIMS, RESHAPE, TRANS, SHIFT, XORPERM, or -1
   * (same) */
  int code;
  int src_rank, dst_rank;
  int32_t src_shape[XK_MAX_RANK], dst_shape[XK_MAX_RANK];
  int axis, perm[XK_MAX_RANK];
  int by; /* SHIFT, XORPERM: attr.i */
} nv_map;
/* Registers of dst layout `l` for a source tile in layout `sl` whose
 * element at map(c) is wanted at dst coordinate c: a register permutation
 * when every thread already holds what it needs, else via shared memory. */
/* The operand coordinate along the axis of SHIFT or XORPERM (`code`, by
 * attr.i) for result coordinate c, n the axis length. */
LLVMValueRef nv_axis_perm_coord(nv *s, int code, int by, int n, LLVMValueRef c);
int nv_gather(nv *s, const LLVMValueRef *src, const xk_layout *sl, int dtype,
              const nv_map *m, const xk_layout *l, LLVMValueRef *out);
int nv_lower_reduce(nv *s, const xk_op *op);
int nv_lower_dot(nv *s, const xk_op *op);
/* Row pitch (elements) of a dot operand staged for the FMA dot: rows
 * padded by a word, so the threads of a warp that read one k of different
 * rows of a (or write rows of b) hit different banks. */
static inline int nv_dot_pitch(int cols, int esz) {
  return cols + (esz < 4 ? 4 / esz : 1);
}

/* lower_nvptx_mma.c: dot on tensor cores. nv_mma_layout gives the
 * accumulator layout when `dot` runs on them (1), else 0. */
int nv_mma_layout(nv *s, const xk_op *dot, xk_layout *l);
int nv_lower_dot_mma(nv *s, const xk_op *op, const xk_layout *lc);
/* An f16 mma accumulator register: two f32 values rounded to one
 * <2 x half> (lo in the low half), and back. */
LLVMValueRef nv_pack_f16x2(nv *s, LLVMValueRef lo, LLVMValueRef hi);
void nv_unpack_f16x2(nv *s, LLVMValueRef v, LLVMValueRef *out);
/* Element offset of (row, col) in swizzled tile z (xk_swizzle_offset). */
LLVMValueRef nv_swz_off(nv *s, const xk_swizzle *z, LLVMValueRef row,
                        LLVMValueRef col);
/* Stores the materialized tile regs (layout l, dtype dt) into swizzled
 * tile z at element offset `at` of base. */
void nv_stage_swz(nv *s, const LLVMValueRef *regs, const xk_layout *l, int dt,
                  const xk_swizzle *z, LLVMValueRef base, int at);
/* The layout a FOR's carried value `i` should start in: its yield's dot
 * accumulator layout (1), so the loop never converts it; else 0. */
int nv_carried_layout(nv *s, const xk_op *loop, int i, xk_layout *l);

/* lower_nvptx_atomic.c: ATOMIC, and the NVPTX primitive (inline PTX) */
int nv_lower_atomic(nv *s, const xk_op *op);
/* lower_nvptx_print.c: PRINT, and the two targets' print prims */
int nv_lower_print(nv *s, const xk_op *op);
void nv_ptx_print(nv *s, LLVMValueRef fmt, LLVMValueRef *args, int n);
void nv_sim_print(nv *s, LLVMValueRef fmt, LLVMValueRef *args, int n);
LLVMValueRef nv_ptx_atomic(nv *s, int rmw, int sem, int scope, int dtype,
                           LLVMValueRef ptr, LLVMValueRef cmp,
                           LLVMValueRef val);

/* lower_sim_tc.c: the sim target's ldmatrix, mma and cp.async (nv_prims
 * fields of the same names), calling sim_tc.c */
void nv_sim_ldmatrix(nv *s, LLVMValueRef addr, int n, int trans,
                     LLVMValueRef *out);
void nv_sim_mma(nv *s, int dtype, int acc, LLVMValueRef *a, LLVMValueRef *b,
                LLVMValueRef *c, LLVMValueRef *d);
void nv_sim_cp_async(nv *s, LLVMValueRef dst, LLVMValueRef src, int bytes,
                     LLVMValueRef src_bytes);
void nv_sim_cp_async_commit(nv *s);
void nv_sim_cp_async_wait(nv *s, int n);

#endif
