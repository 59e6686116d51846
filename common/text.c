#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *xk_read_file(const char *path, size_t *len, xk_diag *d) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return xk_diag_set(d, "%s: %s", path, strerror(errno)), NULL;
  long n = fseek(f, 0, SEEK_END) ? -1 : ftell(f);
  char *buf = n >= 0 && !fseek(f, 0, SEEK_SET) ? malloc((size_t)n + 1) : NULL;
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  int e = errno; /* ENOMEM tells callers that memory, not the file, failed */
  fclose(f);
  errno = e;
  if (!buf)
    return xk_diag_set(d, "%s: cannot read the file: %s", path, strerror(e)),
           NULL;
  buf[n] = 0;
  if (len)
    *len = (size_t)n;
  return buf;
}

int xk_is_ident(const char *s) {
  if (!*s || isdigit((unsigned char)*s))
    return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_')
      return 0;
  return 1;
}

void xk_json_put_str(FILE *o, const char *s) {
  fputc('"', o);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(o, "\\%c", c);
    else if (c < 0x20)
      fprintf(o, "\\u%04x", c);
    else
      fputc(c, o);
  }
  fputc('"', o);
}
