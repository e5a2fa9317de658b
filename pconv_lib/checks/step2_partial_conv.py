"""Step 2, the partial-convolution layer: the mask path and the forward pass (exercise 02)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from pconv_lib.checks._common import (
    _call_diagnosed,
    _fail,
    _guarded,
    _passed,
    _require_gradients,
    _require_order,
    _require_tensor,
    _require_unchanged,
    _same_error,
    _to_numpy,
    _todo,
    _unique_hint,
    _unpack_pair,
    _works,
    compare_arrays,
)

#: Wrong ratios, each recomputed from the window count (clamped to 1) and k, with what to change.
#: Compared where the window has valid pixels; ``{k}`` and ``{window}`` (k*k) are filled in.
RATIO_MISTAKES: list[tuple[Callable[[np.ndarray, int], np.ndarray], str]] = [
    (lambda count, k: count / (k * k),
     "ratio is upside down: it is sum(1) / sum(M) = k*k / count, large where few pixels of the window are "
     "valid"),
    (lambda count, k: 1 / count,
     "ratio is missing the window size: ratio = k*k / count, so that it is 1 where the whole window is "
     "valid"),
    (lambda count, k: k / count,
     "ratio uses k = {k} as the window size, but a k x k window has k*k = {window} pixels: sum(1) = k*k"),
]

#: Wrong forward passes, each recomputed from the pieces of the right one: ``raw`` = conv(x * mask)
#: without bias, ``plain`` = conv(x), ``ratio``, ``valid`` (the new mask), ``b`` (the bias as
#: (1, C_out, 1, 1), zeros for bias=None) and ``c_in``; ``{c_in}`` and ``{window}`` are filled in.
FORWARD_MISTAKES: list[tuple[Callable[[dict[str, Any]], np.ndarray], str]] = [
    (lambda p: p["raw"] * p["ratio"] + p["b"],
     "the output must be exactly 0 where the window has no valid pixel, bias included: multiply by new_mask "
     "after adding the bias"),
    (lambda p: (p["raw"] * p["ratio"] * p["c_in"] + p["b"]) * p["valid"],
     "the output is C_in = {c_in} times too large: for a single-channel mask the window has k*k = {window} "
     "elements, so sum(1) = k*k, not C_in*k*k"),
    (lambda p: (p["raw"] * p["ratio"] / p["c_in"] + p["b"]) * p["valid"],
     "the output is C_in = {c_in} times too small: for a single-channel mask the window has k*k = {window} "
     "elements and sum(M) counts at most k*k of them; do not repeat the mask over the input channels (the "
     "original Keras course's off-by-C_in ratio)"),
    (lambda p: (p["plain"] * p["ratio"] + p["b"]) * p["valid"],
     "the values inside the holes leak into the output: convolve x * mask, not x"),
    (lambda p: (p["raw"] + p["b"]) * p["valid"],
     "the re-weighting is missing: multiply the convolution by ratio = sum(1) / sum(M) before adding the "
     "bias"),
    (lambda p: (p["raw"] + p["b"]) * p["ratio"] * p["valid"],
     "the bias is multiplied by the ratio: convolve without bias (pass None to F.conv2d), multiply by the "
     "ratio, then add the bias"),
]


#: (batch, height, width, kernel, stride, padding, dilation, mask kind) for the step-2 checks.
_PCONV_CASES = [
    (1, 12, 12, 3, 1, 1, 1, "random"),
    (2, 20, 24, 5, 2, 2, 1, "random"),
    (1, 16, 16, 3, 1, 0, 1, "all-hole"),
    (2, 16, 12, 3, 1, 1, 1, "all-valid"),
    (1, 24, 20, 3, 2, 2, 2, "random"),
    (2, 19, 17, 7, 1, 3, 1, "random"),
    (2, 14, 11, 3, 1, 1, 1, "borders"),
    (1, 13, 18, 5, 2, 2, 1, "bands"),
    (1, 15, 13, 1, 1, 0, 1, "random"),
]


def _pconv_mask(seed: int, batch: int, height: int, width: int, kind: str):
    """A float64 (N, 1, H, W) mask, 1 = valid: random pixels plus a block hole, all hole or all valid,
    or random pixels plus holes on every border ("borders") or from border to border ("bands").

    The block hole (half the image each way) is larger than every test kernel, so some windows
    see no valid pixel at all; the random pixels give windows with every count in between.
    """
    import torch

    if kind == "all-hole":
        return torch.zeros(batch, 1, height, width, dtype=torch.float64)
    if kind == "all-valid":
        return torch.ones(batch, 1, height, width, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1000 + seed)
    mask = (torch.rand(batch, 1, height, width, generator=generator) > 0.3).double()
    if kind == "borders":  # a hole on each of the four borders, the padding beside it
        mask[..., :3, 2:6] = 0
        mask[..., -3:, 4:9] = 0
        mask[..., 5:9, :3] = 0
        mask[..., 3:8, -3:] = 0
        return mask
    if kind == "bands":  # holes from one border to the opposite one, and a corner
        mask[..., 4:8, :] = 0
        mask[..., :, 12:15] = 0
        mask[..., -3:, :3] = 0
        return mask
    top, left = height // 4, width // 4
    mask[..., top : top + height // 2, left : left + width // 2] = 0
    return mask


def _reference_mask_path(
    mask: Any, k: int, stride: int, padding: int, dilation: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exercise's mask path from the paper's formula, in float64: (count, ratio, new_mask).

    ``count`` = sum(M) over each window (a convolution with a k x k kernel of ones and the layer's
    stride, padding and dilation), ``ratio = k*k / count`` where ``count > 0`` else 0, ``new_mask``
    = 1 where ``count > 0`` else 0; all ``(N, 1, H', W')`` NumPy float64 arrays.
    """
    import torch
    import torch.nn.functional as F

    ones = torch.ones(1, 1, k, k, dtype=torch.float64)
    count = F.conv2d(mask.double(), ones, None, stride, padding, dilation).numpy()
    valid = (count > 0).astype(np.float64)
    return count, k * k / np.maximum(count, 1) * valid, valid


def _pconv_case_text(kernel: int, stride: int, padding: int, dilation: int, kind: str, shape) -> str:
    return (
        f"kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation}, "
        f"{kind} mask of shape {tuple(shape)}"
    )


def _dtype_probe(function: Callable, args: tuple) -> Callable[[Exception], bool]:
    """Confirms a dtype mistake: the same call runs when every tensor has another float dtype."""
    import torch

    dtype = args[0].dtype

    def confirm(error: Exception) -> bool:
        for other in (torch.float32, torch.float64):
            if other != dtype:
                converted = tuple(a.to(other) if isinstance(a, torch.Tensor) else a for a in args)
                if _works(lambda converted=converted: function(*converted)):
                    return True
        return False

    return confirm


def _maxpool_probe(mask: Any, k: int, stride: int, padding: int, dilation: int) -> Callable[..., bool]:
    """Confirms a new mask by max pooling: F.max_pool2d with the layer's arguments fails the same way."""
    import torch.nn.functional as F

    return lambda error: _same_error(error, lambda: F.max_pool2d(mask, k, stride, padding, dilation))


def _bias_none_probe(function: Callable, args: tuple, c_out: int) -> Callable[[Exception], bool]:
    """Confirms a missing ``bias is None`` test: the same call with a zero bias tensor runs."""
    import torch

    if args[3] is not None:
        return lambda error: False
    with_bias = args[:3] + (torch.zeros(c_out, dtype=args[0].dtype),) + args[4:]
    return lambda error: _works(lambda: function(*with_bias))


def _bias_shape_probe(expected_out: Any, bias: Any) -> Callable[[Exception], bool]:
    """Confirms a bias added without a reshape: ``out + bias`` fails the same way."""
    import torch

    if bias is None:
        return lambda error: False
    return lambda error: _same_error(error, lambda: torch.zeros_like(expected_out) + bias)


_DTYPE_HINT = ("It runs when the inputs have another float dtype, but crashes with these: create every new "
               "tensor (the ones kernel) with the input's dtype and device (dtype=mask.dtype, "
               "device=mask.device).")


_MAXPOOL_HINT = ("F.max_pool2d with these arguments raises exactly this error: max pooling cannot take every "
                 "padding a convolution can. Count the valid pixels with a convolution instead, which takes "
                 "the layer's stride, padding and dilation.")


_BIAS_SHAPE_HINT = ("Adding the bias of shape (C_out,) to the (N, C_out, H', W') output raises exactly this "
                    "error: broadcasting lines up the last axes, so the bias meets the width axis. Give it "
                    "the shape (1, C_out, 1, 1) first.")


def _conv_shape(size: tuple[int, int], k: int, stride: int, padding: int, dilation: int) -> tuple[int, int]:
    return tuple((s + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for s in size)  # type: ignore[return-value]


def _shape_hint(got: tuple[int, ...], expected: tuple[int, ...], size: tuple[int, int], k: int,
                stride: int, padding: int, dilation: int) -> str:
    """A hint only when ``got`` is the shape of the same convolution with some arguments left at default."""
    if len(got) != 4 or got[:2] != expected[:2]:
        return ""
    args = {"stride": (stride, 1), "padding": (padding, 0), "dilation": (dilation, 1)}
    names = [n for n, (value, default) in args.items() if value != default]
    for count in range(1, len(names) + 1):
        for dropped in itertools.combinations(names, count):
            kept = {n: (1 if n != "padding" else 0) if n in dropped else v for n, (v, _) in args.items()}
            if _conv_shape(size, k, **kept) == tuple(got[2:]):
                left = ", ".join(f"{n}={1 if n != 'padding' else 0}" for n in dropped)
                return (f": it is the shape of the same convolution with {left} (the default), so pass "
                        "stride, padding and dilation to F.conv2d, so that the windows are the layer's")
    return ""


def _require_finite(values: np.ndarray, what: str, where: str, empty: np.ndarray) -> None:
    """Fail on inf or NaN; the division-by-zero hint only when they sit in windows with no valid pixel."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    first = np.argwhere(bad)[0].tolist()
    if np.all(np.broadcast_to(empty, values.shape)[bad]):
        _fail(
            f"{what} contains inf or NaN for {where}, exactly in windows with no valid pixel (first at "
            f"index {first}): the division by the count divides by zero there. Clamp the count to at "
            "least 1 before dividing (count.clamp_min(1)), then multiply by (count > 0)"
        )
    _fail(f"{what} contains inf or NaN for {where}, first at index {first}")


def _check_new_mask(got: Any, expected: np.ndarray, name: str, where: str, input_mask: Any,
                    count: np.ndarray) -> None:
    """The learner's new mask against the library's: type, dtype, shape, binary, orientation, values."""
    import torch

    if isinstance(got, torch.Tensor) and got.dtype != input_mask.dtype:
        _fail(
            f"new_mask of {name} has dtype {got.dtype}, expected the mask's dtype {input_mask.dtype} "
            f"for {where}: the next layer multiplies by it and takes it as its mask, which must be "
            "float 0.0 / 1.0 (convert with .to(mask.dtype))"
        )
    _require_tensor(got, f"new_mask of {name}", like=input_mask)
    got = _to_numpy(got)
    if got.shape != expected.shape:
        _fail(f"new_mask of {name} has shape {got.shape}, expected {expected.shape} for {where}")
    values = np.unique(got)
    if not np.all(np.isfinite(got)) or not set(values.tolist()) <= {0.0, 1.0}:
        shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if values.size > 5 else "")
        the_count = " It is the count of valid pixels itself; " if np.array_equal(got, count) else " "
        _fail(
            f"new_mask of {name} must hold exactly 0.0 and 1.0 (1 = valid), found {{{shown}}} for "
            f"{where}.{the_count}new_mask is 1 where the window has at least one valid pixel, e.g. "
            "(count > 0) converted to the mask's dtype"
        )
    if not np.array_equal(got, expected):
        mask = _to_numpy(input_mask)
        if got.shape == mask.shape and np.array_equal(got, mask):
            _fail(
                f"new_mask of {name} is the input mask, unchanged, for {where}: return the updated "
                "mask (1 where the window saw at least one valid pixel), which the holes shrink in"
            )
        if np.all(got == 1) and not np.all(expected == 1):
            _fail(
                f"new_mask of {name} is 1 everywhere for {where}, but windows without any valid "
                "pixel must stay holes (0): when is an output position valid?"
            )
        if np.array_equal(got, 1 - expected):
            _fail(
                f"new_mask of {name} is inverted for {where}: 1 = valid, and an output position is "
                "valid when its window contains at least one valid pixel (count > 0)"
            )
        compare_arrays(f"new_mask of {name} for {where}", got, expected, atol=0.0)


@_guarded
def check_mask_update(mask_ratio_and_update: Callable) -> bool:
    """Check a learner's ``mask_ratio_and_update(mask, kernel_size, stride, padding, dilation)``.

    ``mask`` is single-channel ``(N, 1, H, W)``, 1 = valid; the function returns ``(ratio,
    new_mask)``, both ``(N, 1, H', W')`` tensors in the mask's dtype: ``ratio = k*k / sum(M)``
    where ``sum(M) > 0`` else 0, ``new_mask = 1`` where ``sum(M) > 0`` else 0. Compared with
    :class:`pconv_lib.layers.PartialConv2d`'s mask path on float64 masks, then once on a float16
    mask (the exercise asks for a division guard that holds in float16 too). The mask must be
    left unchanged.
    """
    import torch
    import torch.nn.functional as F

    name = "mask_ratio_and_update"
    cases = [(c, torch.float64) for c in _PCONV_CASES]
    # the exercise asks for a guard that holds in float16 too; a torch too old for float16
    # convolutions on the CPU cannot run that case at all, and the pass line says so
    half = _works(lambda: F.conv2d(torch.ones(1, 1, 3, 3, dtype=torch.float16),
                                   torch.ones(1, 1, 3, 3, dtype=torch.float16)))
    if half:
        cases.append(((2, 16, 16, 3, 1, 1, 1, "random"), torch.float16))
    for seed, ((batch, height, width, k, stride, padding, dilation, kind), dtype) in enumerate(cases):
        mask = _pconv_mask(seed, batch, height, width, kind).to(dtype)
        where = _pconv_case_text(k, stride, padding, dilation, kind, mask.shape)
        if dtype == torch.float16:
            where += " in float16"
        args = (mask.clone(), k, stride, padding, dilation)
        ok, got = _call_diagnosed(mask_ratio_and_update, name, where, args, [
            (_dtype_probe(mask_ratio_and_update, args), _DTYPE_HINT),
            (_maxpool_probe(mask, k, stride, padding, dilation), _MAXPOOL_HINT),
        ])
        if not ok:
            return _todo(name)
        _require_unchanged(f"{name} for {where}", [("mask", mask, args[0])])
        ratio, new_mask = _unpack_pair(got, name, "(ratio, new_mask)")
        count, expected_ratio, expected_mask = _reference_mask_path(mask, k, stride, padding, dilation)
        _require_order(ratio, new_mask, (torch.from_numpy(expected_ratio), torch.from_numpy(expected_mask)),
                       name, "(ratio, new_mask)", where)
        _require_tensor(ratio, f"ratio of {name}", like=mask)
        if tuple(ratio.shape) != expected_ratio.shape:
            hint = _shape_hint(tuple(ratio.shape), expected_ratio.shape, (height, width), k, stride, padding,
                               dilation)
            _fail(f"ratio of {name} has shape {tuple(ratio.shape)}, expected {expected_ratio.shape} for "
                  f"{where}{hint}")
        ratio = _to_numpy(ratio)
        if dtype == torch.float16 and not np.all(np.isfinite(ratio)):
            _fail(
                f"ratio of {name} contains inf or NaN for {where}, although it is finite for every float64 "
                "mask: the guard against dividing by zero does not hold in float16, which cannot store "
                "numbers below 6e-8 (a small epsilon becomes 0) or above 65504 (k*k divided by a small "
                "epsilon overflows). Clamp the count to at least 1 before dividing (count.clamp_min(1)), "
                "then multiply by (count > 0)"
            )
        _require_finite(ratio, f"ratio of {name}", where, count == 0)
        _check_new_mask(new_mask, expected_mask, name, where, mask, count)
        tolerance = 2e-3 if dtype == torch.float16 else 1e-9
        if np.allclose(ratio, expected_ratio, rtol=tolerance, atol=tolerance):
            continue
        empty, valid = count == 0, count > 0
        safe_count = np.maximum(count, 1)
        if empty.any() and not np.allclose(ratio[empty], 0):
            _fail(
                f"ratio of {name} is {ratio[empty].max():g} where the window has no valid pixel, for "
                f"{where}: it must be 0 there (multiply by (count > 0) after dividing by "
                "count.clamp_min(1))"
            )
        hint = _unique_hint([
            (np.allclose(ratio[valid], candidate[valid], rtol=tolerance, atol=tolerance)
             and not np.allclose(candidate[valid], expected_ratio[valid], rtol=tolerance, atol=tolerance),
             hint.format(k=k, window=k * k))
            for mistake, hint in RATIO_MISTAKES for candidate in [mistake(safe_count, k)]
        ])
        if hint:
            _fail(f"{hint.strip()} (for {where})")
        epsilon = (k * k / ratio[valid] - count[valid]) if np.all(ratio[valid] > 0) else np.zeros(1)
        if dtype == torch.float64 and 0 < epsilon.min() and np.allclose(epsilon, epsilon.mean(), rtol=1e-3):
            got_value, want = float(ratio[valid].flat[0]), float(expected_ratio[valid].flat[0])
            _fail(
                f"ratio of {name} is off by a tiny amount (e.g. {got_value:.10g} instead of {want:.10g}) "
                f"for {where}: it equals k*k / (count + {epsilon.mean():.2g}). An epsilon added to the count "
                "changes every ratio (and vanishes in float16). Guard the division by clamping the count to "
                "at least 1 instead; empty windows get ratio 0 anyway"
            )
        compare_arrays(f"ratio of {name} for {where}", ratio, expected_ratio, atol=tolerance * 50)
    return _passed(
        f"{name} matches PartialConv2d's mask path on {len(cases)} masks (all hole, all valid, holes on "
        "the borders, strides, paddings, dilations, "
        + ("float16)" if half else "no float16: this torch cannot convolve float16 on the CPU)")
    )


def _bias_axis_hint(out: Any, base: np.ndarray, valid: np.ndarray, bias: Any) -> str:
    """A hint when ``out`` is the right result with the bias added along another axis (recomputed)."""
    if bias is None:
        return ""
    b = bias.numpy()
    shapes = {"the batch axis": (-1, 1, 1, 1), "the height axis": (1, 1, -1, 1),
              "the width axis": (1, 1, 1, -1)}
    for axis, shape in shapes.items():
        try:
            with np.errstate(all="ignore"):
                candidates = [base + b.reshape(shape), (base + b.reshape(shape)) * valid]
        except ValueError:  # does not broadcast
            continue
        for candidate in candidates:
            same = candidate.shape == tuple(out.shape) and np.allclose(
                _to_numpy(out), candidate, rtol=1e-7, atol=1e-9)
            if same:
                return (f": the bias was added along {axis} (a bias reshaped to {shape}). It belongs to the "
                        "output channels: give it the shape (1, C_out, 1, 1)")
    return ""


@_guarded
def _pconv_case_inputs(seed: int, batch: int, height: int, width: int, k: int, kind: str):
    """Case ``seed``'s seeded float64 inputs, the same for the value and the gradient check:
    ``(c_in, c_out, with_bias, mask, x, weight, bias)``; the last case has no bias (``None``)."""
    import torch

    c_in, c_out = (5, 2) if seed % 3 == 1 else (3, 4)
    with_bias = seed != len(_PCONV_CASES) - 1
    generator = torch.Generator().manual_seed(2000 + seed)
    mask = _pconv_mask(seed, batch, height, width, kind)
    x = torch.rand(batch, c_in, height, width, generator=generator, dtype=torch.float64) + 0.5
    weight = torch.randn(c_out, c_in, k, k, generator=generator, dtype=torch.float64)
    bias = torch.randn(c_out, generator=generator, dtype=torch.float64) + 2 if with_bias else None
    return c_in, c_out, with_bias, mask, x, weight, bias


def check_partial_conv_forward(partial_conv_forward: Callable) -> bool:
    """Check a learner's ``partial_conv_forward(x, mask, weight, bias, stride, padding, dilation)``.

    ``x`` ``(N, C_in, H, W)``, single-channel ``mask`` ``(N, 1, H, W)`` (1 = valid), ``weight``
    ``(C_out, C_in, k, k)``, ``bias`` ``(C_out,)`` or None; returns ``(out, new_mask)``, tensors in
    the input's dtype, with no input changed. Compared with :class:`pconv_lib.layers.PartialConv2d`
    (weights copied) on float64 inputs whose hole pixels hold random values; a mistake is named
    only when the learner's result equals that mistake recomputed.
    """
    import torch
    import torch.nn.functional as F

    from pconv_lib.layers import PartialConv2d

    name = "partial_conv_forward"
    for seed, (batch, height, width, k, stride, padding, dilation, kind) in enumerate(_PCONV_CASES):
        case = _pconv_case_inputs(seed, batch, height, width, k, kind)
        c_in, c_out, with_bias, mask, x, weight, bias = case
        where = _pconv_case_text(k, stride, padding, dilation, kind, mask.shape)
        where += f", {c_in} -> {c_out} channels" + ("" if with_bias else ", bias=None")

        layer = PartialConv2d(c_in, c_out, k, stride, padding, dilation, bias=with_bias, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
            expected_out, expected_mask = layer(x, mask)
        expected = expected_out.numpy()

        args = (x.clone(), mask.clone(), weight.clone(), None if bias is None else bias.clone(), stride,
                padding, dilation)
        ok, got = _call_diagnosed(partial_conv_forward, name, where, args, [
            (_bias_none_probe(partial_conv_forward, args, c_out),
             "It runs with a bias tensor but crashes with bias=None. The bias can be None (a layer built "
             "with bias=False): add it only `if bias is not None`."),
            (_dtype_probe(partial_conv_forward, args), _DTYPE_HINT),
            (_maxpool_probe(mask, k, stride, padding, dilation), _MAXPOOL_HINT),
            (_bias_shape_probe(expected_out, bias), _BIAS_SHAPE_HINT),
        ])
        if not ok:
            return _todo(name)
        _require_unchanged(f"{name} for {where}", [("x", x, args[0]), ("mask", mask, args[1]),
                                                   ("weight", weight, args[2]), ("bias", bias, args[3])])
        out, new_mask = _unpack_pair(got, name, "(out, new_mask)")
        _require_order(out, new_mask, (expected_out, expected_mask), name, "(out, new_mask)", where)
        _require_tensor(out, f"out of {name}", like=x)

        _, ratio, valid = _reference_mask_path(mask, k, stride, padding, dilation)
        raw = F.conv2d(x * mask, weight, None, stride, padding, dilation).numpy()
        if tuple(out.shape) != expected.shape:
            hint = _shape_hint(tuple(out.shape), expected.shape, (height, width), k, stride, padding,
                               dilation)
            hint = hint or _bias_axis_hint(out, raw * ratio, valid, bias)
            _fail(f"out of {name} has shape {tuple(out.shape)}, expected {expected.shape} for {where}{hint}")
        count = F.conv2d(mask, torch.ones(1, 1, k, k, dtype=torch.float64), None, stride, padding, dilation)
        out = _to_numpy(out)
        _require_finite(out, f"out of {name}", where, count.numpy() == 0)
        _check_new_mask(new_mask, expected_mask.numpy(), name, where, mask, count.numpy())
        if np.allclose(out, expected, rtol=1e-7, atol=1e-9):
            continue

        plain = F.conv2d(x, weight, None, stride, padding, dilation).numpy()
        b = np.zeros((1, c_out, 1, 1)) if bias is None else bias.numpy().reshape(1, -1, 1, 1)
        pieces = {"raw": raw, "plain": plain, "ratio": ratio, "valid": valid, "b": b, "c_in": c_in}
        hint = _unique_hint([
            (not np.allclose(candidate, expected, rtol=1e-7, atol=1e-9)
             and np.allclose(out, candidate, rtol=1e-7, atol=1e-9), hint.format(c_in=c_in, window=k * k))
            for mistake, hint in FORWARD_MISTAKES for candidate in [mistake(pieces)]
        ])
        if hint:
            _fail(f"{hint.strip()} (for {where})")
        hint = _bias_axis_hint(torch.from_numpy(out), raw * ratio, valid, bias)
        if hint:
            _fail(f"out of {name} differs for {where}{hint}")
        compare_arrays(
            f"out of {name} for {where} (does check_mask_update pass?)", out, expected, atol=1e-7
        )
    for seed, (batch, height, width, k, stride, padding, dilation, kind) in enumerate(_PCONV_CASES):
        _check_forward_gradients(partial_conv_forward, seed, batch, height, width, k, stride, padding,
                                 dilation, kind)
    return _passed(
        f"{name} matches pconv_lib.layers.PartialConv2d on {len(_PCONV_CASES)} cases "
        "(all hole, all valid, holes on the borders, strides, paddings, dilations, bias=None), "
        "gradients included"
    )


def _check_forward_gradients(partial_conv_forward: Callable, seed: int, batch: int, height: int, width: int,
                             k: int, stride: int, padding: int, dilation: int, kind: str) -> None:
    """The gradient of the learner's forward pass with respect to x, weight and bias, against the
    formula's (the same inputs as the value check of case ``seed``): training follows it."""
    import torch
    import torch.nn.functional as F

    _, _, with_bias, mask, x, weight, bias = _pconv_case_inputs(seed, batch, height, width, k, kind)
    where = _pconv_case_text(k, stride, padding, dilation, kind, mask.shape)
    mine = [t.clone().requires_grad_(True) if t is not None else None for t in (x, weight, bias)]
    theirs = [t.clone().requires_grad_(True) if t is not None else None for t in (x, weight, bias)]
    _, got = _call_diagnosed(partial_conv_forward, "partial_conv_forward", where,
                             (mine[0], mask.clone(), mine[1], mine[2], stride, padding, dilation), [])
    _, ratio, valid = _reference_mask_path(mask, k, stride, padding, dilation)
    expected = F.conv2d(theirs[0] * mask, theirs[1], None, stride, padding, dilation)
    expected = expected * torch.from_numpy(ratio)
    if theirs[2] is not None:
        expected = expected + theirs[2].view(1, -1, 1, 1)
    expected = expected * torch.from_numpy(valid)
    names = [("x", mine[0], theirs[0]), ("weight", mine[1], theirs[1])]
    if with_bias:
        names.append(("bias", mine[2], theirs[2]))
    _require_gradients(f"partial_conv_forward for {where}", got[0] if isinstance(got, (tuple, list)) else got,
                       expected, names, rtol=1e-7, atol=1e-9, seed=seed)
