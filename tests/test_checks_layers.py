"""pconv_lib.checks, step 2 (the partial-convolution layer): right answers pass, stubs say 'not
implemented', typical wrong answers raise ExerciseCheckError with a plain-words explanation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pconv_lib import checks
from pconv_lib.layers import PartialConv2d


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny float64 convolutions: one thread avoids OpenMP stalls on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _stub(*args, **kwargs):
    raise NotImplementedError


def _count(mask, k, stride, padding, dilation):
    ones = torch.ones(1, 1, k, k, dtype=mask.dtype)
    return F.conv2d(mask, ones, None, stride, padding, dilation)


def library_mask_update(mask, kernel_size, stride=1, padding=0, dilation=1):
    """The mask path of PartialConv2d, through its public forward: out = count * ratio."""
    layer = PartialConv2d(1, 1, kernel_size, stride, padding, dilation, bias=False, dtype=mask.dtype)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        _, new_mask = layer(torch.ones_like(mask), mask)
    count = _count(mask, kernel_size, stride, padding, dilation)
    return kernel_size * kernel_size / count.clamp_min(1) * new_mask, new_mask


def library_forward(x, mask, weight, bias, stride=1, padding=0, dilation=1):
    c_out, c_in, k, _ = weight.shape
    layer = PartialConv2d(c_in, c_out, k, stride, padding, dilation, bias=bias is not None, dtype=x.dtype)
    parameters = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    # the layer's forward with these tensors as its parameters: gradients reach x, weight and bias
    return torch.func.functional_call(layer, parameters, (x, mask))


def _reference_pieces(x, mask, weight, stride, padding, dilation):
    k = weight.shape[-1]
    count = _count(mask, k, stride, padding, dilation)
    valid = (count > 0).to(x.dtype)
    ratio = k * k / count.clamp_min(1) * valid
    raw = F.conv2d(x * mask, weight, None, stride, padding, dilation)
    return raw, ratio, valid


# ---- check_mask_update ---------------------------------------------------------------------


def test_library_mask_update_passes(capsys):
    assert checks.check_mask_update(library_mask_update) is True
    assert capsys.readouterr().out.startswith(checks.PASS)


def test_mask_update_stub_is_not_implemented(capsys):
    assert checks.check_mask_update(_stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_mask_update_division_by_zero_is_explained():
    def unguarded(mask, k, stride=1, padding=0, dilation=1):
        count = _count(mask, k, stride, padding, dilation)
        return k * k / count, (count > 0).to(mask.dtype)

    with pytest.raises(checks.ExerciseCheckError, match=r"inf or NaN.*Clamp the count to at least 1"):
        checks.check_mask_update(unguarded)


def test_mask_update_ratio_in_holes_is_explained():
    def not_zeroed(mask, k, stride=1, padding=0, dilation=1):
        count = _count(mask, k, stride, padding, dilation)
        return k * k / count.clamp_min(1), (count > 0).to(mask.dtype)

    with pytest.raises(checks.ExerciseCheckError, match=r"no valid pixel.*must be 0 there"):
        checks.check_mask_update(not_zeroed)


def test_mask_update_non_binary_new_mask_is_explained():
    def count_as_mask(mask, k, stride=1, padding=0, dilation=1):
        count = _count(mask, k, stride, padding, dilation)
        return k * k / count.clamp_min(1) * (count > 0), count

    with pytest.raises(checks.ExerciseCheckError, match=r"exactly 0.0 and 1.0"):
        checks.check_mask_update(count_as_mask)


def test_mask_update_upside_down_ratio_is_explained():
    def upside_down(mask, k, stride=1, padding=0, dilation=1):
        count = _count(mask, k, stride, padding, dilation)
        valid = (count > 0).to(mask.dtype)
        return count / (k * k) * valid, valid

    with pytest.raises(checks.ExerciseCheckError, match=r"upside down"):
        checks.check_mask_update(upside_down)


def test_mask_update_ignoring_stride_is_explained():
    def no_stride(mask, k, stride=1, padding=0, dilation=1):
        return library_mask_update(mask, k, 1, padding, dilation)

    with pytest.raises(checks.ExerciseCheckError, match=r"shape .*stride, padding and dilation"):
        checks.check_mask_update(no_stride)


# ---- check_partial_conv_forward ------------------------------------------------------------


def test_library_forward_passes(capsys):
    assert checks.check_partial_conv_forward(library_forward) is True
    assert capsys.readouterr().out.startswith(checks.PASS)


def test_forward_stub_is_not_implemented(capsys):
    assert checks.check_partial_conv_forward(_stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_forward_stub_inside_mask_update_is_not_implemented(capsys):
    def forward_on_stub(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        _stub(mask)

    assert checks.check_partial_conv_forward(forward_on_stub) is False


def _with_bias(out, bias):
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def test_forward_bias_in_holes_is_explained():
    def bias_everywhere(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        raw, ratio, valid = _reference_pieces(x, mask, weight, stride, padding, dilation)
        return _with_bias(raw * ratio, bias), valid

    with pytest.raises(checks.ExerciseCheckError, match=r"exactly 0 where the window has no valid pixel"):
        checks.check_partial_conv_forward(bias_everywhere)


def test_forward_c_in_window_is_explained():
    def c_in_window(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        raw, ratio, valid = _reference_pieces(x, mask, weight, stride, padding, dilation)
        return _with_bias(raw * ratio * x.shape[1], bias) * valid, valid

    with pytest.raises(checks.ExerciseCheckError, match=r"single-channel mask the window has k\*k"):
        checks.check_partial_conv_forward(c_in_window)


def test_forward_keras_off_by_c_in_is_explained():
    def keras_ratio(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        raw, ratio, valid = _reference_pieces(x, mask, weight, stride, padding, dilation)
        return _with_bias(raw * ratio / x.shape[1], bias) * valid, valid

    with pytest.raises(checks.ExerciseCheckError, match=r"times too small.*off-by-C_in"):
        checks.check_partial_conv_forward(keras_ratio)


def test_forward_unmasked_input_is_explained():
    def unmasked(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        _, ratio, valid = _reference_pieces(x, mask, weight, stride, padding, dilation)
        raw = F.conv2d(x, weight, None, stride, padding, dilation)
        return _with_bias(raw * ratio, bias) * valid, valid

    with pytest.raises(checks.ExerciseCheckError, match=r"convolve x \* mask, not x"):
        checks.check_partial_conv_forward(unmasked)


def test_forward_bias_none_crash_is_explained():
    def always_bias(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        raw, ratio, valid = _reference_pieces(x, mask, weight, stride, padding, dilation)
        return (raw * ratio + bias.view(1, -1, 1, 1)) * valid, valid

    with pytest.raises(checks.ExerciseCheckError, match=r"crashed.*bias can be None"):
        checks.check_partial_conv_forward(always_bias)


def test_forward_division_by_zero_is_explained():
    def unguarded(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        k = weight.shape[-1]
        count = _count(mask, k, stride, padding, dilation)
        valid = (count > 0).to(x.dtype)
        raw = F.conv2d(x * mask, weight, None, stride, padding, dilation)
        return _with_bias(raw * (k * k / count), bias) * valid, valid

    with pytest.raises(checks.ExerciseCheckError, match=r"inf or NaN"):
        checks.check_partial_conv_forward(unguarded)
