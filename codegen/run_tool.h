/* Running build-time tools (ptxas, the system linker) without a shell. */
#ifndef XK_RUN_TOOL_H
#define XK_RUN_TOOL_H

#include "ir.h"

/* Runs argv[0] (searched on PATH), capturing stdout+stderr into *output
 * (malloc'd, NUL-terminated). Returns the exit status, or -1 with a diag
 * when it could not run or did not exit normally. */
int xk_spawn(char *const argv[], char **output, xk_diag *d);

#endif
