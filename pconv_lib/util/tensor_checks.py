"""Checks of the tensors that enter the library (layers, UNet, losses, tiling), at its boundary.

Each check raises ``TypeError``/``ValueError`` with one message that says what was wrong and how
to fix it. A layer used on its own calls :func:`check_layer_inputs` first thing; the UNet calls
:func:`check_unet_inputs` once for the whole network (its layers never check), ``PConvLoss``
calls :func:`check_loss_inputs` once per call. While ``torch.compile`` traces, the mask value
check (it needs the values on the host) is skipped: validate masks on the data side with
:func:`check_mask_values`, as :class:`pconv_lib.train.Trainer` does.

Mask convention: ``1 = valid pixel, 0 = hole``; the 0/1 rule is
:func:`pconv_lib.util.arg_checks.check_binary_mask`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from pconv_lib.util.arg_checks import check_binary_mask
from pconv_lib.util.errors import BadPicture, BadType, BadValue
from pconv_lib.util.torch_compat import is_compiling


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def check_mask_values(mask: Tensor) -> None:
    """Raise ``ValueError`` unless every value of ``mask`` is exactly 0.0 or 1.0 (1 = valid, 0 = hole):
    :func:`pconv_lib.util.arg_checks.check_binary_mask`, the library's one 0/1 rule, for a tensor.

    On a GPU tensor it waits for the GPU (``bool(...)`` needs the answer on the host): call it on
    the CPU batch, once per batch, on the data side, and run the model with ``check_mask=False``
    (or compiled, which skips the per-forward check).
    """
    if not isinstance(mask, Tensor):
        raise BadType(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    check_binary_mask(mask, off_switch=" (or set check_mask=False to skip this check)")


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
    if values and not is_compiling():
        check_mask_values(mask)


def check_layer_inputs(layer: nn.Conv2d, x: Tensor, mask: Tensor | None, values: bool = True) -> None:
    """Everything a partial convolution needs of ``x`` and ``mask`` (``None``: no mask to check)."""
    check_layer_input(layer, x)
    if mask is not None:
        check_layer_mask(x, mask, values)


def check_mask_sum(layer: nn.Conv2d, x_masked: Tensor, mask_sum: Tensor) -> None:
    """:meth:`~pconv_lib.layers_fast.FastPartialConv2d.forward_masked`: ``groups=1`` and a
    (N, 1, H, W) ``mask_sum``."""
    if layer.groups != 1:
        raise BadValue("forward_masked supports groups=1 only; call forward(x, mask)")
    n, _, h, w = x_masked.shape
    if tuple(mask_sum.shape) != (n, 1, h, w):
        raise BadValue(
            f"mask_sum must be (N, 1, H, W) = ({n}, 1, {h}, {w}), the mask summed over its "
            f"channels; got {tuple(mask_sum.shape)}"
        )


def _size_hint(name: str, size: int, multiple: int, depth: int) -> str:
    lo = (size // multiple) * multiple
    options = f"{lo} or {lo + multiple}" if lo > 0 else f"{lo + multiple}"
    return (
        f"{name} {size} is not a multiple of 2**{depth} = {multiple}; use {options} (pad or "
        "crop), a smaller depth, or pconv_lib.tiling for any size"
    )


def check_unet_inputs(unet: nn.Module, image: Tensor, mask: Tensor) -> None:
    """What :class:`pconv_lib.model.PConvUNet` needs of ``image`` and ``mask``: tensors, the
    image (N, in_channels, H, W) float with H and W multiples of ``2**depth``, then the first
    layer's checks (dtype, device, mask shape, and mask values if ``unet.check_mask``)."""
    if not isinstance(image, Tensor) or not isinstance(mask, Tensor):
        raise BadType(
            "image and mask must be torch tensors, got "
            f"{type(image).__name__} and {type(mask).__name__}"
        )
    if image.dim() != 4 or image.shape[1] != unet.in_channels:
        raise BadValue(
            f"image must be (N, {unet.in_channels}, H, W), got shape {tuple(image.shape)}; "
            "for one image use image[None], for (N, H, W, C) use image.permute(0, 3, 1, 2)"
        )
    if not image.is_floating_point():
        raise BadType(
            f"image must be a floating tensor, got {image.dtype}: use image.float() / 255 "
            "for uint8 pictures"
        )
    multiple = 2**unet.depth
    for name, size in (("height", image.shape[2]), ("width", image.shape[3])):
        if size % multiple:
            raise BadValue(_size_hint(name, size, multiple, unet.depth))
    check_layer_inputs(unet.encoder[0].conv, image, mask, values=unet.check_mask)
    if unet.check_mask and not torch.compiler.is_compiling():  # the same switch: one host sync
        check_unit_range(image, mask)


def check_loss_inputs(output: Tensor, target: Tensor, mask: Tensor, image_in: Tensor | None = None) -> None:
    """``output``, ``target`` (and ``image_in``) (N, C, H, W) of one shape; ``mask`` (N, 1|C, H, W)."""
    for other in (target,) if image_in is None else (target, image_in):
        if output.ndim != 4 or output.shape != other.shape:
            raise BadValue(
                "output and target must be (N, C, H, W) tensors of the same shape, got "
                f"{tuple(output.shape)} and {tuple(other.shape)}"
            )
    if not isinstance(mask, Tensor):
        raise BadType(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    n, c, h, w = output.shape
    if mask.ndim != 4 or mask.shape[0] != n or mask.shape[1] not in (1, c) or mask.shape[2:] != (h, w):
        raise BadValue(
            f"mask must be (N, 1, H, W) or (N, {c}, H, W) matching the image "
            f"{tuple(output.shape)} (1 = valid, 0 = hole), got {tuple(mask.shape)}"
        )


def check_rgb_batch(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise BadValue(f"VGG16 features need RGB images of shape (N, 3, H, W), got {tuple(images.shape)}")


def check_features(features: Tensor) -> None:
    if features.ndim not in (3, 4):
        raise BadValue(f"gram_matrix needs (N, C, H, W) or (C, H, W) features, got {tuple(features.shape)}")


def check_rgb_uint8(image: object, name: str = "image", hint: str = "") -> None:
    """The one rule for a picture given as a NumPy array: ``uint8`` (H, W, 3) RGB, values 0..255
    (evaluation, baselines, the widget, tiling). A float array says whether it looks like [0, 1]
    (the usual mix-up, which would score two unrelated images as near-identical) or 0..255.

    Raises:
        BadPicture: one line naming ``name``, what it is, and the conversion (then ``hint``).
    """
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return
    expected = f"{name} must be a uint8 RGB array of shape (H, W, 3) (values 0..255)"
    if not isinstance(image, np.ndarray):
        raise BadPicture(f"{expected}, got {type(image).__name__}{hint}")
    fix = ""
    if image.dtype.kind == "f" and image.size:
        if not np.isfinite(image).all():
            fix = "; it also holds NaN or infinite values"
        elif 0 <= float(image.min()) and float(image.max()) <= 1:
            fix = (
                "; its values are floats in [0, 1] (not 0..255): convert with "
                f"np.clip(np.rint({name} * 255), 0, 255).astype(np.uint8)"
            )
        else:
            fix = f"; convert with np.clip(np.rint({name}), 0, 255).astype(np.uint8)"
    elif image.ndim == 2:
        fix = "; for a grey image use np.repeat(image[:, :, None], 3, axis=2)"
    raise BadPicture(f"{expected}, got {image.dtype} {image.shape}{fix}{hint}")


def check_picture(image: object) -> None:
    """What the tiling functions take as an image: a NumPy ``uint8`` (H, W, 3) RGB array
    (:func:`check_rgb_uint8`) or a float tensor (3, H, W) / (1, 3, H, W), at least 1x1 (values:
    :func:`check_unit_range`)."""
    if isinstance(image, np.ndarray):
        check_rgb_uint8(
            image, "a NumPy image", hint=". For a float image in [0, 1], you may also pass a torch "
            "tensor (3, H, W): torch.from_numpy(img).permute(2, 0, 1)"
        )
        height, width = image.shape[:2]
    elif isinstance(image, Tensor):
        if not image.is_floating_point():
            raise BadType(
                f"a tensor image must be float in [0, 1], got dtype {image.dtype}; "
                "use image.float() / 255 for 0..255 values"
            )
        if not ((image.ndim == 3 and image.shape[0] == 3) or (image.ndim == 4 and image.shape[:2] == (1, 3))):
            raise BadValue(
                f"a tensor image must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}; "
                "tile one image at a time"
            )
        height, width = image.shape[-2:]
    else:
        raise BadType(
            "image must be a NumPy uint8 (H, W, 3) array or a float tensor (3, H, W) / "
            f"(1, 3, H, W), got {type(image).__name__}"
        )
    if height < 1 or width < 1:
        raise BadValue(f"image must be at least 1x1, got {height}x{width}")


def check_unit_range(image: Tensor, mask: Tensor | None = None) -> None:
    """Every value of the float ``image`` is finite and in [0, 1] - only where ``mask`` (broadcast
    to the image, 1 = valid) is nonzero when it is given (holes may hold anything). One reduction
    (``aminmax``; NaN propagates through it, so it is caught too)."""
    if not image.numel():
        return
    values = image.detach()
    if mask is not None:
        values = torch.where(mask.detach() != 0, values, 0.0)
    low, high = torch.aminmax(values)
    if not (bool(low >= 0) and bool(high <= 1)):
        where = "" if mask is None else " in the valid pixels (mask 1)"
        raise BadValue(
            f"image values{where} must be finite and in [0, 1], got {float(low):g} to {float(high):g}; "
            "divide 0..255 by 255" + ("" if mask is None else " (holes may hold anything)")
        )


def check_tiling_mask(mask: object, height: int, width: int) -> None:
    """A NumPy or tensor mask of shape (H, W), (1, H, W) or (1, 1, H, W) matching the image, 0/1."""
    if not isinstance(mask, (np.ndarray, Tensor)):
        raise BadType(f"mask must be a NumPy array or a torch tensor, got {type(mask).__name__}")
    if tuple(mask.shape) not in ((height, width), (1, height, width), (1, 1, height, width)):
        raise BadValue(
            f"mask must have shape ({height}, {width}) or (1, 1, {height}, {width}) to match the "
            f"image, got {tuple(mask.shape)} (1 = valid, 0 = hole)"
        )
    check_binary_mask(mask)
