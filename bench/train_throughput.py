"""Training throughput on this machine: images/s of PConvUNet training steps (forward, loss with
VGG16 up to pool3, backward, Adam), side by side for a few configurations in one run.

    python bench/train_throughput.py            # 256x256 batch 4 full-width model (the paper's)
    python bench/train_throughput.py --quick    # fewer steps

Random VGG weights are used (speed does not depend on the weight values). The first step of each
configuration is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from pconv_lib.losses import PConvLoss
from pconv_lib.masks import random_irregular_mask
from pconv_lib.model import PConvUNet


def measure(size: int, depth: int, width: float, batch: int, steps: int, loss: PConvLoss) -> float:
    torch.manual_seed(0)
    model = PConvUNet(depth=depth, width=width)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    image = torch.rand(batch, 3, size, size)
    mask = torch.stack(
        [torch.from_numpy(random_irregular_mask(size, size, i)).float()[None] for i in range(batch)]
    )
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        output, _ = model(image * mask, mask)
        terms = loss(output, image, mask, image * mask)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        if step:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps = 2 if args.quick else 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss = PConvLoss(vgg_weights=None)
    configs = [
        ("paper model, 256x256, batch 4", 256, 7, 1.0, 4),
        ("width 0.25, 256x256, batch 4", 256, 7, 0.25, 4),
        ("notebook model, 64x64, batch 4", 64, 4, 0.25, 4),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'configuration':<34}{'images/s':>10}{'s/step':>9}{'vs paper':>10}")
    baseline = None
    for name, size, depth, width, batch in configs:
        rate = measure(size, depth, width, batch, steps, loss)
        baseline = baseline or rate
        print(f"{name:<34}{rate:>10.2f}{batch / rate:>9.2f}{rate / baseline:>9.1f}x")


if __name__ == "__main__":
    main()
