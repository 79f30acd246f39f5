"""`symseg metrics` against scikit-learn, and top-k precision against numpy.

docs/metrics.md defines each figure by the tool people already use: the
confusion counts, precision, recall, F1, MCC, IoU and AUPRC are
scikit-learn's over the ordered pairs of the counted set (pooled over the
batch), `f1_mean` the mean of per-sample F1, `asymmetry` the mean
|sigmoid(x_ij) - sigmoid(x_ji)| over counted pairs i < j. This script builds
random padded batches (odd sizes, min_sep, ignore labels, masks, empty
samples, logits of +-80), runs `symseg metrics --json` in every prediction mode
and at several thresholds, and checks every figure against scikit-learn (and
CASP top-k precision against a numpy transcription of docs/metrics.md) to
1e-12. Exits 1 on any difference.

    python3 -m pip install numpy scikit-learn
    cargo build --release -p symseg-cli
    python3 benches/pytorch/metrics_parity.py [--symseg target/release/symseg] [--seed 1]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
)

IGNORE = 255
RANGES = {"short": (6, 11), "medium": (12, 23), "long": (24, None), "all": (1, None)}
FAILED = []


def sigmoid(z):
    return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))


def symmetrise(x, mode):
    xt = x.transpose(0, 2, 1)
    if mode == "none":
        return x
    if mode == "average":
        return (x + xt) / 2
    upper = np.triu(np.ones(x.shape[1:], dtype=bool))
    if mode == "upper":
        return np.where(upper, x, xt)
    return np.where(upper, xt, x)


def counted(y, lengths, min_sep, mask):
    b, n, _ = y.shape
    i = np.arange(n)
    inside = (i[None, :, None] < lengths[:, None, None]) & (i[None, None, :] < lengths[:, None, None])
    s = inside & (np.abs(i[:, None] - i[None, :]) >= min_sep) & (y != IGNORE)
    return s if mask is None else s & (mask != 0)


def top_k(x, y, s, lengths, mode):
    """CASP top-k precision as docs/metrics.md defines it."""
    z = (x + x.transpose(0, 2, 1)) / 2 if mode == "none" else symmetrise(x, mode)
    out = {}
    for name, (lo, hi) in RANGES.items():
        per_k = {}
        for label, d in (("L", 1), ("L/2", 2), ("L/5", 5)):
            precisions = []
            for b in range(len(x)):
                i, j = np.nonzero(np.triu(s[b], 1))
                sep = j - i
                keep = (sep >= lo) & (sep <= hi if hi is not None else True)
                i, j = i[keep], j[keep]
                if len(i) == 0:
                    continue
                order = np.lexsort((j, i, -z[b, i, j]))  # by z descending, ties by (i, j)
                k = min(math.ceil(lengths[b] / d), len(i))
                top = order[:k]
                precisions.append(float((y[b, i[top], j[top]] == 1).mean()))
            per_k[label] = float(np.mean(precisions)) if precisions else 0.0
        out[name] = per_k
    return out


def expected(x, y, lengths, min_sep, mask, mode, threshold):
    """Every figure of `symseg metrics` but f1_shift, from scikit-learn and numpy."""
    xd = x.astype(np.float64)
    s = counted(y, lengths, min_sep, mask)
    z = symmetrise(xd, mode)
    score = sigmoid(z)
    truth, pred = (y[s] == 1).astype(int), (score[s] >= threshold).astype(int)
    if len(truth) == 0:
        # An empty counted set: docs/metrics.md's edge cases (scikit-learn
        # refuses empty input).
        fig = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "precision": 0.0, "recall": 0.0, "f1": 1.0, "iou": 1.0,
               "mcc": 0.0, "f1_mean": 1.0, "auprc": 0.0, "asymmetry": 0.0}
        fig["top"] = top_k(xd, y, s, lengths, mode)
        return fig
    tn, fp, fn, tp = confusion_matrix(truth, pred, labels=[0, 1]).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        f1_each = []
        for b in range(len(x)):
            t, p = (y[b][s[b]] == 1).astype(int), (score[b][s[b]] >= threshold).astype(int)
            f1_each.append(f1_score(t, p, zero_division=1.0) if len(t) else 1.0)
        auprc = average_precision_score(truth, score[s]) if truth.any() else 0.0
        fig = {
            "tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn),
            "precision": precision_score(truth, pred, zero_division=0.0),
            "recall": recall_score(truth, pred, zero_division=0.0),
            "f1": f1_score(truth, pred, zero_division=1.0),
            "iou": jaccard_score(truth, pred, zero_division=1.0),
            "mcc": matthews_corrcoef(truth, pred) if len(truth) else 0.0,
            "f1_mean": float(np.mean(f1_each)),
            "auprc": auprc,
        }
    pairs = np.triu(s, 1)
    p = sigmoid(xd)
    diff = np.abs(p - p.transpose(0, 2, 1))[pairs]
    fig["asymmetry"] = float(diff.mean()) if diff.size else 0.0
    fig["top"] = top_k(xd, y, s, lengths, mode)
    return fig


def random_batch(rng, b, n, positives, padded, empty_sample):
    x = rng.normal(0.0, 2.5, size=(b, n, n))
    hot = rng.random((b, n, n)) < 0.01
    x[hot] = rng.choice([-80.0, 80.0], size=hot.sum())
    # Ties, which AUPRC groups and top-k breaks by (i, j).
    x[rng.random((b, n, n)) < 0.02] = 1.25
    x = x.astype(np.float32)
    u = rng.random((b, n, n))
    upper = np.triu(np.ones((n, n), dtype=bool))
    y = np.where(u < positives, 1, 0).astype(np.uint8)
    y[(u >= positives) & (u < positives + 0.02)] = IGNORE
    y = np.where(upper, y, y.transpose(0, 2, 1))
    if empty_sample:
        y[-1][y[-1] == 1] = 0
    lengths = np.full(b, n, dtype=np.int64)
    if padded:
        lengths = rng.integers(max(2, n // 3), n + 1, size=b)
        lengths[0] = n
    return x, y, lengths


def run_symseg(binary, tmp, x, y, lengths, mask, **flags):
    paths = {k: os.path.join(tmp, k + ".npy") for k in ("x", "y", "len", "mask")}
    np.save(paths["x"], x)
    np.save(paths["y"], y)
    np.save(paths["len"], lengths)
    cmd = [binary, "metrics", "--logits", paths["x"], "--labels", paths["y"], "--lengths", paths["len"], "--json"]
    if mask is not None:
        np.save(paths["mask"], mask)
        cmd += ["--mask", paths["mask"]]
    for k, v in flags.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def differences(ours, theirs, prefix=""):
    """(figure, ours, theirs) wherever the two differ by more than 1e-12."""
    bad = []
    for key, want in theirs.items():
        got = ours.get(key)
        if isinstance(want, dict):
            bad += differences(got or {}, want, prefix + key + ".")
        elif got is None or abs(float(got) - float(want)) > 1e-12:
            bad.append((prefix + key, got, want))
    return bad


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symseg", default=os.path.join(here, "..", "..", "target", "release", "symseg"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.path.exists(args.symseg):
        sys.exit(f"{args.symseg} not found: run `cargo build --release -p symseg-cli` first, or pass --symseg")
    rng = np.random.default_rng(args.seed)
    cases = []
    for n in (41, 96, 150):
        for mode in ("none", "average", "upper", "lower"):
            for threshold in (0.5, 0.2, 0.9):
                k = len(cases) + 1
                cases.append(dict(n=n, mode=mode, threshold=threshold, min_sep=(0, 1, 4, 6)[k % 4],
                                  padded=k % 3 != 0, empty=k % 5 == 0, mask=k % 4 == 2, positives=0.04))
    cases += [
        dict(n=57, mode="average", threshold=0.5, min_sep=4, padded=True, empty=False, mask=False, positives=0.0),
        dict(n=57, mode="none", threshold=1.0 - 1e-12, min_sep=0, padded=False, empty=False, mask=True,
             positives=0.04),
        dict(n=33, mode="upper", threshold=0.5, min_sep=40, padded=True, empty=False, mask=False, positives=0.04),
    ]
    print(f"{'case':<72} {'tp':>5} {'f1':>7} {'auprc':>7}  result")
    with tempfile.TemporaryDirectory() as tmp:
        for c in cases:
            n, mode, threshold, min_sep = c["n"], c["mode"], c["threshold"], c["min_sep"]
            x, y, lengths = random_batch(rng, 4, n, c["positives"], c["padded"], c["empty"])
            mask = None
            if c["mask"]:
                m = rng.random((4, n, n)) < 0.85
                mask = np.where(np.triu(np.ones((n, n), dtype=bool)), m, m.transpose(0, 2, 1)).astype(np.uint8)
            ours = run_symseg(args.symseg, tmp, x, y, lengths, mask, mode=mode, threshold=threshold,
                              min_sep=min_sep)
            bad = differences(ours, expected(x, y, lengths, min_sep, mask, mode, threshold))
            name = (f"N={n} mode={mode} threshold={threshold:g} min_sep={min_sep}"
                    f"{' padded' if c['padded'] else ''}{' mask' if c['mask'] else ''}"
                    f"{' empty-sample' if c['empty'] else ''}{' no-positives' if c['positives'] == 0 else ''}")
            print(f"{name:<72} {ours['tp']:>5} {ours['f1']:>7.4f} {ours['auprc']:>7.4f}  {'ok' if not bad else 'FAIL'}")
            for figure, got, want in bad:
                print(f"    {figure}: symseg {got}, expected {want}")
                FAILED.append(f"{name} {figure}")
    print(f"\n{'every figure equal within 1e-12' if not FAILED else f'FAILED: {len(FAILED)} figures'}")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
