"""Tests for pconv_lib.mask_editor: the painter's state, without Jupyter."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib.mask_editor import MAX_BRUSH, MIN_BRUSH, MaskEditor, mask_from_strokes
from pconv_lib.util.errors import BadValue

H, W = 40, 50


def test_no_jupyter_needed():
    code = "import sys, pconv_lib.mask_editor; print(sorted({'ipywidgets', 'ipycanvas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_stroke_marks_holes_with_zero():
    editor = MaskEditor(H, W, brush=3)
    assert editor.mask.dtype == np.uint8 and editor.mask.shape == (H, W) and editor.mask.all()
    box = editor.press(10, 10)
    assert not editor.mask[10, 10] and editor.in_stroke
    top, left, bottom, right = box
    assert (editor.mask[:top] == 1).all() and (editor.mask[:, right:] == 1).all()
    assert editor.drag(30, 10) is not None
    editor.release(30, 20)
    assert not editor.in_stroke and editor.mask[10, 20] == 0 and editor.mask[20, 30] == 0
    assert editor.mask[35, 45] == 1 and set(np.unique(editor.mask)) == {0, 1}
    assert editor.strokes == [([(10, 10), (30, 10), (30, 20)], 3, False)]
    assert editor.describe() == f"mask 40x50, {100 * editor.hole_ratio():.1f}% holes, 1 stroke"
    assert editor.describe(inpainted=True).endswith(", inpainted")
    assert editor.drag(1, 1) is None and editor.release() is None  # outside a stroke: nothing


def test_brush_size_and_eraser():
    small, big = MaskEditor(H, W, brush=2), MaskEditor(H, W, brush=8)
    for editor in (small, big):
        editor.press(25, 20)
        editor.release()
    assert (small.mask == 0).sum() < (big.mask == 0).sum()
    assert big.mask[20, 33] == 0 and big.mask[20, 35] == 1
    for bad in (0, MAX_BRUSH + 1, 2.5, True):
        with pytest.raises(BadValue, match=f"from {MIN_BRUSH} to {MAX_BRUSH}"):
            big.set_brush(bad)
    assert big.set_brush(2) == 2 and big.brush == 2
    big.set_eraser(True)
    big.press(25, 20)
    big.release()
    assert big.mask[20, 25] == 1 and big.mask[20, 31] == 0


def test_undo_redo_and_clear():
    editor = MaskEditor(H, W, brush=4, max_undo=3)
    assert editor.undo() is False and editor.redo() is False
    editor.add_strokes([[(10, 10)], [(40, 30)]])
    two = editor.mask.copy()
    editor.clear()
    assert editor.mask.all() and editor.strokes == []
    assert editor.undo() and len(editor.strokes) == 2
    np.testing.assert_array_equal(editor.mask, two)
    assert editor.undo() and editor.mask[30, 40] == 1 and editor.mask[10, 10] == 0
    assert editor.redo() and editor.redo() and editor.mask.all()  # back to the clear
    assert editor.redo() is False
    editor.undo()
    editor.press(5, 35)  # a new change drops what redo could bring back
    editor.release()
    assert editor.redo() is False
    editor.press(1, 1)
    assert editor.undo() and editor.mask[1, 1] == 1  # undo finishes the stroke, then undoes it


def test_set_mask_random_and_png():
    editor = MaskEditor(H, W, seed=1)
    with pytest.raises(BadValue, match="40x50"):
        editor.set_mask(np.ones((10, 10), np.uint8))
    with pytest.raises(ValueError):
        editor.set_mask(np.full((H, W), 255, np.uint8))
    editor.random_mask()
    assert 0 < editor.hole_ratio() < 1 and editor.mask.dtype == np.uint8
    holes = np.ones((H, W), np.uint8)
    holes[5:15, 5:25] = 0
    data = cv2.imencode(".png", holes * 255)[1].tobytes()
    assert editor.load_mask_bytes(data) is None
    np.testing.assert_array_equal(editor.mask, holes)
    assert editor.shows_upload() and editor.uploaded == data
    hint = editor.load_mask_bytes(data, "white")
    assert "set 'holes in file' to black" in hint
    np.testing.assert_array_equal(editor.mask, 1 - holes)
    editor.press(10, 10)  # painted on: no longer the upload
    assert not editor.shows_upload()
    with pytest.raises(ValueError, match="decode"):
        editor.load_mask_bytes(b"not a png")


def test_mask_from_strokes_is_the_editor():
    strokes = [[(5, 5), (30, 25)], [(45, 10)], []]
    editor = MaskEditor(H, W, brush=3)
    editor.add_strokes(strokes)
    np.testing.assert_array_equal(mask_from_strokes((H, W, 3), strokes, brush=3), editor.mask)


_points = st.tuples(st.integers(-10, W + 10), st.integers(-10, H + 10))
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("stroke"), st.lists(_points, min_size=1, max_size=4), st.integers(1, 9),
                  st.booleans()),
        st.tuples(st.just("undo")),
        st.tuples(st.just("redo")),
        st.tuples(st.just("clear")),
        st.tuples(st.just("random")),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_steps, st.integers(0, 3))
def test_any_sequence_keeps_a_binary_mask_and_undo_returns_the_start(steps, seed):
    editor = MaskEditor(H, W, max_undo=100, seed=seed)
    editor.random_mask()
    start = editor.mask.copy()
    editor._history.clear()  # the random start is the bottom of the history
    for step in steps:
        if step[0] == "stroke":
            _, points, brush, eraser = step
            editor.set_brush(brush)
            editor.set_eraser(eraser)
            editor.add_strokes([points])
        else:
            getattr(editor, {"random": "random_mask"}.get(step[0], step[0]))()
        assert editor.mask.dtype == np.uint8 and editor.mask.shape == (H, W)
        assert set(np.unique(editor.mask)) <= {0, 1}
    while editor.undo():
        pass
    np.testing.assert_array_equal(editor.mask, start)
