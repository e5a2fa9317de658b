"""pconv_lib.checks: the catalogue of issue 26 and the classes of mistakes it stands for.

Part 1 is data: each plausible wrong answer a learner tried (issue 26's trial and this issue's
work), the check it goes to, and the message it must produce; "passed before" in a comment marks
the ones that passed the checks before issue 26. Part 2 lists right answers written differently
from the library (they must pass). Part 3 holds each class of mistake by a test over generated
inputs, not one example: gradients cut from the graph, holes on two opposite borders, the real
objects the library passes, precision in the messages, and the context of a crash.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from pconv_lib import checks, losses, masks, tiling
from pconv_lib.checks import _common
from pconv_lib.checks.step4_losses import _tv_masks
from pconv_lib.layers import PartialConv2d

# --------------------------------------------------------------------------------------------
# Right answers (the library's algorithms, written as a learner would)
# --------------------------------------------------------------------------------------------


def mask_update(mask, k, stride=1, padding=0, dilation=1):
    ones = torch.ones(1, 1, k, k, dtype=mask.dtype)
    count = F.conv2d(mask, ones, None, stride, padding, dilation)
    valid = (count > 0).to(mask.dtype)
    return k * k / count.clamp_min(1) * valid, valid


def forward(x, mask, weight, bias, stride=1, padding=0, dilation=1):
    ratio, new_mask = mask_update(mask, weight.shape[-1], stride, padding, dilation)
    out = F.conv2d(x * mask, weight, None, stride, padding, dilation) * ratio
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out * new_mask, new_mask


def concat_skip(x, mask, skip_x, skip_mask):
    up, up_mask = F.interpolate(x, scale_factor=2), F.interpolate(mask, scale_factor=2)
    return torch.cat([up, skip_x], 1), torch.cat(
        [up_mask.expand(-1, up.shape[1], -1, -1), skip_mask.expand(-1, skip_x.shape[1], -1, -1)], 1
    )


def decoder_block(cut=None):
    class DecoderBlock(nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv = PartialConv2d(in_channels, out_channels, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(out_channels)

        def forward(self, x, mask, skip_x, skip_mask):
            features, cat_mask = concat_skip(x, mask, skip_x, skip_mask)
            if cut == "no_grad":
                with torch.no_grad():
                    h, new_mask = self.conv(features, cat_mask)
                    return F.leaky_relu(self.bn(h), 0.2), new_mask
            h, new_mask = self.conv(features, cat_mask)
            if cut == "detach":
                h = h.detach()
            return F.leaky_relu(self.bn(h), 0.2), new_mask

    return DecoderBlock


def gram(features):
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def tv(comp, mask):
    region = F.max_pool2d(1 - mask, kernel_size=3, stride=1, padding=1)
    dx = (comp[..., :, 1:] - comp[..., :, :-1]).abs() * region[..., :, 1:] * region[..., :, :-1]
    dy = (comp[..., 1:, :] - comp[..., :-1, :]).abs() * region[..., 1:, :] * region[..., :-1, :]
    return (dx.sum() + dy.sum()) / comp.numel()


WEIGHTS = {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style_out": 120.0, "style_comp": 120.0, "tv": 0.1}


def total(terms):
    return sum(weight * terms[name] for name, weight in WEIGHTS.items())


# --------------------------------------------------------------------------------------------
# Part 1: the catalogue of wrong answers
# --------------------------------------------------------------------------------------------


def _no_grad(function):
    def wrapped(*args):
        with torch.no_grad():
            return function(*args)

    wrapped.__name__ = function.__name__
    return wrapped


def hole_ratio_float16(mask):  # float16 holds 3 significant digits
    return float(np.mean(mask == 0, dtype=np.float16))


def hole_ratio_valid(mask):
    return float(mask.mean())


def hole_ratio_numel(mask):  # a torch method on a NumPy array
    return float((mask == 0).sum() / mask.numel())


def hole_ratio_square(mask):  # assumes a square mask
    return float((mask == 0).sum() / mask.shape[0] ** 2)


def forward_x_detached(x, mask, weight, bias, stride=1, padding=0, dilation=1):
    return forward(x.detach(), mask, weight, bias, stride, padding, dilation)


def forward_weight_data(x, mask, weight, bias, stride=1, padding=0, dilation=1):
    return forward(x, mask, weight.data, bias, stride, padding, dilation)


def gram_numpy_roundtrip(features):
    flat = features.detach().numpy().reshape(*features.shape[:2], -1)
    result = np.einsum("ncp,ndp->ncd", flat, flat) / np.prod(features.shape[1:])
    return torch.from_numpy(result).to(features.dtype)


def gram_detached(features):
    return gram(features.detach())


def tv_roll(comp, mask):  # wrap-around: the last column meets the first
    region = F.max_pool2d(1 - mask, kernel_size=3, stride=1, padding=1)
    dx = (comp - torch.roll(comp, 1, -1)).abs() * region * torch.roll(region, 1, -1)
    dy = (comp - torch.roll(comp, 1, -2)).abs() * region * torch.roll(region, 1, -2)
    return (dx.sum() + dy.sum()) / comp.numel()


def tv_roll_rows_only(comp, mask):
    region = F.max_pool2d(1 - mask, kernel_size=3, stride=1, padding=1)
    dx = (comp[..., :, 1:] - comp[..., :, :-1]).abs() * region[..., :, 1:] * region[..., :, :-1]
    dy = (comp - torch.roll(comp, -1, -2)).abs() * region * torch.roll(region, -1, -2)
    return (dx.sum() + dy.sum()) / comp.numel()


def tv_item(comp, mask):
    return torch.tensor(tv(comp, mask).item(), dtype=comp.dtype)


def total_stack(terms):  # relies on exactly six entries
    return torch.stack(list(terms.values())) @ torch.tensor(list(WEIGHTS.values()))


def total_items(terms):  # every entry of the dict, including 'total' when there is one
    return sum(WEIGHTS[name] * value for name, value in terms.items())


def total_zip(terms):  # relies on the order of the entries
    return sum(w * v for w, v in zip(WEIGHTS.values(), terms.values()))


def total_with_total(terms):  # adds the library's own sum as well
    return sum(value * WEIGHTS.get(name, 1.0) for name, value in terms.items())


def total_first_six(terms):
    values = list(terms.values())[:6]
    return sum(w * v for w, v in zip(WEIGHTS.values(), values))


def tile_grid_ceil(height, width, tile, overlap):  # starts i * step for a fixed count, clamped
    step = tile - overlap

    def starts(length):
        return [min(i * step, length - tile) for i in range(math.ceil(length / step))]

    return [(t, left) for t in starts(height) for left in starts(width)]


def tile_grid_no_flush(height, width, tile, overlap):  # the regular grid only
    step = tile - overlap
    return [(t, left) for t in range(0, height - tile + 1, step) for left in range(0, width - tile + 1, step)]


def tile_grid_no_overlap(height, width, tile, overlap):  # steps of a whole tile, then flush
    def starts(length):
        regular = list(range(0, length - tile + 1, tile))
        return regular + ([length - tile] if regular[-1] != length - tile else [])

    return [(t, left) for t in starts(height) for left in starts(width)]


def circle_ring(canvas, rng, max_size):  # an outline 3 pixels thick
    import cv2

    height, width = canvas.shape
    centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    cv2.circle(canvas, centre, int(rng.integers(3, max_size + 1)), 1, 3)


def blend_window_linspace(tile, overlap):  # a ramp from exactly 0
    ramp = torch.ones(tile)
    if overlap:
        ramp[:overlap] = torch.linspace(0, 1, overlap)
        ramp[tile - overlap :] = torch.linspace(1, 0, overlap)
    return torch.outer(ramp, ramp)


NO_GRADIENT = "no gradient flows"
CATALOGUE = [
    # exercise 01
    pytest.param(checks.check_hole_ratio, hole_ratio_float16,
                 r"hole_ratio for .*: got 0\.\d+, expected 0\.\d+ \(difference", id="ratio-float16"),
    pytest.param(checks.check_hole_ratio, hole_ratio_valid, "You counted valid pixels", id="ratio-valid"),
    pytest.param(checks.check_hole_ratio, hole_ratio_numel,
                 r"crashed for an all-valid mask: AttributeError: 'numpy.ndarray' object has no attribute "
                 r"'numel'\. The call was hole_ratio_numel\(mask=array \(8, 8\) uint8\), and it failed in "
                 r"hole_ratio_numel, line \d+: `return float", id="ratio-crash-context"),
    pytest.param(checks.check_hole_ratio, hole_ratio_square, r"hole_ratio for random mask",
                 id="ratio-square"),
    # exercise 02 (passed before: all three)
    pytest.param(checks.check_partial_conv_forward, _no_grad(forward),
                 NO_GRADIENT + r" from its result back to `x` and `weight` and `bias`", id="forward-no-grad"),
    pytest.param(checks.check_partial_conv_forward, forward_x_detached,
                 NO_GRADIENT + r" from its result back to `x` \(its gradient is missing\)",
                 id="forward-x-detached"),
    pytest.param(checks.check_partial_conv_forward, forward_weight_data,
                 NO_GRADIENT + r" from its result back to `weight`", id="forward-weight-data"),
    # exercise 03 (passed before: all three)
    pytest.param(checks.check_concat_skip, _no_grad(concat_skip), NO_GRADIENT + r" .*`x` and `skip_x`",
                 id="concat-no-grad"),
    pytest.param(checks.check_decoder_block, decoder_block("no_grad"), NO_GRADIENT, id="decoder-no-grad"),
    pytest.param(checks.check_decoder_block, decoder_block("detach"),
                 NO_GRADIENT + r" from its result back to `x`", id="decoder-detached"),
    # exercise 04 (passed before: all of them)
    pytest.param(checks.check_gram_matrix, _no_grad(gram), NO_GRADIENT, id="gram-no-grad"),
    pytest.param(checks.check_gram_matrix, gram_detached, NO_GRADIENT, id="gram-detached"),
    pytest.param(checks.check_gram_matrix, gram_numpy_roundtrip, NO_GRADIENT, id="gram-numpy-roundtrip"),
    pytest.param(checks.check_total_variation_loss, tv_roll,
                 r"\(a hole on every border\): got .*wrap around the image: torch\.roll", id="tv-roll"),
    pytest.param(checks.check_total_variation_loss, tv_roll_rows_only,
                 r"\(a hole on every border\): got .*expected", id="tv-roll-rows-only"),
    pytest.param(checks.check_total_variation_loss, _no_grad(tv), NO_GRADIENT, id="tv-no-grad"),
    pytest.param(checks.check_total_variation_loss, tv_item, NO_GRADIENT, id="tv-item"),
    pytest.param(checks.check_total_loss, total_stack,
                 r"crashed for the dict PConvLoss returns .*RuntimeError: .*"
                 r"The call was total_stack\(terms=dict "
                 r"with keys 'valid', .*, 'total'\).*has a 7th key, 'total'", id="total-stack"),
    pytest.param(checks.check_total_loss, total_items, r"KeyError: 'total'.*has a 7th key, 'total'",
                 id="total-items"),
    pytest.param(checks.check_total_loss, total_zip,
                 r"in reverse order: got .*whatever entry sits at that position",
                 id="total-zip"),
    pytest.param(checks.check_total_loss, total_with_total, r"also added terms\['total'\]",
                 id="total-plus-total"),
    pytest.param(checks.check_total_loss, total_first_six, r"reverse order: got", id="total-first-six"),
    # exercise 05
    pytest.param(checks.check_tile_grid, tile_grid_ceil, r"listed twice|gives \d+ tiles", id="tiles-ceil"),
    pytest.param(checks.check_tile_grid, tile_grid_no_flush,
                 r"are not covered by any tile; the last tile of each row and column must end flush",
                 id="tiles-no-flush"),
    pytest.param(checks.check_tile_grid, tile_grid_no_overlap, r"step between tiles|gives \d+ tiles",
                 id="tiles-no-overlap"),
    pytest.param(checks.check_circle_drawer, circle_ring,
                 r"outline of a circle \(cv2\.circle with thickness 3",
                 id="circle-ring-3"),
    pytest.param(checks.check_blend_window, blend_window_linspace, "zeros at the border",
                 id="blend-linspace"),
]
#: The ids of the catalogue that passed the checks before issue 26: measured by running each entry
#: against ``pconv_lib.checks`` of commit 8a0df30 (18 of 27; the other 9 were caught, with the
#: old messages: four decimals for hole_ratio, the check's name instead of the learner's on a crash).
PASSED_BEFORE = {
    "forward-no-grad", "forward-x-detached", "forward-weight-data", "concat-no-grad", "decoder-no-grad",
    "decoder-detached", "gram-no-grad", "gram-detached", "gram-numpy-roundtrip", "tv-roll",
    "tv-roll-rows-only", "tv-no-grad", "tv-item", "total-stack", "total-items", "total-zip",
    "total-plus-total", "total-first-six",
}


@pytest.mark.parametrize("check, wrong, message", CATALOGUE)
def test_catalogued_mistake_gets_its_message(check, wrong, message, capsys):
    with pytest.raises(checks.ExerciseCheckError, match=message):
        check(wrong)
    assert checks.PASS not in capsys.readouterr().out


def test_passed_before_names_catalogue_entries():
    assert PASSED_BEFORE <= {p.id for p in CATALOGUE}


# --------------------------------------------------------------------------------------------
# Part 2: right answers written differently pass
# --------------------------------------------------------------------------------------------


def hole_ratio_float32(mask):  # right to float32's precision
    return float(np.mean(mask == 0, dtype=np.float32))


def gram_einsum(features):
    c, h, w = features.shape[1:]
    return torch.einsum("nchw,ndhw->ncd", features, features) / (c * h * w)


def total_by_name(terms):
    return (terms["valid"] + 6 * terms["hole"] + 0.05 * terms["perceptual"]
            + 120 * (terms["style_out"] + terms["style_comp"]) + 0.1 * terms["tv"])


RIGHT = [
    pytest.param(checks.check_hole_ratio, masks.hole_ratio, id="ratio-library"),
    pytest.param(checks.check_hole_ratio, hole_ratio_float32, id="ratio-float32"),
    pytest.param(checks.check_mask_update, mask_update, id="mask-update"),
    pytest.param(checks.check_partial_conv_forward, forward, id="forward"),
    pytest.param(checks.check_concat_skip, concat_skip, id="concat"),
    pytest.param(checks.check_decoder_block, decoder_block(), id="decoder"),
    pytest.param(checks.check_gram_matrix, gram, id="gram"),
    pytest.param(checks.check_gram_matrix, gram_einsum, id="gram-einsum"),
    pytest.param(checks.check_gram_matrix, losses.gram_matrix, id="gram-library"),
    pytest.param(checks.check_total_variation_loss, tv, id="tv"),
    pytest.param(checks.check_total_variation_loss, losses.total_variation_loss, id="tv-library"),
    pytest.param(checks.check_total_loss, total, id="total"),
    pytest.param(checks.check_total_loss, total_by_name, id="total-by-name"),
    pytest.param(checks.check_tile_grid, tiling.tile_grid, id="tiles-library"),
    pytest.param(checks.check_blend_window, tiling.blend_window, id="blend-library"),
]


@pytest.mark.parametrize("check, right", RIGHT)
def test_right_answers_pass(check, right, capsys):
    assert check(right) is True
    assert capsys.readouterr().out.startswith(checks.PASS)


# --------------------------------------------------------------------------------------------
# Part 3: the classes, over generated inputs
# --------------------------------------------------------------------------------------------

#: Every check of a function training differentiates through, with a right answer for it.
TRAINED = [
    (checks.check_partial_conv_forward, forward, lambda r: r[0]),
    (checks.check_concat_skip, concat_skip, lambda r: r[0]),
    (checks.check_gram_matrix, gram, lambda r: r),
    (checks.check_total_variation_loss, tv, lambda r: r),
]
CUTS = {
    "no_grad": lambda run: _no_grad(run),
    "detach": lambda run: _cut_output(run, lambda t: t.detach()),
    "data": lambda run: _cut_output(run, lambda t: t.data),
    "numpy": lambda run: _cut_output(run, lambda t: torch.from_numpy(t.detach().numpy().copy())),
}


def _cut_output(function, cut):
    def wrapped(*args):
        result = function(*args)
        if isinstance(result, tuple):
            return (cut(result[0]),) + result[1:]
        return cut(result)

    wrapped.__name__ = function.__name__
    return wrapped


@pytest.mark.parametrize("cut", sorted(CUTS))
@pytest.mark.parametrize("check, right, _", TRAINED, ids=["forward", "concat", "gram", "tv"])
def test_a_result_cut_from_the_graph_never_passes(check, right, _, cut):
    with pytest.raises(checks.ExerciseCheckError, match=NO_GRADIENT):
        check(CUTS[cut](right))


@pytest.mark.parametrize("cut", ["no_grad", "detach"])
def test_a_decoder_block_cut_from_the_graph_never_passes(cut):
    with pytest.raises(checks.ExerciseCheckError, match=NO_GRADIENT):
        checks.check_decoder_block(decoder_block(cut))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scale=st.sampled_from([0.0, 0.5]), which=st.sampled_from(["x", "weight", "bias"]))
def test_a_partly_cut_forward_is_named_by_its_input(scale, which):
    """Whatever input is cut (fully, or scaled through .detach()), the message names that input."""

    def partly(x, mask, weight, bias, stride=1, padding=0, dilation=1):
        tensors = {"x": x, "weight": weight, "bias": bias}
        if tensors[which] is not None:
            t = tensors[which]
            tensors[which] = t.detach() * (1 - scale) + t * scale if scale else t.detach()
        return forward(tensors["x"], mask, tensors["weight"], tensors["bias"], stride, padding, dilation)

    missing = f"`{which}` \\(its gradient is missing\\)"
    pattern = f"gradient with respect to `{which}` differs" if scale else missing
    with pytest.raises(checks.ExerciseCheckError, match=pattern):
        checks.check_partial_conv_forward(partly)


@settings(max_examples=16, deadline=None)
@given(shift=st.sampled_from([1, -1]), axes=st.sampled_from(["x", "y", "both"]))
def test_any_wrap_around_tv_is_caught(shift, axes):
    """torch.roll in either direction, on either axis: the holes from border to border catch it."""

    def wrapped(comp, mask):
        region = F.max_pool2d(1 - mask, kernel_size=3, stride=1, padding=1)
        parts = []
        for dim in ({"x": [-1], "y": [-2], "both": [-1, -2]}[axes]):
            both = region * torch.roll(region, shift, dim)
            parts.append(((comp - torch.roll(comp, shift, dim)).abs() * both).sum())
        if axes == "x":
            both = region[..., 1:, :] * region[..., :-1, :]
            parts.append(((comp[..., 1:, :] - comp[..., :-1, :]).abs() * both).sum())
        if axes == "y":
            both = region[..., :, 1:] * region[..., :, :-1]
            parts.append(((comp[..., :, 1:] - comp[..., :, :-1]).abs() * both).sum())
        return sum(parts) / comp.numel()

    with pytest.raises(checks.ExerciseCheckError):
        checks.check_total_variation_loss(wrapped)


def test_tv_family_has_holes_on_opposite_borders_at_once():
    """The TV masks include a row hole from left to right border and a column from top to bottom,
    and a hole on each of the four borders: a wrap-around pairs the first and last column or row."""
    found = {"left-right": False, "top-bottom": False, "every border": False}
    for _, mask in _tv_masks(0):
        hole = mask[:, 0] == 0
        found["left-right"] |= bool((hole[..., :, 0] & hole[..., :, -1]).any())
        found["top-bottom"] |= bool((hole[..., 0, :] & hole[..., -1, :]).any())
        borders = (hole[..., 0, :], hole[..., -1, :], hole[..., :, 0], hole[..., :, -1])
        found["every border"] |= all(bool(h.any()) for h in borders)
    assert all(found.values()), found


@settings(max_examples=20, deadline=None)
@given(order=st.permutations(["valid", "hole", "perceptual", "style_out", "style_comp", "tv", "total"]))
def test_total_loss_check_reads_terms_by_name_in_any_order(order):
    """The real PConvLoss dict, in any order of its 7 entries: the right total is the same; a total
    that takes the weights by position differs unless the order happens to be the paper's."""
    from pconv_lib.checks.step4_losses import _real_terms

    real = {name: value.detach() for name, value in _real_terms().items()}
    reordered = {name: real[name] for name in order}
    assert float(total(reordered)) == pytest.approx(float(total(real)))
    by_position = float(total_first_six(reordered))
    if order[:6] != ["valid", "hole", "perceptual", "style_out", "style_comp", "tv"]:
        assert by_position != pytest.approx(float(total(real)), rel=1e-5)


def test_total_loss_check_uses_the_real_seven_keys():
    from pconv_lib.checks.step4_losses import _real_terms

    assert list(_real_terms()) == [*losses.LOSS_TERMS, "total"]


@settings(max_examples=200, deadline=None)
@given(got=st.floats(-1e6, 1e6, allow_nan=False), expected=st.floats(-1e6, 1e6, allow_nan=False))
def test_a_difference_always_shows_in_the_printed_digits(got, expected):
    text = _common._differ(got, expected)
    shown_got, shown_expected = text.split(", expected ")[0][4:], text.split(", expected ")[1].split(" (")[0]
    assert (shown_got != shown_expected) == (got != expected)
    assert float(shown_got) == got and float(shown_expected) == expected


@settings(max_examples=25, deadline=None)
@given(delta=st.floats(2e-6, 0.01))
def test_hole_ratio_off_by_any_visible_amount_prints_both_values(delta):
    def off(mask):
        return masks.hole_ratio(mask) + delta

    with pytest.raises(checks.ExerciseCheckError) as caught:
        checks.check_hole_ratio(off)
    got, expected = (float(v) for v in
                     [str(caught.value).split("got ")[1].split(",")[0],
                      str(caught.value).split("expected ")[1].split(" ")[0]])
    assert got != expected and got - expected == pytest.approx(delta, rel=1e-6, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(lines=st.lists(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30),
                      min_size=1, max_size=4),
       shape=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_a_crash_names_the_function_its_arguments_and_every_line(lines, shape):
    def learners_function(features):
        raise RuntimeError("\n".join(lines))

    tensor = torch.zeros(*shape)
    with pytest.raises(checks.ExerciseCheckError) as caught:
        _common._run(learners_function, (tensor,), where="a case")
    message = str(caught.value)
    assert message.startswith("learners_function crashed for a case: RuntimeError: ")
    assert f"learners_function(features=tensor {tuple(shape)} float32)" in message
    for line in lines:
        assert line.rstrip(".") in message
    assert "_run" not in message and "check_" not in message
    assert "it failed in learners_function, line" in message


def _broken_features(features):
    raise ValueError("first line\nsecond line")


def _broken_tv(comp, mask):
    raise ValueError("first line\nsecond line")


def _broken_grid(height, width, tile, overlap):
    raise ValueError("first line\nsecond line")


def _broken_window(tile, overlap):
    raise ValueError("first line\nsecond line")


def _broken_ratio(mask):
    raise ValueError("first line\nsecond line")


@pytest.mark.parametrize("check, broken, args", [
    (checks.check_gram_matrix, _broken_features, "features=tensor (1, 2, 3, 3) float64"),
    (checks.check_total_variation_loss, _broken_tv,
     "comp=tensor (2, 3, 16, 12) float64, mask=tensor (2, 1, 16, 12) float64"),
    (checks.check_tile_grid, _broken_grid, "height=128, width=128, tile=128, overlap=32"),
    (checks.check_blend_window, _broken_window, "tile=64, overlap=16"),
    (checks.check_hole_ratio, _broken_ratio, "mask=array (8, 8) uint8"),
])
def test_every_check_reports_a_crash_with_the_learners_call(check, broken, args):
    with pytest.raises(checks.ExerciseCheckError) as caught:
        check(broken)
    message = str(caught.value)
    assert "ValueError: first line\nsecond line" in message
    assert f"{broken.__name__}({args})" in message
