"""Step 2: the partial-convolution layer (Liu et al., arXiv 1804.07723, eq. 1-2).

For every output position with window ``W``, bias ``b``, input patch ``X`` and valid-mask
patch ``M`` (mask convention everywhere: ``1 = valid pixel, 0 = hole``)::

    x' = W^T (X * M) * sum(1) / sum(M) + b    if sum(M) > 0
    x' = 0                                    otherwise (bias included)
    m' = 1 if sum(M) > 0 else 0

``sum(1)`` is the number of mask elements in the window: ``C_in/groups * kh * kw`` for a
per-channel mask (one mask value per input channel), ``kh * kw`` for a single-channel mask
(one value per pixel, shared by all channels). The mask is zero-padded like the input, so the
padded border always counts as hole.

``sum(M)`` is computed cheaply: the mask is summed over channels (per group) and convolved with
a single-channel ones kernel, in float32 (float64 for float64 inputs) and without autograd. A
single-channel ones-kernel convolution is a *sum pool*, so where the layer's geometry allows
(dilation 1, padding at most half the kernel: every UNet layer) it runs as
``F.avg_pool2d(..., divisor_override=1)``, which gives the same integers exactly and, on a GPU,
needs no cuDNN convolution (no autotuning, no workspace); otherwise as ``F.conv2d`` with a ones
kernel. It is never computed with a full ``C_in -> C_out`` ones convolution (that costs as much
as the convolution itself; see ``bench/layer_overhead.py``). The division is guarded,
``ratio = where(count > 0, win / count, 0)``, so that no mask (all hole, all valid) can produce
inf or NaN, in fp16 / bf16 too.

Hole pixels never matter: the input is zeroed where the mask is 0 with ``torch.where`` (not
multiplied by the mask), so NaN or inf in holes (a ``NaN``-marked missing region, say) give
the same output as zeros.

Two paths, one layer:

* **Eager** (what the notebooks teach and step through): readable steps, and a check that the
  mask holds only 0 and 1 (``check_mask``). That check needs ``bool(tensor.any())``: on a GPU
  it waits for the GPU (a host synchronisation), and under ``torch.compile`` it would split
  the graph (a "graph break").
* **Compiled** (``torch.compile(model)``): the same code, but the value check is skipped while
  compiling (``torch.compiler.is_compiling()``) and the ``mask=None`` cache is bypassed, so the
  whole forward is one graph with no host synchronisation; the compiler fuses the mask
  arithmetic (zeroing holes, ratio, bias, new mask) into a few kernels around the convolution.
  Validate masks once per batch on the data side instead: :func:`check_mask_values` (the
  :class:`pconv_lib.train.Trainer` does this on the CPU batch, before it reaches the GPU).
  Shape, dtype and device checks stay: they are static, so they cost nothing at run time.

With ``mask=None`` the layer is the authors' follow-up "partial convolution based padding"
(Liu et al., arXiv 1811.11718): the image is all valid and only the zero-padded border is hole.
The per-size ratio is cached, so repeated calls cost one convolution and one multiplication.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PartialConv2d", "check_mask_values"]

_CacheKey = tuple[int, int, torch.device, torch.dtype]


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


def _compiling() -> bool:
    """True while ``torch.compile`` / ``torch.export`` trace the code (dynamo)."""
    return torch.compiler.is_compiling()


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
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if bool(((mask != 0) & (mask != 1)).any()):
        raise ValueError(
            f"mask must be 1 = valid, 0 = hole; got values in {_describe_values(mask)}: "
            f"{_binary_hint(mask)} (or set check_mask=False to skip this check)"
        )


def _zero_holes(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with hole pixels (``mask == 0``) set to exactly 0, whatever they held (NaN, inf).

    ``x * mask`` would turn ``NaN * 0`` into NaN; ``torch.where`` selects instead. ``mask`` is
    (N, 1, H, W) or (N, C, H, W) and broadcasts; the result has ``x``'s dtype. The gradient
    into ``x`` is 0 in holes, as with the multiplication.
    """
    return torch.where(mask != 0, x, torch.zeros((), dtype=x.dtype, device=x.device))


class PartialConv2d(nn.Conv2d):
    """Partial convolution, a drop-in subclass of :class:`torch.nn.Conv2d`.

    Constructor arguments are those of ``nn.Conv2d`` (``stride``, ``padding`` - int, tuple,
    ``"same"`` or ``"valid"`` -, ``dilation``, ``groups``, ``bias``, ``device``, ``dtype``).
    ``padding_mode`` must be ``"zeros"``: the padded border is treated as hole, other padding
    modes would contradict that. ``check_mask`` (also a plain attribute, ``layer.check_mask =
    False``) turns off the check that mask values are exactly 0 or 1 (it costs one pass over
    the mask and, on a GPU, one synchronisation). Under ``torch.compile`` the check is skipped
    (see the module docstring: validate on the data side with :func:`check_mask_values`).

    ``forward(x, mask=None) -> (out, new_mask)``:

    * ``x``: floating tensor ``(N, C_in, H, W)`` of the layer's dtype (``layer.weight.dtype``;
      any floating dtype under ``torch.autocast``).
    * ``mask``: ``None``, or a floating tensor on ``x``'s device with values exactly 0.0/1.0
      (``1 = valid, 0 = hole``), either single-channel ``(N, 1, H, W)`` or per-channel
      ``(N, C_in, H, W)``. Its dtype may differ from ``x``'s (it is cast). No gradient flows
      into the mask. Hole pixels of ``x`` may hold anything, NaN and inf included: they are
      replaced by 0 before the convolution.
    * ``out``: ``(N, C_out, H', W')`` in ``x``'s dtype (or the autocast dtype), exactly 0
      (bias included) where the window holds no valid pixel.
    * ``new_mask``: binary, same dtype as ``out``. Shape ``(N, 1, H', W')`` (broadcastable
      against ``out``) for single-channel masks, for ``mask=None`` and for ``groups == 1``.
      For a per-channel mask with ``groups > 1`` the validity differs per group, so
      ``new_mask`` is ``(N, C_out, H', W')`` (each output channel gets its group's mask).

    ``mask=None`` means partial-convolution padding: every pixel is valid, only the padded
    border is hole. The ratio and new mask for each (H, W, device, dtype) are computed once
    and kept in ``self._border_cache`` (not part of the ``state_dict``; at most
    ``BORDER_CACHE_SIZE`` entries; ``clear_border_cache()`` empties it). When the border has
    no effect (``padding=0``) the layer is exactly ``nn.Conv2d``.

    Example::

        >>> layer = PartialConv2d(3, 8, 3, padding=1)
        >>> x, mask = torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16)
        >>> mask[:, :, 4:12, 4:12] = 0
        >>> out, new_mask = layer(x, mask)
        >>> out.shape, new_mask.shape
        (torch.Size([2, 8, 16, 16]), torch.Size([2, 1, 16, 16]))
    """

    BORDER_CACHE_SIZE = 16

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        check_mask: bool = True,
    ) -> None:
        if padding_mode != "zeros":
            raise ValueError(
                f"PartialConv2d needs padding_mode='zeros' (got {padding_mode!r}): the padded "
                "border is treated as hole, so reflect/replicate/circular padding would be "
                "ignored; pad the input yourself (F.pad) and pass a mask if you want it"
            )
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        self.check_mask = check_mask
        self._border_cache: OrderedDict[_CacheKey, tuple[Tensor | None, Tensor]] = OrderedDict()

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.check_mask else s + ", check_mask=False"

    def clear_border_cache(self) -> None:
        """Forget the cached ``mask=None`` ratios (they are rebuilt on the next call)."""
        self._border_cache.clear()

    # ------------------------------------------------------------------ validation
    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor (N, C, H, W), got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(
                f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}; "
                "for a single image use x[None] (or x.unsqueeze(0))"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"x has {x.shape[1]} channels but this layer expects in_channels="
                f"{self.in_channels} (x shape {tuple(x.shape)})"
            )
        w = self.weight
        if x.dtype != w.dtype and not _autocast_on(x.device.type):
            if not x.is_floating_point():
                fix = "use x.float() (and divide 0..255 pictures by 255)"
            else:
                fix = f"convert the input, x.to({w.dtype}), or the layer/model, .to({x.dtype})"
            raise TypeError(
                f"x is {x.dtype} but the layer's weights are {w.dtype}: {fix}; for mixed "
                "precision run the model under torch.autocast instead"
            )

    def _check_mask(self, x: Tensor, mask: Tensor, values: bool | None = None) -> None:
        """Type, device and shape of ``mask`` (static checks), then its values if ``values``
        (default: ``self.check_mask``; never while compiling: see the module docstring)."""
        if not isinstance(mask, Tensor):
            raise TypeError(
                f"mask must be a torch.Tensor or None, got {type(mask).__name__}; "
                "convert with torch.as_tensor(mask, dtype=torch.float32)"
            )
        if not mask.is_floating_point():
            hint = (
                "use mask.float() if True marks valid pixels, (~mask).float() if True marks holes"
                if mask.dtype == torch.bool
                else "use mask.float() (and divide by 255 if it holds 0/255)"
            )
            raise TypeError(
                f"mask must be a floating tensor with 1.0 = valid, 0.0 = hole; got {mask.dtype}: "
                + hint
            )
        if mask.device != x.device:
            raise ValueError(
                f"mask is on {mask.device} but x is on {x.device}: move it with mask.to(x.device)"
            )
        n, c, h, w = x.shape
        if (
            mask.dim() != 4
            or mask.shape[0] != n
            or tuple(mask.shape[2:]) != (h, w)
            or mask.shape[1] not in (1, c)
        ):
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match x shape {tuple(x.shape)}: "
                f"expected ({n}, 1, {h}, {w}) (one value per pixel) or ({n}, {c}, {h}, {w}) "
                "(one per channel); add a channel axis with mask[:, None] and repeat a single "
                "mask over the batch with mask.expand(N, -1, -1, -1)"
            )
        if values is None:
            values = self.check_mask
        if values and not _compiling():
            check_mask_values(mask)

    # ------------------------------------------------------------------ mask path
    def _mask_window(self, channel_sum: Tensor, groups: int) -> Tensor:
        """Count valid mask elements per window: a ones convolution of the channel sum.

        ``channel_sum``: ``(N, groups, H, W)`` (float32 or float64); returns the counts
        ``(N, groups, H', W')`` in the same dtype. Each channel is summed over each window on
        its own (a grouped ones convolution), which is a sum pool: ``avg_pool2d`` with
        ``divisor_override=1`` when pooling supports the geometry, else ``conv2d``.
        """
        kh, kw = self.kernel_size
        pool_padding = self._pool_padding()
        if pool_padding is not None:
            return F.avg_pool2d(
                channel_sum,
                (kh, kw),
                self.stride,
                pool_padding,
                ceil_mode=False,
                count_include_pad=True,
                divisor_override=1,
            )
        ones = torch.ones(groups, 1, kh, kw, device=channel_sum.device, dtype=channel_sum.dtype)
        return F.conv2d(
            channel_sum, ones, None, self.stride, self.padding, self.dilation, groups
        )

    def _pool_padding(self) -> tuple[int, int] | None:
        """The padding as an int pair if a sum pool can count the windows, else ``None``.

        Pooling has no dilation and pads at most half the kernel on each side.
        """
        if self.dilation != (1, 1):
            return None
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return (0, 0)
            if any(k % 2 == 0 for k in self.kernel_size):  # "same" pads unevenly for even kernels
                return None
            padding = tuple(k // 2 for k in self.kernel_size)
        else:
            padding = tuple(self.padding)
        if any(p > k // 2 for p, k in zip(padding, self.kernel_size, strict=True)):
            return None
        return padding  # type: ignore[return-value]

    def _ratio_and_mask(
        self, mask: Tensor, per_group: bool, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
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

    def _ratio_from_channel_sum(
        self, channel_sum: Tensor, win: int, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
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

    def _no_padding(self) -> bool:
        """True when the layer pads nothing, so no window ever reaches the (hole) border.

        With any padding the first window starts at index ``-padding`` and so reaches it.
        """
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return True
            return all(d * (k - 1) == 0 for d, k in zip(self.dilation, self.kernel_size))
        return all(p == 0 for p in self.padding)

    def _border(self, x: Tensor) -> tuple[Tensor | None, Tensor]:
        """Cached ``(ratio or None, new_mask)`` of shape ``(1, 1, H', W')`` for ``mask=None``.

        ``ratio`` is ``None`` when the layer has no padding (every window lies inside the
        image, the ratio is 1 everywhere); then the layer is exactly ``nn.Conv2d``.
        """
        if _compiling():  # no Python-side cache inside a graph; the compiler folds it instead
            ones = torch.ones(1, 1, x.shape[2], x.shape[3], device=x.device, dtype=torch.float32)
            ratio, valid = self._ratio_and_mask(ones, False, x.dtype)
            return (None if self._no_padding() else ratio.to(x.dtype), valid.to(x.dtype))
        key = (x.shape[2], x.shape[3], x.device, x.dtype)
        hit = self._border_cache.get(key)
        if hit is not None:
            self._border_cache.move_to_end(key)
            return hit
        ones = torch.ones(1, 1, x.shape[2], x.shape[3], device=x.device, dtype=torch.float32)
        ratio, valid = self._ratio_and_mask(ones, False, x.dtype)
        entry = (None if self._no_padding() else ratio.to(x.dtype), valid.to(x.dtype))
        self._border_cache[key] = entry
        while len(self._border_cache) > self.BORDER_CACHE_SIZE:
            self._border_cache.popitem(last=False)
        return entry

    # ------------------------------------------------------------------ forward
    def forward(  # type: ignore[override]
        self, x: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Partial convolution of ``x`` under ``mask``; returns ``(out, new_mask)``.

        See the class docstring for shapes, dtypes and the mask convention (1 = valid).
        """
        self._check_input(x)
        if mask is None:
            return self._forward_border(x)
        self._check_mask(x, mask)

        per_group = self.groups > 1 and mask.shape[1] > 1
        ratio, valid = self._ratio_and_mask(mask, per_group, x.dtype)
        return self._scaled_conv(_zero_holes(x, mask), ratio, valid, per_group)

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
        self._check_input(x_masked)
        if self.groups != 1:
            raise ValueError("forward_masked supports groups=1 only; call forward(x, mask)")
        n, _, h, w = x_masked.shape
        if tuple(mask_sum.shape) != (n, 1, h, w):
            raise ValueError(
                f"mask_sum must be (N, 1, H, W) = ({n}, 1, {h}, {w}), the mask summed over its "
                f"channels; got {tuple(mask_sum.shape)}"
            )
        kh, kw = self.kernel_size
        ratio, valid = self._ratio_from_channel_sum(mask_sum, self.in_channels * kh * kw, x_masked.dtype)
        return self._scaled_conv(x_masked, ratio, valid, False)

    def _scaled_conv(
        self, x_masked: Tensor, ratio: Tensor, valid: Tensor, per_group: bool
    ) -> tuple[Tensor, Tensor]:
        """``conv(x ⊙ M) · ratio + bias · new_mask``; returns ``(out, new_mask)``."""
        raw = F.conv2d(
            x_masked,
            self.weight,
            None,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
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
            raw = F.conv2d(
                x, self.weight, None, self.stride, self.padding, self.dilation, self.groups
            )
            out = raw.mul_(ratio.to(raw.dtype))
            if self.bias is not None:
                bias = self.bias.to(raw.dtype).view(1, -1, 1, 1)
                out = out.addcmul_(bias, valid.to(raw.dtype))
        # a fresh tensor, so that in-place edits by the caller cannot corrupt the cache
        new_mask = valid.to(out.dtype).expand(x.shape[0], -1, -1, -1).clone()
        return out, new_mask
