#!/usr/bin/env python3
"""xKV decode attention vs exact f16 attention (PyTorch SDPA), on a lent GPU.

Llama-3.1-8B shapes: 32 query / 8 KV heads, d = 128, W = 4, rank_k = 384,
rank_v = 576, L = 16K..128K, batch 1..16. Build on the build machine, carry
build/ (and liblapacke/libopenblas if the GPU machine lacks them), then:
    python3 bench/gpu/decode_vs_torch.py [build/bench/decode]
The exact baseline is torch SDPA (flash or memory-efficient backend) over
the full f16 cache, one layer, per batch size. Ours is build/bench/decode
on the CUDA device (XKV_BENCH_DEVICE=cuda): one layer's xkv_attention per
sequence; the cache API decodes one sequence per call, so batch b costs b
calls (written as such, not as a batched kernel). Bytes per step are
compared with the HBM bandwidth measured here by a device copy. Writes
bench/results/decode-gpu-<device>-<date>.csv."""
import csv
import datetime
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

HQ, HKV, D, LAYERS = 32, 8, 128, 32
LENGTHS = [16384, 32768, 65536, 131072]
BATCHES = [1, 2, 4, 8, 16]


def median_ms(fn, reps=20):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(True), torch.cuda.Event(True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def hbm_gbs():
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    return 2 * x.numel() / median_ms(lambda: y.copy_(x)) / 1e6


def sdpa_ms(b, L):
    q = torch.randn(b, HQ, 1, D, dtype=torch.float16, device="cuda")
    k = torch.randn(b, HKV, L, D, dtype=torch.float16, device="cuda")
    v = torch.randn_like(k)
    return median_ms(lambda: F.scaled_dot_product_attention(
        q, k, v, enable_gqa=True))


def ours(binary):
    """{(L, path): ms per step over LAYERS layers} from bench/decode"""
    env = dict(os.environ, XKV_BENCH_DEVICE="cuda", XKV_BENCH_SHAPE="llama8b",
               XKV_BENCH_LENGTHS=",".join(map(str, LENGTHS)))
    out = "/tmp/xkv-decode-gpu.csv"
    subprocess.run([binary, "384", "576", out], env=env, check=True)
    with open(out) as f:
        return {(int(r["L"]), r["path"]): (float(r["ms_per_step"]),
                                           float(r["bytes_per_step"]))
                for r in csv.DictReader(f)}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/bench/decode"
    dev = torch.cuda.get_device_name().replace(" ", "_")
    bw = hbm_gbs()
    mine = ours(binary)
    date = datetime.date.today().isoformat()
    path = f"bench/results/decode-gpu-{dev}-{date}.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device", "hbm_gbs", "L", "batch", "sdpa_ms_layer",
                    "xkv_ms_layer", "xkv_exact_ms_layer", "xkv_mb_layer",
                    "exact_mb_layer", "speedup_vs_sdpa"])
        for L in LENGTHS:
            x_ms, x_b = mine[(L, "xkv_f16")]
            e_ms, e_b = mine[(L, "exact_f16")]
            for b in BATCHES:
                s = sdpa_ms(b, L)
                ms = b * x_ms / LAYERS
                w.writerow([dev, f"{bw:.0f}", L, b, f"{s:.4f}", f"{ms:.4f}",
                            f"{b * e_ms / LAYERS:.4f}",
                            f"{b * x_b / LAYERS / 1e6:.2f}",
                            f"{b * e_b / LAYERS / 1e6:.2f}", f"{s / ms:.3f}"])
                print(f"L={L:6d} b={b:2d} sdpa {s:8.3f} ms  xkv {ms:8.3f} ms  "
                      f"x{s / ms:.2f}  (HBM {bw:.0f} GB/s)")
    print("wrote", path)


if __name__ == "__main__":
    main()
