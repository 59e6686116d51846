#include "outdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p: the output directory may be nested in a fresh build tree */
static int mkdir_p(const char *dir) {
  char p[4096];
  snprintf(p, sizeof p, "%s", dir);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      if (mkdir(p, 0777) && errno != EEXIST)
        return -1;
      *s = '/';
    }
  return mkdir(p, 0777) && errno != EEXIST ? -1 : 0;
}

int xk_outdir_open(xk_outdir *o, const char *dir, xk_diag *d) {
  struct stat st;
  memset(o, 0, sizeof *o);
  if (strlen(dir) + 32 > sizeof o->dir)
    return xk_diag_set(d, "%s: path too long", dir);
  snprintf(o->dir, sizeof o->dir, "%s", dir);
  o->created = stat(dir, &st) != 0;
  if (mkdir_p(dir))
    return xk_diag_set(d, "%s: cannot create: %s", dir, strerror(errno));
  snprintf(o->stage, sizeof o->stage, "%s/.xkvgen-XXXXXX", dir);
  if (!mkdtemp(o->stage)) {
    int e = errno;
    if (o->created)
      rmdir(o->dir);
    return xk_diag_set(d, "%s: cannot create a staging directory: %s", dir,
                       strerror(e));
  }
  return 0;
}

/* Calls fn on each staged file name, manifest.json last. */
static int each_staged(xk_outdir *o, int (*fn)(xk_outdir *, const char *),
                       xk_diag *d) {
  DIR *dp = opendir(o->stage);
  if (!dp)
    return xk_diag_set(d, "%s: cannot read: %s", o->stage, strerror(errno));
  int rc = 0, manifest = 0;
  struct dirent *e;
  while (!rc && (e = readdir(dp))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (!strcmp(e->d_name, "manifest.json"))
      manifest = 1;
    else if (fn(o, e->d_name))
      rc = xk_diag_set(d, "%s/%s: %s", o->dir, e->d_name, strerror(errno));
  }
  closedir(dp);
  if (!rc && manifest && fn(o, "manifest.json"))
    rc = xk_diag_set(d, "%s/manifest.json: %s", o->dir, strerror(errno));
  return rc;
}

static int move_one(xk_outdir *o, const char *name) {
  char from[8192], to[8192];
  snprintf(from, sizeof from, "%s/%s", o->stage, name);
  snprintf(to, sizeof to, "%s/%s", o->dir, name);
  return rename(from, to);
}

static int remove_one(xk_outdir *o, const char *name) {
  char p[8192];
  snprintf(p, sizeof p, "%s/%s", o->stage, name);
  unlink(p);
  return 0;
}

int xk_outdir_commit(xk_outdir *o, xk_diag *d) {
  if (each_staged(o, move_one, d)) {
    xk_outdir_abort(o);
    return -1;
  }
  rmdir(o->stage);
  return 0;
}

void xk_outdir_abort(xk_outdir *o) {
  each_staged(o, remove_one, NULL);
  rmdir(o->stage);
  if (o->created)
    rmdir(o->dir); /* only when empty: it holds nothing else of ours */
}
