"""Step 1, masks: the hole ratio, its bucket and the stroke drawers (exercise 01)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pconv_lib.checks._common import (
    _describe_array,
    _differ,
    _fail,
    _guarded,
    _passed,
    _require_unchanged,
    _run,
    _todo,
    _unique_hint,
)


@_guarded
def check_hole_ratio(hole_ratio: Callable[[np.ndarray], float]) -> bool:
    """Check a learner's ``hole_ratio(mask) -> float`` (1 = valid, 0 = hole)."""
    from pconv_lib import masks

    cases = [
        ("an all-valid mask", np.ones((8, 8), np.uint8)),
        ("an all-hole mask", np.zeros((8, 8), np.uint8)),
        ("a 1x1 hole", np.zeros((1, 1), np.uint8)),
    ]
    cases += [(f"random mask (seed {s})", masks.random_irregular_mask(64, 48, s)) for s in range(5)]
    border = np.ones((37, 53), np.uint8)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = 0  # holes on every border
    cases.append(("a 37x53 mask with holes on every border", border))
    cases.append(("a 512x384 random mask", masks.random_irregular_mask(512, 384, 7)))
    for label, mask in cases:
        passed = mask.copy()
        ok, got = _run(hole_ratio, (passed,), where=label)
        if not ok:
            return _todo("hole_ratio")
        _require_unchanged(f"hole_ratio({label})", [("mask", mask, passed)])
        expected = masks.hole_ratio(mask)
        if not isinstance(got, (float, np.floating)):
            _fail(f"hole_ratio should return a float, got {_describe_array(got)} for {label}")
        if not np.isfinite(float(got)):
            _fail(f"hole_ratio gives {float(got)} for {label}, expected {expected!r}: a ratio of pixels is "
                  "a finite number between 0 and 1")
        # a ratio computed in float32 (a float32 mean or sum) is right to float32's precision
        if abs(float(got) - expected) > 1e-6:
            hint = _unique_hint([(abs(float(got) - (1 - expected)) < 1e-6 and abs(expected - 0.5) > 1e-6,
                                  "You counted valid pixels: holes are the zeros (1 = valid, 0 = hole).")])
            _fail(f"hole_ratio for {label} (shape {mask.shape}): {_differ(float(got), expected)}.{hint}")
    return _passed(f"hole_ratio agrees with pconv_lib.masks.hole_ratio on {len(cases)} masks")


@_guarded
def check_hole_ratio_bucket(hole_ratio_bucket: Callable[[float], int | None]) -> bool:
    """Check a learner's ``hole_ratio_bucket(ratio) -> int | None`` (the paper's 6 buckets)."""
    from pconv_lib import masks

    probes = [0.0, 0.005, 0.01, 0.0100001, 0.05, 0.1, 0.1000001, 0.15, 0.2, 0.25, 0.3, 0.35,
              0.4, 0.45, 0.5, 0.5000001, 0.55, 0.6, 0.6000001, 0.8, 1.0]
    answers = []
    for ratio in probes:
        ok, got = _run(hole_ratio_bucket, (ratio,))
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
            hint = _unique_hint([(v == answers and v != expected, h) for v, h in variants])
            if hint:
                hint = f" Your answers on all {len(probes)} probe ratios are those of {hint.strip()}"
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
        ok, returned = _run(draw, (canvas, np.random.default_rng(seed), 12), where=f"seed {seed}")
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
            _fail(f"one stroke covered {canvas.mean():.0%} of the {canvas.shape[0]}x{canvas.shape[1]} canvas "
                  "with max_size=12: sizes and thicknesses must stay within max_size")
        again = np.zeros_like(canvas)
        _run(draw, (again, np.random.default_rng(seed), 12), where=f"seed {seed}")
        if not np.array_equal(canvas, again):
            _fail("the same seed drew different strokes: take every random number from `rng`")
    first, second = np.zeros((96, 128), np.uint8), np.zeros((96, 128), np.uint8)
    _run(draw, (first, np.random.default_rng(0), 12), where="seed 0")
    _run(draw, (second, np.random.default_rng(1), 12), where="seed 1")
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
        _run(draw, (canvas, np.random.default_rng(seed), max_size), where=f"seed {seed}")
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
            tries = [(t, r) for t in range(1, max_size + 1) for r in range(max(radius - t, 0), radius + 1)]
            outline = next((t for t, r in tries if np.array_equal(
                canvas, cv2.circle(np.zeros_like(canvas), (x, y), r, 1, t))), None)
            if outline is not None:  # confirmed: cv2.circle with this thickness draws exactly this
                _fail(f"{name} (seed {seed}) drew the outline of a circle (cv2.circle with thickness "
                      f"{outline} draws exactly it), not a filled one: a hole is the whole disc. How does "
                      "cv2.circle fill a shape? (look at its `thickness` argument)")
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
