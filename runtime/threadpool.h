/* A fixed pool of pthreads running one parallel-for at a time. Work is
 * split statically ([0,n) in equal contiguous chunks, chunk 0 on the
 * caller), so which thread runs which program is the same on every run. */
#ifndef XKV_THREADPOOL_H
#define XKV_THREADPOOL_H

#include <stdint.h>

typedef struct rt_pool rt_pool;
typedef void (*rt_pool_fn)(void *arg, int64_t lo, int64_t hi);

/* nthreads >= 1 counts the caller; workers start on the first run. */
rt_pool *rt_pool_new(int nthreads);
void rt_pool_free(rt_pool *p);
int rt_pool_threads(const rt_pool *p);
/* Runs fn over [0, n) and returns when every chunk is done. */
void rt_pool_run(rt_pool *p, int64_t n, rt_pool_fn fn, void *arg);

#endif
