"""The training step of `cargo xtask train-speed`, in PyTorch, for comparison.

Same network as symseg-train's default (`symseg train`): a 3x3 stem from 17 pair
features to 16 channels, six residual blocks h + relu(conv3x3_d(h)) with
dilations 1, 2, 4, 8, 16, 1, a 1x1 head; focal loss (alpha 0.25, gamma 2, mean);
AdamW (lr 3e-3, weight decay 1e-4) with global-norm clipping at 1.0; mini-batches
of 8 samples of one length N. Prints samples/s at N = 80 and 150.

    python3 -m pip install torch          # the PyPI wheel (CPU use needs no GPU)
    python3 benches/pytorch/train_step.py [--threads 2] [--compile]

On this project's 2-core machines: run it and `cargo xtask train-speed` one after
the other, several times; the machines are shared and vary by +-20%.
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CHANNELS, WIDTH, DILATIONS = 17, 16, [1, 2, 4, 8, 16, 1]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(CHANNELS, WIDTH, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(WIDTH, WIDTH, 3, padding=d, dilation=d) for d in DILATIONS)
        self.head = nn.Conv2d(WIDTH, 1, 1)

    def forward(self, x):
        h = F.relu(self.stem(x))
        for block in self.blocks:
            h = h + F.relu(block(h))
        return self.head(h)[:, 0]


def focal(z, y, alpha=0.25, gamma=2.0):
    p = torch.sigmoid(z)
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    pt = p * y + (1 - p) * (1 - y)
    at = alpha * y + (1 - alpha) * (1 - y)
    return (at * ce * (1 - pt) ** gamma).mean()


def samples_per_second(n, batch, steps, compile_step):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    x = torch.randn(batch, CHANNELS, n, n)
    y = (torch.rand(batch, n, n) < 0.01).float()
    y = torch.maximum(y, y.transpose(1, 2))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = focal(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    run = torch.compile(step) if compile_step else step
    for _ in range(2):
        run()
    t = time.perf_counter()
    for _ in range(steps):
        run()
    return batch * steps / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="wrap the step in torch.compile")
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 8, width {WIDTH}")
    print(f"{'N':>6} {'samples/s':>10} {'ms/sample':>12}")
    for n in (80, 150):
        sps = samples_per_second(n, 8, args.steps, args.compile)
        print(f"{n:>6} {sps:>10.1f} {1e3 / sps:>12.2f}", flush=True)


if __name__ == "__main__":
    main()
