"""Step 2: the partial-convolution layer (pconv_lib.layers), checked against the paper's formula."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib.layers import PartialConv2d

D64 = torch.float64


# --------------------------------------------------------------------------- naive reference
def naive_pconv(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    mask: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Partial convolution written window by window from the paper's formula.

    Returns ``out (N, C_out, H', W')`` and the new mask per output channel ``(N, C_out, H', W')``.
    ``mask=None``: all pixels valid, single-channel (only the zero-padded border is hole).
    """
    n, c, h, w = x.shape
    c_out, c_group, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if mask is None:
        mask = torch.ones(n, 1, h, w, dtype=x.dtype)
    single = mask.shape[1] == 1
    xp = F.pad(x, (pw, pw, ph, ph))
    mp = F.pad(mask.to(x.dtype), (pw, pw, ph, ph))
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = torch.zeros(n, c_out, ho, wo, dtype=x.dtype)
    new = torch.zeros(n, c_out, ho, wo, dtype=x.dtype)
    per_out = c_out // groups
    for i in range(ho):
        rows = [i * sh + a * dh for a in range(kh)]
        for j in range(wo):
            cols = [j * sw + b * dw for b in range(kw)]
            xw = xp[:, :, rows][:, :, :, cols]  # (N, C, kh, kw)
            mw = mp[:, :, rows][:, :, :, cols]  # (N, 1 or C, kh, kw)
            for o in range(c_out):
                g = o // per_out
                cs = slice(g * c_group, (g + 1) * c_group)
                m_g = mw if single else mw[:, cs]
                sum1 = kh * kw if single else c_group * kh * kw
                sum_m = m_g.sum(dim=(1, 2, 3))
                value = (weight[o] * xw[:, cs] * m_g).sum(dim=(1, 2, 3))
                if bias is not None:
                    scaled = value * sum1 / sum_m.clamp_min(1) + bias[o]
                else:
                    scaled = value * sum1 / sum_m.clamp_min(1)
                ok = sum_m > 0
                out[:, o, i, j] = torch.where(ok, scaled, torch.zeros_like(scaled))
                new[:, o, i, j] = ok.to(x.dtype)
    return out, new


def random_mask(n: int, c: int, h: int, w: int, p_hole: float, gen: torch.Generator):
    return (torch.rand(n, c, h, w, generator=gen) >= p_hole).to(D64)


def make_layer(cin, cout, k, stride=1, padding=0, dilation=1, groups=1, bias=True, seed=0):
    torch.manual_seed(seed)
    layer = PartialConv2d(
        cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias
    ).to(D64)
    if bias:
        with torch.no_grad():
            layer.bias.uniform_(-2, 2)  # large enough that "bias leaked into a hole" shows
    return layer


def compare_to_naive(layer: PartialConv2d, x: torch.Tensor, mask: torch.Tensor | None):
    out, new_mask = layer(x, mask)
    ref, ref_mask = naive_pconv(
        x, layer.weight, layer.bias, mask, layer.stride, layer.padding, layer.dilation,
        layer.groups,
    )
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    assert new_mask.dim() == 4 and new_mask.shape[0] == x.shape[0]
    assert new_mask.shape[1] in (1, layer.out_channels)
    assert new_mask.shape[2:] == ref.shape[2:]
    assert bool(((new_mask == 0) | (new_mask == 1)).all())
    assert torch.equal(new_mask.expand_as(ref_mask), ref_mask)
    # hole-only windows: exactly 0, bias included
    assert bool((out[ref_mask == 0] == 0).all())
    return out, new_mask


CASES = [
    # cin, cout, k, stride, padding, dilation, groups, bias, per_channel
    (3, 4, 3, 1, 1, 1, 1, True, False),
    (3, 4, 3, 1, 1, 1, 1, True, True),
    (3, 5, 7, 2, 3, 1, 1, True, False),
    (4, 3, 5, 2, 2, 1, 1, False, True),
    (2, 3, 3, 1, 2, 2, 1, True, True),
    (3, 2, (3, 2), (2, 1), (1, 0), (1, 2), 1, True, True),
    (4, 6, 3, 1, 1, 1, 2, True, True),
    (4, 6, 3, 2, 1, 1, 2, True, False),
    (6, 6, 3, 1, 1, 1, 6, True, True),  # depthwise
    (6, 3, 2, 1, 0, 1, 3, True, True),
    (2, 2, 4, 3, 3, 1, 1, True, True),  # padding so large that some windows are all border
]


@pytest.mark.parametrize("case", CASES)
def test_matches_naive_window_loop(case):
    cin, cout, k, stride, padding, dilation, groups, bias, per_channel = case
    gen = torch.Generator().manual_seed(1)
    layer = make_layer(cin, cout, k, stride, padding, dilation, groups, bias)
    x = torch.randn(2, cin, 9, 8, generator=gen, dtype=D64)
    mask = random_mask(2, cin if per_channel else 1, 9, 8, 0.5, gen)
    mask[0, :, :5, :5] = 0  # a big hole, so that some windows see no valid pixel
    out, new_mask = compare_to_naive(layer, x, mask)
    if per_channel and groups > 1:
        assert new_mask.shape[1] == cout  # validity differs per group
    else:
        assert new_mask.shape[1] == 1
    compare_to_naive(layer, x, None)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 2),
    groups=st.sampled_from([1, 1, 2]),
    cin_per_group=st.integers(1, 3),
    cout_per_group=st.integers(1, 3),
    k=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    pad=st.integers(0, 3),
    h=st.integers(1, 8),
    w=st.integers(1, 8),
    per_channel=st.booleans(),
    p_hole=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    bias=st.booleans(),
    use_mask=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_matches_naive(
    n, groups, cin_per_group, cout_per_group, k, stride, dilation, pad, h, w, per_channel,
    p_hole, bias, use_mask, seed,
):
    cin, cout = groups * cin_per_group, groups * cout_per_group
    extent = dilation * (k - 1) + 1
    if h + 2 * pad < extent or w + 2 * pad < extent:
        h, w = extent, extent
    gen = torch.Generator().manual_seed(seed)
    layer = make_layer(cin, cout, k, stride, pad, dilation, groups, bias, seed=seed)
    x = torch.randn(n, cin, h, w, generator=gen, dtype=D64)
    mask = random_mask(n, cin if per_channel else 1, h, w, p_hole, gen) if use_mask else None
    compare_to_naive(layer, x, mask)


# --------------------------------------------------------------------------- all valid
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("stride,dilation,groups", [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_all_valid_mask_without_padding_is_plain_conv(per_channel, stride, dilation, groups):
    layer = make_layer(4, 6, 3, stride=stride, padding=0, dilation=dilation, groups=groups)
    conv = torch.nn.Conv2d(4, 6, 3, stride=stride, dilation=dilation, groups=groups).to(D64)
    conv.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, 11, 10, dtype=D64)
    mask = torch.ones(2, 4 if per_channel else 1, 11, 10, dtype=D64)
    out, new_mask = layer(x, mask)
    expected = conv(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert bool((new_mask == 1).all())
    # mask=None with no padding: no border effect, the layer computes nn.Conv2d (the fast
    # variant bit for bit: tests/test_layers_fast.py)
    out_none, mask_none = layer(x)
    torch.testing.assert_close(out_none, expected, rtol=0, atol=1e-12)
    assert bool((mask_none == 1).all())


def _valid_taps(size: int, out_size: int, k: int, s: int, p: int, d: int) -> torch.Tensor:
    """Per output index, how many of the k taps fall inside [0, size) (analytic, 1-D)."""
    return torch.tensor(
        [sum(0 <= i * s - p + a * d < size for a in range(k)) for i in range(out_size)],
        dtype=D64,
    )


@pytest.mark.parametrize("k,stride,padding,dilation", [(3, 1, 1, 1), (7, 2, 3, 1), (3, 2, 2, 2)])
def test_all_valid_with_padding_rescales_border_only(k, stride, padding, dilation):
    layer = make_layer(3, 5, k, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(2, 3, 12, 9, dtype=D64)
    raw = F.conv2d(x, layer.weight, None, stride, padding, dilation)
    rows = _valid_taps(12, raw.shape[2], k, stride, padding, dilation)
    cols = _valid_taps(9, raw.shape[3], k, stride, padding, dilation)
    ratio = (k * k) / (rows[:, None] * cols[None, :])
    expected = raw * ratio + layer.bias.view(1, -1, 1, 1)
    out_none, mask_none = layer(x)
    torch.testing.assert_close(out_none, expected, rtol=1e-12, atol=1e-12)
    assert bool((mask_none == 1).all())
    # an all-valid mask gives the same (the padded border of a given mask is hole too)
    for c in (1, 3):
        out_mask, _ = layer(x, torch.ones(2, c, 12, 9, dtype=D64))
        torch.testing.assert_close(out_mask, expected, rtol=1e-12, atol=1e-12)
    # interior windows are the plain convolution
    plain = F.conv2d(x, layer.weight, layer.bias, stride, padding, dilation)
    torch.testing.assert_close(out_none[:, :, rows == k][:, :, :, cols == k],
                               plain[:, :, rows == k][:, :, :, cols == k], rtol=0, atol=1e-12)


def test_same_padding_string():
    layer = make_layer(3, 4, 3, padding="same")
    ref = make_layer(3, 4, 3, padding=1)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(1, 3, 7, 6, dtype=D64)
    mask = random_mask(1, 1, 7, 6, 0.4, torch.Generator().manual_seed(0))
    for m in (mask, None):
        a, am = layer(x, m)
        b, bm = ref(x, m)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        assert torch.equal(am, bm)


# --------------------------------------------------------------------------- holes
@pytest.mark.parametrize("per_channel", [False, True])
def test_hole_windows_are_exactly_zero_bias_included(per_channel):
    layer = make_layer(3, 4, 3, padding=1)
    with torch.no_grad():
        layer.bias.fill_(5.0)
    x = torch.randn(1, 3, 12, 12, dtype=D64) + 100.0  # large values in the hole too
    mask = torch.ones(1, 3 if per_channel else 1, 12, 12, dtype=D64)
    mask[:, :, 2:10, 2:10] = 0
    out, new_mask = layer(x, mask)
    assert bool((new_mask[0, 0, 3:9, 3:9] == 0).all())
    assert bool((out[:, :, 3:9, 3:9] == 0).all())
    assert bool((out[new_mask.expand_as(out) == 0] == 0).all())
    assert bool((new_mask[0, 0, 0, :] == 1).all())

    all_hole = torch.zeros_like(mask)
    out, new_mask = layer(x, all_hole)
    assert bool((out == 0).all()) and bool((new_mask == 0).all())


def test_partially_valid_per_channel_mask_counts_channels():
    """Per-channel masks use sum(1) = C_in*k*k: one valid channel in a window still counts."""
    layer = make_layer(2, 1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.tensor([[[[3.0]], [[7.0]]]], dtype=D64)
    mask = torch.tensor([[[[1.0]], [[0.0]]]], dtype=D64)
    out, new_mask = layer(x, mask)
    assert out.item() == pytest.approx(3.0 * 2 / 1)
    assert new_mask.item() == 1.0


# --------------------------------------------------------------------------- autograd
def test_gradcheck():
    gen = torch.Generator().manual_seed(3)
    for per_channel, groups in ((False, 1), (True, 1), (True, 2)):
        layer = make_layer(2, 2, 3, padding=1, groups=groups)
        x = torch.randn(1, 2, 5, 4, generator=gen, dtype=D64, requires_grad=True)
        mask = random_mask(1, 2 if per_channel else 1, 5, 4, 0.4, gen)
        w = layer.weight.detach().clone().requires_grad_(True)
        b = layer.bias.detach().clone().requires_grad_(True)

        def f(x, w, b, mask=mask, layer=layer):
            return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x, mask))[0]

        assert torch.autograd.gradcheck(f, (x, w, b))
    layer = make_layer(2, 3, 3, stride=2, padding=1)
    x = torch.randn(1, 2, 5, 5, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x)[0], (x,))


def test_no_gradient_into_mask_path():
    layer = PartialConv2d(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 6, 6, requires_grad=True)
    mask = torch.ones(1, 1, 6, 6)
    mask[..., 2:4, 2:4] = 0
    out, new_mask = layer(x, mask)
    assert not new_mask.requires_grad
    out.sum().backward()
    assert x.grad is not None and bool((x.grad[..., 2:4, 2:4] == 0).all())


# --------------------------------------------------------------------------- low precision
def _masks(c: int):
    gen = torch.Generator().manual_seed(5)
    single_valid = torch.zeros(2, 1, 16, 16)
    single_valid[:, :, 7, 7] = 1  # ratio C_in*k*k / 1: the largest possible
    return {
        "all_hole": torch.zeros(2, c, 16, 16),
        "all_valid": torch.ones(2, c, 16, 16),
        "random": (torch.rand(2, c, 16, 16, generator=gen) > 0.6).float(),
        "one_valid_pixel": single_valid.expand(2, c, 16, 16).contiguous(),
        "none": None,
    }


def _fp16_conv_runs() -> bool:
    try:
        F.conv2d(torch.ones(1, 1, 3, 3, dtype=torch.float16), torch.ones(1, 1, 1, 1,
                 dtype=torch.float16))
        return True
    except RuntimeError:
        return False


LOW = [torch.bfloat16] + ([torch.float16] if _fp16_conv_runs() else [])


@pytest.mark.parametrize("dtype", LOW)
@pytest.mark.parametrize("per_channel", [False, True])
def test_low_precision_is_finite(dtype, per_channel):
    torch.manual_seed(0)
    layer32 = PartialConv2d(64, 8, 3, padding=1)
    layer = PartialConv2d(64, 8, 3, padding=1).to(dtype)
    layer.load_state_dict({k: v.to(dtype) for k, v in layer32.state_dict().items()})
    x = torch.rand(2, 64, 16, 16)
    for name, mask in _masks(64 if per_channel else 1).items():
        with torch.no_grad():
            out, new_mask = layer(x.to(dtype), mask)
            ref, ref_mask = layer32(x, mask)
        assert out.dtype == dtype and new_mask.dtype == dtype, name
        assert bool(torch.isfinite(out).all()), name
        assert torch.equal(new_mask.float(), ref_mask), name
        tol = 0.02 * ref.abs().max().item() + 0.05
        torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=tol)


def test_autocast_bfloat16_is_finite():
    torch.manual_seed(0)
    layer = PartialConv2d(64, 8, 3, padding=1)
    x = torch.rand(2, 64, 16, 16)
    for name, mask in _masks(1).items():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, new_mask = layer(x, mask)
        assert out.dtype == torch.bfloat16, name
        assert bool(torch.isfinite(out).all()), name
        assert bool(((new_mask == 0) | (new_mask == 1)).all()), name


# --------------------------------------------------------------------------- tracing
def test_jit_trace():
    layer = PartialConv2d(3, 4, 3, padding=1, check_mask=False)
    x = torch.randn(2, 3, 8, 8)
    m1 = (torch.rand(2, 1, 8, 8) > 0.5).float()
    m2 = (torch.rand(2, 1, 8, 8) > 0.5).float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace is deprecated in 2.9+
        traced = torch.jit.trace(layer, (x, m1))
    for m in (m1, m2):
        a, am = traced(x, m)
        b, bm = layer(x, m)
        torch.testing.assert_close(a, b)
        assert torch.equal(am, bm)


def test_torch_export_with_mask():
    """The mask path exports (the value check is data dependent: switch it off to export)."""
    layer = PartialConv2d(3, 4, 3, padding=1, check_mask=False)
    x = torch.randn(2, 3, 8, 8)
    m1 = (torch.rand(2, 1, 8, 8) > 0.5).float()
    m2 = (torch.rand(2, 1, 8, 8) > 0.5).float()
    exported = torch.export.export(layer, (x, m1)).module()
    a, am = exported(x, m2)
    b, bm = layer(x, m2)
    torch.testing.assert_close(a, b)
    assert torch.equal(am, bm)


# --------------------------------------------------------------------------- errors
def test_padding_mode_must_be_zeros():
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        PartialConv2d(3, 4, 3, padding=1, padding_mode="reflect")


@pytest.mark.parametrize(
    "mask_shape,match",
    [
        ((3, 1, 8, 8), "does not match"),  # batch
        ((2, 1, 8, 7), "does not match"),  # spatial
        ((2, 2, 8, 8), "one per channel"),  # channels neither 1 nor C
        ((2, 8, 8), r"mask\[:, None\]"),  # missing channel axis
    ],
)
def test_bad_mask_shape(mask_shape, match):
    layer = PartialConv2d(3, 4, 3, padding=1)
    with pytest.raises(ValueError, match=match):
        layer(torch.randn(2, 3, 8, 8), torch.ones(mask_shape))


def test_bad_input_shape():
    layer = PartialConv2d(3, 4, 3, padding=1)
    with pytest.raises(ValueError, match=r"x\[None\]"):
        layer(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="in_channels=3"):
        layer(torch.randn(1, 4, 8, 8))


@pytest.mark.parametrize(
    "values,match",
    [
        ((0.0, 255.0), r"got values in \{0, 255\}: divide by 255"),
        ((0.0, 0.5, 1.0), r"\{0, 0.5, 1\}.*threshold"),
        ((-1.0, 1.0), "negative"),
        ((0.0, float("nan")), "NaN"),
    ],
)
def test_non_binary_mask_values(values, match):
    layer = PartialConv2d(3, 4, 3, padding=1)
    mask = torch.tensor(values).repeat(64)[:64].view(1, 1, 8, 8)
    with pytest.raises(ValueError, match=match):
        layer(torch.randn(1, 3, 8, 8), mask)
    layer.check_mask = False  # the check can be switched off
    layer(torch.randn(1, 3, 8, 8), mask)
    unchecked = PartialConv2d(3, 4, 3, padding=1, check_mask=False)
    unchecked(torch.randn(1, 3, 8, 8), mask)
    assert "check_mask=False" in repr(unchecked)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_mask_dtype_must_be_floating(dtype):
    layer = PartialConv2d(3, 4, 3, padding=1)
    with pytest.raises(TypeError, match="floating"):
        layer(torch.randn(1, 3, 8, 8), torch.ones(1, 1, 8, 8, dtype=dtype))
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer(torch.randn(1, 3, 8, 8), [[1.0]])


def test_mask_device_must_match():
    layer = PartialConv2d(3, 4, 3, padding=1)
    mask = torch.ones(1, 1, 8, 8, device="meta")
    with pytest.raises(ValueError, match=r"mask.to\(x.device\)"):
        layer(torch.randn(1, 3, 8, 8), mask)


def test_mask_dtype_may_differ_from_input():
    layer = make_layer(3, 4, 3, padding=1)
    x = torch.randn(1, 3, 8, 8, dtype=D64)
    mask = random_mask(1, 1, 8, 8, 0.5, torch.Generator().manual_seed(0))
    a, _ = layer(x, mask.float())
    b, _ = layer(x, mask)
    assert a.dtype == D64
    assert torch.equal(a, b)


# --------------------------------------------------------------------------- non-finite holes
@pytest.mark.parametrize("fill", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("per_channel", [False, True])
def test_nan_or_inf_in_holes_give_the_zero_hole_output(fill, per_channel):
    torch.manual_seed(0)
    layer = PartialConv2d(3, 4, 3, padding=1)
    x = torch.rand(2, 3, 9, 9)
    mask = (torch.rand(2, 3 if per_channel else 1, 9, 9) > 0.5).float()
    zeroed = torch.where(mask.bool(), x, 0.0)
    poisoned = torch.where(mask.bool(), x, fill)
    out, new_mask = layer(poisoned, mask)
    ref, ref_mask = layer(zeroed, mask)
    assert bool(torch.isfinite(out).all())
    assert torch.equal(out, ref) and torch.equal(new_mask, ref_mask)
    xg = poisoned.clone().requires_grad_(True)
    layer(xg, mask)[0].sum().backward()
    assert bool(torch.isfinite(xg.grad).all()) and bool((xg.grad[~mask.bool().expand_as(xg)] == 0).all())


@pytest.mark.parametrize("x_dtype, w_dtype", [(torch.float64, torch.float32), (torch.float32, torch.float64)])
def test_dtype_mismatch_is_one_clear_message(x_dtype, w_dtype):
    layer = PartialConv2d(3, 4, 3, padding=1).to(w_dtype)
    x = torch.rand(1, 3, 8, 8, dtype=x_dtype)
    for mask in (torch.ones(1, 1, 8, 8), None):
        with pytest.raises(TypeError, match=r"x is torch.float\d+ but the layer's weights are") as info:
            layer(x, mask)
        assert "Double" not in str(info.value) and ".to(" in str(info.value)


def test_dtype_may_differ_under_autocast():
    layer = PartialConv2d(3, 4, 3, padding=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(torch.rand(1, 3, 8, 8).bfloat16(), torch.ones(1, 1, 8, 8))
    assert out.dtype == torch.bfloat16
