#!/usr/bin/env python
"""Held-out comparison of several checkpoints and the classical baselines, in one table.

    python tools/compare_models.py demo=demo twin=path/to/ordinary.pt --size 256 --buckets 1,2,3,4
    python tools/compare_models.py demo=demo --images data/heldout --size 256

Every method sees the same images and the same masks (``pconv_lib.evaluate.evaluate_methods``).
Images: the scikit-image sample photos (default; never trained on) or a folder of photos, each
centre-cropped and resized to ``--size``. After the L1 / PSNR / SSIM blocks it prints, per model
and bucket, its L1 divided by the *best* classical method's L1 in that bucket (below 1: the model
wins), the comparison the model card and the notebooks quote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from pconv_lib import evaluate  # noqa: E402
from pconv_lib.data import find_images, read_image  # noqa: E402
from pconv_lib.photos import center_crop_resize, sample_photos  # noqa: E402
from pconv_lib.train import model_from_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="NAME=CHECKPOINT (a .pt file, or 'demo' for the bundled model)")
    p.add_argument("--images", type=Path, help="folder of held-out photos (default: scikit-image samples)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--buckets", default="1,2,3,4", help="hole-ratio bucket indices (1 = (0.1, 0.2])")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    methods: dict[str, evaluate.Inpainter] = {}
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep:
            p.error(f"{item!r}: write NAME=CHECKPOINT")
        model, config = model_from_checkpoint(path)
        methods[name] = evaluate.model_inpainter(model, 2**config.depth)
    models = list(methods)
    methods.update(evaluate.BASELINES)
    if args.images is None:
        images = list(sample_photos(size=args.size).values())
    else:
        images = [center_crop_resize(i, args.size, args.size) for f in find_images(args.images)
                  if (i := read_image(f)) is not None]
    buckets = [int(b) for b in args.buckets.split(",")]
    table = evaluate.evaluate_methods(methods, images, buckets, seed=args.seed)
    print(table.to_text())
    print()
    print(evaluate.best_baseline_ratios(table, models))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
