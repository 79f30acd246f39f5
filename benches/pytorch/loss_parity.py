"""symseg's losses and gradients against PyTorch, its loss zoos and JAX.

For people who know torchvision, MONAI or segmentation_models_pytorch (smp) and
want to see, in numbers, what symseg computes. Three parts, every symseg value
from the command line (`symseg loss --json --grad-out`), every PyTorch value in
float64 with autograd:

1. The zoos: symseg's `plain` strategy (no lengths, no mask, min_sep 0) against
   torchvision.ops.sigmoid_focal_loss, torch's BCEWithLogitsLoss(pos_weight),
   MONAI's FocalLoss (sigmoid), smp's FocalLoss("binary") and JAX's
   optax.sigmoid_focal_loss, ignore labels (255) included where the library
   has them; and the popular "also apply the loss to the transpose" next to
   symseg's `dual`.
2. All of SPEC.md in about seventy lines of PyTorch (`spec_loss` below: the five
   strategies, the penalty, lengths, min_sep, ignore labels, masks, the three
   reductions) against symseg, on random padded batches.
3. gamma < 1: the gradient of (1 - p_t)^gamma through autograd is NaN where
   p_t rounds to 1 (logits of +-80, even in float64); symseg's closed form and
   `spec_loss`'s exp(gamma * log q) form stay finite.

Accuracy asked of every case: SPEC.md section 4 (loss relative error <= 1e-5,
gradient relative L2 error <= 1e-5 and every element within 1e-4 max|g|).
Exits 1 if any case misses it.

    python3 -m pip install numpy torch torchvision monai segmentation-models-pytorch jax optax
    cargo build --release -p symseg-cli
    python3 benches/pytorch/loss_parity.py [--symseg target/release/symseg] [--seed 1]

MONAI, smp and JAX/optax are optional: a missing one is reported and skipped.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

IGNORE = 255
FAILED = []


# --------------------------------------------------------------------------
# SPEC.md in PyTorch


def element_loss(x, y, loss="focal", alpha=0.25, gamma=2.0, pos_weight=1.0):
    """SPEC section 2, per element. y is 0/1 (ignored elements any of them).

    q^gamma is written exp(-gamma * softplus(x)): the same value as
    (1 - sigmoid(x))^gamma, but its autograd derivative stays finite where
    q rounds to 0, for every gamma >= 0."""
    log_p, log_q = -F.softplus(-x), -F.softplus(x)
    pos = y == 1
    if loss == "bce":
        return torch.where(pos, -pos_weight * log_p, -log_q)
    a1, a0 = (1.0, 1.0) if alpha is None else (alpha, 1.0 - alpha)
    return torch.where(
        pos,
        -a1 * torch.exp(gamma * log_q) * log_p,
        -a0 * torch.exp(gamma * log_p) * log_q,
    )


def counted_set(y, lengths, min_sep, mask):
    """S of SPEC section 1, as a [B, N, N] bool tensor."""
    b, n, _ = y.shape
    i = torch.arange(n)
    inside = (i[None, :, None] < lengths[:, None, None]) & (i[None, None, :] < lengths[:, None, None])
    far = (i[:, None] - i[None, :]).abs() >= min_sep
    s = inside & far & (y != IGNORE)
    return s if mask is None else s & (mask != 0)


def rho(d, kind, delta):
    if kind == "l1":
        return d.abs()
    if kind == "l2":
        return d * d
    small = d.abs() <= delta
    return torch.where(small, 0.5 * d * d, delta * (d.abs() - 0.5 * delta))


def reduce(terms, keep, reduction):
    """Sum of `terms` over `keep` with SPEC section 4's reduction factor."""
    sums = torch.where(keep, terms, torch.zeros_like(terms)).sum(dim=(1, 2))
    counts = keep.sum(dim=(1, 2))
    if reduction == "sum":
        return sums.sum()
    if reduction == "mean":
        return sums.sum() / counts.sum() if counts.sum() > 0 else sums.sum() * 0
    nonempty = counts > 0
    if not nonempty.any():
        return sums.sum() * 0
    return (sums[nonempty] / counts[nonempty]).sum() / nonempty.sum()


def spec_loss(x, y, lengths=None, min_sep=0, mask=None, strategy="plain", penalty=None,
              penalty_weight=1.0, penalty_on="logits", huber_delta=1.0, reduction="mean", **elem):
    """symseg's loss of logits x [B, N, N] (float64) against labels y (uint8)."""
    b, n, _ = x.shape
    lengths = torch.full((b,), n) if lengths is None else lengths
    s = counted_set(y, lengths, min_sep, mask)
    yb = (y == 1).to(x.dtype)
    xt = x.transpose(1, 2)
    i = torch.arange(n)
    if strategy == "plain":
        total = reduce(element_loss(x, yb, **elem), s, reduction)
    elif strategy == "dual":
        total = reduce(element_loss(x, yb, **elem) + element_loss(xt, yb, **elem), s, reduction)
    elif strategy == "average":
        total = reduce(element_loss((x + xt) / 2, yb, **elem), s, reduction)
    elif strategy == "upper":
        total = reduce(element_loss(x, yb, **elem), s & (i[:, None] <= i[None, :]), reduction)
    elif strategy == "lower":
        total = reduce(element_loss(x, yb, **elem), s & (i[:, None] >= i[None, :]), reduction)
    else:
        raise ValueError(strategy)
    if penalty is not None:
        t = torch.sigmoid(x) if penalty_on == "probs" else x
        pairs = s & (i[:, None] < i[None, :])
        total = total + penalty_weight * reduce(rho(t - t.transpose(1, 2), penalty, huber_delta), pairs, reduction)
    return total


# --------------------------------------------------------------------------
# Inputs and symseg


def random_batch(rng, b, n, positives=0.05, ignored=0.0, extreme=0.01, padded=False):
    """Logits ~ N(0, 3) with a fraction at +-80, symmetric sparse labels with
    symmetric ignore marks, and lengths (the longest is n)."""
    x = rng.normal(0.0, 3.0, size=(b, n, n))
    hot = rng.random((b, n, n)) < extreme
    x[hot] = rng.choice([-80.0, 80.0], size=hot.sum())
    x = x.astype(np.float32)
    u = rng.random((b, n, n))
    upper = np.triu(np.ones((n, n), dtype=bool))
    y = np.where(u < positives, 1, 0).astype(np.uint8)
    y[(u >= positives) & (u < positives + ignored)] = IGNORE
    y = np.where(upper, y, y.transpose(0, 2, 1))
    lengths = np.full(b, n, dtype=np.int64)
    if padded:
        lengths = rng.integers(max(1, n // 3), n + 1, size=b)
        lengths[0] = n
    return x, y, lengths


def run_symseg(binary, tmp, x, y, lengths=None, mask=None, **flags):
    """symseg's loss and float32 gradient for these inputs and flags."""
    paths = {k: os.path.join(tmp, k + ".npy") for k in ("x", "y", "len", "mask", "g")}
    np.save(paths["x"], x)
    np.save(paths["y"], y)
    cmd = [binary, "loss", "--logits", paths["x"], "--labels", paths["y"], "--json", "--grad-out", paths["g"]]
    if lengths is not None:
        np.save(paths["len"], lengths)
        cmd += ["--lengths", paths["len"]]
    if mask is not None:
        np.save(paths["mask"], mask)
        cmd += ["--mask", paths["mask"]]
    for k, v in flags.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")
    return json.loads(out.stdout)["loss"], np.load(paths["g"])


def torch_value(fn, x):
    """fn's value and autograd gradient at x, in float64."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    value = fn(xt)
    value.backward()
    return value.item(), xt.grad.numpy()


def compare(name, ours, theirs, scale=1.0):
    """Checks symseg's (loss, grad) against a float64 (loss, grad) / scale by SPEC section 4."""
    (l1, g1), (l2, g2) = ours, theirs
    l2, g2 = l2 / scale, g2 / scale
    rel_loss = abs(l1 - l2) / max(abs(l2), 1e-300)
    g1 = g1.astype(np.float64)
    norm = np.linalg.norm(g2)
    rel_l2 = np.linalg.norm(g1 - g2) / norm if norm > 0 else np.linalg.norm(g1)
    worst = np.abs(g1 - g2).max() / max(np.abs(g2).max(), 1e-300)
    ok = rel_loss <= 1e-5 and rel_l2 <= 1e-5 and worst <= 1e-4
    if not ok:
        FAILED.append(name)
    print(f"{name:<72} {l1:>13.6e} {rel_loss:>9.1e} {rel_l2:>9.1e} {worst:>9.1e}  {'ok' if ok else 'FAIL'}")


def header(title):
    print(f"\n{title}\n{'case':<72} {'symseg loss':>13} {'rel loss':>9} {'rel L2 g':>9} {'max |dg|':>9}")


# --------------------------------------------------------------------------
# The three parts


def zoos(binary, tmp, rng):
    header("1. symseg plain (no lengths, mask, min_sep) against the zoos; max |dg| is relative to max |g|")
    import torchvision.ops

    x, y, _ = random_batch(rng, 4, 96)
    for alpha in (0.25, None):
        for gamma in (0.0, 1.0, 2.0, 3.0):
            for reduction in ("mean", "sum"):
                ours = run_symseg(binary, tmp, x, y, alpha="none" if alpha is None else alpha, gamma=gamma,
                                  reduction=reduction)
                theirs = torch_value(lambda t: torchvision.ops.sigmoid_focal_loss(
                    t, torch.tensor(y, dtype=torch.float64), alpha=-1 if alpha is None else alpha, gamma=gamma,
                    reduction=reduction), x)
                compare(f"torchvision sigmoid_focal_loss a={alpha} g={gamma} {reduction}", ours, theirs)
    for w in (1.0, 20.0):
        ours = run_symseg(binary, tmp, x, y, loss="bce", pos_weight=w)
        theirs = torch_value(lambda t: F.binary_cross_entropy_with_logits(
            t, torch.tensor(y, dtype=torch.float64), pos_weight=torch.tensor(w, dtype=torch.float64)), x)
        compare(f"torch BCEWithLogitsLoss pos_weight={w}", ours, theirs)

    # "Also apply the loss to the transpose": with symmetric labels, 2 x plain.
    ours = run_symseg(binary, tmp, x, y, symmetry="dual")
    theirs = torch_value(lambda t: sum(torchvision.ops.sigmoid_focal_loss(
        v, torch.tensor(y, dtype=torch.float64), reduction="mean") for v in (t, t.transpose(1, 2))), x)
    compare("torchvision focal(x, y) + focal(x^T, y) vs symseg dual", ours, theirs)
    plain = run_symseg(binary, tmp, x, y)
    compare("symseg dual / 2 vs symseg plain (float32 both)", plain,
            (ours[0], ours[1].astype(np.float64)), scale=2.0)

    xi, yi, _ = random_batch(rng, 4, 96, ignored=0.03)
    try:
        from monai.losses import FocalLoss as MonaiFocal

        for alpha, gamma in ((0.25, 2.0), (None, 1.0)):
            ours = run_symseg(binary, tmp, xi, yi, alpha="none" if alpha is None else alpha, gamma=gamma)
            loss = MonaiFocal(use_softmax=False, gamma=gamma, alpha=alpha, reduction="mean", ignore_index=IGNORE)
            theirs = torch_value(lambda t: loss(t[:, None], torch.tensor(yi[:, None], dtype=torch.float64)), xi)
            compare(f"MONAI FocalLoss a={alpha} g={gamma} ignore_index=255", ours, theirs)
        # MONAI's "sum" sums per-sample means (its spatial mean comes first):
        # B times symseg's sample-mean.
        ours = run_symseg(binary, tmp, xi, yi, reduction="sample-mean")
        loss = MonaiFocal(use_softmax=False, gamma=2.0, alpha=0.25, reduction="sum", ignore_index=IGNORE)
        theirs = torch_value(lambda t: loss(t[:, None], torch.tensor(yi[:, None], dtype=torch.float64)), xi)
        compare("MONAI FocalLoss reduction=sum / B vs symseg sample-mean", ours, theirs, scale=len(xi))
    except ImportError as e:
        print(f"MONAI: skipped ({e})")
    try:
        from segmentation_models_pytorch.losses import FocalLoss as SmpFocal

        for alpha, gamma in ((0.25, 2.0), (None, 3.0)):
            ours = run_symseg(binary, tmp, xi, yi, alpha="none" if alpha is None else alpha, gamma=gamma)
            loss = SmpFocal("binary", alpha=alpha, gamma=gamma, ignore_index=IGNORE)
            theirs = torch_value(lambda t: loss(t, torch.tensor(yi, dtype=torch.float64)), xi)
            compare(f"smp FocalLoss binary a={alpha} g={gamma} ignore_index=255", ours, theirs)
    except ImportError as e:
        print(f"segmentation_models_pytorch: skipped ({e})")
    try:
        import jax
        import optax

        jax.config.update("jax_enable_x64", True)
        for alpha, gamma in ((0.25, 2.0), (None, 0.5)):
            ours = run_symseg(binary, tmp, x, y, alpha="none" if alpha is None else alpha, gamma=gamma)

            def mean_focal(t):
                return optax.sigmoid_focal_loss(t, y.astype(np.float64), alpha=alpha, gamma=gamma).mean()

            xj = jax.numpy.asarray(x, dtype=jax.numpy.float64)
            value, grad = jax.value_and_grad(mean_focal)(xj)
            compare(f"optax sigmoid_focal_loss a={alpha} g={gamma} (JAX grad)", ours, (float(value), np.asarray(grad)))
    except ImportError as e:
        print(f"JAX/optax: skipped ({e})")


def spec_cases(binary, tmp, rng):
    header("2. SPEC.md in PyTorch (spec_loss) against symseg: padded batches, min_sep, ignore labels, masks")
    cases = [
        dict(strategy=s, reduction=r)
        for s in ("plain", "dual", "average", "upper", "lower")
        for r in ("mean", "sample-mean", "sum")
    ]
    cases += [
        dict(strategy="average", penalty="l1", penalty_weight=0.1),
        dict(strategy="plain", penalty="l2", penalty_on="probs", reduction="sample-mean"),
        dict(strategy="upper", penalty="huber", huber_delta=0.5, penalty_weight=2.0, reduction="sum"),
        dict(strategy="dual", loss="bce", pos_weight=5.0, reduction="sample-mean"),
        dict(strategy="average", alpha="none", gamma=0.5),
        dict(strategy="plain", gamma=0.0, alpha=0.9, min_sep=1),
    ]
    for k, case in enumerate(cases):
        n = (67, 128, 33)[k % 3]
        x, y, lengths = random_batch(rng, 3, n, ignored=0.02, padded=True)
        min_sep = case.pop("min_sep", (0, 4, 6)[k % 3])
        mask = None
        if k % 4 == 3:
            m = rng.random((3, n, n)) < 0.8
            mask = np.where(np.triu(np.ones((n, n), dtype=bool)), m, m.transpose(0, 2, 1)).astype(np.uint8)
        ours = run_symseg(binary, tmp, x, y, lengths=lengths, mask=mask, min_sep=min_sep, **case)
        elem = {k2: case.pop(k2) for k2 in ("loss", "alpha", "gamma", "pos_weight") if k2 in case}
        if elem.get("alpha") == "none":
            elem["alpha"] = None
        theirs = torch_value(lambda t: spec_loss(
            t, torch.tensor(y), lengths=torch.tensor(lengths), min_sep=min_sep,
            mask=None if mask is None else torch.tensor(mask), **case, **elem), x)
        label = " ".join(f"{k2}={v}" for k2, v in {**case, **elem}.items())
        compare(f"{label} B=3 N={n} min_sep={min_sep}{' mask' if mask is not None else ''}", ours, theirs)


def small_gamma(binary, tmp, rng):
    header("3. gamma = 0.5 with logits of +-80: autograd through (1 - p_t)^gamma is NaN where p_t rounds to 1")
    import torchvision.ops

    x, y, _ = random_batch(rng, 2, 64, extreme=0.05)
    yt = torch.tensor(y, dtype=torch.float64)
    ours = run_symseg(binary, tmp, x, y, gamma=0.5)
    _, g_tv = torch_value(lambda t: torchvision.ops.sigmoid_focal_loss(t, yt, gamma=0.5, reduction="mean"), x)
    spec = torch_value(lambda t: spec_loss(t, torch.tensor(y), alpha=0.25, gamma=0.5), x)
    compare("symseg vs spec_loss, gamma = 0.5, logits +-80", ours, spec)
    print()
    for name, g in (("torchvision autograd", g_tv), ("spec_loss autograd (exp form)", spec[1]),
                    ("symseg (closed form)", ours[1])):
        print(f"{name:<32} {np.count_nonzero(~np.isfinite(g)):>6} of {g.size} gradient elements not finite")
    if not np.isfinite(ours[1]).all():
        FAILED.append("symseg gamma 0.5 gradient not finite")

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "target", "release", "symseg")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symseg", default=default, help="the symseg binary (default: target/release/symseg)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not os.path.exists(args.symseg):
        sys.exit(f"{args.symseg} not found: run `cargo build --release -p symseg-cli` first, or pass --symseg")
    print(f"torch {torch.__version__}, numpy {np.__version__}, symseg {args.symseg}")
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        zoos(args.symseg, tmp, rng)
        spec_cases(args.symseg, tmp, rng)
        small_gamma(args.symseg, tmp, rng)
    print(f"\n{'all cases within SPEC section 4' if not FAILED else 'FAILED: ' + ', '.join(FAILED)}")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
