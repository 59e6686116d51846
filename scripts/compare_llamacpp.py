#!/usr/bin/env python3
"""Compares xkv-logits output with llama.cpp (llama-cpp-python) on the same ids.

    compare_llamacpp.py MODEL.gguf LOGITS.bin TEXT [--json OUT]

LOGITS.bin is written by `xkv-logits --model MODEL.gguf --text TEXT ...`.
llama.cpp evaluates the same token ids (so a tokenizer difference cannot hide
a forward-pass difference) and the rows are compared: max |diff| / max |ref|,
KL(llama.cpp || xkv), top-1 agreement and top-10 overlap. Tokenization is
checked separately: llama.cpp's ids for the text prefix against ours.
"""
import argparse, json, math, struct, sys

import numpy as np
from llama_cpp import Llama


def load(path):
    b = open(path, "rb").read()
    if b[:4] != b"XKVL":
        sys.exit(f"{path}: not an xkv-logits file")
    n, vocab, p = struct.unpack_from("<3i", b, 4)
    ids = list(struct.unpack_from(f"<{n}i", b, 16))
    rows = np.frombuffer(b, np.float32, (n - p) * vocab, 16 + 4 * n)
    return ids, p, rows.reshape(n - p, vocab)


def log_softmax(x):
    x = x.astype(np.float64) - x.max()
    return x - math.log(np.exp(x).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model"), ap.add_argument("logits"), ap.add_argument("text")
    ap.add_argument("--json")
    a = ap.parse_args()
    ids, p, ours = load(a.logits)
    n = len(ids)
    llm = Llama(a.model, n_ctx=max(512, n), logits_all=True, verbose=False,
                n_threads=2, n_batch=n, n_ubatch=n)
    llm.eval(ids[:-1])
    ref = np.array(llm.scores[: n - 1], dtype=np.float32)[p - 1 :]
    V = min(ref.shape[1], ours.shape[1])
    rel, kl, top1, top10 = 0.0, 0.0, 0, 0.0
    for r, o in zip(ref[:, :V], ours[:, :V]):
        rel = max(rel, float(np.abs(r - o).max() / np.abs(r).max()))
        lp, lq = log_softmax(r), log_softmax(o)
        kl += float((np.exp(lp) * (lp - lq)).sum())
        top1 += int(r.argmax() == o.argmax())
        top10 += len(set(np.argsort(-r)[:10]) & set(np.argsort(-o)[:10])) / 10
    rows = len(ours)
    text = open(a.text, encoding="utf-8", errors="replace").read()[: 8 * n]
    theirs = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    m = min(n, len(theirs))
    tok_agree = next((i for i in range(m) if theirs[i] != ids[i]), m)
    res = {
        "model": a.model, "text": a.text, "tokens": n, "rows": rows,
        "vocab": [int(ref.shape[1]), int(ours.shape[1])],
        "max_rel_diff": rel, "mean_kl": kl / rows, "top1": top1 / rows,
        "top10_overlap": top10 / rows,
        "tokenizer_first_mismatch": tok_agree if tok_agree < m else None,
        "tokenizer_ids_compared": m,
    }
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
