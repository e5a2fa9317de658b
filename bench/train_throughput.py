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
does not depend on the values). The first step of each configuration is a warm-up, not timed.

Usage: ``PYTHONPATH=. python bench/train_throughput.py [--quick] [--device cpu|cuda] [--amp]
[--compile]`` (``--amp``: fp16 autocast with loss scaling on CUDA, bf16 on the CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import warnings

import torch

from pconv_lib.losses import PConvLoss
from pconv_lib.masks import random_irregular_mask
from pconv_lib.model import PConvUNet


def measure(size: int, depth: int, width: float, batch: int, steps: int, loss: PConvLoss | None,
            device: torch.device, amp: bool, compile_: bool) -> float:
    """Median seconds per training step (``loss=None``: an L1 loss, the UNet alone)."""
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    model = PConvUNet(depth=depth, width=width, check_mask=False).to(device)
    net = torch.compile(model) if compile_ else model
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and cuda)
    dtype = torch.float16 if cuda else torch.bfloat16
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if amp else contextlib.nullcontext
    image = torch.rand(batch, 3, size, size, device=device)
    mask = torch.stack(
        [torch.from_numpy(random_irregular_mask(size, size, i)).float()[None] for i in range(batch)]
    ).to(device)
    times = []
    for step in range(steps + 1):
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
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
        if step:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 timed steps, smaller configurations")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (2 quick, 5)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA GPU is visible")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    steps = args.steps or (2 if args.quick else 5)
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
          f"median of {steps} steps after a warm-up")
    print(f"{'configuration':<34}{'images/s':>10}{'s/step':>9} | {'UNet only img/s':>16}"
          f"{'s/step':>9}{'VGG share':>11}")
    for name, size, depth, width, batch in configs:
        full = measure(size, depth, width, batch, steps, loss, device, args.amp, args.compile)
        unet = measure(size, depth, width, batch, steps, None, device, args.amp, args.compile)
        share = max(0.0, 1 - unet / full)
        print(f"{name:<34}{batch / full:>10.2f}{full:>9.2f} | {batch / unet:>16.2f}{unet:>9.2f}"
              f"{share:>10.0%}", flush=True)


if __name__ == "__main__":
    main()
