"""Time and peak memory of one PConv UNet step on the CPU: 256x256 (depth 7), 512x512 (depth 8).

For each model (batch 1, paper width unless ``--width``) this prints the median time of

* ``forward``: ``model.eval()`` under ``torch.no_grad()`` (inference),
* ``forward+backward``: ``model.train()``, loss ``mean|output|``, ``backward()`` (one training
  step without the optimizer),

and the peak memory of the first such call.

Memory method: every (model, mode) runs in a fresh child process (this script with
``--child``). The child builds the model and inputs, reads its current resident set size
(``/proc/self/statm``), runs the step once and reads the high-water mark ``ru_maxrss`` of
``resource.getrusage``; the peak is the difference: everything the step allocated at its most,
activations, saved tensors, gradients and allocator slack included, the model weights and the
Python/torch baseline excluded. ``tracemalloc`` cannot see torch's allocations, and
``ru_maxrss`` never goes down, hence one process per measurement. Linux only.

Usage: ``python bench/unet_step.py [--quick] [--width W] [--repeats R]``
(``--quick``: 256x256 only, 2 repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from pconv_lib.model import PConvUNet, count_parameters


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(size: int, depth: int, mode: str, width: float, repeats: int) -> dict:
    torch.manual_seed(0)
    model = PConvUNet(depth=depth, width=width)
    image = torch.rand(1, 3, size, size)
    mask = torch.ones(1, 1, size, size)
    gen = torch.Generator().manual_seed(0)
    while (mask == 0).float().mean() < 0.3:  # ~30% holes, random rectangles
        y, x = (int(v) for v in torch.randint(0, size * 3 // 4, (2,), generator=gen))
        mask[..., y : y + size // 6, x : x + size // 5] = 0

    if mode == "forward":
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(image, mask)

    else:
        model.train()

        def step() -> None:
            for p in model.parameters():
                p.grad = None
            out, _ = model(image, mask)
            out.abs().mean().backward()

    base = _rss_mib()
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    peak = _maxrss_mib() - base
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times),
        "first_s": first,
        "peak_mib": peak,
        "base_mib": base,
        "params": count_parameters(model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256 only, 2 repeats")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (3)")
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "DEPTH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    if args.child:
        size, depth, mode = int(args.child[0]), int(args.child[1]), args.child[2]
        print(json.dumps(child(size, depth, mode, args.width, repeats)))
        return

    configs = [(256, 7)] if args.quick else [(256, 7), (512, 8)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU, batch 1, "
          f"width {args.width:g}; time: median of {repeats} after one warm-up call")
    print("peak: max RSS during the first call minus RSS before it (fresh process per row)")
    header = (f"{'model':<22}{'params':>12} | {'mode':<17}{'time s':>9}{'first s':>9}"
              f"{'peak MiB':>10}{'base MiB':>10}")
    print(header)
    print("-" * len(header))
    for size, depth in configs:
        for mode in ("forward", "forward+backward"):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", str(size), str(depth),
                   mode, "--width", str(args.width), "--repeats", str(repeats)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            name = f"{size}x{size} depth {depth}"
            print(f"{name:<22}{r['params']:>12,} | {mode:<17}{r['median_s']:>9.2f}"
                  f"{r['first_s']:>9.2f}{r['peak_mib']:>10.0f}{r['base_mib']:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
