#include "threadpool.h"

#include <pthread.h>
#include <stdlib.h>

struct rt_pool {
  int nthreads; /* including the caller */
  int nstarted; /* worker threads running */
  pthread_t *tids;
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  uint64_t gen; /* bumped once per run */
  int pending;  /* workers still busy with this run */
  int stop;
  int64_t n;
  int nchunks;
  rt_pool_fn fn;
  void *arg;
};

typedef struct {
  rt_pool *p;
  int index; /* 1..nthreads-1 */
} worker_arg;

static void chunk(const rt_pool *p, int i, int64_t *lo, int64_t *hi) {
  /* n < 2^62 (a grid of int32 dims), so n * i cannot overflow for the
   * few threads we have; divide first otherwise. */
  *lo = p->n / p->nchunks * i + (p->n % p->nchunks) * i / p->nchunks;
  *hi =
      p->n / p->nchunks * (i + 1) + (p->n % p->nchunks) * (i + 1) / p->nchunks;
}

static void *worker(void *v) {
  worker_arg a = *(worker_arg *)v;
  free(v);
  rt_pool *p = a.p;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->gen == seen && !p->stop)
      pthread_cond_wait(&p->work, &p->mu);
    if (p->stop)
      break;
    seen = p->gen;
    int64_t lo = 0, hi = 0;
    if (a.index < p->nchunks)
      chunk(p, a.index, &lo, &hi);
    rt_pool_fn fn = p->fn;
    void *arg = p->arg;
    pthread_mutex_unlock(&p->mu);
    if (lo < hi)
      fn(arg, lo, hi);
    pthread_mutex_lock(&p->mu);
    if (--p->pending == 0)
      pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

rt_pool *rt_pool_new(int nthreads) {
  rt_pool *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->nthreads = nthreads < 1 ? 1 : nthreads;
  p->tids = calloc((size_t)p->nthreads, sizeof *p->tids);
  if (!p->tids) {
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->done, NULL);
  return p;
}

int rt_pool_threads(const rt_pool *p) {
  return p->nthreads;
}

/* Starting threads lazily keeps xkv_open cheap; if the system refuses a
 * thread the pool simply runs with fewer (results do not depend on it). */
static void start_workers(rt_pool *p) {
  while (p->nstarted + 1 < p->nthreads) {
    worker_arg *a = malloc(sizeof *a);
    if (!a)
      break;
    a->p = p;
    a->index = p->nstarted + 1;
    if (pthread_create(&p->tids[p->nstarted], NULL, worker, a)) {
      free(a);
      break;
    }
    p->nstarted++;
  }
  p->nthreads = p->nstarted + 1;
}

void rt_pool_run(rt_pool *p, int64_t n, rt_pool_fn fn, void *arg) {
  if (n <= 0)
    return;
  if (p->nthreads == 1 || n == 1) {
    fn(arg, 0, n);
    return;
  }
  if (p->nstarted + 1 < p->nthreads)
    start_workers(p);
  pthread_mutex_lock(&p->mu);
  p->n = n;
  p->nchunks = n < p->nthreads ? (int)n : p->nthreads;
  p->fn = fn;
  p->arg = arg;
  p->pending = p->nstarted;
  p->gen++;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  int64_t lo, hi;
  chunk(p, 0, &lo, &hi);
  fn(arg, lo, hi);
  pthread_mutex_lock(&p->mu);
  while (p->pending)
    pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

void rt_pool_free(rt_pool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nstarted; i++)
    pthread_join(p->tids[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->work);
  pthread_cond_destroy(&p->done);
  free(p->tids);
  free(p);
}
