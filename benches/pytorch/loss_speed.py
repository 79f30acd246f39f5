"""The loss + gradient of `cargo xtask bench --op loss_grad` in PyTorch, for comparison.

Focal loss (alpha 0.25, gamma 2, mean) of float32 logits [B, N, N] against
uint8 labels (5% positives, symmetric), forward and backward, as a PyTorch user
writes it:

- plain:   torchvision.ops.sigmoid_focal_loss(x, y)
- average: the same of (x + x^T) / 2 (symseg's `average` strategy)

Prints the median time of a call (forward + backward, gradient into x.grad),
G elements/s and GB/s at 9 bytes an element (symseg's accounting: the logit
and the gradient, 4 bytes each, and the label), for the shapes of `cargo xtask
bench`. Run it alternately with

    cargo xtask bench --op loss_grad --penalty none --strategy plain
    cargo xtask bench --op loss_grad --penalty none --strategy average

on the same otherwise idle machine, with as many threads:

    python3 -m pip install numpy torch torchvision
    python3 benches/pytorch/loss_speed.py [--threads 2] [--compile] [--shape 8x512 ...]

On a GPU (`--device cuda`, run by `.gpu/run.sh` where PyTorch is installed)
it also prints the device-to-device copy bandwidth it measures first, so
that its figures compare with `cargo xtask gpu-check`'s table.
"""

import argparse
import statistics
import time

import torch
import torchvision.ops


# The labels arrive as uint8, as symseg reads them; the cast is part of the
# loss (and fused into it by torch.compile).
def plain(x, y):
    return torchvision.ops.sigmoid_focal_loss(x, y.to(x.dtype), alpha=0.25, gamma=2.0, reduction="mean")


def average(x, y):
    s = (x + x.transpose(1, 2)) / 2
    return torchvision.ops.sigmoid_focal_loss(s, y.to(x.dtype), alpha=0.25, gamma=2.0, reduction="mean")


def inputs(b, n, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, n, generator=g) * 3
    u = torch.rand(b, n, n, generator=g)
    y = (u < 0.05).triu()
    y = (y | y.transpose(1, 2)).to(torch.uint8)
    return x.to(device).requires_grad_(True), y.to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, x, y, seconds):
    """Median seconds of one forward + backward over at least `seconds` of calls."""
    for _ in range(3):  # warm-up (and compilation)
        x.grad = None
        fn(x, y).backward()
    sync(x.device)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 5:
        t0 = time.perf_counter()
        x.grad = None
        fn(x, y).backward()
        sync(x.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_gbs(device, mib=1024):
    """Device-to-device copy bandwidth, read + write, the best of 20 copies."""
    src = torch.empty(mib << 18, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(20):
        sync(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * 4 / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--compile", action="store_true", help="torch.compile each loss first")
    ap.add_argument("--shape", action="append", help="BxN (repeatable; default 8x512, 1x2048, 32x256)")
    ap.add_argument("--seconds", type=float, default=2.0, help="time spent per case")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = [tuple(int(v) for v in s.split("x")) for s in (args.shape or ["8x512", "1x2048", "32x256"])]
    fns = {"plain": plain, "average": average}
    if args.compile:
        fns = {k: torch.compile(f) for k, f in fns.items()}
    mode = "torch.compile" if args.compile else "eager"
    if device.type == "cuda":
        print(f"torch {torch.__version__} ({mode}) on {torch.cuda.get_device_name(device)}; "
              f"copy bandwidth {copy_gbs(device):.0f} GB/s (read + write)")
    else:
        print(f"torch {torch.__version__} ({mode}), {torch.get_num_threads()} threads")
    print(f"{'strategy':<9} {'shape':<12} {'ms':>9} {'G elem/s':>9} {'GB/s':>7}")
    for b, n in shapes:
        x, y = inputs(b, n, device)
        for name, fn in fns.items():
            t = time_call(fn, x, y, args.seconds)
            elems = b * n * n
            print(f"{name:<9} {f'{b}x{n}^2':<12} {t * 1e3:>9.3f} {elems / t / 1e9:>9.3f} {9 * elems / t / 1e9:>7.2f}")


if __name__ == "__main__":
    main()
