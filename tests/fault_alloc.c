#include "fault_alloc.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_posix_memalign(void **p, size_t align, size_t n);

static long armed, count, live;
/* The runtime's worker threads free too (their start arguments). */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fired;

/* The blocks the wrappers handed out, so that frees of blocks from
 * elsewhere (libc's strdup inside Check, say) do not count. Open
 * addressing with tombstones; grown through the real allocator. */
#define TOMB ((void *)1)
static void **set;
static size_t cap, used; /* used: live entries plus tombstones */

static unsigned bits; /* cap == 1 << bits */

/* Fibonacci hashing: the product's top bits mix every address bit (the low
 * ones of 128-byte aligned blocks are all zero). */
static size_t slot(const void *p) {
  return (size_t)(((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull) >>
                  (64 - bits));
}

static void set_put(void *p);

static void grow(void) {
  void **old = set;
  size_t oc = cap;
  cap = cap ? cap * 2 : 1024;
  bits = 0;
  while ((size_t)1 << bits < cap)
    bits++;
  set = __real_calloc(cap, sizeof *set);
  if (!set)
    abort(); /* the test harness itself has no memory */
  used = live = 0;
  for (size_t i = 0; i < oc; i++)
    if (old[i] && old[i] != TOMB)
      set_put(old[i]);
  __real_free(old);
}

static void set_put(void *p) {
  if (4 * (used + 1) > 3 * cap)
    grow();
  size_t i = slot(p);
  while (set[i] && set[i] != TOMB)
    i = (i + 1) & (cap - 1);
  used += !set[i];
  set[i] = p;
  live++;
}

static void set_del(void *p) {
  if (!cap)
    return;
  for (size_t i = slot(p); set[i]; i = (i + 1) & (cap - 1))
    if (set[i] == p) {
      set[i] = TOMB;
      live--;
      return;
    }
}

void xk_fault_arm(long k) {
  armed = k;
  count = 0;
  fired = 0;
}

long xk_fault_count(void) {
  return count;
}

int xk_fault_fired(void) {
  return fired;
}

long xk_fault_live(void) {
  pthread_mutex_lock(&lock);
  long n = live;
  pthread_mutex_unlock(&lock);
  return n;
}

/* 1 when this allocation is the one to fail */
static int fail_now(void) {
  if (!armed)
    return 0;
  if (++count != armed)
    return 0;
  fired = 1;
  if (getenv("XK_FAULT_TRACE")) { /* where it failed, for addr2line */
    void *bt[32];
    backtrace_symbols_fd(bt, backtrace(bt, 32), 2);
  }
  errno = ENOMEM; /* as malloc does */
  return 1;
}

static void *do_malloc(size_t n) {
  void *p = fail_now() ? NULL : __real_malloc(n);
  if (p)
    set_put(p);
  return p;
}

static void *do_calloc(size_t n, size_t m) {
  void *p = fail_now() ? NULL : __real_calloc(n, m);
  if (p)
    set_put(p);
  return p;
}

static void *do_realloc(void *p, size_t n) {
  if (p && n == 0) { /* glibc: frees p */
    set_del(p);
    return __real_realloc(p, 0);
  }
  void *q = fail_now() ? NULL : __real_realloc(p, n);
  if (q) {
    if (p)
      set_del(p);
    set_put(q);
  }
  return q;
}

static void do_free(void *p) {
  if (p)
    set_del(p);
  __real_free(p);
}

static int do_posix_memalign(void **p, size_t align, size_t n) {
  if (fail_now())
    return ENOMEM;
  int rc = __real_posix_memalign(p, align, n);
  if (!rc)
    set_put(*p);
  return rc;
}

#define LOCKED(type, call)                                                     \
  pthread_mutex_lock(&lock);                                                   \
  type r_ = call;                                                              \
  pthread_mutex_unlock(&lock);                                                 \
  return r_

void *__wrap_malloc(size_t n) {
  LOCKED(void *, do_malloc(n));
}

void *__wrap_calloc(size_t n, size_t m) {
  LOCKED(void *, do_calloc(n, m));
}

void *__wrap_realloc(void *p, size_t n) {
  LOCKED(void *, do_realloc(p, n));
}

void __wrap_free(void *p) {
  pthread_mutex_lock(&lock);
  do_free(p);
  pthread_mutex_unlock(&lock);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n) {
  LOCKED(int, do_posix_memalign(p, align, n));
}
