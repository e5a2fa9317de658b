"""Time and peak memory of one PConv UNet step: 256x256 (depth 7), 512x512 (depth 8), CPU or GPU.

For each model (batch 1 on the CPU, 16 / 8 on a GPU, paper width unless ``--width``) and for the
same UNet built from plain ``nn.Conv2d`` layers (no masks at all: the lower bound a partial
convolution UNet can approach) this prints the median time of

* ``forward``: ``model.eval()`` under ``torch.no_grad()`` (inference),
* ``forward+backward``: ``model.train()``, loss ``mean|output|``, ``backward()`` (one training
  step without the optimizer),

and the peak memory of the first such call.

Time method: both nets are built in this process and called alternately (plain, pconv, pconv,
plain, ...) after one warm-up call each, ``--repeats`` (default 7) times each; the median
(min-max) is printed and ``x`` is the ratio of the medians. (Before: each net in its own process,
one after the other, median of 2-3, which put the mask path at 1.42-1.52x a plain UNet where
interleaved runs give 1.08-1.20x: the processes met different loads.) The load average is printed.

Memory method: every (model, mode) runs in a fresh child process (this script with
``--child``). On a GPU the child reads ``torch.cuda.max_memory_allocated`` (after
``reset_peak_memory_stats``) for the first call, which includes cuDNN's autotuning workspace
when ``cudnn.benchmark`` is on, and again for a later call ("steady"): a large gap between the
two is autotuning, not the model. On the CPU the child reads its current resident set size
(``/proc/self/statm``), runs the step once and reads the high-water mark ``ru_maxrss`` of
``resource.getrusage``; the peak is the difference: everything the step allocated at its most,
activations, saved tensors, gradients and allocator slack included, the model weights and the
Python/torch baseline excluded. ``tracemalloc`` cannot see torch's allocations, and
``ru_maxrss`` never goes down, hence one process per measurement. Linux only.

Usage: ``PYTHONPATH=. python bench/unet_step.py [--quick] [--device cpu|cuda] [--amp] [--compile]
[--width W] [--repeats R] [--batch N]`` (``--quick``: 256x256 only; ``--amp``: fp16
autocast on CUDA, bf16 on the CPU; ``--compile``: ``torch.compile`` both models first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from pconv_lib.model import PConvUNet, architecture, count_parameters
from pconv_lib.runtime import apply_thread_policy


class PlainUNet(nn.Module):
    """The PConv UNet's architecture with ``nn.Conv2d`` and no masks: the lower bound."""

    def __init__(self, depth: int, width: float) -> None:
        super().__init__()
        specs = architecture(depth, width)
        self.depth = depth

        def block(spec) -> nn.Sequential:
            layers: list[nn.Module] = [
                nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride,
                          spec.kernel_size // 2, bias=not spec.batch_norm)
            ]
            if spec.batch_norm:
                layers.append(nn.BatchNorm2d(spec.out_channels))
            if spec.activation == "relu":
                layers.append(nn.ReLU(inplace=True))
            elif spec.activation == "leaky_relu":
                layers.append(nn.LeakyReLU(0.2, inplace=True))
            return nn.Sequential(*layers)

        self.encoder = nn.ModuleList(block(s) for s in specs[:depth])
        self.decoder = nn.ModuleList(block(s) for s in specs[depth:])

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, h = [image], image
        for b in self.encoder:
            h = b(h)
            feats.append(h)
        for j, b in enumerate(self.decoder):
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = b(torch.cat((h, feats[self.depth - 1 - j]), 1))
        return h, mask


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _setup(size: int, depth: int, mode: str, width: float, net: str, device: str, amp: bool, batch: int,
           compile_: bool):
    """(step, sync, params): one call of ``mode`` for ``net`` on fixed random inputs (~30 % holes)."""
    torch.manual_seed(0)
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    if net == "pconv":
        model: nn.Module = PConvUNet(depth=depth, width=width, check_mask=False)  # data side checks
    else:
        model = PlainUNet(depth, width)
    model = model.to(dev)
    params = count_parameters(model)
    run_model = torch.compile(model) if compile_ else model
    dtype = torch.float16 if cuda else torch.bfloat16
    autocast = (lambda: torch.autocast(dev.type, dtype=dtype)) if amp else contextlib.nullcontext
    image = torch.rand(batch, 3, size, size)
    mask = torch.ones(batch, 1, size, size)
    gen = torch.Generator().manual_seed(0)
    while (mask == 0).float().mean() < 0.3:  # ~30% holes, random rectangles
        y, x = (int(v) for v in torch.randint(0, size * 3 // 4, (2,), generator=gen))
        mask[..., y : y + size // 6, x : x + size // 5] = 0
    image, mask = image.to(dev), mask.to(dev)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    if mode == "forward":
        model.eval()

        def step() -> None:
            with torch.no_grad(), autocast():
                run_model(image, mask)

    else:
        model.train()

        def step() -> None:
            for p in model.parameters():
                p.grad = None
            with autocast():
                out, _ = run_model(image, mask)
            out.float().abs().mean().backward()

    return step, sync, params


def child(size: int, depth: int, mode: str, width: float, repeats: int, net: str = "pconv",
          device: str = "cpu", amp: bool = False, batch: int = 1, compile_: bool = False) -> dict:
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    step, sync, params = _setup(size, depth, mode, width, net, device, amp, batch, compile_)
    if cuda:
        base = torch.cuda.memory_allocated(dev) / 2**20
        torch.cuda.reset_peak_memory_stats(dev)
    else:
        base = _rss_mib()
    t0 = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else _maxrss_mib()) - base
    times = []
    for i in range(repeats):
        if cuda and i == repeats - 1:
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    steady = torch.cuda.max_memory_allocated(dev) / 2**20 - base if cuda else float("nan")
    return {
        "median_s": statistics.median(times),
        "first_s": first,
        "peak_mib": peak,
        "steady_mib": steady,
        "base_mib": base,
        "params": params,
    }


def time_interleaved(size: int, depth: int, mode: str, width: float, repeats: int, device: str, amp: bool,
                     batch: int, compile_: bool) -> dict[str, tuple[float, float, float]]:
    """Median, min, max seconds of plain and pconv, interleaved in this process (order alternating)."""
    runs = {net: _setup(size, depth, mode, width, net, device, amp, batch, compile_)
            for net in ("plain", "pconv")}
    for step, sync, _ in runs.values():  # warm-up
        step()
        sync()
    times: dict[str, list[float]] = {net: [] for net in runs}
    for r in range(repeats):
        for net in (("plain", "pconv") if r % 2 == 0 else ("pconv", "plain")):
            step, sync, _ = runs[net]
            t0 = time.perf_counter()
            step()
            sync()
            times[net].append(time.perf_counter() - t0)
    return {net: (statistics.median(v), min(v), max(v)) for net, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256 only")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast on cuda, bf16 on cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--batch", type=int, default=None, help="batch (cpu 1; cuda 16 at 256, 8 at 512)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats of each net, interleaved (7)")
    parser.add_argument("--child", nargs=4, metavar=("SIZE", "DEPTH", "MODE", "NET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    apply_thread_policy()  # the library's CPU thread policy, as the notebooks and the CLI use it
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA GPU is visible")
    repeats = args.repeats
    if repeats < 1:
        parser.error("--repeats must be at least 1 (7 or more for numbers worth quoting)")
    if args.child:
        size, depth, mode, net = int(args.child[0]), int(args.child[1]), args.child[2], args.child[3]
        print(json.dumps(child(size, depth, mode, args.width, 1, net, args.device, args.amp,
                               args.batch or 1, args.compile)))  # memory and first call only
        return

    configs = [(256, 7)] if args.quick else [(256, 7), (512, 8)]
    cuda = args.device == "cuda"
    where = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    precision = ("fp16" if cuda else "bf16") + " autocast" if args.amp else "float32"
    print(f"torch {torch.__version__}, {where}, {precision}, width {args.width:g}"
          f"{', compiled' if args.compile else ''}; time: median (min-max) of {repeats} calls of each net, "
          f"interleaved in one process after a warm-up; load average {os.getloadavg()[0]:.1f}")
    if cuda:
        print("peak: torch.cuda.max_memory_allocated during the first call (cudnn.benchmark on: "
              "includes autotuning workspace) and during the last call (steady), minus before")
    else:
        print("peak: max RSS during the first call minus RSS before it (fresh process per row)")
    print("plain: the same UNet with nn.Conv2d and no masks (lower bound); x = pconv / plain time")
    header = (f"{'model':<22}{'N':>3}{'params':>12} | {'mode':<17}{'net':<6}{'time s (min-max)':>24}{'x':>6}"
              f"{'first s':>9}{'peak MiB':>10}{'steady':>9}")
    print(header)
    print("-" * len(header))
    for size, depth in configs:
        batch = args.batch or ((16 if size <= 256 else 8) if cuda else 1)
        for mode in ("forward", "forward+backward"):
            timing = time_interleaved(size, depth, mode, args.width, repeats, args.device, args.amp, batch,
                                      args.compile)
            for net in ("plain", "pconv"):
                cmd = [sys.executable, os.path.abspath(__file__), "--child", str(size), str(depth),
                       mode, net, "--width", str(args.width), "--repeats", str(repeats),
                       "--device", args.device, "--batch", str(batch)]
                cmd += ["--amp"] if args.amp else []
                cmd += ["--compile"] if args.compile else []
                out = subprocess.run(cmd, check=True, capture_output=True, text=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                median, low, high = timing[net]
                ratio = median / timing["plain"][0]
                name = f"{size}x{size} depth {depth}"
                steady = "-" if r["steady_mib"] != r["steady_mib"] else f"{r['steady_mib']:.0f}"
                spread = f"{median:.3f} ({low:.3f}-{high:.3f})"
                print(f"{name:<22}{batch:>3}{r['params']:>12,} | {mode:<17}{net:<6}{spread:>24}"
                      f"{ratio:>6.2f}{r['first_s']:>9.2f}{r['peak_mib']:>10.0f}{steady:>9}", flush=True)


if __name__ == "__main__":
    main()
