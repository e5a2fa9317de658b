"""pconv_lib.checks verify the contract before the values, and name a cause only when it is confirmed.

Issue 19: each wrong answer below once passed a check or got a hint about another mistake (or
is a new class of mistake). The checks must answer with ExerciseCheckError whose message names
the real cause; a hint that does not apply must not appear. The last tests feed every check
answers of the wrong type and require a message, never a crash inside the check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pconv_lib import checks, losses, masks, tiling
from pconv_lib.layers import PartialConv2d


def _raises(check, function, pattern, absent=()):
    with pytest.raises(checks.ExerciseCheckError, match=pattern) as caught:
        check(function)
    for text in absent:
        assert text not in str(caught.value), f"misleading hint {text!r} in: {caught.value}"
    return str(caught.value)


# ---- exercise 01 ----------------------------------------------------------------------------


def test_hole_ratio_that_flips_the_mask_in_place():
    def flips(mask):
        mask ^= 1  # counts holes as ones, and leaves the caller's mask inverted
        return float(mask.mean())

    _raises(checks.check_hole_ratio, flips, "changed its input `mask` in place")


def test_hole_ratio_returning_an_array():
    _raises(checks.check_hole_ratio, lambda m: np.mean(m == 0, keepdims=True),
            "should return a float, got array of shape")


def test_bucket_numbers_from_one_are_named():
    def one_based(ratio):
        bucket = masks.hole_ratio_bucket(ratio)
        return None if bucket is None else bucket + 1

    _raises(checks.check_hole_ratio_bucket, one_based, "numbered from 1: bucket numbers start at 0")


def test_bucket_unrelated_mistake_gets_no_interval_hint():
    _raises(checks.check_hole_ratio_bucket, lambda r: int(r * 10),
            r"hole_ratio_bucket\(0.0\) returned 0, expected None\.$", absent=("half-open",))


def test_bucket_as_float_is_named():
    def as_float(ratio):
        bucket = masks.hole_ratio_bucket(ratio)
        return None if bucket is None else float(bucket)

    _raises(checks.check_hole_ratio_bucket, as_float, "as an int")


def test_stroke_of_value_two_is_not_called_255():
    import cv2

    def two(canvas, rng, max_size):
        cv2.circle(canvas, (int(rng.integers(0, 128)), int(rng.integers(0, 96))), 5, 2, -1)

    _raises(checks.check_stroke_drawer, two, r"found \{0, 2\}; draw with colour 1$", absent=("255",))


# ---- exercise 02 ----------------------------------------------------------------------------


def _count(mask, k, stride, padding, dilation):
    ones = torch.ones(1, 1, k, k, dtype=mask.dtype)
    return F.conv2d(mask, ones, None, stride, padding, dilation)


def _mask_update(guard="clamp1", order="ratio-first", as_numpy=False, ratio_dtype=None, kernel_dtype=None):
    def mask_ratio_and_update(mask, k, stride=1, padding=0, dilation=1):
        ones = torch.ones(1, 1, k, k, dtype=kernel_dtype or mask.dtype)
        count = F.conv2d(mask, ones, None, stride, padding, dilation)
        valid = (count > 0).to(mask.dtype)
        if guard == "clamp1":
            ratio = k * k / count.clamp_min(1) * valid
        elif guard == "clamp-eps":
            ratio = k * k / count.clamp_min(1e-8) * valid
        else:  # a tiny epsilon: invisible in float64
            ratio = k * k / (count + 1e-12) * valid
        if ratio_dtype is not None:
            ratio = ratio.to(ratio_dtype)
        result = (ratio, valid) if order == "ratio-first" else (valid, ratio)
        return tuple(r.numpy() for r in result) if as_numpy else result

    return mask_ratio_and_update


@pytest.mark.parametrize("guard", ["clamp-eps", "tiny-eps"])
def test_division_guard_that_breaks_in_float16(guard):
    _raises(checks.check_mask_update, _mask_update(guard=guard),
            r"in float16, although it is finite for every float64 mask.*clamp_min\(1\)")


def test_mask_update_swapped_return_order():
    _raises(checks.check_mask_update, _mask_update(order="mask-first"),
            r"swapped order.*\(ratio, new_mask\)", absent=("not the count",))


def test_mask_update_returning_numpy():
    _raises(checks.check_mask_update, _mask_update(as_numpy=True), "is a NumPy array.*return a torch tensor")


def test_mask_update_ratio_in_another_dtype():
    _raises(checks.check_mask_update, _mask_update(ratio_dtype=torch.float32),
            "ratio of mask_ratio_and_update has dtype torch.float32, expected torch.float64")


def test_mask_update_float32_kernel_is_confirmed_by_a_float32_call():
    _raises(checks.check_mask_update, _mask_update(kernel_dtype=torch.float32),
            "crashed.*It runs when the inputs have another float dtype, but crashes with these")


def test_mask_update_float64_kernel_crashes_only_on_the_float16_mask():
    _raises(checks.check_mask_update, _mask_update(kernel_dtype=torch.float64),
            r"in float16: RuntimeError.*It runs when the inputs have another float dtype")


def test_new_mask_is_the_count():
    def count_as_mask(mask, k, stride=1, padding=0, dilation=1):
        ratio, _ = _mask_update()(mask, k, stride, padding, dilation)
        return ratio, _count(mask, k, stride, padding, dilation)

    _raises(checks.check_mask_update, count_as_mask, "It is the count of valid pixels itself")


def _forward(bias_shape=(1, -1, 1, 1), in_place=False, order="out-first"):
    def partial_conv_forward(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        ratio, new_mask = _mask_update()(mask, weight.shape[-1], stride, padding, dilation)
        if in_place:
            x *= mask
        else:
            x = x * mask
        out = F.conv2d(x, weight, None, stride, padding, dilation) * ratio
        if bias is not None:
            out = out + bias.view(*bias_shape)
        out = out * new_mask
        return (out, new_mask) if order == "out-first" else (new_mask, out)

    return partial_conv_forward


def test_forward_bias_on_the_batch_axis_is_not_a_stride_problem():
    _raises(checks.check_partial_conv_forward, _forward(bias_shape=(-1, 1, 1, 1)),
            r"added along the batch axis.*\(1, C_out, 1, 1\)", absent=("stride, padding and dilation",))


def test_forward_bias_on_the_width_axis_without_a_crash():
    # every case has C_out != W', so broadcasting fails: confirmed by reproducing the error
    _raises(checks.check_partial_conv_forward, _forward(bias_shape=(1, 1, 1, -1)),
            r"crashed.*raises exactly this error.*\(1, C_out, 1, 1\)")


def test_forward_modifying_x_in_place():
    _raises(checks.check_partial_conv_forward, _forward(in_place=True), "changed its input `x` in place")


def test_forward_swapped_return_order():
    _raises(checks.check_partial_conv_forward, _forward(order="mask-first"),
            r"swapped order.*\(out, new_mask\)")


def test_forward_unrelated_crash_gets_no_guessed_hint():
    def crashes(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        raise RuntimeError("expected scalar type Double but found Float; pad should be smaller")

    message = _raises(checks.check_partial_conv_forward, crashes, "crashed for")
    for hint in ("bias can be None", "float32 inputs", "max pooling", "(1, C_out, 1, 1)"):
        assert hint not in message


def test_mask_path_dropped_padding_names_the_argument():
    def no_padding(mask, k, stride=1, padding=0, dilation=1):
        return _mask_update()(mask, k, stride, 0, dilation)

    _raises(checks.check_mask_update, no_padding, r"with padding=0 \(the default\).*pass stride, padding")


# ---- exercise 03 ----------------------------------------------------------------------------


def _concat(x, mask, skip_x, skip_mask):
    up, up_mask = F.interpolate(x, scale_factor=2), F.interpolate(mask, scale_factor=2)
    return torch.cat([up, skip_x], 1), torch.cat(
        [up_mask.expand(-1, up.shape[1], -1, -1), skip_mask.expand(-1, skip_x.shape[1], -1, -1)], 1
    )


def test_concat_skip_swapped_return_order_is_not_called_bilinear():
    _raises(checks.check_concat_skip, lambda *a: _concat(*a)[::-1], r"swapped order.*\(features, mask\)",
            absent=("bilinear", "nearest"))


def test_concat_skip_modifying_x_in_place():
    def in_place(x, mask, skip_x, skip_mask):
        result = _concat(x, mask, skip_x, skip_mask)
        x.zero_()
        return result

    _raises(checks.check_concat_skip, in_place, "changed its input `x` in place")


def test_concat_skip_returning_numpy():
    _raises(checks.check_concat_skip, lambda *a: tuple(t.numpy() for t in _concat(*a)), "is a NumPy array")


def test_concat_skip_along_the_batch_axis():
    def batch_axis(x, mask, skip_x, skip_mask):
        up = F.interpolate(x, scale_factor=2)
        return torch.cat([up, skip_x], 0), mask

    _raises(checks.check_concat_skip, batch_axis, r"along dim=0 raises exactly this error.*dim=1")


def test_concat_skip_mask_with_other_values_gets_no_bilinear_hint():
    def halves(x, mask, skip_x, skip_mask):
        features, cat_mask = _concat(x, mask, skip_x, skip_mask)
        return features, cat_mask * 0.5

    _raises(checks.check_concat_skip, halves, "must hold only 0 and 1", absent=("bilinear",))


def test_decoder_block_swapped_return_order():
    class DecoderBlock(torch.nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv = PartialConv2d(in_channels, out_channels, 3, padding=1, bias=False)
            self.bn = torch.nn.BatchNorm2d(out_channels)

        def forward(self, x, mask, skip_x, skip_mask):
            h, new_mask = self.conv(*_concat(x, mask, skip_x, skip_mask))
            return new_mask, F.leaky_relu(self.bn(h), 0.2)

    _raises(checks.check_decoder_block, DecoderBlock, "swapped order")


# ---- exercise 04 ----------------------------------------------------------------------------


def test_gram_matrix_as_numpy_gets_a_message_not_an_attribute_error():
    def as_numpy(features):
        flat = features.reshape(*features.shape[:2], -1).numpy()
        return flat @ flat.transpose(0, 2, 1) / flat[0].size

    _raises(checks.check_gram_matrix, as_numpy, "is a NumPy array.*return a torch tensor")


def test_gram_matrix_ftf_is_named():
    def ftf(features):
        n, c, h, w = features.shape
        flat = features.reshape(n, c, h * w)
        return flat.transpose(1, 2) @ flat / (c * h * w)

    _raises(checks.check_gram_matrix, ftf, "you computed FᵀF")


def test_gram_matrix_modifying_features_in_place():
    def in_place(features):
        features /= features.shape[1] * features.shape[2] * features.shape[3]
        return losses.gram_matrix(features) * features.shape[1] * features.shape[2] * features.shape[3]

    _raises(checks.check_gram_matrix, in_place, "changed its input `features` in place")


def test_tv_loss_as_python_number():
    _raises(checks.check_total_variation_loss,
            lambda comp, mask: losses.total_variation_loss(comp, mask).item(),
            r"returned a Python number.*\.item\(\)")


def test_tv_loss_modifying_comp_in_place():
    def in_place(comp, mask):
        value = losses.total_variation_loss(comp, mask)
        comp.mul_(mask)
        return value

    _raises(checks.check_total_variation_loss, in_place, "changed its input `comp` in place")


def test_total_loss_writing_into_the_terms_dict():
    def writes(terms):
        terms["total"] = (terms["valid"] + 6 * terms["hole"] + 0.05 * terms["perceptual"]
                          + 120 * (terms["style_out"] + terms["style_comp"]) + 0.1 * terms["tv"])
        return terms["total"]

    _raises(checks.check_total_loss, writes, "changed the dict `terms`")


# ---- exercise 05 ----------------------------------------------------------------------------


def test_blend_window_as_numpy():
    _raises(checks.check_blend_window, lambda t, o: tiling.blend_window(t, o).numpy(), "is a NumPy array")


def test_blend_window_in_float64():
    _raises(checks.check_blend_window, lambda t, o: tiling.blend_window(t, o).double(),
            "has dtype torch.float64, expected torch.float32")


def test_blend_window_ramp_of_the_wrong_length():
    def half_length(tile, overlap):  # a linear ramp over overlap // 2 pixels, then 1
        span = max(overlap // 2, 1)
        ramp = torch.ones(tile)
        rise = (torch.arange(span) + 0.5) / span
        if overlap:
            ramp[:span] = rise
            ramp[tile - span:] = rise.flip(0)
        return torch.outer(ramp, ramp)

    _raises(checks.check_blend_window, half_length, r"reaches 1 at pixel 8.*spans 8 pixels instead of 16")


# ---- wrong types never crash a check --------------------------------------------------------

_CHECKS = [
    checks.check_hole_ratio, checks.check_hole_ratio_bucket, checks.check_stroke_drawer,
    checks.check_circle_drawer, checks.check_mask_update, checks.check_partial_conv_forward,
    checks.check_concat_skip, checks.check_gram_matrix, checks.check_total_variation_loss,
    checks.check_total_loss, checks.check_tile_grid, checks.check_blend_window,
]
_ANSWERS = {
    "None": None, "a string": "abc", "an int": 3, "an empty list": [],
    "a 1-element tensor": torch.zeros(1),
    "a NumPy array": np.zeros((2, 2)), "a tuple of strings": ("a", "b"), "a dict": {"a": 1},
    "a pair of wrong-shaped tensors": (torch.zeros(2), torch.zeros(2, 2)),
    "a wrong-shaped 4-D tensor": torch.zeros(1, 1, 2, 2),
    "a pair of NumPy arrays": (np.zeros((1, 1, 2, 2)), np.ones((1, 1, 2, 2))),
    "a pair of booleans": (True, False),
    "NaN": float("nan"),
}


@pytest.mark.parametrize("check", _CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("answer", list(_ANSWERS), ids=list(_ANSWERS))
def test_wrong_types_get_a_message_never_a_crash(check, answer):
    value = _ANSWERS[answer]
    try:
        result = check(lambda *args, **kwargs: value)
    except checks.ExerciseCheckError as error:
        assert str(error) and "\n" not in str(error).strip()
    else:  # a stroke function returns nothing: an answer that is ignored may pass, but never crash
        assert check in (checks.check_stroke_drawer, checks.check_circle_drawer) and result is not None


def test_decoder_block_that_is_not_a_module_gets_a_message():
    with pytest.raises(checks.ExerciseCheckError):
        checks.check_decoder_block(lambda i, o: "not a module")


def test_decoder_block_constructor_hint_only_when_the_signature_is_wrong():
    class ThreeArguments(torch.nn.Module):
        def __init__(self, in_channels, skip_channels, out_channels):
            super().__init__()

    class BrokenInside(torch.nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv = PartialConv2d(in_channels, out_channels, "3")  # a TypeError of another kind

    _raises(checks.check_decoder_block, ThreeArguments, "cannot be called with two arguments")
    _raises(checks.check_decoder_block, BrokenInside, r"DecoderBlock\(10, 5\) failed",
            absent=("two arguments",))


def test_decoder_block_returning_the_mask_it_gave_the_convolution():
    class DecoderBlock(torch.nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv = PartialConv2d(in_channels, out_channels, 3, padding=1, bias=False)
            self.bn = torch.nn.BatchNorm2d(out_channels)

        def forward(self, x, mask, skip_x, skip_mask):
            features, cat_mask = _concat(x, mask, skip_x, skip_mask)
            h, _ = self.conv(features, cat_mask)
            return F.leaky_relu(self.bn(h), 0.2), cat_mask

    _raises(checks.check_decoder_block, DecoderBlock, "the returned mask is the mask the partial convolution "
            "received")


def test_tile_grid_as_a_set_or_with_float_corners():
    def as_set(height, width, tile, overlap):
        return set(tiling.tile_grid(height, width, tile, overlap))

    def floats(height, width, tile, overlap):
        return [(float(t), float(l)) for t, l in tiling.tile_grid(height, width, tile, overlap)]

    _raises(checks.check_tile_grid, as_set, r"should return a list of \(top, left\) pairs, got set")
    _raises(checks.check_tile_grid, floats, r"pairs of ints, found tuple of 2 \(float 0.0, float 0.0\)")


def test_nan_results_never_pass():
    def nan_tv(comp, mask):
        return losses.total_variation_loss(comp, mask) * float("nan")

    def nan_total(terms):
        return sum(terms.values()) * float("nan")

    _raises(checks.check_total_variation_loss, nan_tv, "gives nan.*must be a finite number")
    _raises(checks.check_total_loss, nan_total, "gives nan.*must be a finite number")
    _raises(checks.check_hole_ratio, lambda mask: float("nan"), "gives nan.*finite number")


def test_duplicate_tiles_get_the_flush_hint_only_when_that_is_the_mistake():
    def always_last(height, width, tile, overlap):
        def starts(length):
            return list(range(0, length - tile + 1, tile - overlap)) + [length - tile]

        return [(t, left) for t in starts(height) for left in starts(width)]

    def twice(height, width, tile, overlap):
        return tiling.tile_grid(height, width, tile, overlap) * 2

    _raises(checks.check_tile_grid, always_last, "listed twice; your tiles are the regular grid plus")
    _raises(checks.check_tile_grid, twice, r"tile \(0, 0\) is listed twice$")
