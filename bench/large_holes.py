"""Large holes in large photos: single-scale tiles vs multi-scale vs OpenCV Telea, L1 in the holes.

For every photo (resized so that its longer side is ``--long-side``, 1536 by default) a mask
with about 30 % holes is drawn *at full resolution* (:func:`pconv_lib.masks.random_mask_in_ratio`:
strokes up to ``0.03 * (H + W)`` ≈ 77 px thick, several times wider than any stroke in the
256×256 training crops). Each method fills the same holes; the table gives the mean absolute
error over hole pixels only, in 0-255 units (lower is better), and the wall time:

* ``tiles``: :func:`pconv_lib.tiling.predict_tiled` at the training size (single-scale),
* ``coarse``: :func:`pconv_lib.tiling.predict_multiscale` without the refinement (the upsampled
  coarse fill alone; ``band`` below one pixel refines nothing),
* ``multi``: :func:`pconv_lib.tiling.predict_multiscale` (coarse pass + refined band; the
  factor chosen automatically from the hole widths),
* ``Telea``: ``cv2.inpaint`` (fast marching, radius 5).

Model: the bundled demo model (``pconv_lib.pretrained.demo_model()``, trained on 256×256 crops)
or ``--checkpoint``. Photos: ``--images`` (use photos the model was not trained on); default the
scikit-image sample photos upscaled (smoother than real large photos: prefer your own).

Usage: ``PYTHONPATH=. python bench/large_holes.py [--quick] [--device cpu|cuda] [--images A.jpg B.jpg]``
(``--quick``: two photos, longer side 1024).
"""

from __future__ import annotations

import argparse
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
from pconv_lib.data import read_image  # noqa: E402
from pconv_lib.photos import sample_photos  # noqa: E402


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
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA GPU is visible")
    long_side = args.long_side or (1024 if args.quick else 1536)

    from pconv_lib.train import model_from_checkpoint

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
          f"model {args.checkpoint} (trained on {tile}x{tile}), amp={args.amp}")
    print("L1 over hole pixels, 0-255 (lower is better); time in s")
    header = (f"{'photo':<36}{'size':>11}{'holes':>7}{'radius':>8}{'f':>3} |"
              f"{'tiles':>8}{'coarse':>8}{'multi':>8}{'Telea':>8} |"
              f"{'t tiles':>8}{'t multi':>8}{'t Telea':>8}")
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
        t0 = time.perf_counter()
        single = tiling.predict_tiled(model, holed, mask, **common).image
        t_single = time.perf_counter() - t0
        forced = max(2, factor)
        coarse = tiling.predict_multiscale(model, holed, mask, band=0.5, factor=forced, **common).image
        t0 = time.perf_counter()
        multi = tiling.predict_multiscale(model, holed, mask, factor=forced, **common).image
        t_multi = time.perf_counter() - t0
        t0 = time.perf_counter()
        telea = cv2.inpaint(holed, mask_lib.to_nonzero_hole(mask), 5, cv2.INPAINT_TELEA)
        t_telea = time.perf_counter() - t0
        scores = [hole_l1(image, r, mask) for r in (single, coarse, multi, telea)]
        totals += scores
        label = name if len(name) <= 35 else name[:32] + "..."
        print(f"{label:<36}{f'{w}x{h}':>11}{mask_lib.hole_ratio(mask):>7.0%}{radius:>8.1f}{factor:>3} |"
              + "".join(f"{s:>8.2f}" for s in scores)
              + f" |{t_single:>8.1f}{t_multi:>8.1f}{t_telea:>8.2f}", flush=True)
    print("-" * len(header))
    mean = totals / len(names)
    print(f"{'mean':<36}{'':>11}{'':>7}{'':>8}{'':>3} |" + "".join(f"{s:>8.2f}" for s in mean))
    print(f"f: the automatic coarse factor (choose_scale; 'multi' and 'coarse' use max(2, f)); "
          f"radius: 99th percentile hole radius in px (training masks: ~{tiling.RADIUS_FRACTION * tile:.0f})")


if __name__ == "__main__":
    main()
