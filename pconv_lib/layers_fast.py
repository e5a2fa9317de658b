"""A faster :class:`~pconv_lib.layers.PartialConv2d`: the same numbers, computed with fewer operations.

:class:`FastPartialConv2d` is a drop-in subclass of the readable layer (same arguments, same
``state_dict``, same outputs up to float rounding; ``tests/test_layers_fast.py`` checks every layer
of the paper's UNet). What it changes, and why:

* ``sum(M)`` by a *sum pool* (``avg_pool2d(..., divisor_override=1)``) of the mask summed over
  channels, where the geometry allows (dilation 1, padding at most half the kernel: every UNet
  layer): no ones-kernel convolution, and on a GPU no cuDNN call (no autotuning, no workspace).
* ``mask=None`` (partial-convolution padding): the border ratio of each (H, W, device, dtype) is
  computed once and cached (``BORDER_CACHE_SIZE`` entries, ``clear_border_cache()``).
* :meth:`FastPartialConv2d.forward_masked`: the decoder's shortcut. A decoder level's mask is two
  masks each repeated over many channels, so its channel sum is ``C_1 m_1 + C_2 m_2``: the UNet
  (``PConvUNet(fast=True)``) passes that sum instead of building the (N, C, H, W) mask.
* ``torch.compile``: the Python-side cache is bypassed while tracing, so a compiled forward is one
  graph with no host synchronisation (validate masks on the data side, as ``Trainer`` does).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv_lib.layers import PartialConv2d, zero_holes
from pconv_lib.runtime import follow_free_cores
from pconv_lib.util.tensor_checks import check_layer_inputs, check_mask_sum
from pconv_lib.util.torch_compat import is_compiling

__all__ = ["FastPartialConv2d"]

_CacheKey = tuple[int, int, torch.device, torch.dtype]
_Pair = tuple[Tensor, Tensor]


def _pool_padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """The padding as an int pair if a sum pool can count the windows, else ``None``.

    Pooling has no dilation and pads at most half the kernel on each side.
    """
    if conv.dilation != (1, 1):
        return None
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        if any(k % 2 == 0 for k in conv.kernel_size):  # "same" pads unevenly for even kernels
            return None
        padding = tuple(k // 2 for k in conv.kernel_size)
    else:
        padding = tuple(conv.padding)
    if any(p > k // 2 for p, k in zip(padding, conv.kernel_size, strict=True)):
        return None
    return padding  # type: ignore[return-value]


def _pads_nothing(conv: nn.Conv2d) -> bool:
    """True when the layer pads nothing, so no window ever reaches the (hole) border.

    With any padding the first window starts at index ``-padding`` and so reaches it.
    """
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return True
        return all(d * (k - 1) == 0 for d, k in zip(conv.dilation, conv.kernel_size))
    return all(p == 0 for p in conv.padding)


class FastPartialConv2d(PartialConv2d):
    """:class:`~pconv_lib.layers.PartialConv2d` with a sum-pool count, a cached border and the
    decoder's ``forward_masked`` shortcut; same arguments, weights and outputs."""

    BORDER_CACHE_SIZE = 16

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._border_cache: OrderedDict[_CacheKey, tuple[Tensor | None, Tensor]] = OrderedDict()

    def clear_border_cache(self) -> None:
        """Forget the cached ``mask=None`` ratios (they are rebuilt on the next call)."""
        self._border_cache.clear()

    # ------------------------------------------------------------------ mask path
    def _mask_window(self, channel_sum: Tensor, groups: int) -> Tensor:
        """Count valid mask elements per window: a ones convolution of the channel sum.

        ``channel_sum``: ``(N, groups, H, W)`` (float32 or float64); returns the counts
        ``(N, groups, H', W')`` in the same dtype. Each channel is summed over each window on
        its own (a grouped ones convolution), which is a sum pool: ``avg_pool2d`` with
        ``divisor_override=1`` when pooling supports the geometry, else ``conv2d``.
        """
        kh, kw = self.kernel_size
        pool_padding = _pool_padding(self)
        if pool_padding is not None:
            return F.avg_pool2d(channel_sum, (kh, kw), self.stride, pool_padding, ceil_mode=False,
                                count_include_pad=True, divisor_override=1)
        ones = torch.ones(groups, 1, kh, kw, device=channel_sum.device, dtype=channel_sum.dtype)
        return F.conv2d(channel_sum, ones, None, self.stride, self.padding, self.dilation, groups)

    def _ratio_and_mask(self, mask: Tensor, per_group: bool, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``(ratio, new_mask)`` of shape ``(N, 1 or groups, H', W')``, float32 or float64.

        The mask path never needs autograd and runs in float32 (float64 when ``dtype`` is
        float64), whatever the input dtype or autocast state: counts stay exact integers and
        the ratio cannot overflow or lose precision in fp16/bf16.
        """
        kh, kw = self.kernel_size
        with torch.no_grad():
            m = mask.detach()
            if per_group:
                n, c, h, w = m.shape
                g = self.groups
                channel_sum = m.view(n, g, c // g, h, w).sum(2)
                return self._ratio_from_channel_sum(channel_sum, (c // g) * kh * kw, dtype)
            c = m.shape[1]
            channel_sum = m.sum(1, keepdim=True) if c > 1 else m
            return self._ratio_from_channel_sum(channel_sum, c * kh * kw, dtype)

    def _ratio_from_channel_sum(self, channel_sum: Tensor, win: int, dtype: torch.dtype) -> _Pair:
        """``(ratio, new_mask)`` from the mask summed over the channels of each group.

        ``channel_sum``: ``(N, 1 or groups, H, W)``; ``win``: elements of one window of one
        group (``sum(1)``). Counts valid elements per window with a ones convolution and guards
        the division (``win / max(count, 1) * (count > 0)``), in float32 (float64 for float64).
        """
        work = torch.float64 if dtype == torch.float64 else torch.float32
        with torch.no_grad(), torch.autocast(channel_sum.device.type, enabled=False):
            count = self._mask_window(channel_sum.detach().to(work), channel_sum.shape[1])
            valid = count > 0
            ratio = win / count.clamp_min(1.0) * valid
            return ratio, valid.to(work)

    def _border(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        """Cached ``(ratio or None, new_mask)`` of shape ``(1, 1, H', W')`` for ``mask=None``.

        ``ratio`` is ``None`` when the layer has no padding (every window lies inside the
        image, the ratio is 1 everywhere); then the layer is exactly ``nn.Conv2d``.
        """
        if is_compiling():  # no Python-side cache inside a graph: the compiler folds it
            return self._border_ratio(x)
        key = (x.shape[2], x.shape[3], x.device, x.dtype)
        hit = self._border_cache.get(key)
        if hit is not None:
            self._border_cache.move_to_end(key)
            return hit
        entry = self._border_ratio(x)
        self._border_cache[key] = entry
        while len(self._border_cache) > self.BORDER_CACHE_SIZE:
            self._border_cache.popitem(last=False)
        return entry

    def _border_ratio(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        ones = torch.ones(1, 1, x.shape[2], x.shape[3], device=x.device, dtype=torch.float32)
        ratio, valid = self._ratio_and_mask(ones, False, x.dtype)
        return (None if _pads_nothing(self) else ratio.to(x.dtype), valid.to(x.dtype))

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """Partial convolution of ``x`` under ``mask``; returns ``(out, new_mask)``.

        See the class docstring for shapes, dtypes and the mask convention (1 = valid).
        """
        follow_free_cores()  # the CPU thread policy, when applied (pconv_lib.runtime)
        if self.check_mask:
            check_layer_inputs(self, x, mask)
        if mask is None:
            return self._forward_border(x)

        per_group = self.groups > 1 and mask.shape[1] > 1
        ratio, valid = self._ratio_and_mask(mask, per_group, x.dtype)
        return self._scaled_conv(zero_holes(x, mask), ratio, valid, per_group)

    def forward_masked(self, x_masked: Tensor, mask_sum: Tensor) -> tuple[Tensor, Tensor]:
        """The same as ``forward(x, mask)`` for a per-channel ``mask``, given ``x ⊙ mask`` and the
        mask summed over channels instead of the mask itself.

        For callers that know both more cheaply than by materialising an (N, C_in, H, W) mask:
        the UNet decoder, whose mask is the concatenation of two masks each repeated over many
        channels, so its channel sum is ``C_1·m_1 + C_2·m_2`` (see :class:`pconv_lib.model.PConvUNet`).

        Args:
            x_masked: (N, C_in, H, W), the input already zeroed where its mask is 0 (finite).
            mask_sum: (N, 1, H, W) float, ``Σ_c mask[:, c]``: integers 0..C_in.

        Only for ``groups=1``. No value check is made on ``mask_sum``.
        """
        if self.check_mask:
            check_mask_sum(self, x_masked, mask_sum)
        kh, kw = self.kernel_size
        ratio, valid = self._ratio_from_channel_sum(mask_sum, self.in_channels * kh * kw, x_masked.dtype)
        return self._scaled_conv(x_masked, ratio, valid, False)

    def _scaled_conv(self, x_masked: Tensor, ratio: Tensor, valid: Tensor, per_group: bool) -> _Pair:
        """``conv(x ⊙ M) · ratio + bias · new_mask``; returns ``(out, new_mask)``."""
        raw = F.conv2d(x_masked, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        ratio, valid = ratio.to(raw.dtype), valid.to(raw.dtype)
        if per_group:
            per_out = self.out_channels // self.groups
            ratio = ratio.repeat_interleave(per_out, dim=1)
            valid = valid.repeat_interleave(per_out, dim=1)
        # in place: the convolution's backward needs its inputs, not its output
        out = raw.mul_(ratio)
        if self.bias is not None:
            out = out.addcmul_(self.bias.to(raw.dtype).view(1, -1, 1, 1), valid)
        return out, valid

    def _forward_border(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ratio, valid = self._border(x)
        if ratio is None:
            out = self._conv_forward(x, self.weight, self.bias)
        else:
            raw = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
            out = raw.mul_(ratio.to(raw.dtype))
            if self.bias is not None:
                bias = self.bias.to(raw.dtype).view(1, -1, 1, 1)
                out = out.addcmul_(bias, valid.to(raw.dtype))
        # a fresh tensor, so that in-place edits by the caller cannot corrupt the cache
        new_mask = valid.to(out.dtype).expand(x.shape[0], -1, -1, -1).clone()
        return out, new_mask
