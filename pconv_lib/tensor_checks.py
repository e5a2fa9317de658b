"""Checks of the tensors that enter a partial convolution or the UNet, at the library's boundary.

Each check raises ``TypeError``/``ValueError`` with one message that says what was wrong and how
to fix it. The layers call :func:`check_layer_inputs` once, first thing (``check_mask=True``, the
default for a layer used on its own); :class:`pconv_lib.model.PConvUNet` calls it once for the
whole network, so its inner layers never check. While ``torch.compile`` traces, the value check
(which needs the tensor's values on the host) is skipped: validate masks on the data side with
:func:`check_mask_values` instead, as :class:`pconv_lib.train.Trainer` does.

Mask convention: ``1 = valid pixel, 0 = hole``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pconv_lib.errors import BadType, BadValue


def _describe_values(mask: Tensor, limit: int = 6) -> str:
    """The distinct values of ``mask`` as ``{0, 255}`` (at most ``limit`` of them)."""
    values = torch.unique(mask.detach().float().cpu())
    shown = [f"{v:g}" for v in values[:limit].tolist()]
    if values.numel() > limit:
        shown.append(f"... ({values.numel()} distinct values)")
    return "{" + ", ".join(shown) + "}"


def _binary_hint(mask: Tensor) -> str:
    """How to turn a non-binary mask into a 1 = valid / 0 = hole one."""
    m = mask.detach().float()
    if torch.isnan(m).any():
        return "the mask contains NaN: build it from a binary image"
    lo, hi = m.min().item(), m.max().item()
    if lo >= 0 and hi == 255 and bool(((m == 0) | (m == 255)).all()):
        return "divide by 255 (mask / 255)"
    if lo >= 0 and hi > 1:
        return f"scale to [0, 1] (mask / {hi:g}) and threshold, e.g. (mask > 0.5).float()"
    if lo < 0:
        return "negative values are not a mask: use 1.0 for valid pixels, 0.0 for holes"
    return (
        "threshold it, e.g. (mask > 0.5).float(); resize masks with nearest neighbour only "
        "(bilinear resizing creates in-between values)"
    )


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def check_mask_values(mask: Tensor) -> None:
    """Raise ``ValueError`` unless every value of ``mask`` is exactly 0.0 or 1.0 (1 = valid, 0 = hole).

    One pass over the mask. On a GPU tensor it waits for the GPU (``bool(...)`` needs the
    answer on the host): call it on the CPU batch, once per batch, on the data side, and run
    the model with ``check_mask=False`` (or compiled, which skips the per-forward check).
    The message names the values found and how to fix them (e.g. divide a 0/255 mask by 255).
    """
    if not isinstance(mask, Tensor):
        raise BadType(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if bool(((mask != 0) & (mask != 1)).any()):
        raise BadValue(
            f"mask must be 1 = valid, 0 = hole; got values in {_describe_values(mask)}",
            hint=f"{_binary_hint(mask)} (or set check_mask=False to skip this check)",
        )


def check_layer_input(layer: nn.Conv2d, x: Tensor) -> None:
    """``x`` is a 4-D tensor with ``layer.in_channels`` channels in the layer's dtype (or autocast)."""
    if not isinstance(x, Tensor):
        raise BadType(f"x must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise BadValue(
            f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}; "
            "for a single image use x[None] (or x.unsqueeze(0))"
        )
    if x.shape[1] != layer.in_channels:
        raise BadValue(
            f"x has {x.shape[1]} channels but this layer expects in_channels="
            f"{layer.in_channels} (x shape {tuple(x.shape)})"
        )
    w = layer.weight
    if x.dtype != w.dtype and not _autocast_on(x.device.type):
        if not x.is_floating_point():
            fix = "use x.float() (and divide 0..255 pictures by 255)"
        else:
            fix = f"convert the input, x.to({w.dtype}), or the layer/model, .to({x.dtype})"
        raise BadType(
            f"x is {x.dtype} but the layer's weights are {w.dtype}: {fix}; for mixed "
            "precision run the model under torch.autocast instead"
        )


def check_layer_mask(x: Tensor, mask: Tensor, values: bool = True) -> None:
    """Type, device and shape of ``mask`` against ``x`` (static checks), then its values if ``values``
    (never while ``torch.compile`` traces)."""
    if not isinstance(mask, Tensor):
        raise BadType(
            f"mask must be a torch.Tensor or None, got {type(mask).__name__}; "
            "convert with torch.as_tensor(mask, dtype=torch.float32)"
        )
    if not mask.is_floating_point():
        hint = (
            "use mask.float() if True marks valid pixels, (~mask).float() if True marks holes"
            if mask.dtype == torch.bool
            else "use mask.float() (and divide by 255 if it holds 0/255)"
        )
        raise BadType(
            f"mask must be a floating tensor with 1.0 = valid, 0.0 = hole; got {mask.dtype}: " + hint
        )
    if mask.device != x.device:
        raise BadValue(f"mask is on {mask.device} but x is on {x.device}: move it with mask.to(x.device)")
    n, c, h, w = x.shape
    same_size = mask.dim() == 4 and mask.shape[0] == n and tuple(mask.shape[2:]) == (h, w)
    if not same_size or mask.shape[1] not in (1, c):
        raise BadValue(
            f"mask shape {tuple(mask.shape)} does not match x shape {tuple(x.shape)}: "
            f"expected ({n}, 1, {h}, {w}) (one value per pixel) or ({n}, {c}, {h}, {w}) "
            "(one per channel); add a channel axis with mask[:, None] and repeat a single "
            "mask over the batch with mask.expand(N, -1, -1, -1)"
        )
    if values and not torch.compiler.is_compiling():
        check_mask_values(mask)


def check_layer_inputs(layer: nn.Conv2d, x: Tensor, mask: Tensor | None, values: bool = True) -> None:
    """Everything a partial convolution needs of ``x`` and ``mask`` (``None``: no mask to check)."""
    check_layer_input(layer, x)
    if mask is not None:
        check_layer_mask(x, mask, values)
