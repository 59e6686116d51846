/* The SIMT emulator (see sim.h): fibers (ucontext) for the threads of a
 * block, a cooperative scheduler that switches at barriers and warp
 * collectives, and the counters. */
#include "arch.h"
#include "sim.h"
#include "sim_tc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#ifdef SIM_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* Big enough for the spilled register tiles of the largest configs and for
 * this file's own frames under ASan; only touched pages cost memory. */
#define STACK_BYTES (256 * 1024)
/* How many access groups a lane may run ahead of the slowest lane of its
 * warp before it yields: bounds the pending-group memory. */
#define WINDOW 256

enum { F_READY, F_BARRIER, F_COLL, F_WINDOW, F_DONE };

typedef struct {
  ucontext_t ctx;
  char *map; /* guard page + stack */
  size_t map_bytes;
  int state;
  int tid;
  int64_t seq; /* memory-access calls made so far */
} fiber;

typedef struct {
  int32_t instr;
  int shared, is_store, nrep;
  uint64_t addr[32];
  int32_t bytes[32];
} group;

typedef struct {
  /* collectives: lanes deposit into `in`; the last swaps it with `out` */
  unsigned char *in, *out;
  size_t cap, n;
  int arrived;
  group ring[WINDOW];
  int64_t base; /* sequence number of the oldest incomplete group */
} warp;

typedef struct {
  uint64_t *key; /* sector index + 1, 0 = empty */
  uint32_t *mask;
  size_t cap, used;
} sector_set;

typedef struct {
  xk_sim_fn fn;
  void **args;
  int32_t grid[3], ctaid[3];
  int threads, nwarps;
  fiber *fib;
  fiber *cur;
  warp *warps;
  unsigned char *smem;
  int smem_bytes;
  int nbar;
  ucontext_t sched;
#ifdef SIM_ASAN
  const void *sched_bottom;
  size_t sched_size;
#endif
  int64_t tcount[XK_SIM_NKINDS];
  xk_sim_counters c;
  sector_set uniq;
  int failed;
  char err[512];
} sim;

static _Thread_local sim *g_sim;

/* ---- fibers ----------------------------------------------------------- */

static void switch_ctx(sim *s, ucontext_t *from, ucontext_t *to,
                       const void *to_bottom, size_t to_size, int exiting) {
#ifdef SIM_ASAN
  void *fake = NULL;
  __sanitizer_start_switch_fiber(exiting ? NULL : &fake, to_bottom, to_size);
  swapcontext(from, to);
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
  (void)to_bottom;
  (void)to_size;
  (void)exiting;
  swapcontext(from, to);
#endif
  (void)s;
}

/* From the current fiber back to the scheduler. */
static void yield(sim *s, int exiting) {
#ifdef SIM_ASAN
  switch_ctx(s, &s->cur->ctx, &s->sched, s->sched_bottom, s->sched_size,
             exiting);
#else
  switch_ctx(s, &s->cur->ctx, &s->sched, NULL, 0, exiting);
#endif
}

static void fiber_main(void) {
  sim *s = g_sim;
#ifdef SIM_ASAN
  __sanitizer_finish_switch_fiber(NULL, &s->sched_bottom, &s->sched_size);
#endif
  s->fn(s->args);
  s->cur->state = F_DONE;
  yield(s, 1);
}

static int fiber_start(fiber *f) {
  if (getcontext(&f->ctx))
    return -1;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  f->ctx.uc_stack.ss_sp = f->map + page;
  f->ctx.uc_stack.ss_size = f->map_bytes - page;
  f->ctx.uc_link = NULL;
  makecontext(&f->ctx, fiber_main, 0);
  f->state = F_READY;
  f->seq = 0;
  return 0;
}

static void run_fiber(sim *s, fiber *f) {
  s->cur = f;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  switch_ctx(s, &s->sched, &f->ctx, f->map + page, f->map_bytes - page, 0);
  s->cur = NULL;
}

/* ---- errors from emulated threads ------------------------------------- */

__attribute__((noreturn)) static void fail_here(sim *s, const char *msg) {
  if (!s->failed) {
    s->failed = 1;
    snprintf(s->err, sizeof s->err, "thread %d of block (%d,%d,%d): %s",
             s->cur->tid, s->ctaid[0], s->ctaid[1], s->ctaid[2], msg);
  }
  s->cur->state = F_DONE;
  yield(s, 1);
  abort(); /* unreachable: a failed fiber is never resumed */
}

void xk_sim_fail(const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fail_here(g_sim, msg);
}

/* ---- thread ids, barrier, collectives --------------------------------- */

int32_t xk_sim_tid(void) {
  return g_sim->cur->tid;
}

int32_t xk_sim_ctaid(int32_t axis) {
  return axis >= 0 && axis < 3 ? g_sim->ctaid[axis] : 0;
}

int32_t xk_sim_nctaid(int32_t axis) {
  return axis >= 0 && axis < 3 ? g_sim->grid[axis] : 1;
}

void *xk_sim_smem(void) {
  return g_sim->smem;
}

void xk_sim_count(int32_t kind, int32_t n) {
  if (kind >= 0 && kind < XK_SIM_NKINDS)
    g_sim->tcount[kind] += n;
}

void xk_sim_barrier(void) {
  sim *s = g_sim;
  s->tcount[XK_SIM_BAR]++;
  if (++s->nbar == s->threads) {
    s->nbar = 0;
    for (int i = 0; i < s->threads; i++)
      if (s->fib[i].state == F_BARRIER)
        s->fib[i].state = F_READY;
    return;
  }
  s->cur->state = F_BARRIER;
  yield(s, 0);
}

const void *xk_sim_warp_exchange(const void *mine, size_t n) {
  sim *s = g_sim;
  int tid = s->cur->tid, lane = tid & 31;
  warp *w = &s->warps[tid >> 5];
  if (!w->arrived) {
    if (32 * n > w->cap) {
      size_t cap = 32 * n;
      unsigned char *a = realloc(w->in, cap), *b;
      if (a)
        w->in = a;
      b = a ? realloc(w->out, cap) : NULL;
      if (b)
        w->out = b;
      if (!a || !b)
        fail_here(s, "out of memory in a warp collective");
      w->cap = cap;
    }
    w->n = n;
  } else if (n != w->n) {
    char m[160];
    snprintf(m, sizeof m,
             "warp collective with %zu bytes while other lanes of the warp "
             "passed %zu",
             n, w->n);
    fail_here(s, m);
  }
  memcpy(w->in + (size_t)lane * n, mine, n);
  if (++w->arrived == 32) {
    unsigned char *t = w->in;
    w->in = w->out;
    w->out = t;
    w->arrived = 0;
    for (int i = tid & ~31; i < (tid & ~31) + 32; i++)
      if (s->fib[i].state == F_COLL)
        s->fib[i].state = F_READY;
    return w->out;
  }
  s->cur->state = F_COLL;
  yield(s, 0);
  return w->out;
}

int32_t xk_sim_shfl_bfly_i32(int32_t v, int32_t lanemask) {
  g_sim->tcount[XK_SIM_SHFL]++;
  const int32_t *all = xk_sim_warp_exchange(&v, sizeof v);
  return all[(g_sim->cur->tid ^ lanemask) & 31];
}

/* ---- memory counters -------------------------------------------------- */

static int set_add(sector_set *t, uint64_t sector, uint32_t mask) {
  if (2 * (t->used + 1) > t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 1024;
    uint64_t *k = calloc(cap, sizeof *k);
    uint32_t *m = calloc(cap, sizeof *m);
    if (!k || !m) {
      free(k);
      free(m);
      return -1;
    }
    for (size_t i = 0; i < t->cap; i++) {
      if (!t->key[i])
        continue;
      size_t h = (size_t)(t->key[i] * 0x9e3779b97f4a7c15ull) & (cap - 1);
      while (k[h])
        h = (h + 1) & (cap - 1);
      k[h] = t->key[i];
      m[h] = t->mask[i];
    }
    free(t->key);
    free(t->mask);
    t->key = k;
    t->mask = m;
    t->cap = cap;
  }
  uint64_t key = sector + 1;
  size_t h = (size_t)(key * 0x9e3779b97f4a7c15ull) & (t->cap - 1);
  while (t->key[h] && t->key[h] != key)
    h = (h + 1) & (t->cap - 1);
  if (!t->key[h]) {
    t->key[h] = key;
    t->used++;
  }
  t->mask[h] |= mask;
  return 0;
}

static void set_free(sector_set *t) {
  free(t->key);
  free(t->mask);
  memset(t, 0, sizeof *t);
}

static int64_t set_bytes(const sector_set *t) {
  int64_t n = 0;
  for (size_t i = 0; i < t->cap; i++)
    if (t->key[i])
      n += __builtin_popcount(t->mask[i]);
  return n;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Distinct values among n sorted in place. */
static int count_distinct(uint64_t *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_u64);
  int k = 0;
  for (int i = 0; i < n; i++)
    k += !i || v[i] != v[i - 1];
  return k;
}

/* One warp-request to global memory. Lanes access at most 16 bytes each,
 * so byte-level bookkeeping stays small. */
static void global_group(sim *s, const group *g) {
  uint64_t sect[32 * 2], bytes[32 * 16];
  int ns = 0, nb = 0, active = 0;
  int64_t req_bytes = 0;
  for (int l = 0; l < 32; l++) {
    int32_t n = g->bytes[l];
    if (n <= 0)
      continue;
    active = 1;
    req_bytes += n;
    uint64_t a = g->addr[l];
    for (uint64_t x = a >> 5; x <= (a + (uint64_t)n - 1) >> 5; x++) {
      uint32_t lo = x == a >> 5 ? (uint32_t)(a & 31) : 0;
      uint32_t hi = x == (a + (uint64_t)n - 1) >> 5
                        ? (uint32_t)((a + (uint64_t)n - 1) & 31)
                        : 31;
      uint32_t m = (uint32_t)(((2ull << hi) - 1) & ~((1ull << lo) - 1));
      if (set_add(&s->uniq, x, m))
        fail_here(s, "out of memory counting global bytes");
      if (ns < 64)
        sect[ns++] = x;
    }
    for (int32_t i = 0; i < n && nb < 32 * 16; i++)
      bytes[nb++] = a + (uint64_t)i;
  }
  if (!active)
    return;
  int64_t touched = count_distinct(sect, ns);
  int64_t ideal = (count_distinct(bytes, nb) + 31) / 32;
  if (g->is_store) {
    s->c.gst_requests++;
    s->c.gst_sectors += touched;
    s->c.gst_ideal_sectors += ideal;
    s->c.gst_bytes += req_bytes;
  } else {
    s->c.gld_requests++;
    s->c.gld_sectors += touched;
    s->c.gld_ideal_sectors += ideal;
    s->c.gld_bytes += req_bytes;
  }
}

/* One warp-request to shared memory: 32 banks of 4-byte words. Wide
 * accesses are served in several wavefronts anyway, so the conflicts are
 * the wavefronts the busiest bank needs beyond the fewest any request with
 * this many distinct words needs. */
static void shared_group(sim *s, const group *g) {
  uint64_t words[32 * 4];
  int nw = 0, active = 0;
  for (int l = 0; l < 32; l++) {
    int32_t n = g->bytes[l];
    if (n <= 0)
      continue;
    active = 1;
    s->c.smem_bytes += n;
    for (uint64_t w = g->addr[l] >> 2;
         w <= (g->addr[l] + (uint64_t)n - 1) >> 2 && nw < 32 * 4; w++)
      words[nw++] = w;
  }
  if (!active)
    return;
  int distinct = count_distinct(words, nw);
  int per_bank[32] = {0}, worst = 0;
  for (int i = 0; i < nw; i++)
    if (!i || words[i] != words[i - 1])
      per_bank[words[i] & 31]++;
  for (int b = 0; b < 32; b++)
    worst = per_bank[b] > worst ? per_bank[b] : worst;
  int ideal = (distinct + 31) / 32;
  s->c.smem_requests++;
  s->c.smem_conflicts += worst > ideal ? worst - ideal : 0;
  /* the busiest bank's distinct words: the wavefronts it takes (a
   * broadcast of one word to every lane is one) */
  s->c.smem_wavefronts += worst > ideal ? worst : ideal;
}

static void record_access(int shared, int32_t instr, uint64_t addr,
                          int32_t bytes, int32_t is_store) {
  sim *s = g_sim;
  fiber *f = s->cur;
  warp *w = &s->warps[f->tid >> 5];
  if (bytes > 16)
    fail_here(s, "a lane accessed more than 16 bytes in one instruction");
  if (shared && bytes > 0 && addr + (uint64_t)bytes > (uint64_t)s->smem_bytes) {
    char m[160];
    snprintf(m, sizeof m,
             "shared access of %d bytes at offset %llu, beyond the block's "
             "%d bytes",
             bytes, (unsigned long long)addr, s->smem_bytes);
    fail_here(s, m);
  }
  while (f->seq - w->base >= WINDOW) {
    f->state = F_WINDOW;
    yield(s, 0);
  }
  group *g = &w->ring[f->seq % WINDOW];
  if (!g->nrep) {
    g->instr = instr;
    g->shared = shared;
    g->is_store = is_store;
  } else if (g->instr != instr || g->shared != shared) {
    char m[160];
    snprintf(m, sizeof m,
             "memory instruction %d where other lanes of the warp executed "
             "%d: divergent control flow",
             instr, g->instr);
    fail_here(s, m);
  }
  g->addr[f->tid & 31] = addr;
  g->bytes[f->tid & 31] = bytes;
  f->seq++;
  if (++g->nrep < 32)
    return;
  if (shared)
    shared_group(s, g);
  else
    global_group(s, g);
  g->nrep = 0;
  w->base++;
}

void xk_sim_global_access(int32_t instr, const void *addr, int32_t bytes,
                          int32_t is_store) {
  record_access(0, instr, (uint64_t)(uintptr_t)addr, bytes, is_store);
}

void xk_sim_shared_access(int32_t instr, uint32_t offset, int32_t bytes,
                          int32_t is_store) {
  record_access(1, instr, offset, bytes, is_store);
}

/* ---- the launcher ----------------------------------------------------- */

static int runnable(const sim *s, const fiber *f) {
  if (f->state == F_READY)
    return 1;
  return f->state == F_WINDOW && f->seq - s->warps[f->tid >> 5].base < WINDOW;
}

static int deadlock(sim *s, xk_diag *d) {
  int n[5] = {0};
  for (int i = 0; i < s->threads; i++)
    n[s->fib[i].state]++;
  return xk_diag_set(
      d,
      "sim: deadlock in block (%d,%d,%d): %d threads wait at a barrier, %d "
      "at a warp collective, %d for their warp's memory accesses, %d exited "
      "(a barrier or collective not reached by every thread)",
      s->ctaid[0], s->ctaid[1], s->ctaid[2], n[F_BARRIER], n[F_COLL],
      n[F_WINDOW], n[F_DONE]);
}

static int run_block(sim *s, xk_diag *d) {
  if (s->smem_bytes)
    memset(s->smem, 0, (size_t)s->smem_bytes);
  s->nbar = 0;
  for (int i = 0; i < s->threads; i++)
    if (fiber_start(&s->fib[i]))
      return xk_diag_set(d, "sim: getcontext failed");
  for (int i = 0; i < s->nwarps; i++) {
    s->warps[i].arrived = 0;
    s->warps[i].base = 0;
    for (int k = 0; k < WINDOW; k++)
      s->warps[i].ring[k].nrep = 0;
  }
  for (;;) {
    int progress = 0, done = 0;
    for (int i = 0; i < s->threads && !s->failed; i++) {
      if (runnable(s, &s->fib[i])) {
        run_fiber(s, &s->fib[i]);
        progress = 1;
      }
      done += s->fib[i].state == F_DONE;
    }
    if (s->failed)
      return xk_diag_set(d, "sim: %s", s->err);
    if (done == s->threads)
      break;
    if (!progress)
      return deadlock(s, d);
  }
  for (int i = 0; i < s->nwarps; i++)
    if (s->warps[i].ring[s->warps[i].base % WINDOW].nrep)
      return xk_diag_set(d,
                         "sim: block (%d,%d,%d) warp %d: lanes made different "
                         "numbers of memory accesses",
                         s->ctaid[0], s->ctaid[1], s->ctaid[2], i);
  return 0;
}

static void sim_free(sim *s) {
  if (s->fib)
    for (int i = 0; i < s->threads; i++)
      if (s->fib[i].map)
        munmap(s->fib[i].map, s->fib[i].map_bytes);
  if (s->warps)
    for (int i = 0; i < s->nwarps; i++) {
      free(s->warps[i].in);
      free(s->warps[i].out);
    }
  free(s->fib);
  free(s->warps);
  free(s->smem);
  set_free(&s->uniq);
}

static int sim_alloc(sim *s, xk_diag *d) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  s->fib = calloc((size_t)s->threads, sizeof *s->fib);
  s->warps = calloc((size_t)s->nwarps, sizeof *s->warps);
  s->smem = s->smem_bytes ? calloc(1, (size_t)s->smem_bytes) : NULL;
  if (!s->fib || !s->warps || (s->smem_bytes && !s->smem))
    return xk_diag_set(d, "sim: out of memory for %d threads", s->threads);
  for (int i = 0; i < s->threads; i++) {
    fiber *f = &s->fib[i];
    f->tid = i;
    f->map_bytes = STACK_BYTES + page;
    f->map = mmap(NULL, f->map_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (f->map == MAP_FAILED) {
      f->map = NULL;
      return xk_diag_set(d, "sim: cannot map a fiber stack");
    }
    /* a guard page below the stack turns an overflow into a fault */
    mprotect(f->map, page, PROT_NONE);
  }
  return 0;
}

int xk_sim_launch(xk_sim_fn fn, void **args, const int32_t grid[3], int threads,
                  int smem_bytes, xk_sim_counters *out, xk_diag *d) {
  return xk_sim_launch_arch("sm_90", fn, args, grid, threads, smem_bytes, out,
                            d);
}

int xk_sim_launch_arch(const char *arch, xk_sim_fn fn, void **args,
                       const int32_t grid[3], int threads, int smem_bytes,
                       xk_sim_counters *out, xk_diag *d) {
  if (out)
    memset(out, 0, sizeof *out);
  const xk_arch *a = xk_arch_find(arch);
  if (!a)
    return xk_diag_set(d, "sim: unknown architecture '%s'",
                       arch ? arch : "(null)");
  if (!fn)
    return xk_diag_set(d, "sim: launch of a NULL kernel");
  if (threads <= 0 || threads > 1024 || threads % 32)
    return xk_diag_set(
        d, "sim: %d threads per block (must be a multiple of 32, <= 1024)",
        threads);
  for (int a = 0; a < 3; a++)
    if (grid[a] <= 0)
      return xk_diag_set(d, "sim: grid dimension %d is %d (must be > 0)", a,
                         grid[a]);
  if (smem_bytes < 0 || smem_bytes > a->smem_per_block)
    return xk_diag_set(d,
                       "sim: %d bytes of shared memory per block, above the "
                       "%d-byte limit on %s",
                       smem_bytes, a->smem_per_block, a->name);
  if (g_sim)
    return xk_diag_set(d, "sim: launch from inside an emulated kernel");
  sim *s = calloc(1, sizeof *s);
  if (!s)
    return xk_diag_set(d, "sim: out of memory");
  s->fn = fn;
  s->args = args;
  memcpy(s->grid, grid, sizeof s->grid);
  s->threads = threads;
  s->nwarps = threads / 32;
  s->smem_bytes = smem_bytes;
  int rc = sim_alloc(s, d);
  g_sim = s;
  for (int z = 0; z < grid[2] && !rc; z++)
    for (int y = 0; y < grid[1] && !rc; y++)
      for (int x = 0; x < grid[0] && !rc; x++) {
        s->ctaid[0] = x;
        s->ctaid[1] = y;
        s->ctaid[2] = z;
        rc = run_block(s, d);
        s->c.blocks++;
      }
  g_sim = NULL;
  if (!rc && out) {
    s->c.threads = s->c.blocks * threads;
    s->c.unique_bytes = set_bytes(&s->uniq);
    for (int k = 0; k < XK_SIM_NKINDS; k++)
      s->c.inst[k] = s->tcount[k] / 32;
    *out = s->c;
  }
  sim_free(s);
  free(s);
  return rc;
}

double xk_sim_gld_efficiency(const xk_sim_counters *c) {
  return c->gld_sectors ? (double)c->gld_ideal_sectors / (double)c->gld_sectors
                        : 1.0;
}

double xk_sim_gst_efficiency(const xk_sim_counters *c) {
  return c->gst_sectors ? (double)c->gst_ideal_sectors / (double)c->gst_sectors
                        : 1.0;
}

static int64_t affine(int64_t a, int64_t wa, int64_t b, int64_t wb,
                      int64_t den) {
  int64_t n = wa * a + wb * b;
  return (n >= 0 ? n + den / 2 : n - den / 2) / den;
}

void xk_sim_counters_affine(const xk_sim_counters *a, int64_t wa,
                            const xk_sim_counters *b, int64_t wb, int64_t den,
                            int64_t blocks, xk_sim_counters *o) {
  memset(o, 0, sizeof *o);
#define AFFINE(f) o->f = affine(a->f, wa, b->f, wb, den)
  AFFINE(gld_requests);
  AFFINE(gst_requests);
  AFFINE(gld_sectors);
  AFFINE(gst_sectors);
  AFFINE(gld_ideal_sectors);
  AFFINE(gst_ideal_sectors);
  AFFINE(gld_bytes);
  AFFINE(gst_bytes);
  AFFINE(smem_requests);
  AFFINE(smem_conflicts);
  AFFINE(smem_bytes);
  AFFINE(smem_wavefronts);
  for (int k = 0; k < XK_SIM_NKINDS; k++)
    AFFINE(inst[k]);
#undef AFFINE
  o->blocks = blocks;
  o->threads = a->blocks ? blocks * (a->threads / a->blocks) : 0;
}

#define SYM(f)                                                                 \
  { #f, (void (*)(void))f }
const xk_sim_symbol xk_sim_symbols[] = {SYM(xk_sim_tid),
                                        SYM(xk_sim_ctaid),
                                        SYM(xk_sim_nctaid),
                                        SYM(xk_sim_barrier),
                                        SYM(xk_sim_shfl_bfly_i32),
                                        SYM(xk_sim_smem),
                                        SYM(xk_sim_warp_exchange),
                                        SYM(xk_sim_global_access),
                                        SYM(xk_sim_shared_access),
                                        SYM(xk_sim_count),
                                        SYM(xk_sim_fail),
                                        SYM(xk_sim_mma_m16n8k16_f16),
                                        SYM(xk_sim_mma_m16n8k16_f16acc),
                                        SYM(xk_sim_mma_m16n8k16_bf16),
                                        SYM(xk_sim_ldmatrix),
                                        SYM(xk_sim_cp_async),
                                        SYM(xk_sim_cp_async_commit),
                                        SYM(xk_sim_cp_async_wait),
                                        {NULL, NULL}};
