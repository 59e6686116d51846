/* A modeled H100 time for any kernel the tuner has inputs for: the
 * candidate runs through the sim target on the problem's buffers (the
 * whole launch, so its counters need no extrapolation), its output is
 * checked against the C reference like a measured candidate's, and the
 * counters with ptxas's resources go through the perf model. The GEMMs
 * have a cheaper extrapolating model (gemm_model.h); this one is for the
 * rest, whose problems are small enough to emulate. */
#ifndef XK_SIM_MODEL_H
#define XK_SIM_MODEL_H

#include "dsl.h"
#include "lower.h"
#include "perf_model.h"
#include "problem.h"
#include "ptxas.h"

/* *us the time GPU g is modeled to take; *err the output's relative error
 * against p's C reference (0 when p has none). */
int xk_sim_model_time(const xk_gpu *g, const xk_func *f,
                      const xk_kernel_spec *spec, xk_problem *p,
                      const xk_ptxas_info *pi, const xk_nvptx_info *info,
                      double *us, double *err, xk_diag *d);

#endif
