/* Allocation-failure injection, as SQLite tests malloc failures: a test
 * binary linked with fault_alloc.c and
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,
 * --wrap=posix_memalign (tests/CMakeLists.txt, xk_fault_test) sends every
 * allocation of its own objects and of the static project libraries
 * (libxkv, libxkvengine, libxkcommon, with their embedded host kernels'
 * heap tiles, which the kernels report through their status) through
 * here. Shared libraries (libc internals, dlopen'ed kernels.so,
 * OpenBLAS/LAPACK, Check) are not wrapped.
 * XK_FAULT_TRACE=1 in the environment prints a backtrace at each injected
 * failure. */
#ifndef XK_FAULT_ALLOC_H
#define XK_FAULT_ALLOC_H

/* The k-th allocation from now on fails (k >= 1; 0: none fails). */
void xk_fault_arm(long k);
/* Allocations attempted since the last xk_fault_arm. */
long xk_fault_count(void);
/* Whether the armed allocation has been reached (and failed). */
int xk_fault_fired(void);
/* Blocks allocated through the wrappers and not yet freed. */
long xk_fault_live(void);

#endif
