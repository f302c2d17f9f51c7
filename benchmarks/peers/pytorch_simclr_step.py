"""Peer benchmark: the same SimCLR pretrain step in plain PyTorch, for a same-machine comparison.

ResNet-18 with the CIFAR stem (3x3 stride-1 stem conv, no max-pool, a 1x1 projection shortcut in
every group's first block, as tfssl's), a 3-layer projection head with batch norm, NT-Xent with 2N-2
negatives, SGD with momentum. Synthetic 32x32x3 inputs, 10 warm-up steps, median of 5 timed steps.
Prints one JSON line like `python run.py --mode=benchmark`.

    pip install torch==2.13.0
    python benchmarks/peers/pytorch_simclr_step.py --precision=bf16 --batch_size=256 [--compile]
"""

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride, projection):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if projection
            else nn.Identity()
        )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


class SimCLRNet(nn.Module):
    def __init__(self, width=64, out_dim=128):
        super().__init__()
        layers = [
            nn.Conv2d(3, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        cin = width
        for i, channels in enumerate((width, 2 * width, 4 * width, 8 * width)):
            layers += [
                Block(cin, channels, 1 if i == 0 else 2, True),
                Block(channels, channels, 1, False),
            ]
            cin = channels
        self.encoder = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(cin, cin, bias=False),
            nn.BatchNorm1d(cin),
            nn.ReLU(inplace=True),
            nn.Linear(cin, cin, bias=False),
            nn.BatchNorm1d(cin),
            nn.ReLU(inplace=True),
            nn.Linear(cin, out_dim, bias=False),
            nn.BatchNorm1d(out_dim),
        )

    def forward(self, x):
        return self.head(self.encoder(x))


def nt_xent(z, temperature=0.2):
    z = F.normalize(z.float(), dim=1)
    n = z.shape[0] // 2
    logits = z @ z.t() / temperature
    logits.fill_diagonal_(-1e9)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, targets)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SimCLRNet().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    views = torch.rand(2 * args.batch_size, 3, 32, 32).to(memory_format=torch.channels_last)
    forward = torch.compile(model) if args.compile else model

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            loss = nt_xent(forward(views))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss)

    for _ in range(10):
        step()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(
        json.dumps(
            {
                "figure": "pytorch_pretrain_step",
                "torch": torch.__version__,
                "precision": args.precision,
                "compile": args.compile,
                "train_batch_size": args.batch_size,
                "threads": torch.get_num_threads(),
                "step_time_s": round(median, 4),
                "images_per_s": round(args.batch_size / median, 1),
                "step_times_s": [round(t, 4) for t in times],
                "peak_rss_gib": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
