#!/usr/bin/env python3
"""Accuracy vs compression ratio from xkv-eval JSON files, one line per W.
usage: plot_eval.py EVAL.json [...] -o OUT.png"""
import argparse
import json
import sys
from collections import defaultdict

ap = argparse.ArgumentParser()
ap.add_argument("json", nargs="+")
ap.add_argument("-o", "--out", required=True)
ap.add_argument("--metric", default="top1",
                choices=["top1", "kl", "greedy_match", "kv_err_k", "kv_err_v",
                         "needle_hit"])
a = ap.parse_args()
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("plot_eval: matplotlib is not installed (apt-get install "
          "python3-matplotlib); no plot written", file=sys.stderr)
    sys.exit(0)

fig, ax = plt.subplots(figsize=(6, 4))
for path in a.json:
    doc = json.load(open(path))
    lines = defaultdict(list)
    for c in doc["configs"]:
        if not c["exact"]:
            lines[c["W"]].append((c["ratio"], c[a.metric]))
    name = doc["model"].rsplit("/", 1)[-1]
    for w in sorted(lines):
        pts = sorted(lines[w])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                label=f"{name} W={w}")
ax.set_xlabel("compression ratio (vs exact f16 cache)")
ax.set_ylabel(a.metric)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(a.out, dpi=120)
print(f"wrote {a.out}")
