"""Builds, for bench/gpu/tune.sh prepare, every tune{} config of each
kernel a tune cache has records for: one xkvgen --variants all directory
per kernel and per value of its key constexprs (-D D=128), cubins
assembled here, so the GPU box builds nothing.

    python3 bench/gpu/tune_prepare.py KEYS.json OUTDIR XKVGEN TARGET [KERNELS]
"""
import json
import subprocess
import sys


def constexprs(xkvgen):
    """kernel -> its constexpr names, from xkvgen --list."""
    out = subprocess.run([xkvgen, "kernels.xk", "--list"], check=True,
                         capture_output=True, text=True).stdout
    consts, kernel = {}, None
    for line in out.splitlines():
        if line and not line.startswith(" "):
            kernel = line.split(" ")[0]
            consts[kernel] = set()
        elif line.strip().startswith("consts:") and kernel:
            consts[kernel] = {c.split("=")[0] for c in line.split()[1:]}
    return consts


def main():
    keys, outdir, xkvgen, target = sys.argv[1:5]
    only = set(sys.argv[5].split(",")) if len(sys.argv) > 5 else None
    consts = constexprs(xkvgen)
    builds = {}
    for r in json.load(open(keys))["records"]:
        k = r["kernel"]
        if k not in consts or (only and k not in only):
            continue
        fixed = tuple(sorted((n, v) for n, v in r["key"].items()
                             if n in consts[k]))
        builds.setdefault((k, fixed), None)
    for (k, fixed) in sorted(builds):
        tag = k + "".join(f"-{n}{v}" for n, v in fixed)
        cmd = [xkvgen, "kernels.xk", "--target", target, "--variants", "all",
               "--kernel", k, "--cubin", "-o", f"{outdir}/{tag}"]
        for n, v in fixed:
            cmd += ["-D", f"{n}={v}"]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


main()
