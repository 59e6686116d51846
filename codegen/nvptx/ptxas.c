#include "ptxas.h"

#include "compile.h"
#include "run_tool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *xk_ptxas_find(void) {
  static char buf[4096];
  const char *env = getenv("XK_PTXAS");
  if (env && *env)
    return access(env, X_OK) == 0 ? env : NULL;
  const char *path = getenv("PATH");
  while (path && *path) {
    const char *end = strchr(path, ':');
    size_t n = end ? (size_t)(end - path) : strlen(path);
    if (n && n + 7 < sizeof buf) {
      snprintf(buf, sizeof buf, "%.*s/ptxas", (int)n, path);
      if (access(buf, X_OK) == 0)
        return buf;
    }
    path = end ? end + 1 : NULL;
  }
  return access("/usr/local/cuda/bin/ptxas", X_OK) == 0
             ? "/usr/local/cuda/bin/ptxas"
             : NULL;
}

static void parse(const char *out, xk_ptxas_info *info) {
  const char *p;
  info->registers = -1;
  info->spill_bytes = 0;
  info->shared_bytes = 0;
  if ((p = strstr(out, "Used ")))
    sscanf(p, "Used %d registers", &info->registers);
  for (p = out; (p = strstr(p, "bytes spill")); p++) {
    const char *q = p;
    while (q > out && q[-1] == ' ')
      q--;
    while (q > out && q[-1] >= '0' && q[-1] <= '9')
      q--;
    info->spill_bytes += atoi(q);
  }
  if ((p = strstr(out, "bytes smem")))
    for (const char *q = p; q > out; q--)
      if (q[-1] == ',' || q[-1] == ':') {
        info->shared_bytes = atoi(q);
        break;
      }
}

int xk_ptxas_run(const char *ptxas, const char *sm, const char *ptx_path,
                 const char *out_path, xk_ptxas_info *info, xk_diag *d) {
  char arch[32];
  snprintf(arch, sizeof arch, "-arch=%s", sm);
  char *argv[] = {(char *)ptxas,    arch, "-v", (char *)ptx_path, "-o",
                  (char *)out_path, NULL};
  char *out = NULL;
  int rc = xk_spawn(argv, &out, d);
  if (rc < 0)
    return -1;
  if (rc == 0 && info)
    parse(out, info);
  else if (rc)
    xk_diag_set(d, "ptxas rejected %s (%s): %.900s", ptx_path, sm, out);
  free(out);
  return rc ? -1 : 0;
}

int xk_ptxas_run_text(const char *ptxas, const char *sm, const char *ptx,
                      size_t len, xk_ptxas_info *info, xk_diag *d) {
  char path[] = "/tmp/xk_ptxas_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0)
    return xk_diag_set(d, "ptxas: cannot create a temporary PTX file");
  int ok = write(fd, ptx, len) == (ssize_t)len;
  close(fd);
  int rc = ok ? xk_ptxas_run(ptxas, sm, path, "/dev/null", info, d)
              : xk_diag_set(d, "ptxas: cannot write the PTX to %s", path);
  unlink(path);
  return rc;
}

int xk_ptxas_func(const xk_func *f, const char *sm, LLVMTargetMachineRef tm,
                  xk_ptxas_info *pi, xk_nvptx_info *info, xk_diag *d) {
  LLVMTargetMachineRef own = NULL;
  if (!tm && xk_target_machine(sm, &own, d))
    return -1;
  xk_nvptx_info ni;
  LLVMModuleRef m;
  char *ptx = NULL;
  size_t len = 0;
  int rc = xk_compile_llvm(f, sm, tm ? tm : own, f->name, 1, &m, &ni, d);
  if (!rc) {
    rc = xk_target_emit(m, tm ? tm : own, 0, &ptx, &len, d);
    LLVMDisposeModule(m);
  }
  if (own)
    LLVMDisposeTargetMachine(own);
  if (rc)
    return -1;
  if (info)
    *info = ni;
  pi->registers = pi->spill_bytes = -1;
  pi->shared_bytes = 0;
  const char *px = xk_ptxas_find();
  if (px)
    rc = xk_ptxas_run_text(px, sm, ptx, len, pi, d);
  /* ptxas counts static shared memory only; the lowering's is dynamic */
  pi->shared_bytes += ni.shared_bytes;
  free(ptx);
  return rc;
}
