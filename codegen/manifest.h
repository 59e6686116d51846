/* manifest.json: what xkvgen built, for the runtime's kernel registry. */
#ifndef XK_MANIFEST_H
#define XK_MANIFEST_H

#include "dsl.h"

typedef struct {
  const xk_func *f;
  const xk_kernel_spec *spec;
  const char *symbol;
  const char *file;  /* artifact name inside the output directory */
  const char *cubin; /* NULL when none */
  int shared_bytes, threads;
  int dynamic_shared_bytes;   /* what the launch passes (GPU targets) */
  int registers, spill_bytes; /* from ptxas, -1 when unknown */
  const char *ir_hash;        /* xk_kernel_ir_hash, NULL when not known */
} xk_manifest_entry;

int xk_manifest_write(const char *path, const char *source, const char *target,
                      const xk_manifest_entry *e, int n, xk_diag *d);

#endif
