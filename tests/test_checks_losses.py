"""Step-4 self-checks: the library passes, stubs say 'not implemented', each mistake is named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pconv_lib import checks, losses


def _stub(*args, **kwargs):
    raise NotImplementedError


def paper_total(t):
    return (t["valid"] + 6 * t["hole"] + 0.05 * t["perceptual"] + 120 * (t["style_out"] + t["style_comp"])
            + 0.1 * t["tv"])


def test_library_and_reference_solutions_pass(capsys):
    assert checks.check_gram_matrix(losses.gram_matrix)
    assert checks.check_total_variation_loss(losses.total_variation_loss)
    assert checks.check_total_loss(paper_total)
    assert capsys.readouterr().out.count(checks.PASS) == 3


@pytest.mark.parametrize(
    "check", [checks.check_gram_matrix, checks.check_total_variation_loss, checks.check_total_loss]
)
def test_stubs_report_not_implemented(check, capsys):
    assert check(_stub) is False
    assert "not implemented yet" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ Gram


def _gram_divided_by(divisor):
    def gram(features):
        n, c, h, w = features.shape
        flat = features.reshape(n, c, h * w)
        return torch.bmm(flat, flat.transpose(1, 2)) / divisor(c, h, w)

    return gram


@pytest.mark.parametrize(
    "gram, message",
    [
        (_gram_divided_by(lambda c, h, w: 1), "not normalised: divide by C·H·W"),
        (_gram_divided_by(lambda c, h, w: c), "divided by C only"),
        (_gram_divided_by(lambda c, h, w: h * w), "divided by H·W only"),
    ],
)
def test_gram_mistakes_are_named(gram, message):
    with pytest.raises(checks.ExerciseCheckError, match=message):
        checks.check_gram_matrix(gram)


# ------------------------------------------------------------------------------------------ TV


def _region(mask):
    return F.max_pool2d(1 - mask, 3, 1, 1)


def _dx(x):
    return x[..., :, 1:] - x[..., :, :-1]


def _dy(x):
    return x[..., 1:, :] - x[..., :-1, :]


def tv_mask_first(comp, mask):  # the measured mistake: mask the image, then take differences
    masked = comp * _region(mask)
    return (_dx(masked).abs().sum() + _dy(masked).abs().sum()) / comp.numel()


def tv_one_side(comp, mask):
    p = _region(mask)
    return ((_dx(comp).abs() * p[..., :, 1:]).sum() + (_dy(comp).abs() * p[..., 1:, :]).sum()) / comp.numel()


def _tv_with(region_of, power=1, normalise=lambda comp, p: comp.numel()):
    def tv(comp, mask):
        p = region_of(mask)
        both_x, both_y = p[..., :, 1:] * p[..., :, :-1], p[..., 1:, :] * p[..., :-1, :]
        total = (_dx(comp).abs() ** power * both_x).sum() + (_dy(comp).abs() ** power * both_y).sum()
        return total / normalise(comp, p)

    return tv


def tv_horizontal_only(comp, mask):
    p = _region(mask)
    return (_dx(comp).abs() * p[..., :, 1:] * p[..., :, :-1]).sum() / comp.numel()


def tv_whole_image(comp, mask):
    return (_dx(comp).abs().sum() + _dy(comp).abs().sum()) / comp.numel()


@pytest.mark.parametrize(
    "tv, message",
    [
        (tv_mask_first, "comp multiplied by the region before taking differences"),
        (tv_one_side, "BOTH of its pixels are in P"),
        (_tv_with(lambda m: 1 - m), "holes themselves as the region"),
        (_tv_with(lambda m: F.max_pool2d(m, 3, 1, 1)), "dilated the valid pixels"),
        (_tv_with(_region, power=2), "absolute differences, not squared"),
        (tv_horizontal_only, "add the vertical ones"),
        (_tv_with(_region, normalise=lambda c, p: 1), "not normalised"),
        (_tv_with(_region, normalise=lambda c, p: p.sum()), "not by the number of pixels in P"),
        (tv_whole_image, "TV of the whole image"),
    ],
)
def test_tv_mistakes_are_named(tv, message):
    with pytest.raises(checks.ExerciseCheckError, match=message):
        checks.check_total_variation_loss(tv)


def test_tv_must_be_zero_without_holes():
    def nonzero_without_holes(comp, mask):
        return losses.total_variation_loss(comp, mask) + 0.01

    with pytest.raises(checks.ExerciseCheckError, match="expected"):
        checks.check_total_variation_loss(nonzero_without_holes)


# ------------------------------------------------------------------------------------------ total


@pytest.mark.parametrize(
    "total, message",
    [
        (lambda t: paper_total(t) - 0.1 * t["tv"], "the tv term is missing"),
        (lambda t: paper_total(t) - 5 * t["hole"], "hole is weighted 1; the paper weighs it 6"),
        (lambda t: 6 * t["valid"] + t["hole"] + 0.05 * t["perceptual"]
         + 120 * (t["style_out"] + t["style_comp"]) + 0.1 * t["tv"], "swapped"),
        (lambda t: paper_total(t) - 60 * (t["style_out"] + t["style_comp"]), "each of the two gets 120"),
        (lambda t: paper_total(t) - 119 * t["style_comp"], "with the parentheses"),
        (lambda t: paper_total(t) - 120 * t["style_comp"], "the style_comp term is missing"),
        (lambda t: paper_total(t) / 6, "do not average or rescale"),
        (lambda t: paper_total(t) + t["valid"] * t["hole"], "not a weighted sum"),
        (lambda t: paper_total(t).detach().item(), "return a tensor"),
        (lambda t: torch.tensor(paper_total(t).detach().item()), "without gradient"),
        (lambda t: t["total"], "the total is what you compute"),
        (lambda t: paper_total(t) + 0 * t["style"], "the keys are valid, hole"),
    ],
)
def test_total_loss_mistakes_are_named(total, message):
    with pytest.raises(checks.ExerciseCheckError, match=message):
        checks.check_total_loss(total)


def test_total_loss_reference_matches_the_library():
    output, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    mask[:, :, 4:10, 4:10] = 0
    terms = losses.PConvLoss(losses.LossWeights.pixel_only())(output, target, mask, target * mask)
    torch.testing.assert_close(paper_total(terms), terms["total"])
