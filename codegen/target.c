/* LLVM target plumbing shared by every lowering: target machines for the
 * host and NVPTX, module creation, the O3 pipeline and code emission. */
#include "lower.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_failed;

static void init_targets(void) {
  /* The native target is needed for the host lowering and the JIT; NVPTX is
   * always built into Debian's libLLVM. */
  if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter())
    init_failed = 1;
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTarget();
  LLVMInitializeNVPTXTargetMC();
  LLVMInitializeNVPTXAsmPrinter();
}

static const char *const gpu_targets[] = {"sm_80", "sm_86", "sm_89", "sm_90",
                                          "sm_90a"};

int xk_target_is_gpu(const char *target) {
  if (!target)
    return 0;
  for (size_t i = 0; i < sizeof gpu_targets / sizeof *gpu_targets; i++)
    if (!strcmp(target, gpu_targets[i]))
      return 1;
  return 0;
}

static int make_tm(const char *triple, const char *cpu, const char *features,
                   LLVMRelocMode reloc, LLVMTargetMachineRef *tm, xk_diag *d) {
  LLVMTargetRef t;
  char *err = NULL;
  if (LLVMGetTargetFromTriple(triple, &t, &err)) {
    xk_diag_set(d, "no LLVM target for triple %s: %s", triple, err ? err : "?");
    LLVMDisposeMessage(err);
    return -1;
  }
  *tm = LLVMCreateTargetMachine(t, triple, cpu, features,
                                LLVMCodeGenLevelAggressive, reloc,
                                LLVMCodeModelDefault);
  if (!*tm)
    return xk_diag_set(d, "cannot create a target machine for %s (%s)", triple,
                       cpu);
  return 0;
}

int xk_target_machine(const char *target, LLVMTargetMachineRef *tm,
                      xk_diag *d) {
  *tm = NULL;
  pthread_once(&init_once, init_targets);
  if (init_failed)
    return xk_diag_set(d, "LLVM native target initialization failed");
  /* sim code is per-thread GPU code compiled for this machine */
  if (target && (!strcmp(target, "host") || !strcmp(target, "sim"))) {
    char *triple = LLVMGetDefaultTargetTriple();
    char *cpu = LLVMGetHostCPUName();
    char *feat = LLVMGetHostCPUFeatures();
    /* PIC so the same machine can write objects that link into shared
     * libraries; the JIT is fine with PIC too. */
    int rc = make_tm(triple, cpu, feat, LLVMRelocPIC, tm, d);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
    return rc;
  }
  if (xk_target_is_gpu(target))
    /* PTX ISA 8.5 is LLVM 19's highest; CUDA 13's ptxas accepts it and it
     * covers sm_90a. */
    return make_tm("nvptx64-nvidia-cuda", target, "+ptx85", LLVMRelocDefault,
                   tm, d);
  return xk_diag_set(d,
                     "unknown target '%s' (expected host, sim, sm_80, "
                     "sm_86, sm_89, sm_90 or sm_90a)",
                     target ? target : "(null)");
}

LLVMModuleRef xk_module_new(const char *name, const char *target,
                            LLVMTargetMachineRef tm) {
  (void)target; /* the target machine already says everything */
  LLVMModuleRef m = LLVMModuleCreateWithName(name);
  if (tm) {
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(m, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    char *dl = LLVMCopyStringRepOfTargetData(td);
    LLVMSetDataLayout(m, dl);
    LLVMDisposeMessage(dl);
    LLVMDisposeTargetData(td);
  }
  return m;
}

int xk_optimize(LLVMModuleRef mod, LLVMTargetMachineRef tm, xk_diag *d) {
  char *msg = NULL;
  if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
    xk_diag_set(d, "invalid LLVM module: %s", msg ? msg : "?");
    LLVMDisposeMessage(msg);
    return -1;
  }
  LLVMDisposeMessage(msg);
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(opts, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(opts, 1);
  /* Host kernels are loop nests over tile buffers: O3's extra passes (DSE
   * over many buffers, more unrolling) cost ~4x the compile time and made
   * the GEMM kernels slower (bench/compile_time, xkv-check), so the host
   * gets O2; the GPU keeps O3 as Triton does. The host's loops also go
   * without the unroller: once vectorized they run a few wide iterations,
   * and unrolling every one of them (hundreds a kernel) took half of the
   * pass time and most of code generation's, for no GEMM GFLOP/s. */
  int gpu = !strncmp(LLVMGetTarget(mod), "nvptx", 5);
  LLVMPassBuilderOptionsSetLoopUnrolling(opts, gpu);
  LLVMErrorRef e =
      LLVMRunPasses(mod, gpu ? "default<O3>" : "default<O2>", tm, opts);
  LLVMDisposePassBuilderOptions(opts);
  if (e) {
    char *em = LLVMGetErrorMessage(e);
    xk_diag_set(d, "LLVM pipeline failed: %s", em);
    LLVMDisposeErrorMessage(em);
    return -1;
  }
  return 0;
}

int xk_target_emit(LLVMModuleRef mod, LLVMTargetMachineRef tm, int object,
                   char **buf, size_t *len, xk_diag *d) {
  *buf = NULL;
  *len = 0;
  char *err = NULL;
  LLVMMemoryBufferRef mb = NULL;
  if (LLVMTargetMachineEmitToMemoryBuffer(
          tm, mod, object ? LLVMObjectFile : LLVMAssemblyFile, &err, &mb)) {
    xk_diag_set(d, "code emission failed: %s", err ? err : "?");
    LLVMDisposeMessage(err);
    return -1;
  }
  size_t n = LLVMGetBufferSize(mb);
  /* one extra NUL so assembly can be used as a C string */
  char *out = malloc(n + 1);
  if (!out) {
    LLVMDisposeMemoryBuffer(mb);
    return xk_diag_set(d, "out of memory for %zu bytes of code", n);
  }
  memcpy(out, LLVMGetBufferStart(mb), n);
  out[n] = 0;
  LLVMDisposeMemoryBuffer(mb);
  *buf = out;
  *len = n;
  return 0;
}

/* An argument's ALIGN16/DIV16 facts as llvm.assume. */
void xk_spec_assume(LLVMModuleRef mod, LLVMBuilderRef b, LLVMValueRef v,
                    int spec) {
  LLVMContextRef c = LLVMGetModuleContext(mod);
  LLVMTypeRef ty = LLVMTypeOf(v);
  LLVMValueRef x = v;
  if (spec & XK_SPEC_ALIGN16 && LLVMGetTypeKind(ty) == LLVMPointerTypeKind)
    x = LLVMBuildPtrToInt(b, v, LLVMInt64TypeInContext(c), "");
  else if (!(spec & XK_SPEC_DIV16) ||
           LLVMGetTypeKind(ty) != LLVMIntegerTypeKind)
    return;
  LLVMTypeRef xt = LLVMTypeOf(x);
  LLVMValueRef low = LLVMBuildAnd(b, x, LLVMConstInt(xt, 15, 0), "");
  LLVMValueRef cond =
      LLVMBuildICmp(b, LLVMIntEQ, low, LLVMConstNull(xt), "spec");
  LLVMTypeRef i1 = LLVMInt1TypeInContext(c);
  LLVMTypeRef ft = LLVMFunctionType(LLVMVoidTypeInContext(c), &i1, 1, 0);
  LLVMValueRef fn = LLVMGetNamedFunction(mod, "llvm.assume");
  if (!fn)
    fn = LLVMAddFunction(mod, "llvm.assume", ft);
  LLVMBuildCall2(b, ft, fn, &cond, 1, "");
}
