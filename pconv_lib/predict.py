"""Pad, run, crop: one model pass over a whole image, shared by evaluation (step 4) and tiling (step 5).

:func:`predict_padded` pads image and mask (centred, reflect; replicate where too small) to a
multiple of ``2**depth``, zeroes the holes, runs the model once under ``no_grad`` and crops back.
Images: float32 (N, 3, H, W) in [0, 1]; masks: float32 (N, 1, H, W), 1 = valid, 0 = hole. The
caller composites. One rule for train/eval mode: :func:`eval_mode` (eval inside, the caller's
mode restored after).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from pconv_lib.util.errors import BadValue

__all__ = ["eval_mode", "model_device", "pad_to_multiple", "predict_padded", "round_up", "run_model"]

Model = Callable[..., object]


@contextmanager
def eval_mode(model: Model) -> Iterator[None]:
    """Run the block with ``model`` in eval mode, then restore its train/eval mode (also on error).
    Anything that is not a ``torch.nn.Module`` (a plain function) is left alone."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is ``>= value``."""
    return -(-int(value) // int(multiple)) * int(multiple)


def model_device(model: Model, device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else the device of the model's first parameter (CPU for a function)."""
    if device is not None:
        return torch.device(device)
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


def pad_axis(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """Pad dim 2 (height) or 3 (width) of a 4-D tensor: reflect if possible, else replicate."""
    if before == 0 and after == 0:
        return x
    mode = "reflect" if max(before, after) < x.shape[dim] else "replicate"
    pad = (before, after, 0, 0) if dim == 3 else (0, 0, before, after)
    return F.pad(x, pad, mode=mode)


def pad_to(
    image: torch.Tensor, mask: torch.Tensor, padded_shape: tuple[int, int], pad_top: int, pad_left: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``image`` (N, C, H, W) and ``mask`` (N, 1, H, W) to ``padded_shape`` with the image at
    ``(pad_top, pad_left)``; returns ``(image with holes zeroed, mask)``, both padded alike."""
    height, width = image.shape[-2:]
    ph, pw = padded_shape
    pads = ((3, pad_left, pw - width - pad_left), (2, pad_top, ph - height - pad_top))
    for dim, before, after in pads:
        image = pad_axis(image, before, after, dim)
        mask = pad_axis(mask, before, after, dim)
    return torch.where(mask != 0, image, 0.0), mask


def pad_to_multiple(
    image: torch.Tensor, mask: torch.Tensor, multiple: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Centre-pad ``image`` (N, C, H, W) and ``mask`` (N, 1, H, W) to multiples of ``multiple``.

    Returns ``(padded image with holes zeroed, padded mask, (pad_top, pad_left))``; crop the
    model's output with ``out[..., top : top + H, left : left + W]``.
    """
    if isinstance(multiple, bool) or not isinstance(multiple, numbers.Integral) or not 1 <= multiple <= 2**16:
        raise BadValue(f"multiple must be an int in 1..65536 (the model's 2**depth), got {multiple!r}")
    height, width = image.shape[-2:]
    ph, pw = round_up(height, multiple), round_up(width, multiple)
    top, left = (ph - height) // 2, (pw - width) // 2
    padded_image, padded_mask = pad_to(image, mask, (ph, pw), top, left)
    return padded_image, padded_mask, (top, left)


def run_model(
    model: Model, image: torch.Tensor, mask: torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """Run ``model(image, mask)`` once on ``device``; return float32 (N, 3, h, w) on the CPU.

    Accepts models that return an image or a tuple whose first element is the image. Call it
    under ``torch.no_grad()`` (the predictors do).

    Raises:
        ValueError: the model's output does not have the input image's shape.
    """
    device = model_device(model, device)
    out = model(image.to(device), mask.to(device))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(image.shape):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BadValue(
            f"the model must return an image of the input's shape {tuple(image.shape)} "
            f"(or a tuple whose first element is one), got {shape}"
        )
    return out.detach().to("cpu", torch.float32)


def predict_padded(
    model: Model,
    image: torch.Tensor,
    mask: torch.Tensor,
    multiple: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Pad to ``multiple`` (centred), run the model once without gradients, crop back.

    Args:
        model: ``model(image, mask) -> image`` or ``-> (image, mask)``.
        image: float32 (N, 3, H, W) in [0, 1] (holes may hold anything).
        mask: float32 (N, 1, H, W), 1 = valid, 0 = hole.
        multiple: the model's size multiple (``2**depth``).
        device: where to run (default: the model's parameters' device).

    Returns:
        The raw prediction, float32 (N, 3, H, W) on the CPU (not composited, not clamped).
    """
    height, width = image.shape[-2:]
    padded_image, padded_mask, (top, left) = pad_to_multiple(image, mask, multiple)
    with torch.no_grad():
        out = run_model(model, padded_image, padded_mask, device)
    return out[:, :, top : top + height, left : left + width]
