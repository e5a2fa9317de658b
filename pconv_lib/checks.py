"""Self-checks for the exercises: run the learner's function against the library on seeded
inputs and explain the first mismatch in plain words.

Every ``check_*`` function:

- prints a line starting with a check mark and returns True when the learner's code works;
- prints "not implemented yet" and returns False when it raises ``NotImplementedError``
  (so the following cells of an exercise notebook still run);
- raises :class:`ExerciseCheckError` whose message names the first mismatch otherwise.

Library modules are imported inside each check so that importing this module stays cheap.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

PASS = "\u2705"
TODO = "\u23f3"


class ExerciseCheckError(AssertionError):
    """The learner's function runs but gives a wrong result; the message says what differs."""


def _call(function: Callable, *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """Call the learner's function; (False, None) if it is still a stub."""
    try:
        return True, function(*args, **kwargs)
    except NotImplementedError:
        return False, None


def _todo(name: str) -> bool:
    print(f"{TODO} {name} is not implemented yet: replace the `raise NotImplementedError` line.")
    return False


def _passed(message: str) -> bool:
    print(f"{PASS} {message}")
    return True


def _fail(message: str) -> None:
    raise ExerciseCheckError(message)


def _first_line(error: BaseException, limit: int = 300) -> str:
    """``"TypeError: what it says"``, first line only, at most ``limit`` characters."""
    return f"{type(error).__name__}: {error}".splitlines()[0][:limit].rstrip(".")


def _guarded(check: Callable[..., bool]) -> Callable[..., bool]:
    """Make a check turn any unexpected exception into an :class:`ExerciseCheckError`.

    The contract checks below catch wrong types, shapes and dtypes first; this is the net under
    them, so that whatever the learner's function returns or raises, the check answers with one
    message and never fails inside its own code with a bare AttributeError or TypeError.
    """

    @functools.wraps(check)
    def guarded(*args: Any, **kwargs: Any) -> bool:
        try:
            return check(*args, **kwargs)
        except ExerciseCheckError:
            raise
        except Exception as error:  # the learner's code, or what it returned, broke the check
            raise ExerciseCheckError(
                f"{check.__name__} could not run your function to the end ({_first_line(error)}): "
                "compare the types, shapes and dtypes it takes and returns with the task's description"
            ) from None

    return guarded


def _same_error(error: BaseException, reproduce: Callable[[], Any]) -> bool:
    """True when ``reproduce()`` (a suspected mistake, redone by the check) raises the same error.

    A crash is explained only when the suspected mistake, recomputed on the same inputs, fails
    with the same exception type and text: the diagnosis is confirmed, not guessed from words.
    """
    try:
        reproduce()
    except Exception as again:
        return type(again) is type(error) and str(again) == str(error)
    return False


def _describe_array(value: Any) -> str:
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}, dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _require_tensor(value: Any, what: str, *, like: Any = None, dtype: Any = None,
                    shape: tuple[int, ...] | None = None, also: Any = None) -> None:
    """The contract before the values: a torch tensor (not NumPy), dtype and device, then shape.

    ``like``: a tensor whose dtype and device the result must have (the spec's "in the input's
    dtype"); ``dtype`` overrides the dtype; ``also``: a second accepted dtype.
    """
    import torch

    if isinstance(value, np.ndarray):
        _fail(f"{what} is a NumPy array ({_describe_array(value)}): return a torch tensor. Keep the "
              "computation in torch (no .numpy(), np.* functions or np.array(...)), so that it runs "
              "on a GPU and gradients can flow through it")
    if not isinstance(value, torch.Tensor):
        _fail(f"{what} should be a torch tensor, got {_describe_array(value)}")
    want = dtype if dtype is not None else (like.dtype if like is not None else None)
    if want is not None and value.dtype not in (want, also):
        if like is None:
            _fail(f"{what} has dtype {value.dtype}, expected {want}, as the task says: convert the result "
                  f"with .to({want})")
        _fail(f"{what} has dtype {value.dtype}, expected {want}, the input's: create new tensors with the "
              "input's dtype and device (dtype=x.dtype, device=x.device) or convert with .to(x.dtype)")
    if like is not None and value.device != like.device:
        _fail(f"{what} is on {value.device}, but the inputs are on {like.device}: create new tensors "
              "on the input's device (device=x.device), never a fixed one")
    if shape is not None and tuple(value.shape) != tuple(shape):
        _fail(f"{what} has shape {tuple(value.shape)}, expected {tuple(shape)}")


def _require_unchanged(call: str, inputs: list[tuple[str, Any, Any]]) -> None:
    """Fail when the learner's function modified one of its inputs in place.

    ``inputs``: (name, original, the copy that was passed); the check calls the learner's function
    with copies and compares them with the originals afterwards.
    """
    import torch

    for name, original, passed in inputs:
        if original is None:
            continue
        if isinstance(original, torch.Tensor):
            same = isinstance(passed, torch.Tensor) and torch.equal(original, passed)
        else:
            same = np.array_equal(original, passed)
        if not same:
            _fail(f"{call} changed its input `{name}` in place: the caller's data must stay as it was. "
                  "Compute new arrays or tensors (y = a * b, or work on a copy) instead of in-place "
                  "operations (*=, +=, ^=, methods ending in _, or assigning into a slice)")


def compare_arrays(name: str, got: Any, expected: np.ndarray, *, atol: float = 1e-6) -> None:
    """Raise :class:`ExerciseCheckError` naming the first value where ``got`` differs from ``expected``.

    The neutral message of every check: "first mismatch at index [...]: expected ..., got ...".
    """
    try:
        import torch

        if isinstance(got, torch.Tensor):
            got = got.detach().cpu().numpy()
        if isinstance(expected, torch.Tensor):
            expected = expected.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if not isinstance(got, np.ndarray):
        _fail(f"{name} should be an array like {_describe_array(expected)}, got {_describe_array(got)}")
    if got.shape != expected.shape:
        _fail(f"{name} has shape {got.shape}, expected {expected.shape}")
    if not np.issubdtype(got.dtype, np.number) and got.dtype != bool:
        _fail(f"{name} holds {got.dtype} values, expected numbers like {expected.dtype}")
    got64, expected64 = got.astype(np.float64), expected.astype(np.float64)
    if not np.all(np.isfinite(got64)):
        _fail(f"{name} contains inf or NaN at index {np.argwhere(~np.isfinite(got64))[0].tolist()}")
    diff = np.abs(got64 - expected64)
    if diff.max(initial=0.0) > atol:
        where = tuple(np.argwhere(diff > atol)[0])
        _fail(
            f"{name}: first mismatch at index {list(map(int, where))}: expected {expected64[where]:.6g}, "
            f"got {got64[where]:.6g} ({int((diff > atol).sum())} of {diff.size} values differ)"
        )


# --------------------------------------------------------------------------------------------
# Step 1: masks
# --------------------------------------------------------------------------------------------


@_guarded
def check_hole_ratio(hole_ratio: Callable[[np.ndarray], float]) -> bool:
    """Check a learner's ``hole_ratio(mask) -> float`` (1 = valid, 0 = hole)."""
    from pconv_lib import masks

    cases = [
        ("an all-valid mask", np.ones((8, 8), np.uint8)),
        ("an all-hole mask", np.zeros((8, 8), np.uint8)),
    ]
    cases += [(f"random mask (seed {s})", masks.random_irregular_mask(64, 48, s)) for s in range(5)]
    for label, mask in cases:
        passed = mask.copy()
        ok, got = _call(hole_ratio, passed)
        if not ok:
            return _todo("hole_ratio")
        _require_unchanged(f"hole_ratio({label})", [("mask", mask, passed)])
        expected = masks.hole_ratio(mask)
        if not isinstance(got, (float, np.floating)):
            _fail(f"hole_ratio should return a float, got {_describe_array(got)} for {label}")
        if abs(float(got) - expected) > 1e-9:
            hint = ""
            if abs(float(got) - (1 - expected)) < 1e-9:
                hint = " You counted valid pixels: holes are the zeros (1 = valid, 0 = hole)."
            _fail(f"hole_ratio gives {float(got):.4f} for {label}, expected {expected:.4f}.{hint}")
    return _passed(f"hole_ratio agrees with pconv_lib.masks.hole_ratio on {len(cases)} masks")


@_guarded
def check_hole_ratio_bucket(hole_ratio_bucket: Callable[[float], int | None]) -> bool:
    """Check a learner's ``hole_ratio_bucket(ratio) -> int | None`` (the paper's 6 buckets)."""
    from pconv_lib import masks

    probes = [0.0, 0.005, 0.01, 0.0100001, 0.05, 0.1, 0.1000001, 0.15, 0.2, 0.25, 0.3, 0.35,
              0.4, 0.45, 0.5, 0.5000001, 0.55, 0.6, 0.6000001, 0.8, 1.0]
    answers = []
    for ratio in probes:
        ok, got = _call(hole_ratio_bucket, ratio)
        if not ok:
            return _todo("hole_ratio_bucket")
        if got is not None and (isinstance(got, bool) or not isinstance(got, (int, np.integer))):
            _fail(f"hole_ratio_bucket({ratio}) returned {_describe_array(got)}: return the bucket's "
                  "number as an int (0..5), or None outside every bucket")
        answers.append(None if got is None else int(got))

    def bucket_with(inside: Callable[[float, float, float], bool], first: int = 0) -> list[int | None]:
        """The answers of a bucket function whose intervals are tested by ``inside``."""
        result: list[int | None] = []
        for ratio in probes:
            found = [i for i, (low, high) in enumerate(masks.HOLE_RATIO_BUCKETS) if inside(ratio, low, high)]
            result.append(found[0] + first if found else None)
        return result

    expected = [masks.hole_ratio_bucket(r) for r in probes]
    half_open = ("buckets are half-open intervals (low, high], so 0.1 is in bucket 0 and 0.1000001 in "
                 "bucket 1; ratios <= 0.01 or > 0.6 are outside every bucket (None).")
    variants = [  # (the answers of a suspected mistake, what it is)
        (bucket_with(lambda r, lo, hi: lo <= r < hi), "intervals [low, high), closed on the wrong side: "
         + half_open),
        (bucket_with(lambda r, lo, hi: lo <= r <= hi), "closed intervals [low, high]: " + half_open),
        (bucket_with(lambda r, lo, hi: lo < r < hi), "open intervals (low, high): " + half_open),
        (bucket_with(lambda r, lo, hi: lo < r <= hi, first=1), "the right buckets, numbered from 1: bucket "
         "numbers start at 0."),
    ]
    for ratio, got, want in zip(probes, answers, expected):
        if got != want:
            hint = next((h for v, h in variants if v == answers and v != expected), "")
            if hint:
                hint = f" Your answers on all {len(probes)} probe ratios are those of {hint}"
            _fail(f"hole_ratio_bucket({ratio}) returned {got!r}, expected {want!r}.{hint}")
    return _passed(f"hole_ratio_bucket puts all {len(probes)} probe ratios in the right bucket")


@_guarded
def check_stroke_drawer(
    draw: Callable[[np.ndarray, np.random.Generator, int], None], *, quiet: bool = False
) -> bool:
    """Check a learner's stroke function ``draw(canvas, rng, max_size)`` that paints 1s in place.

    Generic: binary, in place, seeded, random, not larger than ``max_size`` allows. ``quiet``
    skips the pass line (used by :func:`check_circle_drawer`, which checks more).
    """
    for seed in range(10):
        canvas = np.zeros((96, 128), np.uint8)
        ok, returned = _call(draw, canvas, np.random.default_rng(seed), 12)
        if not ok:
            return _todo(getattr(draw, "__name__", "the stroke function"))
        if isinstance(returned, np.ndarray) and returned.any() and canvas.sum() == 0:
            _fail("the stroke function must draw on `canvas` in place (cv2 drawing functions "
                  "do), not return a new image")
        values = set(np.unique(canvas).tolist())
        if not values <= {0, 1}:
            not_255 = ", not 255" if values == {0, 255} else ""
            _fail(f"the canvas must only hold 0 and 1 (1 = drawn = future hole), found {values}; "
                  f"draw with colour 1{not_255}")
        if canvas.sum() == 0:
            _fail(f"nothing was drawn on the {canvas.shape[0]}x{canvas.shape[1]} canvas for seed {seed}: "
                  "is the stroke inside the image? cv2 takes points as (x, y) = (column, row), and "
                  "canvas.shape is (height, width); and draw on `canvas` itself, not on a copy")
        if canvas.mean() > 0.9:
            _fail(f"the canvas is {canvas.mean():.0%} ones after one stroke: leave the canvas as it is "
                  "(0 = nothing drawn) and draw the stroke with value 1 (1 = drawn = future hole)")
        if canvas.mean() > 0.6:
            _fail(f"one stroke covered {canvas.mean():.0%} of the canvas: keep thickness <= max_size")
        again = np.zeros_like(canvas)
        draw(again, np.random.default_rng(seed), 12)
        if not np.array_equal(canvas, again):
            _fail("the same seed drew different strokes: take every random number from `rng`")
    first, second = np.zeros((96, 128), np.uint8), np.zeros((96, 128), np.uint8)
    draw(first, np.random.default_rng(0), 12)
    draw(second, np.random.default_rng(1), 12)
    if np.array_equal(first, second):
        _fail("two different seeds drew the same stroke: positions and sizes must be random")
    if quiet:
        return True
    return _passed("the stroke function draws binary, seeded, random strokes in place")


def _circle_of(canvas: np.ndarray) -> tuple[int, int, int] | None:
    """(x, y, radius) of the disc whose bounding box is the drawing's, or None if it is not square."""
    rows, cols = np.nonzero(canvas)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    if bottom - top != right - left or (bottom - top) % 2:
        return None
    return int(left + right) // 2, int(top + bottom) // 2, int(right - left) // 2


@_guarded
def check_circle_drawer(draw: Callable[[np.ndarray, np.random.Generator, int], None]) -> bool:
    """Check a learner's ``draw_random_circle(canvas, rng, max_size)``: one **filled** circle of
    value 1, centre anywhere in the image, radius 3..``max_size`` (both included), drawn in place
    with every random number taken from ``rng``.

    After the generic stroke checks, 300 seeded drawings on a 96x128 canvas with ``max_size=12``
    are compared with ``cv2.circle``: each drawing that does not touch the border must be exactly
    a filled disc; the radii seen must run from 3 to 12; some circles must reach every border.
    """
    import cv2

    name = getattr(draw, "__name__", "draw_random_circle")
    if not check_stroke_drawer(draw, quiet=True):
        return False
    height, width, max_size = 96, 128, 12
    radii: set[int] = set()
    reached = np.zeros((height, width), bool)
    for seed in range(300):
        canvas = np.zeros((height, width), np.uint8)
        draw(canvas, np.random.default_rng(seed), max_size)
        reached |= canvas > 0
        rows, cols = np.nonzero(canvas)
        if rows.min() == 0 or cols.min() == 0 or rows.max() == height - 1 or cols.max() == width - 1:
            continue  # clipped by the border: its radius cannot be read off
        circle = _circle_of(canvas)
        if circle is None:
            _fail(f"{name} (seed {seed}) drew a shape whose bounding box is not a square: draw a circle "
                  "(cv2.circle), not a line or an ellipse")
        x, y, radius = circle
        disc = cv2.circle(np.zeros_like(canvas), (x, y), radius, 1, -1)
        if not np.array_equal(canvas, disc):
            if canvas[y, x] == 0 or canvas.sum() < 0.8 * disc.sum():
                _fail(f"{name} (seed {seed}) drew the outline of a circle of radius {radius}, not a "
                      "filled one: a hole is the whole disc. How does cv2.circle fill a shape? "
                      "(look at its `thickness` argument)")
            _fail(f"{name} (seed {seed}) drew something that is not a filled circle: draw exactly one "
                  "cv2.circle per call")
        radii.add(radius)
    if not radii:
        _fail(f"every circle {name} drew touches the image border: the radius should be "
              f"3..max_size, not larger")
    low, high = min(radii), max(radii)
    if low < 3 or high > max_size:
        _fail(f"{name} drew radii from {low} to {high} with max_size={max_size}; they must lie in "
              f"3..max_size (both included). Are you drawing with the radius (not the diameter)?")
    if high == max_size - 1:
        _fail(f"{name} never draws radius max_size={max_size} (largest seen in 300 draws: {high}): "
              "the range 3..max_size includes max_size, but rng.integers(low, high) never returns "
              "`high` itself")
    if low > 3 or high < max_size or len(radii) < 4:
        _fail(f"{name} drew radii {sorted(radii)} in 300 draws with max_size={max_size}; the radius "
              f"should be random, anywhere in 3..{max_size} (both included)")
    edges = {"top": reached[0].any(), "bottom": reached[-1].any(), "left": reached[:, 0].any(),
             "right": reached[:, -1].any()}
    missing = [edge for edge, hit in edges.items() if not hit]
    if missing:
        _fail(f"in 300 draws on a {height}x{width} canvas no circle reached the {' or '.join(missing)} "
              "border: the centre can be anywhere in the image, x (the column) in [0, width) and y "
              "(the row) in [0, height); cv2 takes the centre as (x, y)")
    return _passed(f"{name} draws filled circles of radius 3..max_size anywhere in the image, seeded")


# --------------------------------------------------------------------------------------------
# Step 4: losses
# --------------------------------------------------------------------------------------------


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
        scale_hints = {
            c * h * w: "it is not normalised: divide by C·H·W",
            h * w: "it is divided by C only: divide by C·H·W",
            c: "it is divided by H·W only: divide by C·H·W",
        }
        for factor, hint in scale_hints.items():
            if factor != 1 and bool((got_d - expected * factor).abs().max() < 1e-6 * factor):
                _fail(f"{call} is {factor}x too large: {hint}")
        compare_arrays(call, got, expected, atol=1e-6)
    return _passed("gram_matrix matches pconv_lib.losses.gram_matrix, normalised by C·H·W")


def _tv_variants(comp, mask) -> list[tuple[str, Any]]:
    """Plausible wrong total-variation losses, each with the message that leads to the fix."""
    import torch.nn.functional as F

    hole = 1 - mask
    region = F.max_pool2d(hole, kernel_size=3, stride=1, padding=1)
    valid_region = F.max_pool2d(mask, kernel_size=3, stride=1, padding=1)
    numel = comp.numel()

    def dx(x):
        return x[..., :, 1:] - x[..., :, :-1]

    def dy(x):
        return x[..., 1:, :] - x[..., :-1, :]

    def pair_x(p):
        return p[..., :, 1:] * p[..., :, :-1]

    def pair_y(p):
        return p[..., 1:, :] * p[..., :-1, :]

    def tv(image, weight_x=1.0, weight_y=1.0, power=1):
        return (dx(image).abs() ** power * weight_x).sum() + (dy(image).abs() ** power * weight_y).sum()

    correct_sum = tv(comp, pair_x(region), pair_y(region))
    premask = (
        "It looks like you multiplied comp by the region before taking differences: where P ends, a "
        "pixel next to a zeroed one makes a false jump (its value minus 0), so the border of P is "
        "counted as an edge. Take the differences of comp first, then keep each difference only where "
        "both of its pixels are in P (weight it by P at both pixels)."
    )
    return [
        ("whole image", tv(comp) / numel,
         "It looks like the TV of the whole image: count only differences inside the dilated holes P."),
        ("region before differences", tv(comp * region) / numel, premask),
        ("holes before differences", tv(comp * hole) / numel,
         premask + " (And P is the holes dilated by one pixel, not the holes themselves.)"),
        ("one pixel in P", tv(comp, region[..., :, 1:], region[..., 1:, :]) / numel,
         "A difference must count only when BOTH of its pixels are in P: you weighted it by P at one "
         "pixel only. Multiply by P at both ends (the pixel and its right / lower neighbour)."),
        ("undilated holes", tv(comp, pair_x(hole), pair_y(hole)) / numel,
         "You used the holes themselves as the region: P is the holes dilated by one pixel "
         "(a 3x3 max-pool of 1 - mask, stride 1, padding 1), so the seam between a hole and its valid "
         "neighbours counts too - that seam is what the TV term smooths."),
        ("dilated valid pixels", tv(comp, pair_x(valid_region), pair_y(valid_region)) / numel,
         "You dilated the valid pixels: mask is 1 = valid, 0 = hole, so the holes are 1 - mask; "
         "dilate those."),
        ("squared differences", tv(comp, pair_x(region), pair_y(region), power=2) / numel,
         "The TV term is an L1 norm: sum absolute differences, not squared ones."),
        ("horizontal only", (dx(comp).abs() * pair_x(region)).sum() / numel,
         "Only horizontal differences are counted: add the vertical ones (rows i and i+1) too."),
        ("vertical only", (dy(comp).abs() * pair_y(region)).sum() / numel,
         "Only vertical differences are counted: add the horizontal ones (columns j and j+1) too."),
        ("not normalised", correct_sum,
         "The sum is right but not normalised: divide it by the number of elements of comp (comp.numel())."),
        ("divided by |P|", correct_sum / region.sum().clamp_min(1),
         "Divide by the number of elements of comp (comp.numel(), N*C*H*W, the paper's N), not by the "
         "number of pixels in P."),
        ("divided by N*H*W", correct_sum / (numel // comp.shape[1]),
         "Divide by the number of elements of comp including its 3 channels (comp.numel() = N*C*H*W)."),
        ("mean of differences",
         (dx(comp).abs() * pair_x(region)).mean() + (dy(comp).abs() * pair_y(region)).mean(),
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
        expected = float(losses.total_variation_loss(comp, mask).double())
        if abs(got_value - expected) > 1e-6:
            hint = ""
            if seed == 3:
                hint = " With no hole at all the TV loss must be 0 (P is empty)."
            else:
                for _, value, message in _tv_variants(comp, mask):
                    if abs(got_value - float(value)) < 1e-9 + 1e-6 * abs(float(value)):
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


# --------------------------------------------------------------------------------------------
# Step 5: tiling
# --------------------------------------------------------------------------------------------


def _as_corners(got: Any, call: str) -> list[tuple[int, int]]:
    """The learner's tile list as [(top, left), ...] of Python ints, or a plain-words failure."""
    if isinstance(got, np.ndarray) and got.ndim == 2 and got.shape[1] == 2:
        got = got.tolist()
    if not isinstance(got, (list, tuple)):
        _fail(f"{call} should return a list of (top, left) pairs, got {type(got).__name__}")
    corners = []
    for item in got:
        if (
            not isinstance(item, (tuple, list, np.ndarray))
            or len(item) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in item)
        ):
            _fail(f"{call} should return (top, left) pairs of ints, found {item!r} in the list")
        corners.append((int(item[0]), int(item[1])))
    return corners


def _uncovered_box(covered: np.ndarray) -> str:
    """The uncovered rectangle that starts at the first uncovered pixel, in words."""
    top, left = (int(v) for v in np.argwhere(~covered)[0])

    def run(line: np.ndarray) -> int:  # length of the uncovered run at the start of ``line``
        return int(np.argmax(line)) if line.any() else line.size

    bottom = top + run(covered[top:, left]) - 1
    right = left + run(covered[top, left:]) - 1
    text = f"pixels (row {top}..{bottom}, col {left}..{right}) are not covered by any tile"
    at_bottom, at_right = bottom == covered.shape[0] - 1, right == covered.shape[1] - 1
    if top == 0 and at_bottom:  # a vertical strip: a column of tiles is missing
        at_border = at_right
    elif left == 0 and at_right:  # a horizontal strip: a row of tiles is missing
        at_border = at_bottom
    else:
        at_border = at_bottom or at_right
    if at_border:
        return text + "; the last tile of each row and column must end flush with the border"
    return text + "; consecutive tiles must start tile - overlap pixels apart, so that they overlap"


@_guarded
def check_tile_grid(tile_grid: Callable[[int, int, int, int], list[tuple[int, int]]]) -> bool:
    """Check a learner's ``tile_grid(height, width, tile, overlap) -> [(top, left), ...]``.

    The grid is fixed by its definition (step ``tile - overlap``, last tile flush with the
    border), so the result is compared with :func:`pconv_lib.tiling.tile_grid`, after checks of
    the properties (inside the image, no duplicates, full coverage, step) that explain a mismatch
    in plain words. The order of the tiles is free.
    """
    from pconv_lib import tiling

    cases = [  # (height, width, tile, overlap)
        (128, 128, 128, 32),  # exactly one tile
        (224, 416, 128, 32),  # a regular grid: 224 = 128 + 96, 416 = 128 + 3 * 96
        (300, 300, 128, 32),  # not regular: the last tile is moved back to end at the border
        (200, 500, 96, 0),  # no overlap
        (160, 700, 64, 16),
        (97, 130, 32, 8),
    ]
    for height, width, tile, overlap in cases:
        call = f"tile_grid({height}, {width}, {tile}, {overlap})"
        ok, got = _call(tile_grid, height, width, tile, overlap)
        if not ok:
            return _todo("tile_grid")
        corners = _as_corners(got, call)
        if not corners:
            _fail(f"{call} returned no tiles: at least one tile is needed to cover the image")
        for top, left in corners:
            if top < 0 or left < 0:
                _fail(f"{call}: tile at ({top}, {left}) starts outside the image (negative corner)")
            if left + tile > width:
                _fail(
                    f"{call}: tile at ({top}, {left}) runs past the right edge of a {width}-wide "
                    f"image ({left} + {tile} > {width}); start the last column at width - tile = "
                    f"{width - tile}"
                )
            if top + tile > height:
                _fail(
                    f"{call}: tile at ({top}, {left}) runs past the bottom edge of a "
                    f"{height}-high image ({top} + {tile} > {height}); start the last row at "
                    f"height - tile = {height - tile}"
                )
        seen = set()
        for corner in corners:
            if corner in seen:
                _fail(
                    f"{call}: tile {corner} is listed twice; when the regular grid already ends "
                    "flush with the border, do not add another last tile"
                )
            seen.add(corner)
        covered = np.zeros((height, width), bool)
        for top, left in corners:
            covered[top : top + tile, left : left + tile] = True
        if not covered.all():
            _fail(f"{call}: {_uncovered_box(covered)}")
        stride = tile - overlap
        for axis, starts in (("rows", {t for t, _ in corners}), ("columns", {c for _, c in corners})):
            ordered = sorted(starts)
            steps = {b - a for a, b in zip(ordered[:-2], ordered[1:-1])}  # the last step is free
            if len(ordered) >= 3 and steps != {stride}:
                bad = min(steps - {stride}) if steps - {stride} else stride
                _fail(
                    f"{call}: step between tiles ({axis}) is {bad}, expected tile - overlap = "
                    f"{stride} (neighbouring tiles share exactly `overlap` pixels)"
                )
        expected = tiling.tile_grid(height, width, tile, overlap)
        if sorted(corners) != sorted(expected):
            missing = sorted(set(expected) - seen)
            extra = sorted(seen - set(expected))
            _fail(
                f"{call} gives {len(corners)} tiles, expected {len(expected)}: "
                f"missing {missing[:4]}, unexpected {extra[:4]}. Use starts 0, step, 2 * step, "
                "... while a tile still fits before the border, then one tile at length - tile"
            )
    return _passed(f"tile_grid covers all {len(cases)} test images exactly like pconv_lib.tiling.tile_grid")


@_guarded
def check_blend_window(blend_window: Callable[[int, int], Any]) -> bool:
    """Check a learner's ``blend_window(tile, overlap) -> (tile, tile)`` blending weights.

    The shape of the ramp is free (sin², linear, ...), so properties are checked: shape, strictly
    positive and finite, at most 1, symmetric, separable, equal to 1 in the middle and rising
    from the border over the first ``overlap`` pixels. The pass message says whether it is also
    the library's sin² ramp. Contract first: a float32 torch tensor (the spec's), not NumPy.
    """
    import torch

    from pconv_lib import tiling

    cases = [(64, 16), (96, 32), (128, 0), (32, 16), (48, 5)]  # (tile, overlap), 2 * overlap <= tile
    same_as_library = True
    for tile, overlap in cases:
        call = f"blend_window({tile}, {overlap})"
        ok, got = _call(blend_window, tile, overlap)
        if not ok:
            return _todo("blend_window")
        _require_tensor(got, call, dtype=torch.float32)
        if tuple(got.shape) != (tile, tile):
            _fail(f"{call} has shape {tuple(got.shape)}, expected ({tile}, {tile}): one weight per tile "
                  "pixel")
        got = got.detach().cpu().numpy()
        w = got.astype(np.float64)
        if not np.all(np.isfinite(w)):
            _fail(f"{call} contains inf or NaN")
        if w.min() <= 0:
            if np.all(w[1:-1, 1:-1] > 0):
                _fail(
                    f"{call}: window has zeros at the border: blended pixels there would divide "
                    "by zero. Sample the ramp at pixel centres, e.g. (i + 0.5) / overlap"
                )
            _fail(f"{call}: window has {int((w <= 0).sum())} weights <= 0; every weight must be > 0")
        if w.max() > 1 + 1e-6:
            _fail(f"{call}: largest weight is {w.max():.4f}; weights should be in (0, 1]")
        if not (np.allclose(w, w[::-1, :], atol=1e-6) and np.allclose(w, w[:, ::-1], atol=1e-6)):
            _fail(
                f"{call}: window is not symmetric: the ramp must rise over the first `overlap` "
                "pixels and fall the same way over the last ones (left/right and top/bottom)"
            )
        if not np.allclose(w, w.T, atol=1e-6):
            _fail(f"{call}: window is not symmetric: rows and columns should use the same ramp")
        centre = tile // 2
        profile = w[:, centre] / np.sqrt(w[centre, centre])
        if not np.allclose(w, np.outer(profile, profile), atol=1e-5):
            _fail(
                f"{call}: window is not separable: it should be the outer product of a 1-D ramp "
                "with itself (torch.outer(ramp, ramp))"
            )
        if tile > 2 * overlap and not np.allclose(w[overlap : tile - overlap, centre], 1, atol=1e-6):
            _fail(
                f"{call}: the middle of the window (pixels {overlap}..{tile - overlap - 1}, away "
                "from the overlap) should be exactly 1"
            )
        ramp = w[: max(overlap, 1), centre]
        if overlap > 0 and (ramp[0] >= 1 or np.any(np.diff(ramp) < -1e-9)):
            _fail(
                f"{call}: the window should rise from the border towards the middle over the "
                f"first {overlap} pixels, found {np.round(ramp[:4], 3).tolist()}..."
            )
        below_one = int(np.argmax(w[:, centre] >= 1 - 1e-6)) if tile > 2 * overlap else overlap
        if overlap > 0 and below_one < overlap:
            _fail(
                f"{call}: the ramp reaches 1 at pixel {below_one}, but it should rise across all "
                f"`overlap` = {overlap} pixels (0..{overlap - 1}), staying below 1 there: it spans "
                f"{below_one} pixels instead of {overlap} (sample it at (i + 0.5) / overlap)"
            )
        if overlap >= 4 and ramp[-1] < 0.75:
            _fail(
                f"{call}: the ramp reaches only {ramp[-1]:.3f} at pixel {overlap - 1}, the last of the "
                f"overlap, then jumps to 1: it should climb from near 0 to near 1 across the "
                f"`overlap` = {overlap} pixels (sampled at pixel centres (i + 0.5) / overlap)"
            )
        expected = tiling.blend_window(tile, overlap).numpy().astype(np.float64)
        same_as_library &= bool(np.allclose(w, expected, atol=1e-5))
    if same_as_library:
        return _passed("blend_window is the library's sin² window: positive, symmetric, separable")
    return _passed(
        "blend_window is a valid blending window: positive, symmetric, separable, 1 in the middle "
        "(a different ramp than the library's sin², which is fine)"
    )


# --------------------------------------------------------------------------------------------
# Step 2: the partial-convolution layer
# --------------------------------------------------------------------------------------------

#: (batch, height, width, kernel, stride, padding, dilation, mask kind) for the step-2 checks.
_PCONV_CASES = [
    (1, 12, 12, 3, 1, 1, 1, "random"),
    (2, 20, 24, 5, 2, 2, 1, "random"),
    (1, 16, 16, 3, 1, 0, 1, "all-hole"),
    (2, 16, 12, 3, 1, 1, 1, "all-valid"),
    (1, 24, 20, 3, 2, 2, 2, "random"),
    (2, 19, 17, 7, 1, 3, 1, "random"),
    (1, 15, 13, 1, 1, 0, 1, "random"),
]


def _pconv_mask(seed: int, batch: int, height: int, width: int, kind: str):
    """A float64 (N, 1, H, W) mask, 1 = valid: random pixels plus a block hole, all hole or all valid.

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
    top, left = height // 4, width // 4
    mask[..., top : top + height // 2, left : left + width // 2] = 0
    return mask


def _pconv_case_text(kernel: int, stride: int, padding: int, dilation: int, kind: str, shape) -> str:
    return (
        f"kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation}, "
        f"{kind} mask of shape {tuple(shape)}"
    )


def _works(thunk: Callable[[], Any]) -> bool:
    """True when ``thunk()`` returns without raising (a probe of the learner's function)."""
    try:
        thunk()
    except Exception:
        return False
    return True


def _call_diagnosed(
    function: Callable, name: str, where: str, args: tuple, diagnoses: list[tuple[Callable[..., bool], str]]
) -> tuple[bool, Any]:
    """Like :func:`_call`, but a crash becomes an ExerciseCheckError that says where, and why when known.

    ``diagnoses``: (confirm, hint) pairs; ``confirm(error)`` recomputes a suspected mistake (or
    calls the learner's function again with one thing changed) and says whether it explains the
    crash. The first confirmed hint is added; none is guessed from the error's wording.
    """
    try:
        return _call(function, *args)
    except ExerciseCheckError:
        raise
    except Exception as error:  # the learner's code crashed: explain instead of a bare traceback
        hint = next((" " + text for confirm, text in diagnoses if _confirmed(confirm, error)), "")
        _fail(f"{name} crashed for {where}: {_first_line(error)}.{hint}")
    raise AssertionError("unreachable")  # pragma: no cover


def _confirmed(confirm: Callable[[Exception], bool], error: Exception) -> bool:
    try:
        return bool(confirm(error))
    except Exception:  # a diagnosis that cannot be run confirms nothing
        return False


def _float32_probe(function: Callable, args: tuple) -> Callable[[Exception], bool]:
    """Confirms a dtype mistake: the same call with float32 tensors runs."""
    import torch

    def confirm(error: Exception) -> bool:
        converted = tuple(a.float() if isinstance(a, torch.Tensor) else a for a in args)
        return _works(lambda: function(*converted))

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


_DTYPE_HINT = ("It runs with float32 inputs but crashes with these float64 ones: create every new tensor "
               "(the ones kernel) with the input's dtype and device (dtype=mask.dtype, device=mask.device).")
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


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().to(dtype=value.dtype if value.is_floating_point() else None).double().numpy()


def _unpack_pair(got: Any, name: str, names: str) -> tuple[Any, Any]:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail(f"{name} should return a pair {names}, got {_describe_array(got)}")
    return got[0], got[1]


def _require_order(first: Any, second: Any, expected: tuple[Any, Any], name: str, names: str,
                   where: str) -> None:
    """Fail when the two results are the expected ones in swapped order (recomputed, so confirmed)."""
    import torch

    if not all(isinstance(v, torch.Tensor) for v in (first, second)):
        return
    if _close(first, expected[1], atol=1e-6) and _close(second, expected[0], atol=1e-6) and not _close(
        first, expected[0], atol=1e-6
    ):
        _fail(f"{name} returned its two results in swapped order for {where}: return {names}, in this order")


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

    from pconv_lib.layers import PartialConv2d

    name = "mask_ratio_and_update"
    cases = [(c, torch.float64) for c in _PCONV_CASES] + [((2, 16, 16, 3, 1, 1, 1, "random"), torch.float16)]
    for seed, ((batch, height, width, k, stride, padding, dilation, kind), dtype) in enumerate(cases):
        mask = _pconv_mask(seed, batch, height, width, kind).to(dtype)
        where = _pconv_case_text(k, stride, padding, dilation, kind, mask.shape)
        if dtype == torch.float16:
            where += " in float16"
        args = (mask.clone(), k, stride, padding, dilation)
        ok, got = _call_diagnosed(mask_ratio_and_update, name, where, args, [
            (_float32_probe(mask_ratio_and_update, args), _DTYPE_HINT),
            (_maxpool_probe(mask, k, stride, padding, dilation), _MAXPOOL_HINT),
        ])
        if not ok:
            return _todo(name)
        _require_unchanged(f"{name} for {where}", [("mask", mask, args[0])])
        ratio, new_mask = _unpack_pair(got, name, "(ratio, new_mask)")
        mask64 = mask.double()
        layer = PartialConv2d(1, 1, k, stride, padding, dilation, bias=False, dtype=torch.float64)
        expected_ratio, expected_mask = (
            t.numpy() for t in layer._ratio_and_mask(mask64, False, torch.float64)
        )
        ones = torch.ones(1, 1, k, k, dtype=torch.float64)
        count = F.conv2d(mask64, ones, None, stride, padding, dilation).numpy()
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
        wrong_answers = [
            (safe_count / (k * k), "ratio is upside down: it is sum(1) / sum(M) = k*k / count, large "
             "where few pixels of the window are valid"),
            (1 / safe_count, "ratio is missing the window size: ratio = k*k / count, so that it is 1 "
             "where the whole window is valid"),
            (k / safe_count, f"ratio uses k = {k} as the window size, but a k x k window has k*k = "
             f"{k * k} pixels: sum(1) = k*k"),
        ]
        for candidate, hint in wrong_answers:
            if np.allclose(ratio[valid], candidate[valid], rtol=tolerance, atol=tolerance):
                _fail(f"{hint} (for {where})")
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
        f"{name} matches PartialConv2d's mask path on {len(cases)} masks "
        "(all hole, all valid, strides, paddings, dilations, float16)"
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
        c_in, c_out = (5, 2) if seed % 3 == 1 else (3, 4)
        with_bias = seed != len(_PCONV_CASES) - 1  # the last case has no bias (bias=None)
        generator = torch.Generator().manual_seed(2000 + seed)
        mask = _pconv_mask(seed, batch, height, width, kind)
        x = torch.rand(batch, c_in, height, width, generator=generator, dtype=torch.float64) + 0.5
        weight = torch.randn(c_out, c_in, k, k, generator=generator, dtype=torch.float64)
        bias = torch.randn(c_out, generator=generator, dtype=torch.float64) + 2 if with_bias else None
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
            (_float32_probe(partial_conv_forward, args), _DTYPE_HINT),
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

        ratio, valid = (t.numpy() for t in layer._ratio_and_mask(mask, False, torch.float64))
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
        window = k * k
        wrong_answers = [
            (raw * ratio + b,
             "the output must be exactly 0 where the window has no valid pixel, bias included: "
             "multiply by new_mask after adding the bias"),
            ((raw * ratio * c_in + b) * valid,
             f"the output is C_in = {c_in} times too large: for a single-channel mask the window has "
             f"k*k = {window} elements, so sum(1) = k*k, not C_in*k*k"),
            ((raw * ratio / c_in + b) * valid,
             f"the output is C_in = {c_in} times too small: for a single-channel mask the window has "
             f"k*k = {window} elements and sum(M) counts at most k*k of them; do not repeat the mask "
             "over the input channels (the original Keras course's off-by-C_in ratio)"),
            ((plain * ratio + b) * valid,
             "the values inside the holes leak into the output: convolve x * mask, not x"),
            ((raw + b) * valid,
             "the re-weighting is missing: multiply the convolution by ratio = sum(1) / sum(M) "
             "before adding the bias"),
            ((raw + b) * ratio * valid,
             "the bias is multiplied by the ratio: convolve without bias (pass None to F.conv2d), "
             "multiply by the ratio, then add the bias"),
        ]
        for candidate, hint in wrong_answers:
            if not np.allclose(candidate, expected, rtol=1e-7, atol=1e-9) and np.allclose(
                out, candidate, rtol=1e-7, atol=1e-9
            ):
                _fail(f"{hint} (for {where})")
        hint = _bias_axis_hint(torch.from_numpy(out), raw * ratio, valid, bias)
        if hint:
            _fail(f"out of {name} differs for {where}{hint}")
        compare_arrays(
            f"out of {name} for {where} (does check_mask_update pass?)", out, expected, atol=1e-7
        )
    return _passed(
        f"{name} matches pconv_lib.layers.PartialConv2d on {len(_PCONV_CASES)} cases "
        "(all hole, all valid, strides, paddings, dilations, bias=None)"
    )


# --------------------------------------------------------------------------------------------
# Step 3: the PConv UNet
# --------------------------------------------------------------------------------------------


def _reference_concat_skip(x: Any, mask: Any, skip_x: Any, skip_mask: Any) -> tuple[Any, Any]:
    """The decoder's upsample-and-concatenate step, exactly as in ``PConvUNet.forward``.

    Features and masks are upsampled by 2 (nearest) and concatenated with the skip features and
    the skip mask; every mask is first expanded to its features' channel count, so the result
    has one mask channel per feature channel (1 = valid, 0 = hole).
    """
    import torch
    import torch.nn.functional as F

    up = F.interpolate(x, scale_factor=2.0, mode="nearest")
    up_mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
    features = torch.cat((up, skip_x), dim=1)
    mask_cat = torch.cat(
        (
            up_mask.expand(-1, up.shape[1], -1, -1),
            skip_mask.to(up_mask.dtype).expand(-1, skip_x.shape[1], -1, -1),
        ),
        dim=1,
    )
    return features, mask_cat


def _decoder_inputs(seed: int, n: int, c_x: int, c_skip: int, h: int, w: int, skip_mask_channels: int):
    """Seeded ``(x, mask, skip_x, skip_mask)`` with holes, and a hole that survives the next layer.

    ``x``/``mask`` are at (h, w), the skips at (2h, 2w). The top-left 2x2 of ``mask`` and the
    top-left 4x4 of ``skip_mask`` are holes, so a 3x3 partial convolution after the
    concatenation still has an all-hole window there.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_x, h, w, generator=g)
    skip_x = torch.randn(n, c_skip, 2 * h, 2 * w, generator=g)
    mask = (torch.rand(n, 1, h, w, generator=g) > 0.3).float()
    skip_mask = (torch.rand(n, skip_mask_channels, 2 * h, 2 * w, generator=g) > 0.3).float()
    mask[:, :, :2, :2] = 0
    skip_mask[:, :, :4, :4] = 0
    return x, mask, skip_x, skip_mask


def _as_pair(got: Any, call: str) -> tuple[Any, Any]:
    """The learner's ``(features, mask)`` result, or a plain-words failure."""
    import torch

    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail(f"{call} should return a pair (features, mask), got {_describe_array(got)[:80]}")
    for label, value in zip(("features", "mask"), got):
        if not isinstance(value, torch.Tensor):
            _fail(f"{call}: the {label} should be a torch tensor, got {type(value).__name__}")
    return got[0], got[1]


def _distinct_values(tensor: Any) -> str:
    values = sorted({round(float(v), 4) for v in tensor.detach().flatten().unique()[:6].tolist()})
    return "{" + ", ".join(f"{v:g}" for v in values) + "}"


def _close(a: Any, b: Any, atol: float = 1e-5) -> bool:
    if tuple(a.shape) != tuple(b.shape):
        return False
    return bool((a.detach().double() - b.detach().double()).abs().max() <= atol)


_NEAREST_HINT = (
    "use nearest, not bilinear: masks must stay binary (F.interpolate(..., scale_factor=2, "
    "mode='nearest'), for the features and for the mask)"
)
_ORDER_HINT = (
    "put the upsampled tensor first and the skip second, for the features and for the mask "
    "alike, so that mask channel i belongs to feature channel i: torch.cat((up, skip_x), dim=1)"
)


_CAT_SIZE_HINT = ("torch.cat of x and skip_x (or of their masks) without upsampling raises exactly this "
                  "error: x and its mask are (h, w), the skip tensors (2h, 2w). Upsample x and its mask "
                  "by 2 first")


def _call_crash_explained(
    function: Callable, call: str, args: tuple, diagnoses: list[tuple[Callable[[Exception], bool], str]]
) -> tuple[bool, Any]:
    """Like :func:`_call`, but a crash becomes an ExerciseCheckError that names the call.

    A hint is added only when one of ``diagnoses`` (confirm, hint) confirms it by redoing the
    suspected mistake on the same inputs and getting the same error.
    """
    try:
        return _call(function, *args)
    except ExerciseCheckError:
        raise
    except Exception as error:
        text = _first_line(error)
        hint = next((" " + h for confirm, h in diagnoses if _confirmed(confirm, error)), "")
        if hint:  # the library's own advice is for library users; keep its first clause only
            text = text.split("; ")[0][:200].rstrip(".")
        _fail(f"{call} crashed: {text}.{hint}")
    raise AssertionError("unreachable")  # pragma: no cover


def _concat_probes(x: Any, mask: Any, skip_x: Any, skip_mask: Any) -> list[tuple[Callable[..., bool], str]]:
    """Crash diagnoses for concat_skip: concatenating before upsampling, or along the batch axis."""
    import torch
    import torch.nn.functional as F

    def no_upsampling(error: Exception) -> bool:
        return _same_error(error, lambda: torch.cat((x, skip_x), 1)) or _same_error(
            error, lambda: torch.cat((mask, skip_mask), 1))

    def batch_axis(error: Exception) -> bool:
        up = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return _same_error(error, lambda: torch.cat((up, skip_x), 0))

    return [(no_upsampling, _CAT_SIZE_HINT),
            (batch_axis, "torch.cat of the upsampled x and skip_x along dim=0 raises exactly this error: "
                         "concatenate along the channels (dim=1), the batch axis stays as it is")]


def _bilinear_mask(mask: Any, skip_mask: Any, c_x: int, c_skip: int) -> Any:
    """The concatenated mask as a bilinear upsampling would make it (a suspected mistake)."""
    import torch
    import torch.nn.functional as F

    up = F.interpolate(mask, scale_factor=2.0, mode="bilinear", align_corners=False)
    return torch.cat((up.expand(-1, c_x, -1, -1), skip_mask.expand(-1, c_skip, -1, -1)), dim=1)


@_guarded
def check_concat_skip(concat_skip: Callable) -> bool:
    """Check a learner's ``concat_skip(x, mask, skip_x, skip_mask) -> (features, mask)``.

    ``x`` (N, C, h, w) and ``mask`` (N, 1, h, w) come from the level below; ``skip_x``
    (N, S, 2h, 2w) and ``skip_mask`` (N, 1 or S, 2h, 2w) from the encoder. Expected: both
    upsampled by 2 with nearest neighbour, then ``features = cat(up_x, skip_x)`` (N, C + S,
    2h, 2w) and a per-channel ``mask`` of the same shape (the library's convention). Finally
    a depth-4 :class:`~pconv_lib.model.PConvUNet` is decoded with the learner's function and
    compared with the model's own forward pass.
    """
    import torch
    import torch.nn.functional as F

    from pconv_lib.model import PConvUNet

    cases = [  # (seed, n, c_x, c_skip, h, w, skip mask channels)
        (0, 2, 4, 3, 3, 4, 1),
        (1, 1, 2, 5, 4, 4, 5),  # a per-channel skip mask, like a 3-channel image mask
        (2, 3, 6, 2, 2, 3, 1),
    ]
    for seed, n, c_x, c_skip, h, w, skip_channels in cases:
        x, mask, skip_x, skip_mask = _decoder_inputs(seed, n, c_x, c_skip, h, w, skip_channels)
        inputs = (x.clone(), mask.clone(), skip_x.clone(), skip_mask.clone())
        call = (
            f"concat_skip(x {tuple(x.shape)}, mask {tuple(mask.shape)}, skip_x {tuple(skip_x.shape)}, "
            f"skip_mask {tuple(skip_mask.shape)})"
        )
        ok, got = _call_crash_explained(concat_skip, call, inputs, _concat_probes(x, mask, skip_x, skip_mask))
        if not ok:
            return _todo("concat_skip")
        _require_unchanged(call, list(zip(("x", "mask", "skip_x", "skip_mask"), (x, mask, skip_x, skip_mask),
                                          inputs)))
        features, got_mask = _as_pair(got, call)
        exp_features, exp_mask = _reference_concat_skip(x, mask, skip_x, skip_mask)
        _require_order(features, got_mask, (exp_features, exp_mask), call, "(features, mask)", "these inputs")
        _require_tensor(features, f"the features of {call}", like=x)
        _require_tensor(got_mask, f"the mask of {call}", like=mask)
        up = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if tuple(features.shape) != tuple(exp_features.shape):
            hint = ""
            batch_cat = torch.cat((up, skip_x), dim=0) if up.shape[1] == skip_x.shape[1] else features[:0]
            if _close(features, batch_cat):
                hint = " You concatenated along the batch axis: concatenate along the channels (dim=1)."
            _fail(f"{call}: features have shape {tuple(features.shape)}, expected "
                  f"{tuple(exp_features.shape)}.{hint}")
        if not bool(((got_mask == 0) | (got_mask == 1)).all()):
            hint = "the mask must hold only 0 and 1 (1 = valid, 0 = hole)"
            if _close(got_mask, _bilinear_mask(mask, skip_mask, c_x, c_skip)):
                hint = "it is the mask upsampled with bilinear interpolation; " + _NEAREST_HINT
            _fail(f"{call}: the mask holds values {_distinct_values(got_mask)}; {hint}")
        bilinear = torch.cat((F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False),
                              skip_x), dim=1)
        if _close(features, bilinear) and not _close(features, exp_features):
            _fail(f"{call}: the features were upsampled with bilinear interpolation; {_NEAREST_HINT}")
        if not _close(features, exp_features) and _close(features, torch.cat((skip_x, up), dim=1)):
            _fail(f"{call}: features and masks concatenated in the wrong order (skip first); {_ORDER_HINT}")
        compare_arrays(f"features of {call}", features, exp_features, atol=1e-6)
        if tuple(got_mask.shape) != tuple(exp_mask.shape):
            unexpanded = (n, 1 + skip_channels, 2 * h, 2 * w)
            hint = ""
            if tuple(got_mask.shape) == unexpanded:
                hint = (f": it is the two masks concatenated as they are, {1 + skip_channels} channels, "
                        "but mask channels must match feature channels one to one: expand the upsampled "
                        f"mask to x's {c_x} channels and skip_mask to skip_x's {c_skip} channels "
                        "(m.expand(-1, C, -1, -1)) before concatenating them")
            _fail(f"{call}: the mask has shape {tuple(got_mask.shape)}, expected {tuple(exp_mask.shape)} "
                  f"(one mask channel per feature channel){hint}")
        up_mask = F.interpolate(mask, scale_factor=2.0, mode="nearest")
        swapped = torch.cat((skip_mask.expand(-1, c_skip, -1, -1), up_mask.expand(-1, c_x, -1, -1)), dim=1)
        if not _close(got_mask, exp_mask) and _close(got_mask, swapped):
            _fail(f"{call}: the masks are concatenated in the wrong order (skip mask first); {_ORDER_HINT}")
        if not _close(got_mask[:, :c_x], exp_mask[:, :c_x]):
            _fail(f"{call}: mask channels 0..{c_x - 1} belong to the {c_x} upsampled feature channels of x, "
                  "so they must all be x's own mask, upsampled by 2 (1 = valid, 0 = hole), not the skip "
                  "mask or a combination of both")
        if not _close(got_mask[:, c_x:], exp_mask[:, c_x:]):
            _fail(f"{call}: mask channels {c_x}..{c_x + c_skip - 1} belong to the {c_skip} skip feature "
                  "channels, so they must be skip_mask (the same single channel repeated, or its own "
                  f"{c_skip} channels when it has them)")
        compare_arrays(f"mask of {call}", got_mask, exp_mask, atol=0)

    # the whole UNet, decoded with the learner's function, against the library's forward pass
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = PConvUNet(depth=4, width=0.25).eval()
        image = torch.rand(2, 3, 32, 48)
    image_mask = torch.ones(2, 1, 32, 48)
    image_mask[0, :, 4:20, 8:30] = 0
    image_mask[1, :, 12:32, 30:48] = 0
    with torch.no_grad():
        expected, _ = model(image, image_mask)
        feats, masks_ = [image], [image_mask]
        h, m = image, image_mask
        for block in model.encoder:
            h, m = block(h, m)
            feats.append(h)
            masks_.append(m)
        for j, block in enumerate(model.decoder):
            level = model.depth - 1 - j
            h, m = block(*_as_pair(concat_skip(h, m, feats[level], masks_[level]), "concat_skip"))
    compare_arrays("the output of a PConvUNet(depth=4) decoded with your concat_skip", h, expected, atol=1e-5)
    return _passed(
        f"concat_skip matches the library on {len(cases)} cases, and a whole PConvUNet decoded "
        "with it gives the same output as PConvUNet.forward"
    )


def _find_layers(block: Any) -> tuple[Any, Any]:
    """The learner block's one PartialConv2d and one BatchNorm2d, or a plain-words failure."""
    from torch import nn

    from pconv_lib.layers import PartialConv2d

    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    pconvs = [m for m in convs if isinstance(m, PartialConv2d)]
    if not pconvs:
        if convs:
            _fail("DecoderBlock uses nn.Conv2d: use PartialConv2d, which renormalises by the "
                  "valid pixels and returns the updated mask")
        _fail("DecoderBlock has no PartialConv2d layer: create one in __init__ (self.conv = ...)")
    if len(convs) > 1:
        _fail(f"DecoderBlock has {len(convs)} convolutions, expected one 3x3 PartialConv2d")
    bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        _fail("DecoderBlock has no BatchNorm: add nn.BatchNorm2d(out_channels) after the partial "
              "convolution (conv -> BN -> LeakyReLU(0.2))")
    if len(bns) > 1:
        _fail(f"DecoderBlock has {len(bns)} BatchNorm layers, expected one")
    return pconvs[0], bns[0]


def _block_probes(conv: Any, x: Any, mask: Any, skip_x: Any, skip_mask: Any) -> list[tuple[Callable, str]]:
    """Crash diagnoses for DecoderBlock.forward: the learner's own convolution, given what a suspected
    mistake would give it, fails with the same error."""
    import torch
    import torch.nn.functional as F

    up, up_mask = F.interpolate(x, scale_factor=2.0), F.interpolate(mask, scale_factor=2.0)
    features, cat_mask = _reference_concat_skip(x, mask, skip_x, skip_mask)
    c_x, c_skip = x.shape[1], skip_x.shape[1]

    def run(*args: Any) -> Callable[[], Any]:
        def call() -> Any:
            with torch.no_grad():
                return conv(*args)
        return call

    return [
        (lambda e: _same_error(e, run(up, up_mask)) or _same_error(e, run(x, mask)),
         "Your PartialConv2d, given the upsampled x alone, raises exactly this error. It takes the upsampled "
         "features and the skip features together: give it the features that concat_skip(x, mask, skip_x, "
         "skip_mask) returns"),
        (lambda e: _same_error(e, run(features, torch.cat((up_mask, skip_mask), 1))),
         "Your PartialConv2d, given the two masks concatenated without expanding them, raises exactly this "
         "error. It needs one mask channel per feature channel (or a single one): give it the mask that "
         "concat_skip returns, with its features"),
        (lambda e: _same_error(e, run(features, _bilinear_mask(mask, skip_mask, c_x, c_skip))),
         "Your PartialConv2d, given a bilinearly upsampled mask, raises exactly this error; "
         + _NEAREST_HINT),
    ]


@_guarded
def check_decoder_block(decoder_block: type) -> bool:
    """Check a learner's ``DecoderBlock(in_channels, out_channels)`` class.

    ``forward(x, mask, skip_x, skip_mask) -> (features, new_mask)`` must be concat_skip ->
    ``PartialConv2d(in_channels, out_channels, 3, stride=1, padding=1)`` -> ``BatchNorm2d`` ->
    ``LeakyReLU(0.2)``, where ``in_channels`` counts the upsampled and the skip features
    together. The library's decoder block gets random weights and BatchNorm statistics; they
    are copied into the learner's block (the layers are found by type, so their names are
    free; a convolution bias, redundant before BatchNorm, is set to 0) and both are compared
    in eval and in train mode, running statistics included. A stub that raises
    ``NotImplementedError`` in ``__init__`` or in ``forward`` counts as not implemented yet.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    from pconv_lib.model import LayerSpec, PConvBlock

    cases = [  # (seed, n, c_x, c_skip, c_out, h, w, skip mask channels)
        (10, 2, 6, 4, 5, 3, 4, 1),
        (11, 3, 8, 8, 8, 2, 2, 1),
    ]
    for seed, n, c_x, c_skip, c_out, h, w, skip_channels in cases:
        c_in = c_x + c_skip
        made = f"DecoderBlock({c_in}, {c_out})"
        try:
            with torch.random.fork_rng(devices=[]):  # the learner's weight init must not move the seed
                ok, block = _call(decoder_block, c_in, c_out)
        except Exception as error:
            hint = ""
            two_arguments = _works(lambda: inspect.signature(decoder_block).bind(1, 1))
            if isinstance(error, TypeError) and not two_arguments:
                hint = ("; its constructor cannot be called with two arguments: it takes (in_channels, "
                        "out_channels), in_channels counting the upsampled and the skip features together")
            _fail(f"{made} failed ({_first_line(error)}){hint}")
        if not ok:
            return _todo("DecoderBlock")
        if not isinstance(block, nn.Module):
            _fail(f"{made} gave {_describe_array(block)}: DecoderBlock must be an nn.Module subclass")
        conv, bn = _find_layers(block)
        if (conv.in_channels, conv.out_channels) != (c_in, c_out):
            _fail(f"{made}: its PartialConv2d maps {conv.in_channels} -> {conv.out_channels} "
                  f"channels, expected {c_in} -> {c_out}")
        if tuple(conv.kernel_size) != (3, 3) or tuple(conv.stride) != (1, 1) or conv.padding != (1, 1):
            _fail(f"{made}: the PartialConv2d has kernel {tuple(conv.kernel_size)}, stride "
                  f"{tuple(conv.stride)}, padding {conv.padding}; the decoder uses kernel 3, "
                  "stride 1, padding 1 (the upsampling already doubled the size)")
        if bn.num_features != c_out:
            _fail(f"{made}: BatchNorm2d has {bn.num_features} features, expected {c_out}")

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ref = PConvBlock(LayerSpec("dec", c_in, c_out, 3, 1, True, "leaky_relu", 1))
            with torch.no_grad():
                ref.bn.weight.uniform_(0.5, 1.5)
                ref.bn.bias.uniform_(-0.5, 0.5)
                ref.bn.running_mean.uniform_(-0.5, 0.5)
                ref.bn.running_var.uniform_(0.5, 2.0)
        with torch.no_grad():
            conv.weight.copy_(ref.conv.weight)
            if conv.bias is not None:
                conv.bias.zero_()
        bn.load_state_dict(ref.bn.state_dict())

        x, mask, skip_x, skip_mask = _decoder_inputs(seed, n, c_x, c_skip, h, w, skip_channels)
        features, cat_mask = _reference_concat_skip(x, mask, skip_x, skip_mask)
        call = f"{made}(x {tuple(x.shape)}, mask, skip_x {tuple(skip_x.shape)}, skip_mask)"
        for mode in ("eval", "train"):
            block.train(mode == "train")
            ref.train(mode == "train")
            inputs = (x.clone(), mask.clone(), skip_x.clone(), skip_mask.clone())
            ok, got = _call_crash_explained(block, f"{call} in {mode} mode", inputs,
                                            _block_probes(conv, x, mask, skip_x, skip_mask))
            if not ok:
                return _todo("DecoderBlock")
            _require_unchanged(call, list(zip(("x", "mask", "skip_x", "skip_mask"),
                                              (x, mask, skip_x, skip_mask), inputs)))
            out, new_mask = _as_pair(got, call)
            with torch.no_grad():
                expected, expected_mask = ref(features, cat_mask)
            _require_order(out, new_mask, (expected, expected_mask), call, "(features, new_mask)",
                           f"{mode} mode")
            _require_tensor(out, f"the features of {call}", like=x)
            _require_tensor(new_mask, f"the mask of {call}", like=mask)
            if tuple(out.shape) != tuple(expected.shape):
                _fail(f"{call} in {mode} mode: features have shape {tuple(out.shape)}, expected "
                      f"{tuple(expected.shape)}")
            if not _close(out, expected):
                with torch.no_grad():
                    pre = ref.conv(features, cat_mask)[0]
                    pre_nomask = ref.conv(features)[0]
                    bn_out = F.batch_norm(pre, ref.bn.running_mean, ref.bn.running_var, ref.bn.weight,
                                          ref.bn.bias, False, 0.0, ref.bn.eps)
                    batch = F.batch_norm(pre, None, None, ref.bn.weight, ref.bn.bias, True, 0.0, ref.bn.eps)
                    normed = bn_out if mode == "eval" else batch
                    variants = [
                        (normed, "the activation is missing: apply nn.LeakyReLU(0.2) after BatchNorm"),
                        (F.relu(normed), "the decoder uses LeakyReLU(0.2), not ReLU (the paper: ReLU in "
                                         "the encoder, LeakyReLU with slope 0.2 in the decoder)"),
                        (F.leaky_relu(normed, 0.01), "LeakyReLU's negative slope must be 0.2: "
                                                     "nn.LeakyReLU(0.2), not the default 0.01"),
                        (F.leaky_relu(pre, 0.2), "BatchNorm is skipped in forward: conv -> BN -> "
                                                 "LeakyReLU(0.2)"),
                    ]
                    if mode == "eval":
                        after = F.leaky_relu(pre, 0.2)
                        variants.append((
                            F.batch_norm(after, ref.bn.running_mean, ref.bn.running_var, ref.bn.weight,
                                         ref.bn.bias, False, 0.0, ref.bn.eps),
                            "BatchNorm must come before the activation: conv -> BN -> LeakyReLU(0.2)",
                        ))
                        bn_nomask = F.batch_norm(pre_nomask, ref.bn.running_mean, ref.bn.running_var,
                                                 ref.bn.weight, ref.bn.bias, False, 0.0, ref.bn.eps)
                        variants.append((
                            F.leaky_relu(bn_nomask, 0.2),
                            "the partial convolution got no mask: call it with the concatenated "
                            "mask, conv(features, mask), and return the new mask it gives",
                        ))
                        up_x = F.interpolate(x, scale_factor=2.0, mode="nearest")
                        up_m = F.interpolate(mask, scale_factor=2.0, mode="nearest")
                        swapped = ref(
                            torch.cat((skip_x, up_x), dim=1),
                            torch.cat((skip_mask.expand(-1, c_skip, -1, -1), up_m.expand(-1, c_x, -1, -1)),
                                      dim=1),
                        )[0]
                        variants.append((swapped, f"features and masks concatenated in the wrong order; "
                                                  f"{_ORDER_HINT}"))
                for value, hint in variants:
                    if _close(out, value):
                        _fail(f"{call} in {mode} mode: {hint}")
            compare_arrays(f"features of {call} in {mode} mode", out, expected, atol=1e-5)
            if tuple(new_mask.shape) != tuple(expected_mask.shape):
                _fail(f"{call}: the returned mask has shape {tuple(new_mask.shape)}, expected "
                      f"{tuple(expected_mask.shape)}: return the new mask given by the partial "
                      "convolution, not its input mask")
            compare_arrays(f"new mask of {call}", new_mask, expected_mask, atol=0)
        for name in ("running_mean", "running_var"):
            compare_arrays(f"BatchNorm {name} after a train-mode call of {made}", getattr(bn, name),
                           getattr(ref.bn, name), atol=1e-5)
    return _passed(
        "DecoderBlock matches the library's decoder level (nearest x2, concat, 3x3 PartialConv2d, "
        "BatchNorm, LeakyReLU 0.2) in eval and train mode"
    )
