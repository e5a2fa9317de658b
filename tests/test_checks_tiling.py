"""pconv_lib.checks, step 5 (tiling): right answers pass, stubs say 'not implemented', typical
wrong answers raise ExerciseCheckError with a plain-words explanation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pconv_lib import checks, tiling


def _stub(*args, **kwargs):
    raise NotImplementedError


def _ramp(length: int, overlap: int, rise: np.ndarray) -> np.ndarray:
    w = np.ones(length)
    if overlap:
        w[:overlap] = rise
        w[length - overlap :] = np.minimum(w[length - overlap :], rise[::-1])
    return w


# ---- tile_grid -------------------------------------------------------------------------------


def test_library_tile_grid_passes(capsys):
    assert checks.check_tile_grid(tiling.tile_grid) is True
    assert capsys.readouterr().out.startswith(checks.PASS)


def test_tile_grid_order_and_types_are_free(capsys):
    def reversed_numpy(height, width, tile, overlap):
        return np.array(tiling.tile_grid(height, width, tile, overlap)[::-1], dtype=np.int64)

    assert checks.check_tile_grid(reversed_numpy) is True


def test_tile_grid_stub_is_not_implemented(capsys):
    assert checks.check_tile_grid(_stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_tile_grid_running_past_the_edge_is_explained():
    def past_the_edge(height, width, tile, overlap):
        step = tile - overlap
        return [(t, l) for t in range(0, height - tile + 1, step) for l in range(0, width, step)]

    with pytest.raises(checks.ExerciseCheckError, match=r"runs past the right edge of a \d+-wide image"):
        checks.check_tile_grid(past_the_edge)


def test_tile_grid_missing_last_tile_is_explained():
    def no_flush_tile(height, width, tile, overlap):
        step = tile - overlap
        tops = range(0, height - tile + 1, step)
        lefts = range(0, width - tile + 1, step)
        return [(t, l) for t in tops for l in lefts]

    with pytest.raises(checks.ExerciseCheckError, match=r"pixels \(row .*, col .*\) are not covered"):
        checks.check_tile_grid(no_flush_tile)


def test_tile_grid_ignoring_the_overlap_is_explained():
    def step_is_tile(height, width, tile, overlap):
        def starts(length):
            return list(range(0, length - tile, tile)) + [length - tile]

        return [(t, l) for t in starts(height) for l in starts(width)]

    expected = r"step between tiles .* is 128, expected tile - overlap = 96"
    with pytest.raises(checks.ExerciseCheckError, match=expected):
        checks.check_tile_grid(step_is_tile)


def test_tile_grid_duplicate_last_tile_is_explained():
    def duplicates(height, width, tile, overlap):
        def starts(length):
            return list(range(0, length - tile + 1, tile - overlap)) + [length - tile]

        return [(t, l) for t in starts(height) for l in starts(width)]

    with pytest.raises(checks.ExerciseCheckError, match="listed twice"):
        checks.check_tile_grid(duplicates)


# ---- blend_window ----------------------------------------------------------------------------


def test_library_blend_window_passes(capsys):
    assert checks.check_blend_window(tiling.blend_window) is True
    assert "library's sin" in capsys.readouterr().out


def test_other_smooth_ramps_are_accepted(capsys):
    def linear(tile, overlap):
        r = _ramp(tile, overlap, (np.arange(overlap) + 0.5) / max(overlap, 1))
        return torch.from_numpy(np.outer(r, r)).float()

    assert checks.check_blend_window(linear) is True
    assert "different ramp" in capsys.readouterr().out


def test_blend_window_stub_is_not_implemented(capsys):
    assert checks.check_blend_window(_stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_zero_border_is_explained():
    def from_zero(tile, overlap):
        r = torch.from_numpy(_ramp(tile, overlap, np.linspace(0, 1, overlap)))
        return torch.outer(r, r).float()

    with pytest.raises(checks.ExerciseCheckError, match="zeros at the border.*divide by zero"):
        checks.check_blend_window(from_zero)


def test_one_sided_ramp_is_explained():
    def rise_only(tile, overlap):
        r = np.ones(tile)
        r[:overlap] = (np.arange(overlap) + 0.5) / overlap
        return torch.from_numpy(np.outer(r, r)).float()

    with pytest.raises(checks.ExerciseCheckError, match="not symmetric"):
        checks.check_blend_window(rise_only)


def test_non_separable_window_is_explained():
    def pyramid(tile, overlap):
        r = _ramp(tile, overlap, (np.arange(overlap) + 0.5) / max(overlap, 1))
        return torch.from_numpy(np.minimum(r[:, None], r[None, :])).float()

    with pytest.raises(checks.ExerciseCheckError, match="not separable"):
        checks.check_blend_window(pyramid)


def test_one_dimensional_window_is_explained():
    with pytest.raises(checks.ExerciseCheckError, match=r"has shape \(64,\), expected \(64, 64\)"):
        checks.check_blend_window(lambda tile, overlap: torch.ones(tile))
