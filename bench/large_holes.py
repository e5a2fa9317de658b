"""Large holes in large photos: single-scale tiles vs multi-scale vs OpenCV Telea, L1 in the holes.

For every photo (resized so that its longer side is ``--long-side``, 1536 by default) a mask
with about 30 % holes is drawn *at full resolution* (:func:`pconv_lib.masks.random_mask_in_ratio`:
strokes up to ``0.03 * (H + W)`` ≈ 77 px thick, several times wider than any stroke in the
256×256 training crops). Each method fills the same holes; the table gives the mean absolute
error over hole pixels only, in 0-255 units (lower is better), and the wall time (``tiles``,
``multi`` and ``Telea`` called in turn, the order rotating, ``--repeats`` times each (default 7)
after the first call, which gives the L1 and is the warm-up; median (min-max); the load average
is printed):

* ``tiles``: :func:`pconv_lib.tiling.predict_tiled` at the training size (single-scale),
* ``coarse``: :func:`pconv_lib.tiling.predict_multiscale` without the refinement (the upsampled
  coarse fill alone; ``band`` below one pixel refines nothing),
* ``multi``: :func:`pconv_lib.tiling.predict_multiscale` (coarse pass + refined band; the
  factor chosen automatically from the hole widths),
* ``Telea``: ``cv2.inpaint`` (fast marching, radius 5).

Model: the bundled demo model (``pconv_lib.pretrained.demo_model()``, trained on 256×256 crops)
or ``--checkpoint``. Photos: ``--images`` (use photos the model was not trained on); default the
scikit-image sample photos upscaled (smoother than real large photos: prefer your own).

Usage: ``PYTHONPATH=. python bench/large_holes.py [--quick] [--device cpu|cuda] [--repeats 7]
[--images A.jpg B.jpg]`` (``--quick``: two photos, longer side 1024).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pconv_lib import masks as mask_lib  # noqa: E402
from pconv_lib import tiling  # noqa: E402
from pconv_lib.photos import sample_photos  # noqa: E402
from pconv_lib.runtime import apply_thread_policy  # noqa: E402
from pconv_lib.util.image_files import read_image  # noqa: E402


def _resize_long(image: np.ndarray, long_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp)


def hole_l1(truth: np.ndarray, result: np.ndarray, mask: np.ndarray) -> float:
    """Mean |truth - result| over hole pixels (mask == 0) and channels, 0-255 units."""
    holes = mask == 0
    return float(np.abs(truth.astype(np.int16) - result.astype(np.int16))[holes].mean())


def _methods(model, holed: np.ndarray, mask: np.ndarray, factor: int, common: dict) -> dict:
    """The three timed methods on one photo, as argument-free calls returning the filled image."""
    return {
        "tiles": lambda: tiling.predict_tiled(model, holed, mask, **common).image,
        "multi": lambda: tiling.predict_multiscale(model, holed, mask, factor=factor, **common).image,
        "Telea": lambda: cv2.inpaint(holed, mask_lib.to_nonzero_hole(mask), 5, cv2.INPAINT_TELEA),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two photos, longer side 1024")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--amp", action="store_true", help="run the model under fp16 (cuda) / bf16 (cpu) autocast"
    )
    parser.add_argument("--images", nargs="*", type=Path, help="photos (default: sample photos)")
    parser.add_argument("--long-side", type=int, default=None, help="resize to this longer side (1536)")
    parser.add_argument("--checkpoint", default="demo", help="checkpoint file or 'demo'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed calls of each method after the first (7)")
    args = parser.parse_args()
    apply_thread_policy()  # the library's CPU thread policy, as the notebooks and the CLI use it
    if args.repeats < 1:
        parser.error("--repeats must be at least 1 (7 or more for numbers worth quoting)")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA GPU is visible")
    long_side = args.long_side or (1024 if args.quick else 1536)

    from pconv_lib.runs.checkpoints import model_from_checkpoint

    model, config = model_from_checkpoint(args.checkpoint, args.device)
    model.eval()
    tile = config.image_size
    if args.amp:
        dtype = torch.float16 if args.device == "cuda" else torch.bfloat16
        plain = model

        def model(x, m):  # noqa: F811 - the autocast wrapper
            with torch.autocast(args.device, dtype=dtype):
                out, out_mask = plain(x, m)
            return out.float(), out_mask

        model.depth = plain.depth  # type: ignore[attr-defined]
    if args.images:
        photos = {}
        for path in args.images:
            image = read_image(path)
            if image is None:
                raise SystemExit(f"error: cannot read {path}")
            photos[path.name] = image
    else:
        photos = sample_photos(size=512)
    names = list(photos)[: 2 if args.quick else None]

    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, "
          f"model {args.checkpoint} (trained on {tile}x{tile}), amp={args.amp}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"L1 over hole pixels, 0-255 (lower is better); time in s, median (min-max) of {args.repeats} "
          "interleaved calls after the first")
    header = (f"{'photo':<36}{'size':>11}{'holes':>7}{'radius':>8}{'f':>3} |"
              f"{'tiles':>8}{'coarse':>8}{'multi':>8}{'Telea':>8} |"
              f"{'t tiles':>17}{'t multi':>17}{'t Telea':>20}")
    print(header)
    print("-" * len(header))
    totals = np.zeros(4)
    for index, name in enumerate(names):
        image = _resize_long(photos[name], long_side)
        h, w = image.shape[:2]
        mask = mask_lib.random_mask_in_ratio(h, w, 0.28, 0.32, np.random.default_rng([args.seed, index]))
        holed = mask_lib.apply_mask(image, mask, fill=0)
        radius = tiling.hole_radius(mask)
        factor = tiling.choose_scale(mask, tile)
        common = dict(tile_size=tile, overlap=tile // 4, device=args.device)
        forced = max(2, factor)
        runs = _methods(model, holed, mask, forced, common)
        single, multi, telea = (run() for run in runs.values())  # the results, and the warm-up
        coarse = tiling.predict_multiscale(model, holed, mask, band=0.5, factor=forced, **common).image
        times: dict[str, list[float]] = {name: [] for name in runs}
        order = list(runs)
        for r in range(args.repeats):
            for method in order[r % 3:] + order[: r % 3]:
                t0 = time.perf_counter()
                runs[method]()
                times[method].append(time.perf_counter() - t0)

        def spread(values: list[float]) -> str:
            return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

        scores = [hole_l1(image, r, mask) for r in (single, coarse, multi, telea)]
        totals += scores
        label = name if len(name) <= 35 else name[:32] + "..."
        print(f"{label:<36}{f'{w}x{h}':>11}{mask_lib.hole_ratio(mask):>7.0%}{radius:>8.1f}{factor:>3} |"
              + "".join(f"{s:>8.2f}" for s in scores)
              + f" |{spread(times['tiles']):>17}{spread(times['multi']):>17}{spread(times['Telea']):>20}",
              flush=True)
    print("-" * len(header))
    mean = totals / len(names)
    print(f"{'mean':<36}{'':>11}{'':>7}{'':>8}{'':>3} |" + "".join(f"{s:>8.2f}" for s in mean))
    print(f"f: the automatic coarse factor (choose_scale; 'multi' and 'coarse' use max(2, f)); "
          f"radius: 99th percentile hole radius in px (training masks: ~{tiling.RADIUS_FRACTION * tile:.0f})")


if __name__ == "__main__":
    main()
