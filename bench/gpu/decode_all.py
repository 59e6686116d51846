#!/usr/bin/env python3
"""Exact vs xKV dense vs xKV SR decode vs PyTorch SDPA on a lent GPU, one
run under 5 minutes (issue 13). Extends decode_vs_torch.py (its timing
helpers) with the SR paths and a shorter grid: L = 32K and 128K, batch 1
and 16, Llama-3.1-8B shapes, rank 384/576. Ours come from the carried
build/bench/decode on the CUDA device; the cache API decodes one sequence
per call, so batch b costs b calls (stated, not hidden). Each row also
gives the bytes per layer-step over the copy bandwidth measured here, and
the MODELED time for the same GPU from bench/decode_model's CSV when
bench/results holds one. Writes bench/results/decode-all-<device>-<date>.csv.
    python3 bench/gpu/decode_all.py [build/bench/decode]"""
import csv
import datetime
import glob
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import decode_vs_torch as base  # noqa: E402

LENGTHS = [32768, 131072]
BATCHES = [1, 16]
PATHS = ["exact_f16", "xkv_f16", "xkv_sr_f16", "xkv_sr_cold_f16"]


def ours(binary):
    """{(L, path): (ms per step over all layers, bytes per step)}"""
    env = dict(os.environ, XKV_BENCH_DEVICE="cuda", XKV_BENCH_SHAPE="llama8b",
               XKV_BENCH_LENGTHS=",".join(map(str, LENGTHS)))
    out = "/tmp/xkv-decode-all.csv"
    subprocess.run([binary, "384", "576", out], env=env, check=True,
                   timeout=200)
    with open(out) as f:
        return {(int(r["L"]), r["path"]): (float(r["ms_per_step"]),
                                           float(r["bytes_per_step"]))
                for r in csv.DictReader(f)}


def modeled(gpu):
    """{(L, batch): (exact_us, xkv_us)} from decode-model-<gpu>-*.csv"""
    files = sorted(glob.glob(f"bench/results/decode-model-{gpu}-2*.csv"))
    if not files:
        return {}
    with open(files[-1]) as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {(int(r["L"]), int(r["batch"])): (float(r["exact_us"]),
                                                 float(r["xkv_us"]))
                for r in rows}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/bench/decode"
    name = base.torch.cuda.get_device_name()
    dev = name.replace(" ", "_")
    gpu = "h200" if "H200" in name else "h100"
    bw = base.hbm_gbs()
    mine = ours(binary)
    model = modeled(gpu)
    date = datetime.date.today().isoformat()
    path = f"bench/results/decode-all-{dev}-{date}.csv"
    layers = base.LAYERS
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device", "copy_gbs", "L", "batch", "path",
                    "ms_layer_step", "mb_layer_step", "roofline_ms",
                    "x_vs_sdpa", "modeled_ms"])
        for L in LENGTHS:
            for b in BATCHES:
                s = base.sdpa_ms(b, L)
                m = model.get((L, b))
                w.writerow([dev, f"{bw:.0f}", L, b, "torch_sdpa", f"{s:.4f}",
                            "", "", "1.000", ""])
                for p in PATHS:
                    if (L, p) not in mine:
                        continue
                    ms, by = mine[(L, p)]
                    t, mb = b * ms / layers, b * by / layers / 1e6
                    mod = ("" if m is None or p not in ("exact_f16", "xkv_f16")
                           else f"{m[p != 'exact_f16'] / 1e3:.4f}")
                    w.writerow([dev, f"{bw:.0f}", L, b, p, f"{t:.4f}",
                                f"{mb:.2f}", f"{mb / bw:.4f}",
                                f"{s / t:.3f}", mod])
                    print(f"L={L:6d} b={b:2d} {p:16s} {t:8.3f} ms "
                          f"(sdpa {s:7.3f}, x{s / t:.2f}, roof {mb / bw:.3f}"
                          f", MODELED {mod or '-'})")
    print("wrote", path)


if __name__ == "__main__":
    main()
