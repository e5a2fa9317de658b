"""Step 2: the partial-convolution layer (Liu et al., arXiv 1804.07723, eq. 1-2).

For every output position with window ``W``, bias ``b``, input patch ``X`` and valid-mask patch
``M`` (``1 = valid pixel, 0 = hole``)::

    x' = W^T (X * M) * sum(1) / sum(M) + b    if sum(M) > 0
    x' = 0                                    otherwise (bias included)
    m' = 1 if sum(M) > 0 else 0

This is the class notebook 02 derives, line for line. :mod:`pconv_lib.layers_fast` holds
``FastPartialConv2d``, the same numbers computed faster (sum pool, cached border, a decoder
shortcut); the training loop uses it, and a test keeps both equal on every layer of the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pconv_lib.runtime import follow_free_cores
from pconv_lib.util.arg_checks import check_padding_mode
from pconv_lib.util.tensor_checks import check_layer_inputs, check_mask_values

__all__ = ["PartialConv2d", "check_mask_values", "zero_holes"]


def zero_holes(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with hole pixels (``mask == 0``) set to exactly 0, whatever they held (NaN, inf).

    ``x * mask`` would keep ``NaN * 0 = NaN``; ``torch.where`` selects instead. ``mask`` is
    (N, 1, H, W) or (N, C, H, W) and broadcasts; the gradient into ``x`` is 0 in holes.
    """
    return torch.where(mask != 0, x, torch.zeros((), dtype=x.dtype, device=x.device))


class PartialConv2d(nn.Conv2d):
    """Partial convolution: an ``nn.Conv2d`` that convolves only the valid pixels.

    Arguments are those of ``nn.Conv2d`` (``padding_mode`` must be ``"zeros"``: the padded border
    counts as hole). ``check_mask=False`` skips the input checks (the UNet checks once, at its entry).

    ``forward(x, mask=None) -> (out, new_mask)``:

    * ``x``: float ``(N, C_in, H, W)``; hole pixels may hold anything (NaN included).
    * ``mask``: float, exactly 0/1, ``(N, 1, H, W)`` (one value per pixel, ``sum(1) = k*k``) or
      ``(N, C_in, H, W)`` (one per channel, ``sum(1) = C_in/groups * k*k``). ``None``: every pixel
      is valid and only the zero-padded border is hole ("partial convolution padding", arXiv 1811.11718).
    * ``out``: ``(N, C_out, H', W')``, exactly 0 where the window saw no valid pixel.
    * ``new_mask``: 0/1 in ``out``'s dtype, ``(N, 1, H', W')``; ``(N, C_out, H', W')`` for a
      per-channel mask with ``groups > 1`` (each output channel gets its group's validity).
    """

    def __init__(self, *args, check_mask: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_padding_mode(self.padding_mode)
        self.check_mask = check_mask

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.check_mask else ", check_mask=False")

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        follow_free_cores()  # the CPU thread policy, when applied (pconv_lib.runtime)
        if self.check_mask:
            check_layer_inputs(self, x, mask)
        if mask is None:  # all valid: only the zero-padded border is hole
            mask = torch.ones_like(x[:, :1])
        count, window = self.count_valid(mask, x.dtype)  # sum(M) per output position, and sum(1)
        valid = count > 0  # the new mask
        ratio = window / count.clamp_min(1) * valid  # sum(1) / sum(M), and 0 where sum(M) = 0
        raw = F.conv2d(zero_holes(x, mask), self.weight, None, self.stride, self.padding, self.dilation,
                       self.groups)  # W^T (X * M), no bias yet
        out = raw * ratio.to(raw.dtype)
        if self.bias is not None:
            out = out + self.bias.to(raw.dtype).view(1, -1, 1, 1) * valid.to(raw.dtype)
        return out, valid.to(out.dtype)

    def count_valid(self, mask: Tensor, dtype: torch.dtype) -> tuple[Tensor, int]:
        """``(sum(M), sum(1))``: valid mask elements in each output window, and the window's size.

        A convolution of the mask with a ones kernel, in float32 (float64 for float64 inputs) and
        outside autograd and autocast, so the counts are exact integers in any precision. Shape
        ``(N, 1, H', W')``, or ``(N, C_out, H', W')`` for a per-channel mask with groups.
        """
        kh, kw = self.kernel_size
        work = torch.float64 if dtype == torch.float64 else torch.float32
        per_channel = mask.shape[1] > 1
        groups = self.groups if per_channel else 1
        in_per_group = self.in_channels // self.groups if per_channel else 1
        with torch.no_grad(), torch.autocast(mask.device.type, enabled=False):
            ones = torch.ones(groups, in_per_group, kh, kw, dtype=work, device=mask.device)
            count = F.conv2d(mask.detach().to(work), ones, None, self.stride, self.padding, self.dilation,
                             groups)
        if groups > 1:  # each output channel sees its group's mask channels
            count = count.repeat_interleave(self.out_channels // groups, dim=1)
        return count, in_per_group * kh * kw
