"""Training throughput: images/s of PConvUNet training steps, and where the time goes.

A training step is: UNet forward, loss (pixel terms + VGG16 up to pool3 for the perceptual and
style terms), backward through both, Adam. For each configuration this times, side by side:

* ``step``: the whole training step (what training runs at),
* ``UNet only``: the same step with an L1 loss instead of the PConv loss (no VGG): the UNet's
  forward + backward + Adam,
* ``VGG share``: ``1 - UNet only / step``, the part of the step spent in the VGG loss (forward
  and backward through VGG16 twice: output and composite). On the CPU it is most of the step, so
  a faster UNet layer barely moves the step time there.

Configurations differ in workload (image size, width, batch): compare rows of the same
configuration across machines or options, not rows with each other. Random VGG weights (speed
does not depend on the values). The first step of each kind is a warm-up, not timed; then the full
step and the UNet-only step alternate (``--steps``, default 7, of each) so that a change in the
machine's load hits both alike, and the median (min-max) is printed with the load average. (Before:
2-5 steps of one kind, then of the other, medians only.)

Usage: ``PYTHONPATH=. python bench/train_throughput.py [--quick] [--device cpu|cuda] [--amp]
[--compile]`` (``--amp``: fp16 autocast with loss scaling on CUDA, bf16 on the CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
import warnings

import torch

from pconv_lib.losses import PConvLoss
from pconv_lib.masks import random_irregular_mask
from pconv_lib.model import PConvUNet
from pconv_lib.runtime import apply_thread_policy
from pconv_lib.util.torch_compat import grad_scaler


def make_step(size: int, depth: int, width: float, batch: int, loss: PConvLoss | None,
              device: torch.device, amp: bool, compile_: bool):
    """One training step as an argument-free call (``loss=None``: an L1 loss, the UNet alone)."""
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    model = PConvUNet(depth=depth, width=width, check_mask=False).to(device)
    net = torch.compile(model) if compile_ else model
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    scaler = grad_scaler(amp and cuda)
    dtype = torch.float16 if cuda else torch.bfloat16
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if amp else contextlib.nullcontext
    image = torch.rand(batch, 3, size, size, device=device)
    mask = torch.stack(
        [torch.from_numpy(random_irregular_mask(size, size, i)).float()[None] for i in range(batch)]
    ).to(device)

    def step() -> None:
        with autocast():
            output, _ = net(image * mask, mask)
        output = output.float()
        if loss is None:
            total = (output - image).abs().mean()
        else:
            total = loss(output, image, mask, image * mask)["total"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
        if cuda:
            torch.cuda.synchronize(device)

    return step


def measure_pair(size: int, depth: int, width: float, batch: int, steps: int, loss: PConvLoss,
                 device: torch.device, amp: bool, compile_: bool) -> dict[str, list[float]]:
    """Seconds per step of the full step and the UNet-only step, interleaved (order alternating)
    after one warm-up step each: ``{"full": [...], "unet": [...]}``."""
    runs = {"full": make_step(size, depth, width, batch, loss, device, amp, compile_),
            "unet": make_step(size, depth, width, batch, None, device, amp, compile_)}
    for step in runs.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(steps):
        for name in (("full", "unet") if r % 2 == 0 else ("unet", "full")):
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller configurations")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--steps", type=int, default=7, help="timed steps of each kind, interleaved (7)")
    args = parser.parse_args()
    apply_thread_policy()  # the library's CPU thread policy, as the notebooks and the CLI use it
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA GPU is visible")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    steps = args.steps
    if steps < 1:
        parser.error("--steps must be at least 1 (7 or more for numbers worth quoting)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss = PConvLoss(vgg_weights=None).to(device)
    if device.type == "cuda":
        configs = [("paper model, 256x256, batch 16", 256, 7, 1.0, 16),
                   ("paper model, 512x512, batch 8", 512, 8, 1.0, 8)]
        if args.quick:
            configs = configs[:1]
    elif args.quick:
        configs = [("width 0.25, 256x256, batch 4", 256, 7, 0.25, 4),
                   ("notebook model, 64x64, batch 4", 64, 4, 0.25, 4)]
    else:
        configs = [("paper model, 256x256, batch 4", 256, 7, 1.0, 4),
                   ("width 0.25, 256x256, batch 4", 256, 7, 0.25, 4),
                   ("notebook model, 64x64, batch 4", 64, 4, 0.25, 4)]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__}, {where}, amp={args.amp}, compile={args.compile}; "
          f"full and UNet-only steps interleaved, {steps} of each after a warm-up: median (min-max); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'configuration':<34}{'images/s':>10}{'s/step (min-max)':>22} | {'UNet only img/s':>16}"
          f"{'s/step (min-max)':>22}{'VGG share':>11}")
    for name, size, depth, width, batch in configs:
        times = measure_pair(size, depth, width, batch, steps, loss, device, args.amp, args.compile)
        full, unet = statistics.median(times["full"]), statistics.median(times["unet"])
        share = max(0.0, 1 - unet / full)

        def spread(values: list[float]) -> str:
            return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

        print(f"{name:<34}{batch / full:>10.2f}{spread(times['full']):>22} | {batch / unet:>16.2f}"
              f"{spread(times['unet']):>22}{share:>10.0%}", flush=True)


if __name__ == "__main__":
    main()
