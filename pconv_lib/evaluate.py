"""Evaluation: L1, PSNR and SSIM per hole-ratio bucket and mask kind, for a model and classical baselines.

Every inpainting method is a function ``inpaint(image, mask) -> image`` on NumPy arrays:
``image`` is ``uint8`` (H, W, 3) RGB, ``mask`` is ``uint8`` (H, W) with **1 = valid, 0 = hole**,
the result is ``uint8`` (H, W, 3). The classical baselines (OpenCV Telea and Navier-Stokes,
scikit-image biharmonic) take "nonzero = hole" masks; the conversion happens here, explicitly.

A table's columns are the paper's hole-ratio buckets (strokes, numbers 0..5) and/or
``"objects"`` (large object-removal holes, :func:`pconv_lib.masks.random_object_mask`); the kinds
``strokes``, ``scribbles`` and ``objects`` of :data:`pconv_lib.masks.MASK_KIND_COLUMNS` name
groups of them. A model is judged raw (one forward pass) and through the default path users get
from ``predict`` (multi-scale when the holes are wider than the training holes).

Metrics are computed on the whole image in [0, 1] (as the paper's table does), after compositing:
valid pixels always come from the input, so every method is judged on the holes it filled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import inpaint_biharmonic as _skimage_biharmonic
from tqdm.auto import tqdm

from pconv_lib import masks as mask_lib
from pconv_lib import predict as predict_lib
from pconv_lib.images import image_to_tensor, mask_to_tensor, tensor_to_image
from pconv_lib.losses import composite
from pconv_lib.util.errors import BadValue
from pconv_lib.util.tensor_checks import check_rgb_uint8

Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]
METRICS = ("L1", "PSNR", "SSIM")
#: The score beside the metrics: :func:`blotch_share` (shown for the object-removal column).
BLOTCHES = "blotches"


# --------------------------------------------------------------------------------------------
# Classical baselines
# --------------------------------------------------------------------------------------------


def _check_pair(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    check_rgb_uint8(image, "image")
    mask = mask_lib.validate_mask(mask)
    if mask.shape != image.shape[:2]:
        raise BadValue(f"mask shape {mask.shape} does not match image size {image.shape[:2]}")
    return mask


def inpaint_telea(image: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """OpenCV's fast-marching method (Telea 2004). ``mask``: 1 = valid, 0 = hole."""
    mask = _check_pair(image, mask)
    return cv2.inpaint(image, mask_lib.to_nonzero_hole(mask), radius, cv2.INPAINT_TELEA)


def inpaint_navier_stokes(image: np.ndarray, mask: np.ndarray, radius: int = 5) -> np.ndarray:
    """OpenCV's Navier-Stokes based method (Bertalmio 2001). ``mask``: 1 = valid, 0 = hole."""
    mask = _check_pair(image, mask)
    return cv2.inpaint(image, mask_lib.to_nonzero_hole(mask), radius, cv2.INPAINT_NS)


def inpaint_biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """scikit-image's biharmonic inpainting. ``mask``: 1 = valid, 0 = hole."""
    mask = _check_pair(image, mask)
    filled = _skimage_biharmonic(image, mask == 0, channel_axis=-1)
    return np.clip(np.rint(filled * 255), 0, 255).astype(np.uint8)


BASELINES: dict[str, Inpainter] = {
    "OpenCV Telea": inpaint_telea,
    "OpenCV Navier-Stokes": inpaint_navier_stokes,
    "scikit-image biharmonic": inpaint_biharmonic,
}


def model_inpainter(
    model: torch.nn.Module,
    multiple: int,
    device: torch.device | str | None = None,
    *,
    train_size: int | None = None,
) -> Inpainter:
    """Wrap a PConv model as an :data:`Inpainter`.

    - ``train_size=None`` (raw): pads the image and mask (centred, reflect) to a multiple of
      ``multiple`` (``2**depth``), runs it once under ``no_grad`` in eval mode, crops back
      (:func:`pconv_lib.predict.predict_padded`, shared with step 5's tiling).
    - ``train_size=T`` (the default path of ``python -m pconv_lib predict``): tiles of ``T`` px and
      a coarse pass first when the holes are wider than a ``T``-px model has seen
      (:func:`pconv_lib.tiling.predict_multiscale` with the scale it chooses).

    The model's train/eval mode is restored afterwards.
    """
    from pconv_lib.tiling import predict_multiscale

    device = predict_lib.model_device(model, device)

    def inpaint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mask = _check_pair(image, mask)
        if train_size is not None:
            return predict_multiscale(
                model, image, mask, tile_size=train_size, overlap=train_size // 4, multiple=multiple,
                device=device,
            ).image
        x, m = image_to_tensor(image), mask_to_tensor(mask)
        with predict_lib.eval_mode(model):
            out = predict_lib.predict_padded(model, x, m, multiple, device)
        return tensor_to_image(out)

    return inpaint


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def composite_images(image: np.ndarray, prediction: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`pconv_lib.losses.composite` on pictures: ``image``'s valid pixels, ``prediction`` in
    the holes (``uint8`` (H, W, 3); ``mask`` (H, W), 1 = valid, 0 = hole)."""
    mixed = composite(image_to_tensor(prediction), image_to_tensor(image), mask_to_tensor(mask))
    return tensor_to_image(mixed)


def image_metrics(truth: np.ndarray, result: np.ndarray) -> dict[str, float]:
    """L1 (mean absolute error, [0, 1] scale), PSNR (dB) and SSIM between two uint8 RGB images.

    PSNR is capped, so that means over images stay finite: identical images (infinite PSNR)
    score the PSNR of the smallest difference 8-bit images can have - one level in one value,
    ``10 * log10(255**2 * truth.size)`` (101.1 dB for 256x256 RGB) - the highest finite value.
    """
    check_rgb_uint8(truth, "truth")
    check_rgb_uint8(result, "result")
    if truth.shape != result.shape:
        raise BadValue(f"truth {truth.shape} and result {result.shape} must have the same shape")
    a = truth.astype(np.float64) / 255
    b = result.astype(np.float64) / 255
    l1 = float(np.abs(a - b).mean())
    cap = 10 * np.log10(255.0**2 * max(1, a.size))
    psnr = float(min(peak_signal_noise_ratio(a, b, data_range=1.0), cap)) if l1 > 0 else float(cap)
    ssim = float(structural_similarity(a, b, data_range=1.0, channel_axis=-1))
    return {"L1": l1, "PSNR": psnr, "SSIM": ssim}


# --------------------------------------------------------------------------------------------
# Per-bucket evaluation
# --------------------------------------------------------------------------------------------


@dataclass
class EvaluationTable:
    """Mean metrics per (method, column); ``scores[method][column][metric]`` and image counts.

    A column is a hole-ratio bucket number (the paper's strokes) or ``"objects"``."""

    methods: list[str]
    buckets: list[mask_lib.Column]
    scores: dict[str, dict[mask_lib.Column, dict[str, float]]] = field(default_factory=dict)
    counts: dict[mask_lib.Column, int] = field(default_factory=dict)

    def to_text(self, digits: int = 4) -> str:
        """The paper's layout: one block per metric, a row per method, a column per bucket."""
        labels = [mask_lib.column_label(b) for b in self.buckets]
        name_width = max(len(m) for m in self.methods) + 2
        lines = []
        for metric in METRICS:
            better = "lower is better" if metric == "L1" else "higher is better"
            lines.append(f"{metric} ({better})")
            lines.append(" " * name_width + "".join(f"{label:>13}" for label in labels))
            for method in self.methods:
                cells = "".join(
                    f"{self.scores[method][b][metric]:>13.{digits if metric != 'PSNR' else 2}f}"
                    for b in self.buckets
                )
                lines.append(f"{method:<{name_width}}{cells}")
            lines.append("")
        if mask_lib.OBJECTS in self.buckets:  # large holes: do the fills bring colours from nowhere?
            lines.append(f"Blotches on {mask_lib.OBJECTS} (share of hole pixels in colours the ring around "
                         f"the hole lacks; above {BLOTCH_LIMIT} is visible)")
            for method in self.methods:
                share = self.scores[method][mask_lib.OBJECTS][BLOTCHES]
                lines.append(f"{method:<{name_width}}{share:>13.{digits}f}")
            lines.append("")
        images = ", ".join(f"{mask_lib.column_label(b)}: {self.counts[b]}" for b in self.buckets)
        lines.append(f"images per column: {images}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def evaluate_methods(
    methods: dict[str, Inpainter],
    images: Sequence[np.ndarray],
    buckets: Iterable[mask_lib.Column] = range(len(mask_lib.HOLE_RATIO_BUCKETS)),
    seed: int = 0,
    progress: bool = False,
) -> EvaluationTable:
    """Evaluate every method on the same images and the same masks, per column (hole-ratio
    bucket or mask kind).

    For each column and image a mask is drawn with :func:`pconv_lib.masks.column_mask` (seeded
    by ``seed``, the column and the image index, so every method and every run sees the same masks).

    Args:
        methods: ``{name: inpaint(image_uint8, mask) -> image_uint8}``.
        images: ``uint8`` (H, W, 3) RGB ground-truth images.
        buckets: columns to evaluate: bucket numbers 0..5 (default: all six) and/or ``"objects"``.
        seed: base seed for the masks.
        progress: show a tqdm bar (images x buckets done, time left) on stderr; the command line's
            ``evaluate`` turns it on.
    """
    if not methods:
        raise BadValue("give at least one method to evaluate")
    if len(images) == 0:
        raise BadValue("give at least one image to evaluate on")
    for index, image in enumerate(images):  # all checked before any work
        check_rgb_uint8(image, f"images[{index}]")
    buckets = list(buckets)
    table = EvaluationTable(list(methods), buckets)
    sums = {m: {b: dict.fromkeys((*METRICS, BLOTCHES), 0.0) for b in buckets} for m in methods}
    bar = tqdm(total=len(buckets) * len(images), desc="evaluate", unit="image", disable=not progress)
    for bucket in buckets:
        for index, image in enumerate(images):
            height, width = image.shape[:2]
            rng = np.random.default_rng([seed, mask_lib.column_seed(bucket), index])
            mask = mask_lib.column_mask(bucket, height, width, rng)
            holed = mask_lib.apply_mask(image, mask, fill=0)
            for name, inpaint in methods.items():
                filled = inpaint(holed, mask)
                check_rgb_uint8(filled, f"the result of method {name!r}")
                if filled.shape != image.shape:
                    raise BadValue(f"method {name!r} returned {filled.shape} for an image of {image.shape}")
                result = composite_images(image, filled, mask)
                for metric, value in image_metrics(image, result).items():
                    sums[name][bucket][metric] += value
                sums[name][bucket][BLOTCHES] += blotch_share(result, mask)
            bar.update(1)
        table.counts[bucket] = len(images)
    bar.close()
    table.scores = {
        m: {b: {k: v / len(images) for k, v in sums[m][b].items()} for b in buckets} for m in methods
    }
    return table


def best_baseline_ratios(table: EvaluationTable, models: list[str]) -> str:
    """Per bucket, each of ``models``' L1 divided by the best classical method's L1 in that bucket.

    Below 1 the model beats every baseline of :data:`BASELINES` in the table; the last line names
    the best baseline per bucket. The honest comparison: against the best, not an average.
    """
    baselines = [m for m in table.methods if m in BASELINES]
    labels = [mask_lib.column_label(b) for b in table.buckets]
    width = max(len(m) for m in models + ["best classical method"]) + 2
    lines = ["L1 / best classical method's L1 (below 1: the model wins)"]
    lines.append(" " * width + "".join(f"{label:>13}" for label in labels))
    best = {b: min(baselines, key=lambda m: table.scores[m][b]["L1"]) for b in table.buckets}
    for model in models:
        cells = "".join(
            f"{table.scores[model][b]['L1'] / table.scores[best[b]][b]['L1']:>13.3f}" for b in table.buckets
        )
        lines.append(f"{model:<{width}}{cells}")
    short = {"OpenCV Telea": "Telea", "OpenCV Navier-Stokes": "NS", "scikit-image biharmonic": "biharm."}
    names = "".join(f"{short[best[b]]:>13}" for b in table.buckets)
    lines.append(f"{'best classical method':<{width}}{names}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Blotches: a fill in colours that nothing around the hole has
# --------------------------------------------------------------------------------------------

#: Width in pixels of the valid ring around the holes that :func:`blotch_share` compares with.
RING_WIDTH = 8
#: A mean :func:`blotch_share` above this counts as blotches. Measured on object-removal holes
#: (256 px, seed 0): the demo model in one pass 0.049 (scikit-image photos) and 0.106 (held-out
#: wallpapers); through ``predict_multiscale``, OpenCV Telea and Navier-Stokes at most 0.0006.
BLOTCH_LIMIT = 0.01


def blotch_share(result: np.ndarray, mask: np.ndarray, *, margin: float = 0.06) -> float:
    """The share of hole pixels filled with a colour the surroundings do not have: some channel
    outside the 2nd-98th percentile range of that channel over the valid ring of
    :data:`RING_WIDTH` px around the holes, widened by ``margin`` (channel values in [0, 1]).

    0 for a fill made of the surrounding colours (any classical method, a good model); large for
    the dark or purple blotches a model paints deep inside holes wider than its training holes.

    Args:
        result: the filled image, ``uint8`` (H, W, 3) RGB.
        mask: ``uint8`` (H, W), 1 = valid, 0 = hole.

    Returns:
        A share in [0, 1]; 0 when there is no hole or no valid pixel.
    """
    mask = _check_pair(result, mask)
    hole = mask == 0
    if not hole.any() or hole.all():
        return 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RING_WIDTH + 1, 2 * RING_WIDTH + 1))
    ring = (cv2.dilate(hole.astype(np.uint8), kernel) > 0) & ~hole
    pixels = result.astype(np.float64) / 255
    low, high = np.percentile(pixels[ring], [2, 98], axis=0)
    filled = pixels[hole]
    foreign = (filled < low - margin) | (filled > high + margin)
    return float(np.mean(foreign.any(axis=1)))
