"""Step 3: the PConv UNet of Liu et al. (arXiv 1804.07723), with depth and width as parameters.

Architecture (paper table, 512x512 input, ``depth=8``; ``depth=7`` for 256x256)::

    layer          kernel  channels                 stride  BN   activation
    PConv1         7       64                       2       no   ReLU
    PConv2         5       128                      2       yes  ReLU
    PConv3         5       256                      2       yes  ReLU
    PConv4..depth  3       512                      2       yes  ReLU
    decoder        3       512 ... 512,256,128,64   1       yes  LeakyReLU(0.2)
    last           3       out_channels (3)         1       no   none

Each decoder level upsamples features and mask by 2 (nearest) and concatenates the skip of the
same resolution, masks channel by channel (:func:`concat_skip`); the last level's skip is the
input image. Channels are scaled by ``width`` (``max(1, round(c * width))``; not ``in_channels``
/ ``out_channels``). Layers followed by BatchNorm have no bias. ``layer="ordinary"`` is the
paper's ablation (section 5.1): the same network with ``nn.Conv2d`` and the input's holes filled
with ``hole_fill``, no mask inside.

Conventions: masks ``1 = valid, 0 = hole``; images float ``(N, in_channels, H, W)``, typically
in [0, 1]; the output is unbounded (no sigmoid, as in the paper).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv_lib.layers import PartialConv2d, zero_holes
from pconv_lib.layers_fast import FastPartialConv2d
from pconv_lib.runtime import follow_free_cores
from pconv_lib.util.arg_checks import check_depth_width, check_hole_fill, check_layer_kind
from pconv_lib.util.tensor_checks import check_unet_inputs

__all__ = [
    "MIN_DEPTH",
    "MAX_DEPTH",
    "LAYERS",
    "LayerSpec",
    "PConvBlock",
    "PConvUNet",
    "architecture",
    "build_model",
    "concat_skip",
    "concat_skip_summed",
    "count_parameters",
    "encoder_channels",
    "expected_parameter_count",
    "hole_fill_buffer",
]

MIN_DEPTH = 3
MAX_DEPTH = 10
#: The two layer kinds: the paper's partial convolution, and the ordinary-convolution ablation.
LAYERS = ("partial", "ordinary")


class LayerSpec(NamedTuple):
    """One partial-convolution layer of the UNet, as in the architecture table.

    ``in_scale``: the layer's input resolution is ``image size / in_scale``.
    ``activation``: ``"relu"``, ``"leaky_relu"`` or ``"none"``.
    """

    name: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    batch_norm: bool
    activation: str
    in_scale: int


def encoder_channels(depth: int, width: float = 1.0) -> list[int]:
    """Output channels of encoder layers 1..depth: 64, 128, 256, 512, ... scaled by ``width``."""
    check_depth_width(depth, width, (MIN_DEPTH, MAX_DEPTH))
    base = [64, 128, 256] + [512] * (depth - 3)
    return [max(1, round(c * width)) for c in base]


def architecture(
    depth: int = 7, width: float = 1.0, in_channels: int = 3, out_channels: int = 3
) -> list[LayerSpec]:
    """The ``2 * depth`` partial-convolution layers of :class:`PConvUNet`, input to output."""
    enc = encoder_channels(depth, width)
    kernels = [7, 5, 5] + [3] * (depth - 3)
    specs = []
    prev = in_channels
    for i, (c, k) in enumerate(zip(enc, kernels, strict=True)):
        specs.append(
            LayerSpec(f"enc{i + 1}", prev, c, k, 2, i > 0, "relu", 2**i)
        )
        prev = c
    # decoder: level j upsamples the output of the level below and concatenates skip j
    skips = [in_channels] + enc[:-1]  # skip feature channels at scales 1, 2, 4, ...
    for j in range(depth - 1, -1, -1):
        last = j == 0
        cout = out_channels if last else skips[j]
        specs.append(
            LayerSpec(
                f"dec{2 * depth - j}",
                prev + skips[j],
                cout,
                3,
                1,
                not last,
                "none" if last else "leaky_relu",
                2**j,
            )
        )
        prev = cout
    return specs


def expected_parameter_count(
    depth: int, width: float = 1.0, in_channels: int = 3, out_channels: int = 3
) -> int:
    """Number of parameters of ``PConvUNet(depth, width, ...)`` from the architecture table.

    Per layer: ``C_in * C_out * k * k`` weights, plus ``C_out`` biases when the layer has no
    BatchNorm, plus ``2 * C_out`` BatchNorm affine parameters when it has one (running
    statistics are buffers, not parameters).
    """
    total = 0
    for s in architecture(depth, width, in_channels, out_channels):
        total += s.in_channels * s.out_channels * s.kernel_size**2
        total += 2 * s.out_channels if s.batch_norm else s.out_channels
    return total


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (only ``requires_grad`` ones if asked)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class PConvBlock(nn.Module):
    """``PartialConv2d`` -> optional ``BatchNorm2d`` -> activation; ``forward(x, mask)``.

    Returns ``(features, new_mask)``; ``new_mask`` is ``(N, 1, H', W')``, 1 = valid.
    BatchNorm and activation are applied everywhere, holes included; the next layer ignores
    hole values because it multiplies by the mask.

    ``fast=True`` uses :class:`~pconv_lib.layers_fast.FastPartialConv2d` (same numbers), which
    also takes ``mask_sum`` instead of ``mask`` (the decoder's shortcut). ``layer="ordinary"``
    (the ablation): an ``nn.Conv2d`` of the same shape; ``forward(x)`` returns ``(features, None)``.
    """

    def __init__(self, spec: LayerSpec, layer: str = "partial", fast: bool = False) -> None:
        super().__init__()
        conv_class = nn.Conv2d if layer == "ordinary" else FastPartialConv2d if fast else PartialConv2d
        extra = {} if layer == "ordinary" else {"check_mask": False}  # the UNet checks at its entry
        self.conv = conv_class(
            spec.in_channels, spec.out_channels, spec.kernel_size, stride=spec.stride,
            padding=spec.kernel_size // 2, bias=not spec.batch_norm, **extra,
        )
        self.bn = nn.BatchNorm2d(spec.out_channels) if spec.batch_norm else None
        activations = {"relu": nn.ReLU(inplace=True), "leaky_relu": nn.LeakyReLU(0.2, inplace=True)}
        self.act = activations.get(spec.activation, nn.Identity())

    def forward(
        self, x: Tensor, mask: Tensor | None = None, *, mask_sum: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``(features, new_mask)`` from ``x`` and its ``mask`` (``None`` for ordinary layers), or,
        in a fast block, from ``x`` already zeroed in its holes and the mask summed over channels
        (:meth:`FastPartialConv2d.forward_masked`)."""
        if not isinstance(self.conv, PartialConv2d):
            h, new_mask = self.conv(x), None
        elif mask_sum is not None:
            h, new_mask = self.conv.forward_masked(x, mask_sum)
        else:
            h, new_mask = self.conv(x, mask)
        if self.bn is not None:
            h = self.bn(h)
        return self.act(h), new_mask


def concat_skip(x: Tensor, mask: Tensor, skip_x: Tensor, skip_mask: Tensor) -> tuple[Tensor, Tensor]:
    """One decoder level's input, as exercise 03 builds it: upsample ``(x, mask)`` by 2 (nearest)
    and concatenate the skip features, and the masks, one mask channel per feature channel.

    ``x``: (N, C, h, w), ``mask``: (N, 1, h, w); ``skip_x``: (N, S, 2h, 2w), ``skip_mask``:
    (N, 1 or S, 2h, 2w). Returns features (N, C + S, 2h, 2w) and a mask of the same shape.
    """
    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    up_mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
    features = torch.cat([up, skip_x], dim=1)
    mask_channels = [up_mask.expand(-1, up.shape[1], -1, -1),
                     skip_mask.to(up_mask.dtype).expand(-1, skip_x.shape[1], -1, -1)]
    return features, torch.cat(mask_channels, dim=1)


def concat_skip_summed(h: Tensor, m: Tensor, skip: Tensor, skip_mask: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`concat_skip` for fast blocks: the features already zeroed in their holes and, instead
    of the per-channel mask, its sum over channels, ``C_h * m + C_skip * skip_mask`` (where(),
    not a product, zeroes the holes: the last skip is the input image, whose holes may hold NaN)."""
    h = F.interpolate(h, scale_factor=2.0, mode="nearest")
    m = F.interpolate(m, scale_factor=2.0, mode="nearest")
    skip_mask = skip_mask.to(m.dtype)
    x_masked = torch.cat((zero_holes(h, m), zero_holes(skip, skip_mask)), dim=1)
    skip_sum = skip_mask * skip.shape[1] if skip_mask.shape[1] == 1 else skip_mask.sum(1, keepdim=True)
    return x_masked, m * h.shape[1] + skip_sum


def hole_fill_buffer(hole_fill: float | Sequence[float], in_channels: int) -> Tensor:
    """The ``hole_fill`` buffer of an ordinary network: (1, in_channels, 1, 1) float32."""
    fill = torch.as_tensor(hole_fill, dtype=torch.float32, device="cpu").reshape(-1)  # its values are read
    check_hole_fill(fill.tolist(), in_channels)
    return fill.expand(in_channels).reshape(1, -1, 1, 1).clone()


class PConvUNet(nn.Module):
    """The paper's partial-convolution UNet.

    Args:
        depth: number of encoder levels (7 for 256x256, 8 for 512x512; 3-6 for tiny models).
            Input height and width must be multiples of ``2**depth``.
        width: channel multiplier (1.0 = paper; channels are ``max(1, round(c * width))``).
        in_channels, out_channels: image channels in and out (3 and 3 for RGB).
        freeze_encoder_bn: start with the encoder BatchNorm layers frozen (fine-tuning stage),
            see :meth:`freeze_encoder_bn`.
        layer: ``"partial"`` (the paper's network) or ``"ordinary"`` (the ablation: ``nn.Conv2d``
            everywhere, the input's holes filled with ``hole_fill``, no mask inside).
        hole_fill: what fills the holes of the input of an ``"ordinary"`` network: one value for
            all channels (default 0.5, the paper's 127.5 / 255) or one per channel (e.g. the
            training set's mean pixel, :func:`pconv_lib.data.mean_pixel`). Stored in the
            ``state_dict`` (buffer ``hole_fill``) of ordinary networks only.
        fast: build the layers as :class:`~pconv_lib.layers_fast.FastPartialConv2d` and feed the
            decoder its masks summed over channels (same numbers, faster; ``Trainer`` uses it).
            Default: the readable layers and the decoder of exercise 03 (:func:`concat_skip`).
        check_mask: check once per forward, at the model's entry, that mask values are exactly
            0 or 1 (inner layers never check). On a GPU this waits for the GPU once per forward;
            it is skipped under ``torch.compile``. For training, validate the batch on the data
            side instead (:func:`pconv_lib.layers.check_mask_values`, as the ``Trainer`` does)
            and set ``model.check_mask = False``.

    ``forward(image, mask) -> (output, output_mask)``:

    * ``image``: float ``(N, in_channels, H, W)``, usually in [0, 1] (holes may hold anything,
      NaN and inf included: they are replaced by 0), in the model's dtype (or under autocast).
    * ``mask``: float ``(N, 1, H, W)`` or ``(N, in_channels, H, W)``, 1 = valid, 0 = hole, on
      the image's device.
    * ``output``: ``(N, out_channels, H, W)``, the raw prediction (compose it with the input,
      ``mask * image + (1 - mask) * output``, for the final picture).
    * ``output_mask``: ``(N, 1, H, W)``, 1 where the network saw valid pixels; all ones unless
      a hole is wider than the receptive field (always all ones for ``layer="ordinary"``).

    In training mode BatchNorm needs more than one value per channel at the deepest level,
    which is ``(H / 2**depth) x (W / 2**depth)`` per image: use batch >= 2 or inputs of at least
    ``2 * 2**depth`` pixels per side (the paper's 256 / 512 with depth 7 / 8 give 2x2).
    """

    def __init__(
        self,
        depth: int = 7,
        width: float = 1.0,
        in_channels: int = 3,
        out_channels: int = 3,
        freeze_encoder_bn: bool = False,
        *,
        layer: str = "partial",
        hole_fill: float | Sequence[float] = 0.5,
        fast: bool = False,
        check_mask: bool = True,
    ) -> None:
        super().__init__()
        check_layer_kind(layer, LAYERS)
        specs = architecture(depth, width, in_channels, out_channels)
        self.depth = depth
        self.width = float(width)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.layer = layer
        self.fast = fast
        self.check_mask = check_mask
        self.encoder = nn.ModuleList(PConvBlock(s, layer, fast) for s in specs[:depth])
        self.decoder = nn.ModuleList(PConvBlock(s, layer, fast) for s in specs[depth:])
        if layer == "ordinary":
            self.register_buffer("hole_fill", hole_fill_buffer(hole_fill, in_channels))
        self._encoder_bn_frozen = False
        if freeze_encoder_bn:
            self.freeze_encoder_bn(True)

    # ------------------------------------------------------------------ BN freezing
    @property
    def encoder_bn_frozen(self) -> bool:
        """True while the encoder BatchNorm layers are frozen."""
        return self._encoder_bn_frozen

    def _encoder_bns(self) -> list[nn.BatchNorm2d]:
        return [b.bn for b in self.encoder if b.bn is not None]

    def freeze_encoder_bn(self, frozen: bool = True) -> PConvUNet:
        """Freeze (or unfreeze) the encoder BatchNorm layers, as in the paper's fine-tuning.

        Frozen: they stay in eval mode (running statistics used, not updated) even after
        ``model.train()``, and their weight and bias have ``requires_grad=False``. Decoder
        BatchNorm layers are unaffected. Returns the model.
        """
        self._encoder_bn_frozen = bool(frozen)
        for bn in self._encoder_bns():
            for p in bn.parameters():
                p.requires_grad_(not frozen)
            bn.train(self.training and not frozen)
        return self

    def train(self, mode: bool = True) -> PConvUNet:
        """Like ``nn.Module.train``, but frozen encoder BatchNorm layers stay in eval mode."""
        super().train(mode)
        if self._encoder_bn_frozen:
            for bn in self._encoder_bns():
                bn.eval()
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Inpaint ``image`` where ``mask`` is 0; returns ``(output, output_mask)``.

        One pass: deep inside holes far wider than the training holes it paints colours from
        nowhere, silently; :func:`pconv_lib.tiling.predict_multiscale` is the path for those.
        """
        check_unet_inputs(self, image, mask)
        follow_free_cores()  # the CPU thread policy, when applied (pconv_lib.runtime)
        if self.layer == "ordinary":
            # the ablation: holes get a constant colour, and the network never sees the mask
            filled = torch.where(mask != 0, image, self.hole_fill.to(image.dtype))
            feats, _ = self.encode(filled, None)
            output, _ = self.decode(feats, None)
            return output, torch.ones_like(output[:, :1])
        feats, masks = self.encode(image, mask)
        return self.decode(feats, masks)

    def encode(self, image: Tensor, mask: Tensor | None) -> tuple[list[Tensor], list[Tensor] | None]:
        """Run the encoder; returns the features of every level, input first (``depth + 1``
        tensors, the skips of the decoder), and their masks (``None`` for ``layer="ordinary"``)."""
        feats, masks = [image], [mask]
        h, m = image, mask
        for block in self.encoder:
            h, m = block(h, m)
            feats.append(h)
            masks.append(m)
        return feats, (masks if mask is not None else None)

    def decode(self, feats: list[Tensor], masks: list[Tensor] | None) -> tuple[Tensor, Tensor | None]:
        """Run the decoder on what :meth:`encode` returned; returns ``(output, output_mask)``.

        Each level upsamples the features (and mask) by 2, nearest, concatenates the skip of the
        same resolution and runs its block.
        """
        h = feats[-1]
        m = masks[-1] if masks is not None else None
        for j, block in enumerate(self.decoder):
            skip = feats[self.depth - 1 - j]
            if masks is None:  # the ordinary twin: features only
                h, _ = block(torch.cat((F.interpolate(h, scale_factor=2.0, mode="nearest"), skip), dim=1))
            elif not self.fast:  # the paper's decoder, as exercise 03 writes it
                h, m = block(*concat_skip(h, m, skip, masks[self.depth - 1 - j]))
            else:
                x_masked, mask_sum = concat_skip_summed(h, m, skip, masks[self.depth - 1 - j])
                h, m = block(x_masked, mask_sum=mask_sum)
        return h, m


def build_model(config: Mapping[str, Any] | Any, **overrides: Any) -> PConvUNet:
    """The :class:`PConvUNet` a training config describes (a ``TrainConfig`` or its dict form).

    Reads ``depth``, ``width`` and, when present, ``layer`` and ``hole_fill`` (older checkpoints
    have neither: they are partial-convolution networks). The fast layers are used (``fast=True``:
    the same numbers as the readable ones, faster), since checkpoints are for training and
    prediction. ``overrides`` go to the constructor (e.g. ``freeze_encoder_bn=True``).
    """
    values = config if isinstance(config, Mapping) else vars(config)
    kwargs: dict[str, Any] = dict(
        fast=True,
        depth=int(values["depth"]),
        width=float(values["width"]),
        layer=values.get("layer", "partial"),
        hole_fill=values.get("hole_fill", 0.5),
    )
    kwargs.update(overrides)
    return PConvUNet(**kwargs)
