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


# --------------------------------------------------------------------------------------------
# Step 4: losses
# --------------------------------------------------------------------------------------------


def _seeded_features(seed: int, shape: tuple[int, ...]):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=torch.float64)


def check_gram_matrix(gram_matrix: Callable) -> bool:
    """Check a learner's ``gram_matrix(features (N, C, H, W)) -> (N, C, C)``, F Fᵀ / (C·H·W)."""
    from pconv_lib import losses

    for seed, shape in enumerate([(1, 2, 3, 3), (2, 4, 5, 7), (3, 8, 6, 4)]):
        features = _seeded_features(seed, shape)
        ok, got = _call(gram_matrix, features.clone())
        if not ok:
            return _todo("gram_matrix")
        expected = losses.gram_matrix(features).double()
        n, c, h, w = shape
        if hasattr(got, "shape") and tuple(got.shape) == (n, c, c):
            got_d = got.double()
            scale_hints = {
                c * h * w: "it is not normalised: divide by C·H·W",
                h * w: "it is divided by C only: divide by C·H·W",
                c: "it is divided by H·W only: divide by C·H·W",
            }
            for factor, hint in scale_hints.items():
                if factor != 1 and bool((got_d - expected * factor).abs().max() < 1e-6 * factor):
                    _fail(f"gram_matrix is {factor}x too large for features of shape {shape}: {hint}")
            if bool((got_d - expected.transpose(1, 2)).abs().max() > 1e-6) and bool(
                (got_d - got_d.transpose(1, 2)).abs().max() > 1e-6
            ):
                _fail("gram_matrix is not symmetric: compute F @ F.transpose(1, 2) with F of shape (N, C, H·W)")
        compare_arrays(f"gram_matrix for features of shape {shape}", got, expected, atol=1e-6)
    return _passed("gram_matrix matches pconv_lib.losses.gram_matrix, normalised by C·H·W")


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
        ok, got = _call(total_variation_loss, comp.clone(), mask.clone())
        if not ok:
            return _todo("total_variation_loss")
        expected = losses.total_variation_loss(comp, mask).double()
        got_value = float(got)
        if abs(got_value - float(expected)) > 1e-6:
            everywhere = (comp[..., :, 1:] - comp[..., :, :-1]).abs().sum() + (
                comp[..., 1:, :] - comp[..., :-1, :]
            ).abs().sum()
            hint = ""
            if abs(got_value - float(everywhere / comp.numel())) < 1e-6:
                hint = " It looks like the TV of the whole image: count only the 1-pixel dilated holes."
            elif seed == 3:
                hint = " With no hole at all the TV loss must be 0."
            _fail(f"total_variation_loss gives {got_value:.6f}, expected {float(expected):.6f} "
                  f"(test {seed + 1}).{hint}")
    return _passed("total_variation_loss matches the library on 4 masks, including one without holes")


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


def check_blend_window(blend_window: Callable[[int, int], Any]) -> bool:
    """Check a learner's ``blend_window(tile, overlap) -> (tile, tile)`` blending weights.

    The shape of the ramp is free (sin², linear, ...), so properties are checked: shape, strictly
    positive and finite, at most 1, symmetric, separable, equal to 1 in the middle and rising
    from the border over the first ``overlap`` pixels. The pass message says whether it is also
    the library's sin² ramp.
    """
    from pconv_lib import tiling

    cases = [(64, 16), (96, 32), (128, 0), (32, 16), (48, 5)]  # (tile, overlap), 2 * overlap <= tile
    same_as_library = True
    for tile, overlap in cases:
        call = f"blend_window({tile}, {overlap})"
        ok, got = _call(blend_window, tile, overlap)
        if not ok:
            return _todo("blend_window")
        try:
            import torch

            if isinstance(got, torch.Tensor):
                got = got.detach().cpu().numpy()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        if not isinstance(got, np.ndarray):
            _fail(f"{call} should return a (tile, tile) tensor or array, got {type(got).__name__}")
        if got.shape != (tile, tile):
            _fail(f"{call} has shape {got.shape}, expected ({tile}, {tile}): one weight per tile pixel")
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
        expected = tiling.blend_window(tile, overlap).numpy().astype(np.float64)
        same_as_library &= bool(np.allclose(w, expected, atol=1e-5))
    if same_as_library:
        return _passed("blend_window is the library's sin² window: positive, symmetric, separable")
    return _passed(
        "blend_window is a valid blending window: positive, symmetric, separable, 1 in the middle "
        "(a different ramp than the library's sin², which is fine)"
    )
