"""Step 4, the losses: the Gram matrix, the total-variation loss and the total loss (exercise 04)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pconv_lib.checks._common import (
    _close,
    _describe_array,
    _differ,
    _fail,
    _guarded,
    _passed,
    _require_gradients,
    _require_tensor,
    _require_unchanged,
    _run,
    _todo,
    _unique_hint,
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


#: (shape, dtype) of the Gram matrix cases: odd, non-square, one channel, one row, float32 and float64.
_GRAM_CASES = [((1, 2, 3, 3), "float64"), ((2, 4, 5, 7), "float64"), ((3, 8, 6, 4), "float64"),
               ((1, 1, 1, 9), "float64"), ((2, 3, 7, 1), "float64"), ((2, 16, 33, 31), "float32")]


def _gram_reference(features: Any) -> Any:
    """F Fᵀ / (C·H·W) in the features' own dtype, differentiable (the gradient reference)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


@_guarded
def check_gram_matrix(gram_matrix: Callable) -> bool:
    """Check a learner's ``gram_matrix(features (N, C, H, W)) -> (N, C, C)``, F Fᵀ / (C·H·W).

    F is one image's features as a (C, H·W) matrix, so F Fᵀ is C×C (entry (c, d): the dot product
    of channels c and d). Contract first: a tensor (not NumPy) in the features' dtype and device,
    shape (N, C, C), ``features`` unchanged; then the values on odd, non-square, one-channel and
    float32 features, with a hint only when the learner's result equals exactly one recomputed
    mistake (a missing or partial normalisation, FᵀF); then the gradient (the style loss trains
    through it), which must flow back to the features as through the reference.
    """
    import torch

    from pconv_lib import losses

    for seed, (shape, dtype_name) in enumerate(_GRAM_CASES):
        dtype = getattr(torch, dtype_name)
        features = _seeded_features(seed, shape).to(dtype)
        passed = features.clone()
        call = f"gram_matrix(features of shape {shape}, {dtype_name})"
        ok, got = _run(gram_matrix, (passed,))
        if not ok:
            return _todo("gram_matrix")
        _require_unchanged(call, [("features", features, passed)])
        n, c, h, w = shape
        flat = features.double().reshape(n, c, h * w)
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (n, h * w, h * w) and h * w != c:
            if _close(got, flat.transpose(1, 2) @ flat / (c * h * w), atol=1e-5):
                _fail(f"{call} has shape {tuple(got.shape)}, expected ({n}, {c}, {c}): you computed FᵀF, "
                      "the (H·W)×(H·W) products of positions. The Gram matrix compares channels: with F of "
                      "shape (N, C, H·W), compute F @ F.transpose(1, 2), which is (N, C, C)")
        _require_tensor(got, call, like=features, shape=(n, c, c), also=torch.float32)
        expected = losses.gram_matrix(features.double()).double()
        exact = _gram_reference(features.double())
        got_d = got.detach().double()
        tolerance = 1e-6 if dtype == torch.float32 else 1e-9
        if not _close(got_d, exact, atol=tolerance * max(1.0, float(exact.abs().max()))):
            factors = [(too_large(c, h, w), text) for too_large, text in GRAM_SCALE_MISTAKES]
            hint = _unique_hint([
                (factor != 1 and bool((got_d - exact * factor).abs().max() < 1e-5 * factor),
                 f"It is {factor}x too large: {text}") for factor, text in factors
            ])
            if hint:
                _fail(f"{call} differs from F Fᵀ / (C·H·W).{hint}")
        compare_arrays(call, got, expected, atol=1e-6)
        # the gradient: the style loss trains through the Gram matrix
        mine = features.clone().requires_grad_(True)
        theirs = features.clone().requires_grad_(True)
        _, got_grad = _run(gram_matrix, (mine,))
        _require_gradients(call, got_grad, _gram_reference(theirs), [("features", mine, theirs)],
                           rtol=1e-3 if dtype == torch.float32 else 1e-7, atol=1e-7, seed=seed)
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


def _tv_wrapped(comp: Any, region: Any) -> Any:
    """The TV sum with torch.roll (a suspected mistake): the last column/row paired with the first."""
    import torch

    dx = (comp - torch.roll(comp, 1, dims=-1)).abs() * region * torch.roll(region, 1, dims=-1)
    dy = (comp - torch.roll(comp, 1, dims=-2)).abs() * region * torch.roll(region, 1, dims=-2)
    return dx.sum() + dy.sum()


def _tv_masks(seed: int) -> list[tuple[str, Any]]:
    """Seeded (label, (N, 1, H, W) float64 mask) cases, 1 = valid: holes on every border, bands from
    one border to the opposite one (where a wrap-around pairs the first and last column or row),
    corners, odd and non-square sizes, everything a hole, and no hole at all."""
    import torch

    generator = torch.Generator().manual_seed(500 + seed)

    def blank(n: int, h: int, w: int) -> Any:
        return torch.ones(n, 1, h, w, dtype=torch.float64)

    cases = []
    mask = blank(2, 16, 12)
    mask[0, :, 4:9, 3:7] = 0
    mask[1, :, 10:15, 6:11] = 0
    cases.append(("two holes inside the image", mask))
    mask = blank(1, 15, 18)
    mask[..., 0:3, 5:9] = 0  # top
    mask[..., 12:15, 2:6] = 0  # bottom
    mask[..., 6:10, 0:2] = 0  # left
    mask[..., 4:8, 15:18] = 0  # right
    cases.append(("a hole on every border", mask))
    mask = blank(2, 13, 17)
    mask[0, :, 5:8, :] = 0  # from the left border to the right one
    mask[1, :, :, 6:9] = 0  # from the top border to the bottom one
    cases.append(("bands from one border to the opposite one", mask))
    mask = blank(1, 11, 14)
    for rows in (slice(0, 3), slice(8, 11)):
        for cols in (slice(0, 3), slice(11, 14)):
            mask[..., rows, cols] = 0
    cases.append(("a hole in each corner", mask))
    mask = (torch.rand(3, 1, 19, 9, generator=generator) > 0.6).double()
    cases.append(("random pixel holes, 19x9", mask))
    cases.append(("everything a hole", torch.zeros(1, 1, 7, 10, dtype=torch.float64)))
    cases.append(("no hole at all", blank(2, 16, 12)))
    return cases


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
    ("wrap-around", lambda p: _tv_wrapped(p["comp"], p["region"]) / p["numel"],
     "Your differences wrap around the image: torch.roll compares the last column with the first and "
     "the last row with the first, which are not neighbours. Take differences of slices instead, "
     "comp[..., :, 1:] - comp[..., :, :-1] (and the same for rows), so that W - 1 pairs remain."),
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
    """Check a learner's ``total_variation_loss(comp, mask)`` (TV over the dilated hole region).

    Compared with :func:`pconv_lib.losses.total_variation_loss` on a seeded family of masks
    (:func:`_tv_masks`: holes on every border and from one border to the opposite one, corners,
    odd and non-square sizes, all hole, no hole), float64 and float32 images; then the gradient
    with respect to ``comp``, which training follows. A cause is named only when exactly one
    recomputed mistake (:data:`TV_MISTAKES`) gives the learner's value.
    """
    import torch

    from pconv_lib import losses

    cases = _tv_masks(0)
    for number, (label, mask) in enumerate(cases, start=1):
        n, _, h, w = mask.shape
        dtype = torch.float32 if number % 3 == 0 else torch.float64
        comp = _seeded_features(number, (n, 3, h, w)).to(dtype)
        mask = mask.to(dtype)
        passed = (comp.clone(), mask.clone())
        call = (f"total_variation_loss(comp {tuple(comp.shape)} {str(dtype)[6:]}, mask {tuple(mask.shape)}) "
                f"({label})")
        ok, got = _run(total_variation_loss, passed, where=label)
        if not ok:
            return _todo("total_variation_loss")
        _require_unchanged(call, [("comp", comp, passed[0]), ("mask", mask, passed[1])])
        if isinstance(got, (float, int, np.floating)):
            _fail(f"{call} returned a Python number, {float(got)!r}: return the tensor itself (no .item() "
                  "or float()), so that backward() can reach the network through it")
        _require_tensor(got, call, like=comp, also=torch.float32 if dtype == torch.float64 else torch.float64)
        if got.numel() != 1:
            _fail(f"{call} should return one number (a scalar tensor), got shape "
                  f"{tuple(got.shape)}: sum the weighted differences over everything, then divide.")
        got_value = float(got.detach())
        pieces = _tv_pieces(comp.double(), mask.double())
        expected = float(losses.total_variation_loss(comp.double(), mask.double()))
        if not np.isfinite(got_value):
            _fail(f"{call} gives {got_value}, expected {expected!r}: the loss must be a finite number")
        tolerance = 1e-6 * max(1.0, abs(expected))  # float32 round-off: the library itself sums in float32
        if abs(got_value - expected) > tolerance:
            if expected == 0 and not bool(mask.eq(0).any()):
                hint = " With no hole at all the TV loss must be 0 (P is empty)."
            else:
                values = [(float(mistake(pieces)), message) for _, mistake, message in TV_MISTAKES]
                hint = _unique_hint([
                    (abs(got_value - value) <= tolerance + 1e-6 * abs(value)
                     and abs(value - expected) > tolerance, message) for value, message in values
                ])
            _fail(f"{call}: {_differ(got_value, expected)}.{hint}")
        # the gradient with respect to comp: the TV term trains the network through it
        mine, theirs = comp.clone().requires_grad_(True), comp.clone().requires_grad_(True)
        _, got_grad = _run(total_variation_loss, (mine, mask.clone()), where=label)
        region = pieces["region"]
        reference = _tv(theirs, _pair_x(region), _pair_y(region)) / pieces["numel"]
        _require_gradients(call, got_grad, reference, [("comp", mine, theirs)],
                           rtol=1e-4, atol=1e-9, seed=number)
    return _passed(f"total_variation_loss matches the library on {len(cases)} masks (holes on every border, "
                   "from border to border, all hole, none), gradients included")


#: The paper's weights, as the learner should write them in exercise 4.
_PAPER_WEIGHTS = {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style_out": 120.0, "style_comp": 120.0,
                  "tv": 0.1}


def _total_of(total_loss: Callable, values: dict[str, float]) -> tuple[bool, Any, dict]:
    """Call ``total_loss`` on scalar tensors made from ``values``; explain bad keys and types."""
    import torch

    terms = {name: torch.tensor(float(v), requires_grad=True) for name, v in values.items()}
    passed = dict(terms)
    ok, got = _run(total_loss, (passed,), where="six scalar terms",
                   diagnoses=_dict_diagnoses(total_loss, passed))
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
        _fail("total_loss returned a tensor without gradient, so no gradient flows back to the terms: keep "
              "the computation in torch (no .item(), "
              "float(), .detach() or torch.tensor(...) around the terms) so backward() reaches the model.")
    return True, got, terms


def _dict_diagnoses(total_loss: Callable, terms: dict) -> list[tuple[Callable[[Exception], bool], str]]:
    """Crash causes of total_loss, each confirmed: a missing key it looked up, or the 7th key."""
    keys = ", ".join(_PAPER_WEIGHTS)

    def looked_up_total(error: Exception) -> bool:
        return isinstance(error, KeyError) and error.args[:1] == ("total",) and "total" not in terms

    def looked_up_other(error: Exception) -> bool:
        return isinstance(error, KeyError) and bool(error.args) and error.args[0] not in terms

    def trips_on_total(error: Exception) -> bool:  # the same dict without "total" works
        if "total" not in terms:
            return False
        without = {k: v for k, v in terms.items() if k != "total"}
        try:
            total_loss(without)
        except Exception:
            return False
        return True

    return [
        (looked_up_total, "It read terms['total']: the total is what you compute; build it from the six "
                          f"terms {keys}."),
        (lambda e: looked_up_other(e) and not looked_up_total(e),
         f"It looked up a key that does not exist: the keys are {keys}."),
        (trips_on_total, "It works on the six terms alone but not on the dict PConvLoss really returns, "
                         "which has a 7th key, 'total' (the library's own weighted sum), after the six "
                         "terms: look the six terms up by name (terms['valid'], ...) instead of going "
                         "through every entry of the dict or relying on its size or order."),
    ]


class _TinyFeatures:
    """A seeded stand-in for VGG16 (two small feature maps), so that PConvLoss gives all 7 terms."""

    def __new__(cls) -> Any:
        import torch
        from torch import nn

        class TinyFeatures(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.first = nn.Conv2d(3, 4, 3, padding=1)
                self.second = nn.Conv2d(4, 6, 3, stride=2, padding=1)

            def forward(self, images: Any) -> list[Any]:
                a = torch.relu(self.first(images))
                return [a, torch.relu(self.second(a))]

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)
            return TinyFeatures().eval().requires_grad_(False)


def _real_terms() -> dict[str, Any]:
    """The dict :class:`pconv_lib.losses.PConvLoss` returns (paper weights, the 6 terms and 'total'),
    for a seeded prediction that requires grad."""
    import torch

    from pconv_lib import losses

    generator = torch.Generator().manual_seed(11)
    output = torch.rand(2, 3, 16, 16, generator=generator).requires_grad_(True)
    target = torch.rand(2, 3, 16, 16, generator=generator)
    mask = torch.ones(2, 1, 16, 16)
    mask[0, :, 3:9, 4:12] = 0
    mask[1, :, 8:16, 0:16] = 0
    return losses.PConvLoss(losses.LossWeights.paper(), vgg=_TinyFeatures())(output, target, mask)


def _check_on_real_terms(total_loss: Callable) -> None:
    """The learner's total on the real PConvLoss dict (7 keys) and on the same dict in reverse order."""
    import torch

    real = _real_terms()
    names = list(_PAPER_WEIGHTS)
    expected = float(sum(_PAPER_WEIGHTS[n] * real[n].detach() for n in names))
    shuffled = {k: real[k] for k in reversed(list(real))}
    for label, terms in [("the dict PConvLoss returns (the six terms, then 'total')", real),
                         ("the same dict with its entries in reverse order", shuffled)]:
        passed = dict(terms)
        _, got = _run(total_loss, (passed,), where=label, diagnoses=_dict_diagnoses(total_loss, passed))
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            _fail(f"total_loss returned {_describe_array(got)} for {label}: return a scalar tensor")
        value = float(got.detach())
        if abs(value - expected) <= 1e-5 * max(1.0, abs(expected)):
            continue
        values = [float(terms[k].detach()) for k in terms]
        in_order = sum(w * v for w, v in zip(_PAPER_WEIGHTS.values(), values))
        hint = _unique_hint([
            (abs(value - (expected + float(real["total"].detach()))) < 1e-5 * max(1.0, abs(value)),
             "It also added terms['total'], the library's own weighted sum (the 7th key of the real dict): "
             "add the six terms only, looked up by name."),
            (abs(value - in_order) < 1e-5 * max(1.0, abs(value)),
             "It gives each weight to whatever entry sits at that position in the dict: look each term up "
             "by name (terms['hole'] ...), so that the order of the entries does not matter."),
        ])
        _fail(f"total_loss on {label}: {_differ(value, expected)}.{hint}")


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
        missing = [n for n in names if grads[n] == 0]
        if missing:
            _fail(f"no gradient flows from total_loss back to terms {missing} (their gradient is 0 although "
                  "the value is right): keep every term in the torch computation, without .detach(), "
                  ".item() or torch.no_grad().")
        if any(abs(grads[n] - expected[n]) > 1e-5 * expected[n] for n in names):
            _fail("backward() through total_loss does not reach every term with its weight: keep every "
                  "term in the torch computation.")
        _check_on_real_terms(total_loss)
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
