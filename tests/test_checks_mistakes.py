"""pconv_lib.checks: the plausible mistakes of exercises 01, 02, 03 and 05 never pass silently.

Each wrong learner function below is one mistake a learner made (or could make) while solving
an exercise; its check must raise ExerciseCheckError with a message that leads to the fix, never
a bare library error and never a pass.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pconv_lib import checks, masks
from pconv_lib.layers import PartialConv2d

# --------------------------------------------------------------------------------------------
# Exercise 01: the filled circle
# --------------------------------------------------------------------------------------------


def _circle(thickness=-1, low=3, high_offset=1, centre="anywhere", radius_scale=1.0):
    def draw_random_circle(canvas, rng, max_size):
        height, width = canvas.shape
        if centre == "anywhere":
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        else:  # centres kept max_size away from the border
            x = int(rng.integers(max_size, width - max_size))
            y = int(rng.integers(max_size, height - max_size))
        radius = int(int(rng.integers(low, max_size + high_offset)) * radius_scale)
        cv2.circle(canvas, (x, y), radius, 1, thickness)

    return draw_random_circle


def test_library_circle_passes(capsys):
    assert checks.check_circle_drawer(masks.draw_random_circle)
    assert checks.PASS in capsys.readouterr().out


def test_circle_stub_is_not_implemented(capsys):
    def stub(canvas, rng, max_size):
        raise NotImplementedError

    assert checks.check_circle_drawer(stub) is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "draw, message",
    [
        (_circle(thickness=1), "outline of a circle.*thickness"),
        (_circle(thickness=2), "outline of a circle.*thickness"),
        (_circle(high_offset=0), r"never draws radius max_size=12.*never returns `high`"),
        (_circle(low=2), r"radii from 2 to 12.*3..max_size"),
        (_circle(radius_scale=0.5), "radius \\(not the diameter\\)"),
        (_circle(low=12), r"radii \[12\].*random"),
        (_circle(centre="inside"), "no circle reached the .* border: the centre can be anywhere"),
        (masks.draw_random_line, "not a square: draw a circle"),
    ],
    ids=["outline-1", "outline-2", "off-by-one-top", "radius-2", "diameter", "fixed-radius",
         "centre-inside", "a-line"],
)
def test_circle_mistakes_are_explained(draw, message):
    with pytest.raises(checks.ExerciseCheckError, match=message):
        checks.check_circle_drawer(draw)


def test_swapped_centre_and_inverted_canvas_are_explained():
    def swapped(canvas, rng, max_size):  # x drawn from the height and y from the width
        height, width = canvas.shape
        x, y = int(rng.integers(0, height)), int(rng.integers(0, width))
        cv2.circle(canvas, (x, y), int(rng.integers(3, max_size + 1)), 1, -1)

    def inverted(canvas, rng, max_size):
        canvas[:] = 1
        _circle()(np.zeros_like(canvas), rng, max_size)
        cv2.circle(canvas, (40, 40), 5, 0, -1)

    with pytest.raises(checks.ExerciseCheckError, match=r"\(x, y\) = \(column, row\)"):
        checks.check_circle_drawer(swapped)
    with pytest.raises(checks.ExerciseCheckError, match="draw the stroke with value 1"):
        checks.check_circle_drawer(inverted)


# --------------------------------------------------------------------------------------------
# Exercise 02: the mask path and the forward pass
# --------------------------------------------------------------------------------------------


def _mask_path(kind="right"):
    def mask_ratio_and_update(mask, k, stride=1, padding=0, dilation=1):
        ones = torch.ones(1, 1, k, k, dtype=mask.dtype)
        count = F.conv2d(mask, ones, None, stride, padding, dilation)
        valid = (count > 0).to(mask.dtype)
        if kind == "maxpool":
            return k * k / count.clamp_min(1) * valid, F.max_pool2d(mask, k, stride, padding, dilation)
        if kind == "epsilon":
            return k * k / (count + 1e-8) * valid, valid
        ratio = k * k / count.clamp_min(1) * valid
        if kind == "k":
            return ratio / k, valid
        if kind == "bool":
            return ratio, count > 0
        if kind == "all-valid":
            return ratio, torch.ones_like(valid)
        return ratio, valid

    return mask_ratio_and_update


@pytest.mark.parametrize(
    "kind, message",
    [
        ("epsilon", "epsilon added to the count.*clamping"),
        ("k", "k = 3 as the window size.*k\\*k = 9"),
        ("bool", "dtype torch.bool.*to\\(mask.dtype\\)"),
        ("all-valid", "1 everywhere.*must stay holes"),
        ("maxpool", "F.max_pool2d with these arguments raises exactly this error: max pooling cannot"),
    ],
)
def test_mask_path_mistakes_are_explained(kind, message):
    assert checks.check_mask_update(_mask_path()) is True
    with pytest.raises(checks.ExerciseCheckError, match=message):
        checks.check_mask_update(_mask_path(kind))


def _forward(kind):
    right = _mask_path()

    def partial_conv_forward(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        ratio, new_mask = right(mask, weight.shape[-1], stride, padding, dilation)
        out = F.conv2d(x * mask, weight, None, stride, padding, dilation) * ratio
        if bias is not None:
            out = out + (bias if kind == "bias-shape" else bias.view(1, -1, 1, 1))
        return out * new_mask, (mask if kind == "input-mask" else new_mask)

    return partial_conv_forward


@pytest.mark.parametrize(
    "kind, message",
    [("bias-shape", r"shape \(1, C_out, 1, 1\)"), ("input-mask", "is the input mask, unchanged")],
)
def test_forward_mistakes_are_explained(kind, message):
    with pytest.raises(checks.ExerciseCheckError, match=message):
        checks.check_partial_conv_forward(_forward(kind))


# --------------------------------------------------------------------------------------------
# Exercise 03: concat_skip and the decoder block
# --------------------------------------------------------------------------------------------


def _concat_skip(x, mask, skip_x, skip_mask):
    up, up_mask = F.interpolate(x, scale_factor=2), F.interpolate(mask, scale_factor=2)
    return torch.cat([up, skip_x], 1), torch.cat(
        [up_mask.expand(-1, up.shape[1], -1, -1), skip_mask.expand(-1, skip_x.shape[1], -1, -1)], 1
    )


def test_concat_without_upsampling_is_explained_not_a_raw_error():
    def no_upsample(x, mask, skip_x, skip_mask):
        return torch.cat([x, skip_x], 1), mask

    with pytest.raises(checks.ExerciseCheckError, match="crashed: RuntimeError.*Upsample x and its mask"):
        checks.check_concat_skip(no_upsample)


def test_wrong_mask_channels_are_explained():
    def skip_mask_everywhere(x, mask, skip_x, skip_mask):
        features, _ = _concat_skip(x, mask, skip_x, skip_mask)
        return features, skip_mask[:, :1].expand(-1, features.shape[1], -1, -1)

    def first_skip_channel_only(x, mask, skip_x, skip_mask):
        features, masks_ = _concat_skip(x, mask, skip_x, skip_mask[:, :1])
        return features, masks_

    with pytest.raises(checks.ExerciseCheckError, match="must all be x's own mask, upsampled by 2"):
        checks.check_concat_skip(skip_mask_everywhere)
    with pytest.raises(checks.ExerciseCheckError, match="must be skip_mask .*its own\n?.*channels"):
        checks.check_concat_skip(first_skip_channel_only)


def _block(kind):
    class DecoderBlock(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv = PartialConv2d(in_channels, out_channels, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(out_channels)
            self.act = nn.LeakyReLU(0.2)

        def forward(self, x, mask, skip_x, skip_mask):
            up, up_mask = F.interpolate(x, scale_factor=2), F.interpolate(mask, scale_factor=2)
            if kind == "no-concat":
                features, cat_mask = up, up_mask
            elif kind == "mask-not-expanded":
                features, cat_mask = torch.cat([up, skip_x], 1), torch.cat([up_mask, skip_mask], 1)
            else:
                features, cat_mask = _concat_skip(x, mask, skip_x, skip_mask)
            h, new_mask = self.conv(features, cat_mask)
            return self.act(self.bn(h)), new_mask

    return DecoderBlock


@pytest.mark.parametrize(
    "kind, message",
    [
        ("no-concat", "crashed: ValueError: x has 6 channels.*concat_skip"),
        ("mask-not-expanded", "crashed: ValueError: mask shape.*concat_skip"),
    ],
)
def test_decoder_block_library_errors_point_at_concat_skip(kind, message):
    checks.check_decoder_block(_block("right"))
    with pytest.raises(checks.ExerciseCheckError, match=message) as caught:
        checks.check_decoder_block(_block(kind))
    assert "mask.expand(N" not in str(caught.value)  # not the library's advice for its own users


# --------------------------------------------------------------------------------------------
# Exercise 05: the blending window
# --------------------------------------------------------------------------------------------


def test_ramp_that_jumps_to_one_is_explained():
    def blend_window(tile, overlap):  # the ramp is stretched over 2 * overlap, then cut off
        ramp = torch.ones(tile)
        i = torch.arange(overlap)
        rise = torch.sin(torch.pi / 2 * (i + 0.5) / (2 * overlap)) ** 2 if overlap else i
        ramp[:overlap] = rise
        ramp[tile - overlap :] = torch.minimum(ramp[tile - overlap :], rise.flip(0))
        return torch.outer(ramp, ramp)

    with pytest.raises(checks.ExerciseCheckError, match="reaches only 0.475 at pixel 15.*then jumps to 1"):
        checks.check_blend_window(blend_window)
