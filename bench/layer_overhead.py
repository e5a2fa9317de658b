"""Cost of the partial-convolution mask path, per UNet layer shape, measured side by side.

For every distinct layer shape of the PConv UNet at 256x256 (depth 7) and 512x512 (depth 8)
this times, interleaved round robin (so that a busy machine slows every variant alike), forward
(under ``torch.no_grad()``) and forward + backward (gradients of input, weight and bias):

* ``conv``: plain ``nn.Conv2d`` (no mask at all: the lower bound; the ratios are to it),
* ``pconv``: ``pconv_lib.layers_fast.FastPartialConv2d`` as the UNet (``fast=True``, training and
  checkpoints) calls it (``check_mask=False``: the model checks the input mask once, or the data
  side does). Encoder layers: ``forward(x, mask)``
  with a single-channel (N, 1, H, W) mask. Decoder layers: the paper's per-channel mask is
  ``cat(m_up repeated over C_up channels, m_skip repeated over C_skip)``; the UNet never builds
  it and calls ``forward_masked(cat(h_up * m_up, skip * m_skip), C_up * m_up + C_skip * m_skip)``.
  For the decoder every variant includes the concatenation of the two inputs (plain conv too),
* ``ones``: a reference written here from the paper's formula whose mask path is a ones
  convolution of the *same kind of mask* (like with like): for encoder layers a single-channel
  ``1 -> 1`` ones convolution of the (N, 1, H, W) mask (NVIDIA's single-channel mode does this);
  for decoder layers a full ``C_in -> C_out`` ones convolution of the materialised
  (N, C_in, H, W) mask (NVIDIA's multi-channel mode),
* ``pc full`` (decoder only): the readable ``pconv_lib.layers.PartialConv2d.forward(x, mask)`` with
  the materialised (N, C_in, H, W) mask, what a user calling the paper's layer with a per-channel
  mask pays (only the fast layer has the ``forward_masked`` shortcut).

Each cell is the median ratio to ``conv`` over the repeats, with its spread (min-max of the
per-repeat ratios, each repeat timing every variant back to back); a ratio below 1 whose spread
reaches past 1 is noise, not a speed-up. Targets: ``pconv <= 1.15 x conv`` for layers with
``C_in >= 64`` (the issue's target with AMP on a GPU), and ``pconv`` faster than ``ones``.

Usage: ``PYTHONPATH=. python bench/layer_overhead.py [--quick] [--device cpu|cuda] [--amp]
[--batch N ...] [--repeats R] [--size S]`` (``--quick``: 256x256 only, batch 1 on the CPU, 16 on a GPU;
``--amp``: fp16 autocast on CUDA, bf16 on the CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv_lib.layers import PartialConv2d
from pconv_lib.layers_fast import FastPartialConv2d
from pconv_lib.model import architecture, encoder_channels


class OnesConvPartialConv2d(nn.Conv2d):
    """Reference from the formula: the window count is a ones convolution of the mask as given,
    ``1 -> 1`` for a single-channel mask, ``C_in -> C_out`` for a per-channel one."""

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        with torch.no_grad():
            kh, kw = self.kernel_size
            ones = torch.ones(1 if mask.shape[1] == 1 else self.out_channels, mask.shape[1], kh, kw,
                              device=mask.device, dtype=mask.dtype)
            count = F.conv2d(mask, ones, None, self.stride, self.padding, self.dilation)
            win = mask.shape[1] * kh * kw
            valid = (count > 0).to(x.dtype)
            ratio = win / count.clamp_min(1) * valid
        raw = F.conv2d(x * mask, self.weight, None, self.stride, self.padding, self.dilation)
        out = raw * ratio
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1) * valid
        return out, valid[:, :1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fns: dict[str, Callable[[], object]], repeats: int, min_time: float,
            device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each function for every repeat, repeats interleaved round robin."""
    inner = {}
    for name, fn in fns.items():
        for _ in range(2):  # warm-up (allocator, oneDNN / cuDNN plans)
            fn()
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        inner[name] = max(1, math.ceil(min_time / max(time.perf_counter() - t0, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            _sync(device)
            times[name].append((time.perf_counter() - t0) / inner[name])
    return times


def layer_shapes(sizes: list[tuple[int, int]]) -> list[dict]:
    """Distinct (C_in, C_out, k, stride, H_in, mask kind) of the UNet layers at those sizes."""
    shapes: dict[tuple, dict] = {}
    for size, depth in sizes:
        for spec in architecture(depth):
            per_channel = spec.name.startswith("dec")
            key = (
                spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride,
                size // spec.in_scale, per_channel, spec.batch_norm,
            )
            skip = None
            if per_channel:
                j = int(spec.name[3:]) - depth - 1
                skip_index = depth - 1 - j
                skip = 3 if skip_index == 0 else encoder_channels(depth)[skip_index - 1]
            entry = shapes.setdefault(key, {"spec": spec, "h": key[4], "names": [], "skip": skip})
            entry["names"].append(f"{size}:{spec.name}")
    return list(shapes.values())


def bench_shape(entry: dict, batch: int, repeats: int, min_time: float, device: torch.device,
                amp: torch.dtype | None) -> dict:
    spec, h = entry["spec"], entry["h"]
    cin, cout, k, s = spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride
    bias = not spec.batch_norm
    per_channel = spec.name.startswith("dec")
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=bias).to(device)
    pconv = FastPartialConv2d(cin, cout, k, s, k // 2, bias=bias, check_mask=False).to(device)
    readable = PartialConv2d(cin, cout, k, s, k // 2, bias=bias, check_mask=False).to(device)
    ones = OnesConvPartialConv2d(cin, cout, k, s, k // 2, bias=bias).to(device)
    for layer in (pconv, readable, ones):
        layer.load_state_dict(conv.state_dict())
    ho = (h + 2 * (k // 2) - k) // s + 1
    grad = torch.randn(batch, cout, ho, ho, device=device)
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp else contextlib.nullcontext

    def rand_mask(c: int = 1) -> Tensor:
        return (torch.rand(batch, c, h, h, device=device) > 0.3).float()

    if not per_channel:
        x = torch.randn(batch, cin, h, h, device=device)
        mask = rand_mask()
        xg = x.clone().requires_grad_(True)
        layers = {"conv": conv, "pconv": pconv, "ones": ones}

        def call(name: str, inp: Tensor) -> Tensor:
            layer = layers[name]
            return layer(inp) if name == "conv" else layer(inp, mask)[0]

        inputs, grads_of = (x,), (xg,)
    else:
        c_skip = entry["skip"]
        c_up = cin - c_skip
        up = torch.randn(batch, c_up, h, h, device=device)
        skip = torch.randn(batch, c_skip, h, h, device=device)
        m_up, m_skip = rand_mask(), rand_mask()
        full_mask = torch.cat((m_up.expand(-1, c_up, -1, -1), m_skip.expand(-1, c_skip, -1, -1)), 1)
        layers = {"conv": conv, "pconv": pconv, "ones": ones, "pc full": readable}

        def call(name: str, a: Tensor, b: Tensor) -> Tensor:
            if name == "conv":
                return conv(torch.cat((a, b), 1))
            if name == "pconv":
                x_masked = torch.cat((a * m_up, b * m_skip), 1)
                return pconv.forward_masked(x_masked, m_up * c_up + m_skip * c_skip)[0]
            return layers[name](torch.cat((a, b), 1), full_mask)[0]  # the full mask is given

        inputs = (up, skip)
        grads_of = tuple(t.clone().requires_grad_(True) for t in inputs)

    def fwd(name: str) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad(), autocast():
                return call(name, *inputs)

        return run

    def fwd_bwd(name: str) -> Callable[[], object]:
        params = list(layers[name].parameters())

        def run() -> None:
            for p in params + list(grads_of):
                p.grad = None
            with autocast():
                out = call(name, *grads_of)
            out.backward(grad.to(out.dtype))

        return run

    return {
        "fwd": measure({n: fwd(n) for n in layers}, repeats, min_time, device),
        "fwd_bwd": measure({n: fwd_bwd(n) for n in layers}, repeats, min_time, device),
    }


def ratio_cell(times: dict[str, list[float]], name: str) -> tuple[str, float]:
    """``"1.07 (0.98-1.20)"``: median and min-max of the per-repeat ratios to conv."""
    if name not in times:
        return f"{'-':>18}", math.nan
    ratios = [t / c for t, c in zip(times[name], times["conv"], strict=True)]
    med = statistics.median(ratios)
    return f"{med:6.2f} ({min(ratios):4.2f}-{max(ratios):4.2f})", med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256 only, one batch size")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast on cuda, bf16 on cpu")
    parser.add_argument("--batch", type=int, nargs="*", help="batch sizes (cpu: 1 4, cuda: 16)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (7 quick, 11)")
    parser.add_argument("--size", type=int, default=None,
                        help="only the depth-7 layer shapes at this side (multiple of 128; 128: smoke run)")
    args = parser.parse_args()
    if args.size is not None and (args.size < 128 or args.size % 128):
        parser.error("--size must be a multiple of 128 (depth 7)")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA GPU is visible")
    device = torch.device(args.device)
    amp = (torch.float16 if device.type == "cuda" else torch.bfloat16) if args.amp else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    sizes = [(args.size, 7)] if args.size else [(256, 7)] if args.quick else [(256, 7), (512, 8)]
    default_batches = [16] if device.type == "cuda" else ([1] if args.quick else [1, 4])
    batches = args.batch or default_batches
    repeats = args.repeats or (7 if args.quick else 11)
    min_time = 0.02 if args.quick else 0.05

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__}, {where}, {'AMP ' + str(amp) if amp else 'float32'}")
    print(f"ratio to plain conv: median (min-max) over {repeats} interleaved repeats; conv in ms; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print("mask ~30% holes. enc: (N,1,H,W) mask, 'ones' = 1->1 ones conv (single-channel mode). "
          "dec: two (N,1,H,W) masks as the UNet runs it; 'ones' and 'pc full' get the "
          "materialised (N,C_in,H,W) mask ('ones' = C_in->C_out ones conv, multi-channel mode)")
    head = f"{'conv ms':>8}{'pconv x':>18}{'ones x':>18}{'pc full x':>18}"
    header = f"{'layer(s)':<24}{'Cin>Cout k s':>16}{'H':>5}{'N':>4} |{head} |{head}"
    print(f"{'':<49} | {'forward (no_grad)':^61} | {'forward + backward':^61}")
    print(header)
    print("-" * len(header))
    worst = {"fwd": 0.0, "fwd_bwd": 0.0}
    slower_than_ones = []
    start = time.perf_counter()
    for entry in layer_shapes(sizes):
        spec = entry["spec"]
        for batch in batches:
            res = bench_shape(entry, batch, repeats, min_time, device, amp)
            cells = []
            for mode in ("fwd", "fwd_bwd"):
                t = res[mode]
                pc_text, pc = ratio_cell(t, "pconv")
                on_text, on = ratio_cell(t, "ones")
                full_text, _ = ratio_cell(t, "pc full")
                if spec.in_channels >= 64:
                    worst[mode] = max(worst[mode], pc)
                if pc >= on:
                    slower_than_ones.append(f"{entry['names'][0]} N={batch} {mode}")
                conv_ms = statistics.median(t["conv"]) * 1e3
                cells.append(f"{conv_ms:8.2f} {pc_text} {on_text} {full_text}")
            names = ",".join(entry["names"])
            names = names if len(names) <= 23 else names[:20] + "..."
            shape = f"{spec.in_channels}>{spec.out_channels} {spec.kernel_size} {spec.stride}"
            print(f"{names:<24}{shape:>16}{entry['h']:>5}{batch:>4} |{cells[0]} |{cells[1]}", flush=True)
    print("-" * len(header))
    print(f"total bench time {time.perf_counter() - start:.0f} s")
    for mode, label in (("fwd", "forward"), ("fwd_bwd", "forward+backward")):
        ok = worst[mode] <= 1.15
        print(
            f"target pconv <= 1.15 x conv for C_in >= 64, {label}: worst median {worst[mode]:.2f} x "
            f"-> {'MET' if ok else 'NOT MET'}"
        )
    if slower_than_ones:
        print("target pconv faster than the ones-conv path: NOT MET for " + "; ".join(slower_than_ones))
    else:
        print("target pconv faster than the ones-conv path: MET for every shape")


if __name__ == "__main__":
    main()
