"""Step 4, the losses: the Gram matrix, the total-variation loss and the total loss (exercise 04)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pconv_lib.checks._common import (
    _call,
    _close,
    _describe_array,
    _fail,
    _guarded,
    _passed,
    _require_tensor,
    _require_unchanged,
    _todo,
    compare_arrays,
)

#: Wrong normalisations of the Gram matrix: (how many times too large, from C, H, W; what to change).
GRAM_SCALE_MISTAKES: list[tuple[Callable[[int, int, int], int], str]] = [
    (lambda c, h, w: c * h * w, "it is not normalised: divide by C·H·W"),
    (lambda c, h, w: h * w, "it is divided by C only: divide by C·H·W"),
    (lambda c, h, w: c, "it is divided by H·W only: divide by C·H·W"),
]


def _seeded_features(seed: int, shape: tuple[int, ...]):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=torch.float64)


@_guarded
def check_gram_matrix(gram_matrix: Callable) -> bool:
    """Check a learner's ``gram_matrix(features (N, C, H, W)) -> (N, C, C)``, F Fᵀ / (C·H·W).

    F is one image's features as a (C, H·W) matrix, so F Fᵀ is C×C (entry (c, d): the dot product
    of channels c and d). Contract first: a tensor (not NumPy) in the features' dtype and device,
    shape (N, C, C), ``features`` unchanged; then the values, with a hint only when the learner's
    result equals a recomputed mistake (a missing or partial normalisation, FᵀF).
    """
    import torch

    from pconv_lib import losses

    for seed, shape in enumerate([(1, 2, 3, 3), (2, 4, 5, 7), (3, 8, 6, 4)]):
        features = _seeded_features(seed, shape)
        passed = features.clone()
        ok, got = _call(gram_matrix, passed)
        if not ok:
            return _todo("gram_matrix")
        call = f"gram_matrix(features of shape {shape})"
        _require_unchanged(call, [("features", features, passed)])
        n, c, h, w = shape
        flat = features.reshape(n, c, h * w)
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (n, h * w, h * w):
            if _close(got, flat.transpose(1, 2) @ flat / (c * h * w), atol=1e-9):
                _fail(f"{call} has shape {tuple(got.shape)}, expected ({n}, {c}, {c}): you computed FᵀF, "
                      "the (H·W)×(H·W) products of positions. The Gram matrix compares channels: with F of "
                      "shape (N, C, H·W), compute F @ F.transpose(1, 2), which is (N, C, C)")
        _require_tensor(got, call, like=features, shape=(n, c, c), also=torch.float32)
        expected = losses.gram_matrix(features).double()
        got_d = got.detach().double()
        for too_large, hint in GRAM_SCALE_MISTAKES:
            factor = too_large(c, h, w)
            if factor != 1 and bool((got_d - expected * factor).abs().max() < 1e-6 * factor):
                _fail(f"{call} is {factor}x too large: {hint}")
        compare_arrays(call, got, expected, atol=1e-6)
    return _passed("gram_matrix matches pconv_lib.losses.gram_matrix, normalised by C·H·W")


def _dx(x: Any) -> Any:
    return x[..., :, 1:] - x[..., :, :-1]


def _dy(x: Any) -> Any:
    return x[..., 1:, :] - x[..., :-1, :]


def _pair_x(p: Any) -> Any:
    return p[..., :, 1:] * p[..., :, :-1]


def _pair_y(p: Any) -> Any:
    return p[..., 1:, :] * p[..., :-1, :]


def _tv(image: Any, weight_x: Any = 1.0, weight_y: Any = 1.0, power: int = 1) -> Any:
    return (_dx(image).abs() ** power * weight_x).sum() + (_dy(image).abs() ** power * weight_y).sum()


def _tv_pieces(comp: Any, mask: Any) -> dict[str, Any]:
    """What the TV mistakes are recomputed from: comp, holes, P, dilated valid pixels, N, the right sum."""
    import torch.nn.functional as F

    hole = 1 - mask
    region = F.max_pool2d(hole, kernel_size=3, stride=1, padding=1)
    return {
        "comp": comp, "hole": hole, "region": region, "numel": comp.numel(),
        "valid_region": F.max_pool2d(mask, kernel_size=3, stride=1, padding=1),
        "right_sum": _tv(comp, _pair_x(region), _pair_y(region)),
    }


_PREMASK = (
    "Your result is the TV of comp multiplied by the region before taking differences: where P ends, a "
    "pixel next to a zeroed one makes a false jump (its value minus 0), so the border of P is counted as "
    "an edge. Take the differences of comp first, then keep each difference only where both of its pixels "
    "are in P (weight it by P at both pixels)."
)

#: Wrong total-variation losses: (name, recomputed from :func:`_tv_pieces`, what to change).
TV_MISTAKES: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("whole image", lambda p: _tv(p["comp"]) / p["numel"],
     "Your result is the TV of the whole image: count only differences inside the dilated holes P."),
    ("region before differences", lambda p: _tv(p["comp"] * p["region"]) / p["numel"], _PREMASK),
    ("holes before differences", lambda p: _tv(p["comp"] * p["hole"]) / p["numel"],
     _PREMASK + " (And P is the holes dilated by one pixel, not the holes themselves.)"),
    ("one pixel in P",
     lambda p: _tv(p["comp"], p["region"][..., :, 1:], p["region"][..., 1:, :]) / p["numel"],
     "A difference must count only when BOTH of its pixels are in P: you weighted it by P at one "
     "pixel only. Multiply by P at both ends (the pixel and its right / lower neighbour)."),
    ("undilated holes", lambda p: _tv(p["comp"], _pair_x(p["hole"]), _pair_y(p["hole"])) / p["numel"],
     "You used the holes themselves as the region: P is the holes dilated by one pixel "
     "(a 3x3 max-pool of 1 - mask, stride 1, padding 1), so the seam between a hole and its valid "
     "neighbours counts too - that seam is what the TV term smooths."),
    ("dilated valid pixels",
     lambda p: _tv(p["comp"], _pair_x(p["valid_region"]), _pair_y(p["valid_region"])) / p["numel"],
     "You dilated the valid pixels: mask is 1 = valid, 0 = hole, so the holes are 1 - mask; "
     "dilate those."),
    ("squared differences",
     lambda p: _tv(p["comp"], _pair_x(p["region"]), _pair_y(p["region"]), power=2) / p["numel"],
     "The TV term is an L1 norm: sum absolute differences, not squared ones."),
    ("horizontal only", lambda p: (_dx(p["comp"]).abs() * _pair_x(p["region"])).sum() / p["numel"],
     "Only horizontal differences are counted: add the vertical ones (rows i and i+1) too."),
    ("vertical only", lambda p: (_dy(p["comp"]).abs() * _pair_y(p["region"])).sum() / p["numel"],
     "Only vertical differences are counted: add the horizontal ones (columns j and j+1) too."),
    ("not normalised", lambda p: p["right_sum"],
     "The sum is right but not normalised: divide it by the number of elements of comp (comp.numel())."),
    ("divided by |P|", lambda p: p["right_sum"] / p["region"].sum().clamp_min(1),
     "Divide by the number of elements of comp (comp.numel(), N*C*H*W, the paper's N), not by the "
     "number of pixels in P."),
    ("divided by N*H*W", lambda p: p["right_sum"] / (p["numel"] // p["comp"].shape[1]),
     "Divide by the number of elements of comp including its 3 channels (comp.numel() = N*C*H*W)."),
    ("mean of differences",
     lambda p: (_dx(p["comp"]).abs() * _pair_x(p["region"])).mean()
     + (_dy(p["comp"]).abs() * _pair_y(p["region"])).mean(),
     "Divide the whole sum once by comp.numel() (the paper's N): .mean() over the difference "
     "tensors divides by their own (smaller) sizes."),
]


@_guarded
def check_total_variation_loss(total_variation_loss: Callable) -> bool:
    """Check a learner's ``total_variation_loss(comp, mask)`` (TV over the dilated hole region)."""
    import torch

    from pconv_lib import losses

    for seed in range(4):
        comp = _seeded_features(seed, (2, 3, 16, 12))
        mask = torch.ones(2, 1, 16, 12, dtype=torch.float64)
        mask[0, :, 4:9, 3:7] = 0
        mask[1, :, 10:15, 6:11] = 0
        if seed == 3:
            mask[:] = 1
        passed = (comp.clone(), mask.clone())
        ok, got = _call(total_variation_loss, *passed)
        if not ok:
            return _todo("total_variation_loss")
        call = f"total_variation_loss(comp {tuple(comp.shape)}, mask {tuple(mask.shape)}) (test {seed + 1})"
        _require_unchanged(call, [("comp", comp, passed[0]), ("mask", mask, passed[1])])
        if isinstance(got, (float, int, np.floating)):
            _fail(f"{call} returned a Python number, {float(got):.6f}: return the tensor itself (no .item() "
                  "or float()), so that backward() can reach the network through it")
        _require_tensor(got, call, like=comp, also=torch.float32)
        if got.numel() != 1:
            _fail(f"{call} should return one number (a scalar tensor), got shape "
                  f"{tuple(got.shape)}: sum the weighted differences over everything, then divide.")
        got_value = float(got.detach())
        if not np.isfinite(got_value):
            _fail(f"{call} gives {got_value}, expected {float(losses.total_variation_loss(comp, mask)):.6f}: "
                  "the loss must be a finite number")
        expected = float(losses.total_variation_loss(comp, mask).double())
        if abs(got_value - expected) > 1e-6:
            hint = ""
            if seed == 3:
                hint = " With no hole at all the TV loss must be 0 (P is empty)."
            else:
                pieces = _tv_pieces(comp, mask)
                for _, mistake, message in TV_MISTAKES:
                    value = float(mistake(pieces))
                    if abs(got_value - value) < 1e-9 + 1e-6 * abs(value):
                        hint = " " + message
                        break
            _fail(f"{call} gives {got_value:.6f}, expected {expected:.6f}.{hint}")
    return _passed("total_variation_loss matches the library on 4 masks, including one without holes")


#: The paper's weights, as the learner should write them in exercise 4.
_PAPER_WEIGHTS = {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style_out": 120.0, "style_comp": 120.0,
                  "tv": 0.1}


def _total_of(total_loss: Callable, values: dict[str, float]) -> tuple[bool, Any, dict]:
    """Call ``total_loss`` on scalar tensors made from ``values``; explain bad keys and types."""
    import torch

    terms = {name: torch.tensor(float(v), requires_grad=True) for name, v in values.items()}
    passed = dict(terms)
    try:
        ok, got = _call(total_loss, passed)
    except KeyError as error:
        key = error.args[0] if error.args else "?"
        if key == "total":
            _fail("total_loss read terms['total']: the total is what you compute; build it from the six "
                  "terms valid, hole, perceptual, style_out, style_comp and tv.")
        _fail(f"total_loss looked up terms[{key!r}], which does not exist: the keys are "
              f"{', '.join(_PAPER_WEIGHTS)}.")
    if not ok:
        return False, None, terms
    if passed.keys() != terms.keys() or any(passed[k] is not terms[k] for k in terms):
        _fail("total_loss changed the dict `terms` it was given (added, removed or replaced an entry): "
              "read the six terms and return the total; leave `terms` as it was")
    for name, value in values.items():
        if float(terms[name].detach()) != float(torch.tensor(float(value))):
            _fail(f"total_loss changed the tensor terms[{name!r}] in place: compute new tensors "
                  "(w * terms[name]) instead of in-place operations (*=, +=, methods ending in _)")
    if isinstance(got, np.ndarray):
        _require_tensor(got, "the result of total_loss")
    if not isinstance(got, torch.Tensor):
        _fail(f"total_loss returned {_describe_array(got)}: return a tensor (no .item() or float()), "
              "or backward() has nothing to differentiate.")
    if got.numel() != 1:
        _fail(f"total_loss should return one number (a scalar tensor), got shape {tuple(got.shape)}: "
              "add the weighted terms together.")
    if not got.requires_grad:
        _fail("total_loss returned a tensor without gradient: keep the computation in torch (no .item(), "
              "float(), .detach() or torch.tensor(...) around the terms) so backward() reaches the model.")
    return True, got, terms


@_guarded
def check_total_loss(total_loss: Callable) -> bool:
    """Check a learner's ``total_loss(terms: dict[str, Tensor]) -> Tensor`` (the paper's weighted sum).

    Probes the function with one term set to 1 and the others 0 to read the weight it gives each
    term, then names the first mistake: a missing term, a wrong or swapped weight, 120 shared by
    the two style terms, a rescaled total, or something that is not a weighted sum at all.
    """
    from pconv_lib import losses

    names = list(losses.LOSS_TERMS)
    base = {"valid": 0.11, "hole": 0.07, "perceptual": 0.9, "style_out": 0.003, "style_comp": 0.002,
            "tv": 0.05}
    ok, got, terms = _total_of(total_loss, base)
    if not ok:
        return _todo("total_loss")
    coefficients = {}
    for name in names:
        probe = dict.fromkeys(names, 0.0)
        probe[name] = 1.0
        coefficients[name] = float(_total_of(total_loss, probe)[1].detach())
    linear = sum(coefficients[n] * base[n] for n in names)
    value = float(got.detach())
    if not all(np.isfinite(v) for v in [value, *coefficients.values()]):
        _fail(f"total_loss gives {value} for the sample terms (and the weights it gives each term are "
              f"{ {n: round(c, 6) for n, c in coefficients.items()} }): the total must be a finite number")
    if abs(value - linear) > 1e-5 * max(1.0, abs(linear)):
        _fail(f"total_loss is not a weighted sum of the terms (got {value:.6f} for the sample terms; "
              f"a weighted sum with the weights your function gives each term would be {linear:.6f}): "
              "multiply each term by its weight and add them - no products of terms, squares or divisions.")
    expected = _PAPER_WEIGHTS
    wrong = [n for n in names if abs(coefficients[n] - expected[n]) > 1e-6 * expected[n]]
    if not wrong:
        got.backward()
        grads = {n: float(terms[n].grad) if terms[n].grad is not None else 0.0 for n in names}
        if any(abs(grads[n] - expected[n]) > 1e-5 * expected[n] for n in names):
            _fail("backward() through total_loss does not reach every term with its weight: keep every "
                  "term in the torch computation.")
        return _passed("total_loss = 1 valid + 6 hole + 0.05 perceptual + 120 (style_out + style_comp) "
                       "+ 0.1 tv, and backward() reaches every term")
    ratios = {coefficients[n] / expected[n] for n in names}
    if len(ratios) == 1 or max(ratios) - min(ratios) < 1e-6 * max(abs(r) for r in ratios):
        factor = next(iter(ratios))
        _fail(f"every weight is {factor:.4g}x the paper's: the total is the plain weighted sum; do not "
              "average or rescale it.")
    if abs(coefficients["valid"] - 6) < 1e-6 and abs(coefficients["hole"] - 1) < 1e-6:
        _fail("valid and hole weights are swapped: the holes are what the network must learn to fill, "
              "so L_hole gets 6 and L_valid 1.")
    style = (coefficients["style_out"], coefficients["style_comp"])
    if "style_out" in wrong or "style_comp" in wrong:
        if abs(sum(style) - 120) < 1e-6 and min(style) > 0:
            _fail(f"the style terms get {style[0]:g} and {style[1]:g}: 120 multiplies the SUM "
                  "(L_style_out + L_style_comp), so each of the two gets 120.")
        if abs(max(style) - 120) < 1e-6 and abs(min(style) - 1) < 1e-6:
            _fail("one style term is added without its weight: write 120 * (style_out + style_comp), "
                  "with the parentheses.")
    for name in names:
        if name not in wrong:
            continue
        if coefficients[name] == 0:
            _fail(f"the {name} term is missing from the total (its weight came out 0): add "
                  f"{expected[name]:g} * terms[{name!r}].")
        _fail(f"{name} is weighted {coefficients[name]:g}; the paper weighs it {expected[name]:g} "
              "(L = 1 valid + 6 hole + 0.05 perceptual + 120 (style_out + style_comp) + 0.1 tv).")
    raise AssertionError("unreachable")  # pragma: no cover
