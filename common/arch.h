/* Per-architecture limits that the compiler, the sim, the perf model and
 * the CUDA launcher must agree on (CUDA C Programming Guide, "Technical
 * Specifications per Compute Capability"). */
#ifndef XK_ARCH_H
#define XK_ARCH_H

/* Shared memory a launch gets without opting in per function
 * (CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). */
#define XK_SMEM_DEFAULT_MAX (48 * 1024)

typedef struct {
  const char *name;   /* "sm_80", ... */
  int smem_per_block; /* the most one block may opt into */
  int smem_per_sm;    /* what an SM holds; each resident block reserves
                         XK_SMEM_RESERVED of it */
} xk_arch;

#define XK_SMEM_RESERVED 1024

/* sm_80, sm_86, sm_89, sm_90, sm_90a; NULL for any other name. */
const xk_arch *xk_arch_find(const char *name);
/* The largest smem_per_block of any known architecture (what an
 * architecture-neutral build, the sim target's, may use). */
int xk_arch_smem_max(void);

#endif
