/* Test cases for the Triton tutorial kernels of tests/tutorial/tutorial.xk
 * (case_util.h has the case and how to run and check it). */
#ifndef XK_TUTORIAL_CASES_H
#define XK_TUTORIAL_CASES_H

#include "case_util.h"

/* One entry per kernel, ended by a NULL kernel. */
extern const xk_case_def xk_tutorial_cases[];

#endif
