"""Step 5, tiled prediction: the tile grid and the blending window (exercise 05)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from pconv_lib.checks._common import (
    _describe_array,
    _fail,
    _guarded,
    _passed,
    _require_tensor,
    _run,
    _todo,
)


def _starts_always_last(length: int, tile: int, overlap: int) -> list[int]:
    """A suspected mistake, recomputed: the regular starts up to ``length - tile`` plus a last tile
    at ``length - tile`` even when the regular grid already ends there (then it is listed twice)."""
    return list(range(0, length - tile + 1, tile - overlap)) + [length - tile]


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
            _fail(f"{call} should return (top, left) pairs of ints, found {_describe_array(item)} in the "
                  "list")
        corners.append((int(item[0]), int(item[1])))
    return corners


def _uncovered_box(covered: np.ndarray, corners: list[tuple[int, int]] | None = None, tile: int = 0) -> str:
    """The uncovered rectangle that starts at the first uncovered pixel, in words; the "flush with the
    border" hint only when adding the flush last row and column of tiles (recomputed) covers it all."""
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
    if corners is None:
        return text
    height, width = covered.shape
    rows = sorted({t for t, _ in corners} | {height - tile})
    cols = sorted({c for _, c in corners} | {width - tile})
    with_flush = np.zeros_like(covered)
    for top in rows:
        for left in cols:
            with_flush[top : top + tile, left : left + tile] = True
    if at_border and with_flush.all():
        return text + "; the last tile of each row and column must end flush with the border"
    return text


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
        (41, 37, 16, 15),  # maximal overlap: consecutive tiles one pixel apart
        (16, 75, 16, 4),  # one row of tiles, the image exactly one tile high
        (53, 29, 29, 0),  # one column, no overlap, odd sizes
    ]
    for height, width, tile, overlap in cases:
        call = f"tile_grid({height}, {width}, {tile}, {overlap})"
        ok, got = _run(tile_grid, (height, width, tile, overlap))
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
                rows, cols = (_starts_always_last(n, tile, overlap) for n in (height, width))
                suspected = [(t, left) for t in rows for left in cols]
                hint = ("; your tiles are the regular grid plus a last tile flush with the border even "
                        "where the grid already ends there: add it only when the grid stops short"
                        if sorted(corners) == sorted(suspected) else "")
                _fail(f"{call}: tile {corner} is listed twice{hint}")
            seen.add(corner)
        covered = np.zeros((height, width), bool)
        for top, left in corners:
            covered[top : top + tile, left : left + tile] = True
        if not covered.all():
            _fail(f"{call}: {_uncovered_box(covered, corners, tile)}")
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

    # (tile, overlap), 2 * overlap <= tile: maximal overlap (32, 16), none (128, 0), odd sizes
    cases = [(64, 16), (96, 32), (128, 0), (32, 16), (48, 5), (47, 11), (33, 16)]
    same_as_library = True
    for tile, overlap in cases:
        call = f"blend_window({tile}, {overlap})"
        ok, got = _run(blend_window, (tile, overlap))
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
