#!/usr/bin/env python3
"""Our GEMM cubins vs cuBLAS (torch.matmul) and Triton, on a lent GPU.

Prepare on the build machine (needs LLVM + ptxas), then carry DIR:
    xkvgen kernels.xk --target sm_90 --kernel gemm_f16 --variants all \
        --specialize --cubin -o DIR
Run on the GPU machine (PyTorch + Triton preinstalled):
    python3 bench/gpu/gemm_vs_torch.py DIR
Times every gemm_f16 variant of DIR's manifest on f16 4096^3 and the
randomized-SVD shapes (L=32768, F=4096, r=448), checks each output against
torch.matmul, and writes bench/results/gemm-<device>-<date>.csv with
TFLOP/s and the ratios to cuBLAS and Triton measured in the same run.
Our kernels are launched through the CUDA driver API (ctypes on
libcuda.so.1), with the grid rule cdiv(M, BLOCK_M) x cdiv(N, BLOCK_N)."""
import ctypes
import datetime
import json
import os
import sys

import torch
import triton
import triton.language as tl

SHAPES = [("4096^3", 4096, 4096, 4096), ("X.Omega", 32768, 448, 4096),
          ("Xt.Y", 4096, 448, 32768), ("Qt.X", 448, 4096, 32768)]


@triton.jit
def triton_mm(a, b, c, M, N, K, BM: tl.constexpr, BN: tl.constexpr,
              BK: tl.constexpr):
    pm, pn = tl.program_id(0), tl.program_id(1)
    rm = pm * BM + tl.arange(0, BM)
    rn = pn * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        ka = k0 + rk
        x = tl.load(a + rm[:, None] * K + ka[None, :],
                    mask=(rm[:, None] < M) & (ka[None, :] < K), other=0.0)
        y = tl.load(b + ka[:, None] * N + rn[None, :],
                    mask=(ka[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(x, y)
    tl.store(c + rm[:, None] * N + rn[None, :], acc.to(tl.float16),
             mask=(rm[:, None] < M) & (rn[None, :] < N))


def run_triton(a, b, c):
    M, K = a.shape
    N = b.shape[1]
    grid = (triton.cdiv(M, 128), triton.cdiv(N, 128))
    triton_mm[grid](a, b, c, M, N, K, BM=128, BN=128, BK=32, num_warps=8,
                    num_stages=3)


class Driver:
    def __init__(self):
        self.cu = ctypes.CDLL("libcuda.so.1")
        torch.cuda.init()  # the primary context torch uses

    def check(self, rc, what):
        if rc:
            raise RuntimeError(f"{what}: CUDA error {rc}")

    def load(self, path, symbol):
        mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
        self.check(self.cu.cuModuleLoad(ctypes.byref(mod), path.encode()),
                   "cuModuleLoad " + path)
        self.check(self.cu.cuModuleGetFunction(ctypes.byref(fn), mod,
                                               symbol.encode()),
                   "cuModuleGetFunction " + symbol)
        return fn

    def launch(self, fn, grid, threads, types, args):
        vals = [ctypes.c_void_p(x) if t.startswith("ptr") else
                ctypes.c_int32(x) for t, x in zip(types, args)]
        ptrs = (ctypes.c_void_p * len(vals))(
            *[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in vals])
        stream = torch.cuda.current_stream().cuda_stream
        self.check(self.cu.cuLaunchKernel(
            fn, grid[0], grid[1], 1, threads, 1, 1, 0,
            ctypes.c_void_p(stream), ptrs, None), "cuLaunchKernel")


def time_ms(f, reps=20):
    f()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    flush = torch.empty(64 << 20, dtype=torch.int8, device="cuda")
    total = 0.0
    for _ in range(reps):
        flush.zero_()  # L2 flushed between runs
        start.record()
        f()
        end.record()
        torch.cuda.synchronize()
        total += start.elapsed_time(end)
    return total / reps


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    with open(os.path.join(out_dir, "manifest.json")) as fp:
        manifest = json.load(fp)
    drv = Driver()
    dev = torch.cuda.get_device_name().replace(" ", "_")
    date = datetime.date.today().isoformat()
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    res_dir = os.path.join(root, "bench", "results")
    os.makedirs(res_dir, exist_ok=True)
    path = os.path.join(res_dir, f"gemm-{dev}-{date}.csv")
    rows = ["variant,consts,spec,shape,ms,tflops,vs_cublas,vs_triton,"
            "max_rel_err"]
    for name, M, N, K in SHAPES:
        a = torch.randn(M, K, device="cuda", dtype=torch.float16)
        b = torch.randn(K, N, device="cuda", dtype=torch.float16)
        c = torch.empty(M, N, device="cuda", dtype=torch.float16)
        ref = torch.matmul(a, b)
        flops = 2.0 * M * N * K
        t_cublas = time_ms(lambda: torch.matmul(a, b, out=c))
        t_triton = time_ms(lambda: run_triton(a, b, c))
        print(f"{name}: cuBLAS {flops / t_cublas / 1e9:.1f} TFLOP/s, "
              f"Triton {flops / t_triton / 1e9:.1f} TFLOP/s")
        for v in manifest["variants"]:
            if v["kernel"] != "gemm_f16" or "cubin" not in v:
                continue
            spec = v.get("spec", {})
            if spec and any(x % 16 for x in (M, N, K)):
                continue  # its facts do not hold for this shape
            fn = drv.load(os.path.join(out_dir, v["cubin"]), v["symbol"])
            cs = v["consts"]
            grid = (-(-M // cs["BLOCK_M"]), -(-N // cs["BLOCK_N"]))
            args = [a.data_ptr(), b.data_ptr(), c.data_ptr(), M, N, K]
            types = [x["type"] for x in v["args"]]
            t = time_ms(lambda: drv.launch(fn, grid, v["threads"], types,
                                           args))
            c.zero_()
            drv.launch(fn, grid, v["threads"], types, args)
            torch.cuda.synchronize()
            err = ((c.float() - ref.float()).abs().max() /
                   ref.float().abs().max()).item()
            consts = " ".join(f"{k}={x}" for k, x in cs.items())
            consts += f" w{v['num_warps']} s{v['num_stages']}"
            rows.append(f"{v['symbol']},{consts},{'spec' if spec else ''},"
                        f"{name},{t:.4f},{flops / t / 1e9:.2f},"
                        f"{t_cublas / t:.3f},{t_triton / t:.3f},{err:.2e}")
            print("  " + rows[-1])
    with open(path, "w") as fp:
        fp.write("\n".join(rows) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
