/* Private to the host lowering (lower_host*.c).
 *
 * Every tile value lives in a buffer allocated once in the entry block, and
 * every op is a simple loop nest over elements that LLVM vectorizes.
 * Scalars are SSA registers. Uniform tiles (constants, broadcast scalars)
 * stay a single register ("splat") until something needs them in memory.
 * A float elementwise op whose only use is a later elementwise op of its
 * block is "fused": it has no buffer or loop of its own, and its consumer's
 * loop computes its element where it reads it (lower_host_fuse.c). */
#ifndef XK_LOWER_HOST_IMPL_H
#define XK_LOWER_HOST_IMPL_H

#include "lower.h"

enum { HV_NONE, HV_SCALAR, HV_SPLAT, HV_BUF, HV_FUSED };

typedef struct {
  int kind;
  LLVMValueRef v; /* the register (SCALAR/SPLAT) or the buffer (BUF) */
  int op;         /* FUSED: the op that computes an element */
  /* Integer and pointer tiles may also be known affine in their indices:
   * elem(i) = abase + sum_d astr[d] * i_d (astr i64, NULL for 0; pointer
   * offsets in elements). Loads and stores through an affine pointer tile
   * become contiguous row loops instead of gathers. */
  int aff;
  LLVMValueRef abase;
  LLVMValueRef astr[XK_MAX_RANK];
} xk_hval;

typedef struct {
  const xk_func *f;
  xk_diag *d;
  LLVMContextRef c;
  LLVMModuleRef m;
  LLVMBuilderRef b;  /* the code */
  LLVMBuilderRef ab; /* allocations, at the end of the entry block */
  LLVMValueRef fn;
  LLVMBasicBlockRef entry;
  LLVMBasicBlockRef ret; /* frees the heap tiles and returns; for EXIT */
  xk_hval *vals;
  int *uses;          /* per value: operands of live ops that name it */
  size_t stack_bytes; /* alloca'd so far */
  LLVMValueRef *heap; /* malloc'd buffers, freed on return */
  int nheap, capheap;
  LLVMTypeRef t_i1, t_i8, t_i16, t_i32, t_i64, t_f16, t_f32, t_ptr;
} xk_hl;

typedef struct {
  LLVMBasicBlockRef pre, head, exit;
  LLVMValueRef iv;
} xk_hloop;

/* lower_host.c: infrastructure shared with the op lowerings */
LLVMTypeRef xk_hl_reg_type(xk_hl *h, int dt);
LLVMTypeRef xk_hl_mem_type(xk_hl *h, int dt);
LLVMValueRef xk_hl_i64(xk_hl *h, int64_t v);
LLVMValueRef xk_hl_buf(xk_hl *h, int dt, int64_t numel);
LLVMValueRef xk_hl_loop_begin(xk_hl *h, xk_hloop *l, int64_t n);
void xk_hl_loop_end(xk_hl *h, xk_hloop *l);
/* element idx of value v in its register form (splats ignore idx); NULL
 * with h->d set when a fused op fails to lower */
LLVMValueRef xk_hl_read(xk_hl *h, int v, LLVMValueRef idx);
void xk_hl_write(xk_hl *h, LLVMValueRef buf, int dt, LLVMValueRef idx,
                 LLVMValueRef x);
LLVMValueRef xk_hl_call_intr(xk_hl *h, const char *name, LLVMTypeRef *ovl,
                             int novl, LLVMValueRef *args, int nargs);
int xk_hl_err(xk_hl *h, const xk_op *op, const char *what);
/* dst, a buffer of v's type, <- v (splats are filled) */
void xk_hl_copy_into(xk_hl *h, LLVMValueRef dst, int v);

/* lower_host_fuse.c */
/* h->uses for every value of h->f; -1 when out of memory */
int xk_hl_count_uses(xk_hl *h);
/* Whether op, the i-th op of block bl, can be fused into its use. */
int xk_hl_fusable(xk_hl *h, const xk_block *bl, int i);

/* lower_host_mem.c */
int xk_hl_aff_get(xk_hl *h, int v, xk_hval *out);
/* after an elementwise op wrote its buffer: record what stays affine */
void xk_hl_aff_elementwise(xk_hl *h, const xk_op *op);
int xk_hl_load(xk_hl *h, const xk_op *op);
int xk_hl_store(xk_hl *h, const xk_op *op);

/* lower_host_ops.c */
LLVMValueRef xk_hl_to_f32(xk_hl *h, LLVMValueRef x, int dt);
LLVMValueRef xk_hl_from_f32(xk_hl *h, LLVMValueRef x, int dt);
int xk_hl_const(xk_hl *h, const xk_op *op, LLVMValueRef *out);
/* one element of an elementwise op; in[] are operand elements */
int xk_hl_elem(xk_hl *h, const xk_op *op, LLVMValueRef *in, LLVMValueRef *out);
int xk_hl_elementwise(xk_hl *h, const xk_op *op);
/* operand shapes and dtypes of an elementwise op; 0 or -1 + h->d */
int xk_hl_elementwise_check(xk_hl *h, const xk_op *op);
int xk_hl_shape_op(xk_hl *h, const xk_op *op);
int xk_hl_reduce(xk_hl *h, const xk_op *op);
int xk_hl_dot(xk_hl *h, const xk_op *op);

/* lower_host_perm.c: SHIFT and XORPERM */
int xk_hl_axis_perm(xk_hl *h, const xk_op *op);

/* lower_host_sort.c: SORT (its body is not lowered) */
int xk_hl_sort(xk_hl *h, const xk_op *op);

/* lower_host_atomic.c: ATOMIC */
int xk_hl_atomic(xk_hl *h, const xk_op *op);
/* lower_host_print.c: PRINT */
int xk_hl_print(xk_hl *h, const xk_op *op);

#endif
