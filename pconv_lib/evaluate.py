"""Evaluation: L1, PSNR and SSIM per hole-ratio bucket, for a model and classical baselines.

Every inpainting method is a function ``inpaint(image, mask) -> image`` on NumPy arrays:
``image`` is ``uint8`` (H, W, 3) RGB, ``mask`` is ``uint8`` (H, W) with **1 = valid, 0 = hole**,
the result is ``uint8`` (H, W, 3). The classical baselines (OpenCV Telea and Navier-Stokes,
scikit-image biharmonic) take "nonzero = hole" masks; the conversion happens here, explicitly.

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

Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]
METRICS = ("L1", "PSNR", "SSIM")


# --------------------------------------------------------------------------------------------
# Classical baselines
# --------------------------------------------------------------------------------------------


def _check_pair(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BadValue(
            "image must be a uint8 RGB array of shape (H, W, 3), got "
            f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
        )
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
    model: torch.nn.Module, multiple: int, device: torch.device | str | None = None
) -> Inpainter:
    """Wrap a PConv model as an :data:`Inpainter`: pads the image and mask (centred, reflect) to a
    multiple of ``multiple`` (``2**depth``), runs it once under ``no_grad`` in eval mode, crops
    back (:func:`pconv_lib.predict.predict_padded`, shared with step 5's tiling). The model's
    train/eval mode is restored afterwards.

    For very large images use :func:`pconv_lib.tiling.predict_tiled` instead.
    """
    device = predict_lib.model_device(model, device)

    def inpaint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mask = _check_pair(image, mask)
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
    """Mean metrics per (method, bucket); ``scores[method][bucket][metric]`` and image counts."""

    methods: list[str]
    buckets: list[int]
    scores: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)

    def to_text(self, digits: int = 4) -> str:
        """The paper's layout: one block per metric, a row per method, a column per bucket."""
        labels = [mask_lib.bucket_label(b) for b in self.buckets]
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
        images = ", ".join(f"{mask_lib.bucket_label(b)}: {self.counts[b]}" for b in self.buckets)
        lines.append(f"images per bucket: {images}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def evaluate_methods(
    methods: dict[str, Inpainter],
    images: Sequence[np.ndarray],
    buckets: Iterable[int] = range(len(mask_lib.HOLE_RATIO_BUCKETS)),
    seed: int = 0,
    progress: bool = False,
) -> EvaluationTable:
    """Evaluate every method on the same images and the same masks, per hole-ratio bucket.

    For each bucket and image a mask is drawn with :func:`random_mask_in_bucket` (seeded by
    ``seed``, the bucket and the image index, so every method and every run sees the same masks).

    Args:
        methods: ``{name: inpaint(image_uint8, mask) -> image_uint8}``.
        images: ``uint8`` (H, W, 3) RGB ground-truth images.
        buckets: bucket indices to evaluate (default: all six).
        seed: base seed for the masks.
        progress: show a tqdm bar (images x buckets done, time left) on stderr; the command line's
            ``evaluate`` turns it on.
    """
    if not methods:
        raise BadValue("give at least one method to evaluate")
    if len(images) == 0:
        raise BadValue("give at least one image to evaluate on")
    buckets = list(buckets)
    table = EvaluationTable(list(methods), buckets)
    sums = {m: {b: dict.fromkeys(METRICS, 0.0) for b in buckets} for m in methods}
    bar = tqdm(total=len(buckets) * len(images), desc="evaluate", unit="image", disable=not progress)
    for bucket in buckets:
        for index, image in enumerate(images):
            height, width = image.shape[:2]
            mask = mask_lib.random_mask_in_bucket(
                height, width, bucket, np.random.default_rng([seed, bucket, index])
            )
            holed = mask_lib.apply_mask(image, mask, fill=0)
            for name, inpaint in methods.items():
                result = composite_images(image, inpaint(holed, mask), mask)
                for metric, value in image_metrics(image, result).items():
                    sums[name][bucket][metric] += value
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
    labels = [mask_lib.bucket_label(b) for b in table.buckets]
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
