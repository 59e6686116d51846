#!/usr/bin/env python3
"""xKV compression of one group on a lent GPU vs torch.svd_lowrank, same
matrices, same run.

Prepare on the build machine: `BUILD=build scripts/build.sh` builds
build/bench/compress with libxkv's embedded sm_90 kernels (CUDA is opened
through libcuda.so.1 at run time, no LLVM needed). Carry build/bench/compress
to the GPU machine (it links liblapacke and libopenblas: scripts/install-deps.sh
there if they are missing). Run there (PyTorch preinstalled):
    python3 bench/gpu/compress_vs_torch.py [path/to/compress]
It runs `compress --device cuda --big --xkv-only --dump TMP`: xKV's
compression time of one group (W = 4, keys + values) on the GPU for SmolLM2
(768 features, rank 192) and Llama-3.1-8B (4096 features, ranks 384/576) at
8K and 32K, and the matrices it compressed. Then, for each X, it times
torch.svd_lowrank(X, q=r+10, niter=2) on cuda (the same oversampling and
power iterations as xKV; f32; median of REPS after a warm-up, synchronized),
computes the rank-r relative error ||X - U_r S_r V_r^T||_F / ||X||_F and the
optimum from torch.linalg.svdvals, and writes
bench/results/compress-vs-torch-<device>-<date>.csv with the time ratio
torch / xKV (> 1: xKV faster) next to xKV's own error from compress.
If the CUDA context cannot open, compress runs on the CPU and the xkv_device
column says so."""
import csv
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

REPS = 10


def run_compress(exe, dump_dir, device):
    out = os.path.join(dump_dir, "xkv.csv")
    cmd = [exe, "--device", device, "--big", "--xkv-only", "--dump", dump_dir,
           "-o", out]
    print(" ".join(cmd), flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    print(res.stdout + res.stderr, flush=True)
    if res.returncode:
        return None
    with open(out) as fp:
        return list(csv.DictReader(fp))


def time_lowrank(x, q):
    torch.svd_lowrank(x, q=q, niter=2)
    torch.cuda.synchronize()
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        torch.svd_lowrank(x, q=q, niter=2)
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def rank_r_errors(x, r):
    """svd_lowrank's rank-r relative error and the exact optimum"""
    u, s, v = torch.svd_lowrank(x, q=r + 10, niter=2)
    norm = torch.linalg.norm(x)
    err = torch.linalg.norm(x - (u[:, :r] * s[:r]) @ v[:, :r].T) / norm
    sv = torch.linalg.svdvals(x)
    opt = torch.sqrt(torch.sum(sv[r:] ** 2)) / norm
    return err.item(), opt.item()


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    exe = (sys.argv[1] if len(sys.argv) > 1 else
           os.path.join(root, "build", "bench", "compress"))
    dev = torch.cuda.get_device_name().replace(" ", "_")
    date = datetime.date.today().isoformat()
    res_dir = os.path.join(root, "bench", "results")
    os.makedirs(res_dir, exist_ok=True)
    path = os.path.join(res_dir, f"compress-vs-torch-{dev}-{date}.csv")
    rows = ["shape,L,F,rank_k,rank_v,xkv_device,xkv_ms,torch_ms,"
            "torch_over_xkv,xkv_err_k,xkv_err_v,torch_err_k,torch_err_v,"
            "opt_err_k,opt_err_v"]
    with tempfile.TemporaryDirectory() as tmp:
        xkv_dev = "cuda"
        table = run_compress(exe, tmp, "cuda")
        if table is None:
            xkv_dev = "cpu"
            table = run_compress(exe, tmp, "cpu")
        if table is None:
            sys.exit("compress failed on cuda and cpu")
        for t in table:
            L, F = int(t["L"]), int(t["F"])
            ms, errs, opts = 0.0, [], []
            for kv, r in (("k", int(t["rank_k"])), ("v", int(t["rank_v"]))):
                raw = np.fromfile(os.path.join(
                    tmp, f"{t['shape']}-L{L}-{kv}.f32"), dtype=np.float32)
                x = torch.from_numpy(raw.reshape(L, F)).cuda()
                ms += time_lowrank(x, r + 10)
                e, o = rank_r_errors(x, r)
                errs.append(e)
                opts.append(o)
                del x
                torch.cuda.empty_cache()
            xkv_ms = float(t["xkv_ms"])
            rows.append(
                f"{t['shape']},{L},{F},{t['rank_k']},{t['rank_v']},"
                f"{xkv_dev if xkv_dev == 'cpu' else dev},{xkv_ms:.3f},"
                f"{ms:.3f},{ms / xkv_ms:.3f},{t['xkv_err_k']},"
                f"{t['xkv_err_v']},{errs[0]:.5f},{errs[1]:.5f},"
                f"{opts[0]:.5f},{opts[1]:.5f}")
            print(rows[-1], flush=True)
    with open(path, "w") as fp:
        fp.write("\n".join(rows) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
