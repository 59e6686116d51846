#include "rt_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *rt_tmpdir(const char *tag) {
  char *p = malloc(4096);
  snprintf(p, 4096, "%s/rt_tmp_%s_XXXXXX", RT_TMP, tag);
  if (!mkdtemp(p)) {
    free(p);
    return NULL;
  }
  return p;
}

int rt_write(const char *dir, const char *name, const char *text) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  size_t n = strlen(text);
  int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
  return fclose(f) ? -1 : rc;
}

void rt_rmdir(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

char *rt_replace(const char *s, const char *from, const char *to) {
  const char *at = strstr(s, from);
  size_t n = strlen(s) + strlen(to) + 1;
  char *o = malloc(n);
  if (!at) {
    memcpy(o, s, strlen(s) + 1);
    return o;
  }
  size_t k = (size_t)(at - s);
  memcpy(o, s, k);
  strcpy(o + k, to);
  strcat(o, at + strlen(from));
  return o;
}
