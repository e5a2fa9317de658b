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


def _describe_array(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}, dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"


def compare_arrays(name: str, got: Any, expected: np.ndarray, *, atol: float = 1e-6) -> None:
    """Raise :class:`ExerciseCheckError` explaining how ``got`` differs from ``expected``."""
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
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    if not np.all(np.isfinite(got.astype(np.float64))):
        _fail(f"{name} contains inf or NaN at {np.argwhere(~np.isfinite(got))[0].tolist()}")
    if diff.max(initial=0.0) > atol:
        where = np.unravel_index(int(np.argmax(diff)), diff.shape)
        _fail(
            f"{name} differs at index {list(map(int, where))}: got {got[where]!r}, expected "
            f"{expected[where]!r} ({int((diff > atol).sum())} of {diff.size} values differ)"
        )


# --------------------------------------------------------------------------------------------
# Step 1: masks
# --------------------------------------------------------------------------------------------


def check_hole_ratio(hole_ratio: Callable[[np.ndarray], float]) -> bool:
    """Check a learner's ``hole_ratio(mask) -> float`` (1 = valid, 0 = hole)."""
    from pconv_lib import masks

    cases = [
        ("an all-valid mask", np.ones((8, 8), np.uint8)),
        ("an all-hole mask", np.zeros((8, 8), np.uint8)),
    ]
    cases += [(f"random mask (seed {s})", masks.random_irregular_mask(64, 48, s)) for s in range(5)]
    for label, mask in cases:
        ok, got = _call(hole_ratio, mask.copy())
        if not ok:
            return _todo("hole_ratio")
        expected = masks.hole_ratio(mask)
        if not isinstance(got, (float, np.floating)):
            _fail(f"hole_ratio should return a float, got {type(got).__name__} for {label}")
        if abs(float(got) - expected) > 1e-9:
            hint = ""
            if abs(float(got) - (1 - expected)) < 1e-9:
                hint = " You counted valid pixels: holes are the zeros (1 = valid, 0 = hole)."
            _fail(f"hole_ratio gives {float(got):.4f} for {label}, expected {expected:.4f}.{hint}")
    return _passed(f"hole_ratio agrees with pconv_lib.masks.hole_ratio on {len(cases)} masks")


def check_hole_ratio_bucket(hole_ratio_bucket: Callable[[float], int | None]) -> bool:
    """Check a learner's ``hole_ratio_bucket(ratio) -> int | None`` (the paper's 6 buckets)."""
    from pconv_lib import masks

    probes = [0.0, 0.005, 0.01, 0.0100001, 0.05, 0.1, 0.1000001, 0.15, 0.2, 0.25, 0.3, 0.35,
              0.4, 0.45, 0.5, 0.5000001, 0.55, 0.6, 0.6000001, 0.8, 1.0]
    for ratio in probes:
        ok, got = _call(hole_ratio_bucket, ratio)
        if not ok:
            return _todo("hole_ratio_bucket")
        expected = masks.hole_ratio_bucket(ratio)
        if got != expected:
            _fail(
                f"hole_ratio_bucket({ratio}) returned {got!r}, expected {expected!r}: buckets are "
                "half-open intervals (low, high], so 0.1 is in bucket 0 and 0.1000001 in bucket 1; "
                "ratios <= 0.01 or > 0.6 are outside every bucket (None)"
            )
    return _passed(f"hole_ratio_bucket puts all {len(probes)} probe ratios in the right bucket")


def check_stroke_drawer(draw: Callable[[np.ndarray, np.random.Generator, int], None]) -> bool:
    """Check a learner's stroke function ``draw(canvas, rng, max_size)`` that paints 1s in place."""
    for seed in range(10):
        canvas = np.zeros((96, 128), np.uint8)
        ok, returned = _call(draw, canvas, np.random.default_rng(seed), 12)
        if not ok:
            return _todo(getattr(draw, "__name__", "the stroke function"))
        if returned is not None and canvas.sum() == 0:
            _fail("the stroke function must draw on `canvas` in place (cv2 drawing functions "
                  "do), not return a new image")
        values = set(np.unique(canvas).tolist())
        if not values <= {0, 1}:
            _fail(f"the canvas must only hold 0 and 1 (1 = drawn = future hole), found {values}; "
                  "draw with colour 1, not 255")
        if canvas.sum() == 0:
            _fail(f"nothing was drawn on the canvas for seed {seed}")
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
    return _passed("the stroke function draws binary, seeded, random strokes in place")
