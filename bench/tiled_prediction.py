"""Tiled vs whole-image inpainting: wall time and peak memory, side by side.

Usage::

    python bench/tiled_prediction.py            # 1, 4 and 16 megapixels (~5-8 min on 2 cores)
    python bench/tiled_prediction.py --quick    # 0.25 and 1 megapixel (~1 min)
    python bench/tiled_prediction.py --quick --device cuda --amp   # on a GPU, fp16 autocast

For every image size (square, 1/4/16 MP) and hole ratio (about 5 % and 30 %, random irregular
masks from :mod:`pconv_lib.masks`), :func:`pconv_lib.tiling.predict_tiled` and
:func:`pconv_lib.tiling.predict_whole` run on the same image, mask and model. Time and memory are
measured separately: time **interleaved in one process** (tiled, whole, whole, tiled, ... so that
a change in the machine's load hits both alike), memory with one call each in **its own
subprocess** so that one measurement cannot inherit the other's memory.

Method:

- **Model**: a tiny, randomly initialised ``PConvUNet(depth=5, width=1/16)`` in eval mode (the
  speed and memory of a model do not depend on its weights); if ``pconv_lib.model`` cannot be
  imported, a stand-in fully convolutional net (the output says which).
- **Time**: ``time.perf_counter()`` around each call, after one warm-up call of each method at
  that size (the first call with a new tensor shape pays for the CPU backend's one-off set-up);
  ``--repeats`` (default 7) calls of each, alternating which goes first; the median (min-max) is
  reported. (Before: best of 2 in separate processes one after the other, which reported a
  512x512 image slower than a 1024x1024 one: each process's first calls and the machine's load
  at that moment decided it.) The load average before and after is printed.
- **Peak memory**: Linux's peak resident set size ``VmHWM`` from ``/proc/self/status``, reset
  with ``echo 5 > /proc/self/clear_refs`` just before the call (after the image, mask and model
  exist), so it is the process's peak *during* the call, inputs included. Reported as
  "peak RSS" and as the increase over the RSS before the call. Where ``clear_refs`` is not
  writable the peak since process start (``ru_maxrss``) is reported instead and marked ``*``.
- Tiling: ``tile_size=256, overlap=32, batch_size=4``; ``tiles run/total`` shows how many tiles
  had holes. Whole image: one pass over the image padded to a multiple of 32.

Threads: the library's policy (``pconv_lib.runtime.apply_thread_policy()``: one thread per usable
CPU; ``PCONV_THREADS`` overrides it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TILE, OVERLAP, BATCH = 256, 32, 4
DEPTH, WIDTH = 5, 1 / 16
HOLES = {"5%": (0.04, 0.06), "30%": (0.28, 0.32)}


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _make_model():
    import torch

    try:
        from pconv_lib.model import PConvUNet

        model = PConvUNet(depth=DEPTH, width=WIDTH, check_mask=False)
        name = f"PConvUNet(depth={DEPTH}, width=1/{round(1 / WIDTH)}), random weights"
    except ImportError:

        class StandIn(torch.nn.Module):
            depth = DEPTH

            def __init__(self):
                super().__init__()
                self.net = torch.nn.Sequential(
                    torch.nn.Conv2d(4, 8, 3, padding=1),
                    torch.nn.ReLU(),
                    torch.nn.Conv2d(8, 8, 3, padding=1),
                    torch.nn.ReLU(),
                    torch.nn.Conv2d(8, 3, 3, padding=1),
                    torch.nn.Sigmoid(),
                )

            def forward(self, image, mask):
                return self.net(torch.cat([image, mask], 1)), mask

        model = StandIn()
        name = "stand-in 3-layer conv net (pconv_lib.model not importable)"
    return model.eval(), name


def _with_amp(plain, device: str, amp: bool):
    """``plain`` itself, or under ``--amp`` a wrapper running it in fp16 (cuda) / bf16 (cpu) autocast."""
    import torch

    if not amp:
        return plain
    dtype = torch.float16 if device == "cuda" else torch.bfloat16

    def model(x, m):
        with torch.autocast(device, dtype=dtype):
            out, out_mask = plain(x, m)
        return out.float(), out_mask

    model.depth = plain.depth  # type: ignore[attr-defined]
    return model


def measure(method: str, side: int, holes: str, repeats: int, seed: int = 0, device: str = "cpu",
            amp: bool = False) -> dict:
    """Run one measurement in this process and return it as a dict."""
    import numpy as np
    import torch

    from pconv_lib.masks import random_mask_in_ratio
    from pconv_lib.tiling import predict_tiled, predict_whole

    torch.manual_seed(seed)
    model, model_name = _make_model()
    model = _with_amp(model.to(device), device, amp)
    cuda = device == "cuda"
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    mask = random_mask_in_ratio(side, side, *HOLES[holes], rng)
    warm = np.zeros((64, 64, 3), np.uint8)
    warm_mask = np.ones((64, 64), np.uint8)
    warm_mask[20:40, 20:40] = 0
    predict_whole(model, warm, warm_mask, device=device)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        gpu_before = torch.cuda.memory_allocated()

    rss_before = _status_kb("VmRSS")
    exact = _reset_peak()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        if method == "tiled":
            res = predict_tiled(
                model, image, mask, tile_size=TILE, overlap=OVERLAP, batch_size=BATCH, device=device
            )
        else:
            res = predict_whole(model, image, mask, device=device)
        times.append(time.perf_counter() - start)
    seconds = min(times)
    peak = _status_kb("VmHWM") if exact else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        exact = False
    return {
        "method": method,
        "side": side,
        "holes": holes,
        "hole_ratio": float((mask == 0).mean()),
        "seconds": seconds,
        "peak_mb": peak / 1024,
        "delta_mb": (peak - (rss_before or 0)) / 1024,
        "exact": exact,
        "tiles": f"{res.tiles_run}/{res.tiles_total}",
        "model": model_name,
        "threads": torch.get_num_threads(),
        "gpu_peak_mb": (torch.cuda.max_memory_allocated() - gpu_before) / 2**20 if cuda else None,
    }


def time_interleaved(side: int, holes: str, repeats: int, seed: int = 0, device: str = "cpu",
                     amp: bool = False) -> dict:
    """Median (min, max) seconds of tiled and whole on one image and mask, interleaved in this process."""
    import statistics

    import numpy as np
    import torch

    from pconv_lib.masks import random_mask_in_ratio
    from pconv_lib.tiling import predict_tiled, predict_whole

    torch.manual_seed(seed)
    model, _ = _make_model()
    model = _with_amp(model.to(device), device, amp)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    mask = random_mask_in_ratio(side, side, *HOLES[holes], rng)
    calls = {
        "tiled": lambda: predict_tiled(model, image, mask, tile_size=TILE, overlap=OVERLAP, batch_size=BATCH,
                                       device=device),
        "whole": lambda: predict_whole(model, image, mask, device=device),
    }
    for call in calls.values():  # warm-up at this size
        call()
    times: dict[str, list[float]] = {"tiled": [], "whole": []}
    for r in range(repeats):
        for method in (("tiled", "whole") if r % 2 == 0 else ("whole", "tiled")):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            calls[method]()
            if device == "cuda":
                torch.cuda.synchronize()
            times[method].append(time.perf_counter() - start)
    return {m: (statistics.median(v), min(v), max(v)) for m, v in times.items()}


def _run_child(method: str, side: int, holes: str, repeats: int, device: str, amp: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(side), holes, str(repeats), "--device", device]
    cmd += ["--amp"] if amp else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
        return {"method": method, "side": side, "holes": holes, "error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="0.25 and 1 MP only (~1 min)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls of each method per case (>= 7)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="fp16 autocast on cuda, bf16 on cpu")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from pconv_lib.runtime import apply_thread_policy

    apply_thread_policy()  # the library's CPU thread policy, as the notebooks and the CLI use it
    if args.child:
        method, side, holes, repeats = args.child
        print(json.dumps(measure(method, int(side), holes, int(repeats), device=args.device, amp=args.amp)))
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1 (7 or more for numbers worth quoting)")
    repeats = args.repeats
    load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else "?"
    sides = [512, 1024] if args.quick else [1024, 2048, 4096]
    results = []
    for side in sides:
        for holes in HOLES:
            pair = {m: _run_child(m, side, holes, 1, args.device, args.amp) for m in ("tiled", "whole")}
            timing = time_interleaved(side, holes, repeats, device=args.device, amp=args.amp)
            for method in pair:
                if "error" not in pair[method]:
                    pair[method]["seconds"], pair[method]["spread"] = timing[method][0], timing[method][1:]
            results.append(pair)
            print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    load_after = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else "?"

    first = next((r["tiled"] for r in results if "model" in r["tiled"]), {})
    print(f"model: {first.get('model', '?')}; torch threads: {first.get('threads', '?')}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"tiled: tile {TILE}, overlap {OVERLAP}, batch {BATCH}; whole: one pass, padded to "
          f"a multiple of {2**DEPTH}. Time: median (min-max) of {repeats} interleaved calls after a warm-up. "
          "Peak = VmHWM during one call in a fresh process (inputs included); + = increase over the RSS "
          f"before it. Load average before {load_before}, after {load_after}.")
    header = (
        f"| {'image':>15} | {'holes':>5} | {'tiles run':>9} | {'tiled s (min-max)':>19} "
        f"| {'whole s (min-max)':>19} "
        f"| {'time ratio':>10} | {'tiled peak MB (+)':>17} | {'whole peak MB (+)':>17} "
        f"| {'mem ratio':>9} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for pair in results:
        t, w = pair["tiled"], pair["whole"]
        side = t["side"]
        label = f"{side}x{side} {side * side / 1e6:.2g}MP"
        if "error" in t or "error" in w:
            print(f"| {label:>15} | {t['holes']:>5} | error: {t.get('error') or w.get('error')}")
            continue
        star = "" if t["exact"] and w["exact"] else "*"
        tiled_mem = f"{t['peak_mb']:.0f} (+{t['delta_mb']:.0f}){star}"
        whole_mem = f"{w['peak_mb']:.0f} (+{w['delta_mb']:.0f}){star}"
        print(
            f"| {label:>15} | {100 * t['hole_ratio']:>4.0f}% | {t['tiles']:>9} "
            f"| {t['seconds']:>7.2f} ({t['spread'][0]:.2f}-{t['spread'][1]:.2f}) "
            f"| {w['seconds']:>7.2f} ({w['spread'][0]:.2f}-{w['spread'][1]:.2f}) "
            f"| {t['seconds'] / w['seconds']:>9.2f}x | {tiled_mem:>17} | {whole_mem:>17} "
            f"| {t['delta_mb'] / max(w['delta_mb'], 1e-9):>8.2f}x |"
        )
    print("time ratio = tiled / whole (below 1: tiling faster); mem ratio = tiled (+) / whole (+).")
    if args.device == "cuda":
        for pair in results:
            t, w = pair["tiled"], pair["whole"]
            if "error" not in t and "error" not in w:
                print(f"GPU peak allocated, {t['side']}px {t['holes']}: tiled {t['gpu_peak_mb']:.0f} MiB, "
                      f"whole {w['gpu_peak_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
