"""Cost of the partial-convolution mask path, per UNet layer shape, measured side by side.

For every distinct layer shape of the PConv UNet at 256x256 (depth 7) and 512x512 (depth 8),
batch 1 and 4, this times (median of several repeats, interleaved so that a busy machine slows
every variant alike; default ``torch`` thread count):

* ``conv``: plain ``nn.Conv2d`` (no mask at all, the lower bound),
* ``pconv``: ``pconv_lib.layers.PartialConv2d`` as the UNet calls it, ``check_mask=False``
  (the model checks the input mask once). Encoder: ``forward(x, mask)`` with a single-channel
  mask. Decoder: the paper's per-channel mask is ``cat(m_up repeated over C_up channels,
  m_skip repeated over C_skip channels)``; the UNet never builds it and calls
  ``forward_masked(cat(h_up * m_up, skip * m_skip), C_up * m_up + C_skip * m_skip)``. For the
  decoder every variant includes the concatenation of the two inputs (plain conv included),
* ``pc full``: decoder only, ``PartialConv2d.forward(x, mask)`` with the materialised
  (N, C_in, H, W) mask — what a user calling the layer with a per-channel mask pays,
* ``ones``: a naive reference whose mask path is a full ``C_in -> C_out`` ones convolution
  (the original NVIDIA multi-channel implementation does this),

forward (under ``torch.no_grad()``) and forward + backward (gradients of input, weight, bias).
Targets: ``pconv <= 1.15 x conv`` for layers with ``C_in >= 64``, and ``pconv`` faster than
``ones`` everywhere.

Usage: ``python bench/layer_overhead.py [--quick]`` (``--quick``: 256x256, batch 1, fewer
repeats; the full run takes a few minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv_lib.layers import PartialConv2d
from pconv_lib.model import architecture, encoder_channels


class OnesConvPartialConv2d(nn.Conv2d):
    """Naive reference: the mask sum is a full ``C_in -> C_out`` ones convolution of a
    per-channel mask (what the cheap single-channel path avoids). Same output as
    ``PartialConv2d`` for per-channel masks."""

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        if mask.shape[1] != x.shape[1]:
            mask = mask.expand_as(x)
        with torch.no_grad():
            ones = torch.ones_like(self.weight)
            count = F.conv2d(mask, ones, None, self.stride, self.padding, self.dilation)
            win = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
            valid = (count > 0).to(x.dtype)
            ratio = win / count.clamp_min(1) * valid
        raw = F.conv2d(x * mask, self.weight, None, self.stride, self.padding, self.dilation)
        out = raw * ratio
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1) * valid
        return out, valid[:, :1]


def measure(fns: dict[str, Callable[[], object]], repeats: int, min_time: float) -> dict:
    """Median seconds per call of each function, repeats interleaved round robin."""
    inner = {}
    for name, fn in fns.items():
        fn()  # warm-up (allocator, oneDNN primitive cache)
        t0 = time.perf_counter()
        fn()
        inner[name] = max(1, math.ceil(min_time / max(time.perf_counter() - t0, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            times[name].append((time.perf_counter() - t0) / inner[name])
    return {name: statistics.median(v) for name, v in times.items()}


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


def bench_shape(entry: dict, batch: int, repeats: int, min_time: float) -> dict:
    spec, h = entry["spec"], entry["h"]
    cin, cout, k, s = spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride
    bias = not spec.batch_norm
    per_channel = spec.name.startswith("dec")
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=bias)
    pconv = PartialConv2d(cin, cout, k, s, k // 2, bias=bias, check_mask=False)
    ones = OnesConvPartialConv2d(cin, cout, k, s, k // 2, bias=bias)
    pconv.load_state_dict(conv.state_dict())
    ones.load_state_dict(conv.state_dict())
    ho = (h + 2 * (k // 2) - k) // s + 1
    grad = torch.randn(batch, cout, ho, ho)
    if not per_channel:
        x = torch.randn(batch, cin, h, h)
        mask = (torch.rand(batch, 1, h, h) > 0.3).float()
        xg = x.clone().requires_grad_(True)

        def fwd(layer, masked):
            def run():
                with torch.no_grad():
                    return layer(x, mask) if masked else layer(x)

            return run

        def fwd_bwd(layer, masked):
            params = list(layer.parameters())

            def run():
                for p in params:
                    p.grad = None
                xg.grad = None
                out = layer(xg, mask)[0] if masked else layer(xg)
                out.backward(grad)

            return run

        variants = {"conv": (conv, False), "pconv": (pconv, True), "ones": (ones, True)}
    else:
        c_skip = entry["skip"]
        c_up = cin - c_skip
        up, skip = torch.randn(batch, c_up, h, h), torch.randn(batch, c_skip, h, h)
        m_up = (torch.rand(batch, 1, h, h) > 0.3).float()
        m_skip = (torch.rand(batch, 1, h, h) > 0.3).float()
        full_mask = torch.cat((m_up.expand(-1, c_up, -1, -1), m_skip.expand(-1, c_skip, -1, -1)), 1)
        up_g, skip_g = up.clone().requires_grad_(True), skip.clone().requires_grad_(True)

        def call(kind, a, b):
            if kind == "conv":
                return conv(torch.cat((a, b), 1))
            if kind == "pconv":
                x_masked = torch.cat((a * m_up, b * m_skip), 1)
                return pconv.forward_masked(x_masked, m_up * c_up + m_skip * c_skip)[0]
            layer = pconv if kind == "pc full" else ones  # the caller already has the full mask
            return layer(torch.cat((a, b), 1), full_mask)[0]

        def fwd(kind, _masked):
            def run():
                with torch.no_grad():
                    return call(kind, up, skip)

            return run

        def fwd_bwd(kind, _masked):
            layer = {"conv": conv, "ones": ones}.get(kind, pconv)
            params = list(layer.parameters())

            def run():
                for p in params:
                    p.grad = None
                up_g.grad = skip_g.grad = None
                call(kind, up_g, skip_g).backward(grad)

            return run

        variants = {k: (k, True) for k in ("conv", "pconv", "ones", "pc full")}

    res = {}
    res["fwd"] = measure({n: fwd(*v) for n, v in variants.items()}, repeats, min_time)
    res["fwd_bwd"] = measure({n: fwd_bwd(*v) for n, v in variants.items()}, repeats, min_time)
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256, batch 1, 3 repeats")
    args = parser.parse_args()
    sizes = [(256, 7)] if args.quick else [(256, 7), (512, 8)]
    batches = [1] if args.quick else [1, 4]
    repeats = 3
    min_time = 0.02 if args.quick else 0.05

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    print(f"times in ms (median of {repeats} interleaved repeats); x = ratio to plain conv")
    print("mask: ~30% holes; encoder (N,1,H,W); decoder two (N,1,H,W) masks as the UNet runs it")
    print("pc full x: decoder layers called with the materialised (N,C_in,H,W) mask instead")
    header = (
        f"{'layer(s)':<24}{'Cin>Cout k s':>16}{'H':>5}{'N':>3} |"
        f"{'conv':>9}{'pconv':>9}{'ones':>9}{'pc x':>7}{'ones x':>7} |"
        f"{'conv':>9}{'pconv':>9}{'ones':>9}{'pc x':>7}{'ones x':>7} |"
        f"{'pc full x':>10}{'fwd+bwd':>9}"
    )
    print(f"{'':<48} | {'forward (no_grad)':^41} | {'forward + backward':^41}")
    print(header)
    print("-" * len(header))
    worst = {"fwd": 0.0, "fwd_bwd": 0.0}
    slower_than_ones = []
    start = time.perf_counter()
    for entry in layer_shapes(sizes):
        spec = entry["spec"]
        for batch in batches:
            res = bench_shape(entry, batch, repeats, min_time)
            cells = []
            for mode in ("fwd", "fwd_bwd"):
                r = res[mode]
                pc, on = r["pconv"] / r["conv"], r["ones"] / r["conv"]
                if spec.in_channels >= 64:
                    worst[mode] = max(worst[mode], pc)
                if r["pconv"] >= r["ones"]:
                    slower_than_ones.append(f"{entry['names'][0]} N={batch} {mode}")
                cells.append(
                    f"{r['conv'] * 1e3:9.2f}{r['pconv'] * 1e3:9.2f}{r['ones'] * 1e3:9.2f}"
                    f"{pc:7.2f}{on:7.2f}"
                )
            if "pc full" in res["fwd"]:
                full = (res["fwd"]["pc full"] / res["fwd"]["conv"],
                        res["fwd_bwd"]["pc full"] / res["fwd_bwd"]["conv"])
                cells.append(f"{full[0]:10.2f}{full[1]:9.2f}")
            else:
                cells.append(f"{'-':>10}{'-':>9}")
            names = ",".join(entry["names"])
            names = names if len(names) <= 23 else names[:20] + "..."
            shape = f"{spec.in_channels}>{spec.out_channels} {spec.kernel_size} {spec.stride}"
            print(f"{names:<24}{shape:>16}{entry['h']:>5}{batch:>3} |{cells[0]} |{cells[1]} |{cells[2]}",
                  flush=True)
    print("-" * len(header))
    print(f"total bench time {time.perf_counter() - start:.0f} s")
    for mode, label in (("fwd", "forward"), ("fwd_bwd", "forward+backward")):
        ok = worst[mode] <= 1.15
        print(
            f"target pconv <= 1.15 x conv for C_in >= 64, {label}: worst {worst[mode]:.2f} x "
            f"-> {'MET' if ok else 'NOT MET'}"
        )
    if slower_than_ones:
        print("target pconv faster than ones-conv path: NOT MET for " + "; ".join(slower_than_ones))
    else:
        print("target pconv faster than ones-conv path: MET for every shape")


if __name__ == "__main__":
    main()
