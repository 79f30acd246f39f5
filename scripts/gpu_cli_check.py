#!/usr/bin/env python3
"""`symseg loss` and `symseg metrics` with `--backend cuda` against `--backend cpu`.

Part of the GPU bundle (scripts/gpu-bundle.sh): run on the GPU machine after
`gpu-check`, it checks the command line's CUDA path end to end (npy in, JSON
and gradient npy out) on random inputs with padding, a mask, min_sep and
ignore labels, over every strategy, penalty and reduction. Needs numpy only.

    python3 gpu_cli_check.py path/to/symseg [workdir]
"""
import itertools
import json
from concurrent.futures import ThreadPoolExecutor
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

LOSS_RTOL = 1e-5  # SPEC §4: loss to 1e-5 relative
GRAD_TOL = 1e-5  # gradient: max |g_cuda - g_cpu| <= GRAD_TOL * max |g_cpu| (+ tiny)


def make_inputs(d: Path, rng: np.random.Generator, b: int, n: int) -> dict:
    lengths = rng.integers(n // 2, n + 1, size=b).astype(np.int64)
    lengths[0] = n
    logits = rng.normal(0.0, 3.0, size=(b, n, n)).astype(np.float32)
    logits[:, :3, :3] = 80.0  # extreme logits
    logits[:, -3:, :3] = -80.0
    labels = (rng.random((b, n, n)) < 0.05).astype(np.uint8)
    labels = np.maximum(labels, labels.transpose(0, 2, 1))
    ignore = rng.random((b, n, n)) < 0.01
    ignore = ignore | ignore.transpose(0, 2, 1)
    labels[ignore] = 255
    mask = (rng.random((b, n, n)) < 0.9).astype(np.uint8)
    mask = mask & mask.transpose(0, 2, 1)
    files = {"logits": logits, "labels": labels, "lengths": lengths, "mask": mask}
    for name, arr in files.items():
        np.save(d / f"{name}.npy", arr)
    return {k: str(d / f"{k}.npy") for k in files}


def run(exe: str, args: list) -> dict:
    out = subprocess.run([exe, *args, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def main() -> int:
    exe = sys.argv[1]
    work = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261204)
    failures = 0
    checked = 0
    worst_loss = 0.0
    worst_grad = 0.0
    jobs = []
    for b, n, min_sep in [(3, 257, 0), (2, 512, 4), (1, 63, 1)]:
        d = work / f"in_{b}x{n}"
        d.mkdir(exist_ok=True)
        f = make_inputs(d, rng, b, n)
        base = ["--logits", f["logits"], "--labels", f["labels"], "--lengths", f["lengths"],
                "--mask", f["mask"], "--min-sep", str(min_sep)]
        combos = itertools.product(
            ["plain", "dual", "average", "upper", "lower"],
            [[], ["--penalty", "l2", "--penalty-weight", "0.3"],
             ["--penalty", "l1", "--penalty-on", "probs", "--penalty-weight", "0.5"]],
        )
        # Each process compiles the kernels afresh, so the element loss and
        # reduction take turns rather than multiplying the runs.
        for i, (strategy, penalty) in enumerate(combos):
            loss = [["--loss", "focal"], ["--loss", "bce", "--pos-weight", "3"]][i % 2]
            reduction = ["mean", "sum"][(i // 2) % 2]
            args = ["loss", *base, "--symmetry", strategy, *penalty, *loss, "--reduction", reduction]
            jobs.append(("loss", d / f"g{i}", args))
        for mode in ["none", "average", "upper", "lower"]:
            extra = {"none": ["--threshold", "0.8"], "upper": ["--one-partner"]}.get(mode, [])
            jobs.append(("metrics", None, ["metrics", *base, "--mode", mode, *extra]))

    def check(job):
        """(failure message or None, loss rel err, gradient err)."""
        kind, g, args = job
        try:
            if kind == "loss":
                res = {}
                for backend in ["cpu", "cuda"]:
                    gpath = f"{g}_{backend}.npy"
                    res[backend] = (run(exe, [*args, "--backend", backend, "--grad-out", gpath]),
                                    np.load(gpath).astype(np.float64))
                (jc, gc), (jg, gg) = res["cpu"], res["cuda"]
                lerr = abs(jg["loss"] - jc["loss"]) / max(abs(jc["loss"]), 1e-30)
                gerr = float(np.abs(gg - gc).max() / max(np.abs(gc).max(), 1e-30))
                if lerr > LOSS_RTOL or gerr > GRAD_TOL or jg["counted"] != jc["counted"]:
                    return (f"MISMATCH {' '.join(args[1:])}: loss {jc['loss']} vs {jg['loss']} "
                            f"(rel {lerr:.2e}), grad rel {gerr:.2e}", lerr, gerr)
                return None, lerr, gerr
            jc = run(exe, [*args, "--backend", "cpu"])
            jg = run(exe, [*args, "--backend", "cuda"])
            keys = ["tp", "fp", "fn", "tn", "counted"]
            close = ["precision", "recall", "f1", "mcc", "auprc", "f1_shift"]
            bad = [k for k in keys if jc[k] != jg[k]]
            bad += [k for k in close if abs(jc[k] - jg[k]) > 1e-9]
            if bad:
                return f"MISMATCH {' '.join(args)}: {[(k, jc[k], jg[k]) for k in bad]}", 0.0, 0.0
            return None, 0.0, 0.0
        except RuntimeError as e:
            return f"FAILED {e}", 0.0, 0.0

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(check, jobs))
    for message, lerr, gerr in results:
        checked += 1
        worst_loss, worst_grad = max(worst_loss, lerr), max(worst_grad, gerr)
        if message:
            failures += 1
            print(message)
    print(f"command line, cuda vs cpu: {checked} runs, {failures} failed; "
          f"worst loss rel err {worst_loss:.2e}, worst gradient err {worst_grad:.2e} of max |g|")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
