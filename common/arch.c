#include "arch.h"

#include <string.h>

static const xk_arch archs[] = {
    {"sm_80", 163 * 1024, 164 * 1024},  {"sm_86", 99 * 1024, 100 * 1024},
    {"sm_89", 99 * 1024, 100 * 1024},   {"sm_90", 227 * 1024, 228 * 1024},
    {"sm_90a", 227 * 1024, 228 * 1024},
};

const xk_arch *xk_arch_find(const char *name) {
  for (size_t i = 0; name && i < sizeof archs / sizeof *archs; i++)
    if (!strcmp(archs[i].name, name))
      return &archs[i];
  return NULL;
}

int xk_arch_smem_max(void) {
  int m = 0;
  for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
    if (archs[i].smem_per_block > m)
      m = archs[i].smem_per_block;
  return m;
}
