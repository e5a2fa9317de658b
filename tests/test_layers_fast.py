"""FastPartialConv2d (pconv_lib.layers_fast): the same numbers as the readable PartialConv2d, faster.

Equality first — on every layer of the paper's UNet (512x512, depth 8, and with the decoder's
per-channel masks), on random geometries (hypothesis), in the UNet as a whole — then what makes it
fast: a sum-pool count, the cached border, the decoder's ``forward_masked`` shortcut.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib.layers import PartialConv2d
from pconv_lib.layers_fast import FastPartialConv2d
from pconv_lib.model import PConvUNet, architecture


def _pair(*args, **kwargs) -> tuple[PartialConv2d, FastPartialConv2d]:
    readable = PartialConv2d(*args, **kwargs)
    fast = FastPartialConv2d(*args, **kwargs)
    fast.load_state_dict(readable.state_dict())
    return readable, fast


@pytest.mark.parametrize("spec", architecture(depth=8, width=1.0), ids=lambda s: s.name)
def test_every_paper_layer_gives_the_same_output(spec) -> None:
    """Each of the 16 layers of the paper's 512x512 UNet, at a small size: the encoder with a
    single-channel mask, the decoder with its per-channel mask (upsampled part + skip part)."""
    torch.manual_seed(0)
    readable, fast = _pair(spec.in_channels, spec.out_channels, spec.kernel_size, stride=spec.stride,
                           padding=spec.kernel_size // 2, bias=not spec.batch_norm)
    side = 16
    x = torch.randn(2, spec.in_channels, side, side)
    if spec.name.startswith("enc"):
        mask = (torch.rand(2, 1, side, side) > 0.4).float()
    else:  # decoder: the first channels carry one mask, the rest (the skip) another
        first = spec.in_channels // 2 if spec.name != f"dec{16}" else spec.in_channels - 3
        m1 = (torch.rand(2, 1, side, side) > 0.3).float().expand(-1, first, -1, -1)
        m2 = (torch.rand(2, 1, side, side) > 0.6).float().expand(-1, spec.in_channels - first, -1, -1)
        mask = torch.cat([m1, m2], 1)
    with torch.no_grad():
        out_r, mask_r = readable(x, mask)
        out_f, mask_f = fast(x, mask)
    torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-5)
    assert torch.equal(mask_f, mask_r)
    if not spec.name.startswith("enc"):  # the decoder's shortcut: the mask summed over channels
        with torch.no_grad():
            out_s, mask_s = fast.forward_masked(x * mask, mask.sum(1, keepdim=True))
        torch.testing.assert_close(out_s, out_r, rtol=1e-5, atol=1e-5)
        assert torch.equal(mask_s, mask_r)


@settings(max_examples=30, deadline=None)
@given(
    k=st.sampled_from([1, 2, 3, 4, 5]),
    stride=st.integers(1, 3),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    per_channel=st.booleans(),
    with_mask=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_same_output_on_random_geometries(k, stride, padding, dilation, groups, per_channel, with_mask, seed):
    torch.manual_seed(seed)
    readable, fast = _pair(4, 6, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                           dtype=torch.float64)
    x = torch.randn(2, 4, 12, 11, dtype=torch.float64)  # larger than any dilated kernel drawn
    mask = (torch.rand(2, 4 if per_channel else 1, 12, 11) > 0.5).double() if with_mask else None
    with torch.no_grad():
        out_r, mask_r = readable(x, mask)
        out_f, mask_f = fast(x, mask)
    torch.testing.assert_close(out_f, out_r, rtol=0, atol=1e-12)
    assert torch.equal(mask_f.expand_as(mask_r), mask_r) or torch.equal(mask_f, mask_r.expand_as(mask_f))


def test_the_fast_unet_equals_the_readable_one() -> None:
    torch.manual_seed(1)
    readable = PConvUNet(depth=4, width=0.25).eval()
    fast = PConvUNet(depth=4, width=0.25, fast=True).eval()
    fast.load_state_dict(readable.state_dict())
    assert isinstance(fast.decoder[0].conv, FastPartialConv2d)
    assert type(readable.decoder[0].conv) is PartialConv2d
    image = torch.rand(2, 3, 32, 48)
    mask = (torch.rand(2, 1, 32, 48) > 0.4).float()
    with torch.no_grad():
        out_r, mask_r = readable(image, mask)
        out_f, mask_f = fast(image, mask)
    torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-5)
    assert torch.equal(mask_f, mask_r)


def test_all_valid_without_padding_is_nn_conv2d_bit_for_bit() -> None:
    layer = FastPartialConv2d(4, 6, 3, padding=0).double()
    conv = torch.nn.Conv2d(4, 6, 3).double()
    conv.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, 11, 10, dtype=torch.float64)
    out, new_mask = layer(x)
    assert torch.equal(out, conv(x)) and bool((new_mask == 1).all())


def test_mask_path_uses_a_single_channel_ones_kernel(monkeypatch):
    """The window count is a sum pool where pooling fits the geometry, else a ones convolution
    with one input channel per group; never a C_in -> C_out ones convolution."""
    seen, pooled = [], []
    original_conv, original_pool = F.conv2d, F.avg_pool2d

    def spy(inp, weight, *args, **kwargs):
        seen.append(tuple(weight.shape))
        return original_conv(inp, weight, *args, **kwargs)

    def pool_spy(inp, *args, **kwargs):
        pooled.append(inp.shape[1])
        return original_pool(inp, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", spy)
    monkeypatch.setattr(F, "avg_pool2d", pool_spy)
    layer = FastPartialConv2d(8, 16, 3, padding=1)
    x = torch.randn(1, 8, 10, 10)
    layer(x, torch.ones(1, 8, 10, 10))
    layer(x, torch.ones(1, 1, 10, 10))
    grouped = FastPartialConv2d(8, 16, 3, padding=1, groups=4)
    grouped(x, torch.ones(1, 8, 10, 10))
    assert pooled == [1, 1, 4] and [s for s in seen if s[1] == 1] == []
    # dilation (or padding beyond half the kernel) falls back to a single-channel ones conv
    seen.clear()
    dilated = FastPartialConv2d(8, 16, 3, padding=2, dilation=2)
    dilated(x, torch.ones(1, 8, 10, 10))
    wide = FastPartialConv2d(8, 16, 3, padding=2)
    wide(x, torch.ones(1, 1, 10, 10))
    assert [s for s in seen if s[1] == 1] == [(1, 1, 3, 3), (1, 1, 3, 3)]
    assert all(s[0] in (1, 16) for s in seen)


@pytest.mark.parametrize(
    "k, stride, padding", [(7, 2, 3), (5, 2, 2), (3, 1, 1), (3, 2, 0), (4, 2, 1), (3, 1, "same")]
)
def test_sum_pool_count_equals_ones_convolution(k, stride, padding):
    layer = FastPartialConv2d(2, 3, k, stride=stride, padding=padding)
    mask = (torch.rand(3, 2, 19, 17, generator=torch.Generator().manual_seed(k)) > 0.4).float()
    channel_sum = mask.sum(1, keepdim=True)
    pad = (k // 2, k // 2) if padding == "same" else (padding, padding)
    expected = F.conv2d(channel_sum, torch.ones(1, 1, k, k), None, stride, pad)
    assert torch.equal(layer._mask_window(channel_sum, 1), expected)


def test_border_cache_is_reused():
    layer = FastPartialConv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 16, 16)
    calls = []
    original = layer._ratio_and_mask

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    layer._ratio_and_mask = counting
    out1, mask1 = layer(x)
    assert len(calls) == 1 and len(layer._border_cache) == 1
    key = (16, 16, x.device, x.dtype)
    entry = layer._border_cache[key]
    out2, mask2 = layer(x)
    assert len(calls) == 1, "second call with mask=None recomputed the ratio"
    assert layer._border_cache[key] is entry
    assert torch.equal(out1, out2) and torch.equal(mask1, mask2)
    mask2.zero_()  # the returned mask is the caller's: editing it must not touch the cache
    _, mask3 = layer(x)
    assert bool((mask3 == 1).all())
    layer(torch.randn(1, 3, 8, 12))
    assert len(calls) == 2 and len(layer._border_cache) == 2
    layer(x.clone())  # same (H, W, device, dtype): no recomputation
    assert len(calls) == 2
    assert all("cache" not in k for k in layer.state_dict())
    for i in range(FastPartialConv2d.BORDER_CACHE_SIZE + 3):
        layer(torch.randn(1, 3, 4, 4 + i))
    assert len(layer._border_cache) == FastPartialConv2d.BORDER_CACHE_SIZE
    layer.clear_border_cache()
    assert len(layer._border_cache) == 0


def test_forward_masked_equals_forward_with_a_per_channel_mask():
    torch.manual_seed(5)
    layer = FastPartialConv2d(6, 4, 3, stride=1, padding=1).double()
    x = torch.rand(2, 6, 9, 11, dtype=torch.float64)
    mask = (torch.rand(2, 6, 9, 11) > 0.5).double()
    mask[:, :, 2:7, 3:9] = 0  # windows with no valid pixel at all
    expected, expected_mask = layer(x, mask)
    got, got_mask = layer.forward_masked(x * mask, mask.sum(1, keepdim=True))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert torch.equal(got_mask, expected_mask)


def test_forward_masked_rejects_a_full_mask_and_groups():
    layer = FastPartialConv2d(4, 4, 3, padding=1)
    with pytest.raises(ValueError, match="summed over its channels"):
        layer.forward_masked(torch.rand(1, 4, 5, 5), torch.ones(1, 4, 5, 5))
    grouped = FastPartialConv2d(4, 4, 3, padding=1, groups=2)
    with pytest.raises(ValueError, match="groups=1"):
        grouped.forward_masked(torch.rand(1, 4, 5, 5), torch.ones(1, 1, 5, 5))


