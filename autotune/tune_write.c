#include "tune_write.h"

#include "bucket.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void put_pairs(FILE *o, const rt_tune_pair *p, int n) {
  fputc('{', o);
  for (int i = 0; i < n; i++) {
    fprintf(o, "%s", i ? ", " : "");
    xk_json_put_str(o, p[i].name);
    fprintf(o, ": %lld", (long long)p[i].value);
  }
  fputc('}', o);
}

static void put_record(FILE *o, const rt_tune_record *r) {
  fprintf(o, "    {\"kernel\": ");
  xk_json_put_str(o, r->kernel);
  fprintf(o, ", \"key\": ");
  put_pairs(o, r->key, r->nkey);
  fprintf(o, ", \"config\": ");
  put_pairs(o, r->conf, r->nconf);
  fprintf(o, ",\n     \"status\": ");
  xk_json_put_str(o, r->status);
  if (!strcmp(r->status, "ok"))
    fprintf(o, ", \"time_us\": %.3f, \"spread\": %.4f", r->time_us, r->spread);
  if (r->winner)
    fprintf(o, ", \"winner\": true, \"margin\": %.4f", r->margin);
  if (r->why) {
    fprintf(o, ", \"why\": ");
    xk_json_put_str(o, r->why);
  }
  fprintf(o, ",\n     \"source\": ");
  xk_json_put_str(o, r->source);
  fprintf(o, ", \"fingerprint\": ");
  xk_json_put_str(o, r->fingerprint);
  fprintf(o, ", \"ir_hash\": ");
  xk_json_put_str(o, r->ir_hash);
  fprintf(o, ", \"compiler\": ");
  xk_json_put_str(o, r->compiler);
  fprintf(o, "}");
}

void xk_tune_print(FILE *o, const rt_tune_cache *c) {
  fprintf(o, "{\n  \"format\": \"%s\",\n  \"grids\": [\n", RT_TUNE_FORMAT);
  for (int i = 0; i < c->ng; i++) {
    const rt_tune_grid *g = &c->g[i];
    fprintf(o, "    {\"kernel\": ");
    xk_json_put_str(o, g->kernel);
    fprintf(o, ", \"key\": ");
    xk_json_put_str(o, g->name);
    fprintf(o, ", \"round\": \"%s\", \"values\": [", xk_round_name(g->round));
    for (int j = 0; j < g->n; j++)
      fprintf(o, "%s%lld", j ? ", " : "", (long long)g->vals[j]);
    fprintf(o, "]}%s\n", i + 1 < c->ng ? "," : "");
  }
  fprintf(o, "  ],\n  \"records\": [\n");
  for (int i = 0; i < c->n; i++) {
    put_record(o, &c->r[i]);
    fprintf(o, "%s\n", i + 1 < c->n ? "," : "");
  }
  fprintf(o, "  ]\n}\n");
}

static int same_pairs(const rt_tune_pair *a, int na, const rt_tune_pair *b,
                      int nb) {
  if (na != nb)
    return 0;
  for (int i = 0; i < na; i++)
    if (strcmp(a[i].name, b[i].name) || a[i].value != b[i].value)
      return 0;
  return 1;
}

int xk_tune_same_group(const rt_tune_record *a, const rt_tune_record *b) {
  return !strcmp(a->kernel, b->kernel) &&
         !strcmp(a->fingerprint, b->fingerprint) &&
         !strcmp(a->source, b->source) &&
         same_pairs(a->key, a->nkey, b->key, b->nkey);
}

static int in_add(const rt_tune_cache *add, const rt_tune_record *r) {
  for (int i = 0; i < add->n; i++)
    if (xk_tune_same_group(&add->r[i], r))
      return 1;
  return 0;
}

/* old's records outside add's groups, then add's; grids: old's, then
 * add's for new kernel keys. NULL out of memory. */
static rt_tune_cache *merged(const rt_tune_cache *old,
                             const rt_tune_cache *add) {
  rt_tune_cache *m = calloc(1, sizeof *m);
  int bad = !m;
  for (int i = 0; !bad && old && i < old->n; i++)
    if (!in_add(add, &old->r[i]))
      bad = rt_tune_add(m, &old->r[i]);
  for (int i = 0; !bad && i < add->n; i++)
    bad = rt_tune_add(m, &add->r[i]);
  for (int pass = 0; pass < 2; pass++) {
    const rt_tune_cache *c = pass ? add : old;
    for (int i = 0; !bad && c && i < c->ng; i++)
      bad = rt_tune_add_grid(m, c->g[i].kernel, c->g[i].name, c->g[i].vals,
                             c->g[i].n, c->g[i].round);
  }
  if (bad) {
    rt_tune_free(m);
    return NULL;
  }
  return m;
}

int xk_tune_merge_write(const char *path, const rt_tune_cache *add,
                        xk_diag *d) {
  char lock[4096], tmp[4096];
  snprintf(lock, sizeof lock, "%s.lock", path);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int lfd = open(lock, O_RDWR | O_CREAT, 0644);
  if (lfd < 0)
    return xk_diag_set(d, "%s: cannot open: %s", lock, strerror(errno));
  if (flock(lfd, LOCK_EX)) {
    close(lfd);
    return xk_diag_set(d, "%s: cannot lock: %s", lock, strerror(errno));
  }
  int rc = -1;
  rt_tune_cache *old = NULL, *m = NULL;
  char err[1024];
  if (access(path, F_OK) == 0 && !(old = rt_tune_read(path, err, sizeof err)))
    xk_diag_set(d, "%s (not overwritten: move it away or fix it)", err);
  else if (!(m = merged(old, add)))
    xk_diag_set(d, "out of memory merging into %s", path);
  else {
    FILE *o = fopen(tmp, "w");
    if (!o) {
      xk_diag_set(d, "%s: cannot write: %s", tmp, strerror(errno));
    } else {
      xk_tune_print(o, m);
      int bad = fflush(o) || fsync(fileno(o));
      if (fclose(o) || bad)
        xk_diag_set(d, "%s: write failed: %s", tmp, strerror(errno));
      else if (rename(tmp, path))
        xk_diag_set(d, "%s: rename failed: %s", path, strerror(errno));
      else
        rc = 0;
      if (rc)
        unlink(tmp);
    }
  }
  rt_tune_free(old);
  rt_tune_free(m);
  flock(lfd, LOCK_UN);
  close(lfd);
  return rc;
}
