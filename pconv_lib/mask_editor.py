"""The mask-editing state behind step 5's painter, in plain Python and NumPy (no Jupyter).

:class:`MaskEditor` holds a mask the size of a photo and the operations a learner applies to it:
brush strokes (holes, or valid pixels with the eraser), undo/redo, clear, a random mask, a mask
from an array or a PNG file. :class:`pconv_lib.widgets.MaskPainter` is only its view: it turns
mouse events into these calls and draws :attr:`MaskEditor.mask`.

Conventions: the mask is ``uint8`` (H, W), 1 = valid pixel, 0 = hole. Points are image pixels
``(x, y)``: ``x`` the column, ``y`` the row (OpenCV's order). A rectangle ("box") is
``(top, left, bottom, right)``, bottom and right exclusive, clipped to the mask.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from pconv_lib import masks as masks_lib
from pconv_lib.util.errors import BadValue

__all__ = ["MAX_BRUSH", "MIN_BRUSH", "MaskEditor", "mask_from_png", "mask_from_png_bytes",
           "mask_from_strokes"]

Point = tuple[float, float]
Box = tuple[int, int, int, int]
#: Brush radius limits in pixels (the slider's range; other values are refused).
MIN_BRUSH, MAX_BRUSH = 1, 256


def _check_brush(brush: int) -> int:
    whole = isinstance(brush, (int, np.integer)) and not isinstance(brush, bool)
    if not whole or not MIN_BRUSH <= brush <= MAX_BRUSH:
        raise BadValue(
            f"brush must be a whole number of pixels from {MIN_BRUSH} to {MAX_BRUSH} (the radius), "
            f"got {brush!r}"
        )
    return int(brush)


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(float(x))), int(round(float(y)))


def _paint_segment(mask: np.ndarray, p0: Point, p1: Point, brush: int, value: int) -> Box:
    """Draw a disc at ``p1`` and a thick segment ``p0``→``p1`` (radius ``brush``) with ``value``
    into ``mask`` in place; return the touched box, clipped."""
    a, b = _pt(*p0), _pt(*p1)
    cv2.circle(mask, b, brush, value, thickness=-1, lineType=cv2.LINE_8)
    if a != b:
        cv2.circle(mask, a, brush, value, thickness=-1, lineType=cv2.LINE_8)
        cv2.line(mask, a, b, value, thickness=2 * brush + 1, lineType=cv2.LINE_8)
    height, width = mask.shape
    top = max(0, min(a[1], b[1]) - brush - 1)
    left = max(0, min(a[0], b[0]) - brush - 1)
    bottom = min(height, max(a[1], b[1]) + brush + 2)
    right = min(width, max(a[0], b[0]) + brush + 2)
    return top, left, bottom, right


def mask_from_strokes(
    shape: tuple[int, ...], strokes: Iterable[Sequence[Point]], brush: int = 12
) -> np.ndarray:
    """Paint ``strokes`` as holes on an all-valid mask, exactly as the mouse would.

    Args:
        shape: (H, W) or an image shape (H, W, C).
        strokes: a list of strokes, each a list of (x, y) points (x = column, y = row); a stroke
            of one point is a disc, longer strokes are thick polylines.
        brush: brush radius in pixels (the stroke is ``2 * brush + 1`` wide).

    Returns:
        ``uint8`` (H, W), 1 = valid, 0 = hole.
    """
    editor = MaskEditor(int(shape[0]), int(shape[1]), brush=brush, max_undo=1)
    editor.add_strokes(strokes)
    return editor.mask


def mask_from_png_bytes(data: bytes, holes_are: str = "black") -> np.ndarray:
    """Decode a binary mask image (PNG bytes) to ``uint8`` (H, W), 1 = valid, 0 = hole.

    The file must be grey (or colour with equal channels) and hold only 0/255 (or 0/1): black =
    hole, white = valid (``holes_are="white"`` for the opposite). Raises ``ValueError`` naming
    the problem for undecodable or non-binary images (JPEG or bilinear resizing make grey edges).
    """
    return masks_lib.decode_mask_image(data, holes_are=holes_are, source="uploaded mask")


def mask_from_png(path: str | Path, holes_are: str = "black") -> np.ndarray:
    """Read a binary mask PNG file (black = hole) as ``uint8`` (H, W), 1 = valid, 0 = hole."""
    return masks_lib.load_mask_png(path, holes_are=holes_are)


class MaskEditor:
    """A mask for a photo of ``height`` x ``width`` pixels, edited by strokes, undo/redo and loads.

    Args:
        height, width: the photo's size in pixels.
        brush: brush radius in pixels, :data:`MIN_BRUSH` to :data:`MAX_BRUSH`.
        max_undo: how many steps :meth:`undo` can go back (older ones are dropped).
        seed: seed for :meth:`random_mask`.

    Attributes:
        mask: ``uint8`` (H, W), 1 = valid, 0 = hole; replaced (never resized) by the operations.
        strokes: the finished strokes on the current mask, each ``(points, brush, eraser)`` with
            ``points`` a list of integer ``(x, y)``.
        brush: the brush radius in pixels; ``eraser``: ``True`` when strokes restore valid pixels.
        uploaded: the last PNG bytes given to :meth:`load_mask_bytes`, or ``None``.
    """

    def __init__(
        self, height: int, width: int, *, brush: int = 12, max_undo: int = 50, seed: int | None = 0
    ) -> None:
        if not isinstance(max_undo, int) or max_undo < 1:
            raise BadValue(f"max_undo must be a positive int, got {max_undo!r}")
        self.height, self.width = int(height), int(width)
        if self.height < 1 or self.width < 1:
            raise BadValue(f"mask size must be positive, got {self.height}x{self.width}")
        self.mask = np.ones((self.height, self.width), np.uint8)
        self.brush = _check_brush(brush)
        self.eraser = False
        self.strokes: list[tuple[list[tuple[int, int]], int, bool]] = []
        self.uploaded: bytes | None = None
        self._uploaded_mask: np.ndarray | None = None
        self._history: deque = deque(maxlen=max_undo)
        self._future: list = []  # what redo brings back; emptied by every new change
        self._current: list[tuple[int, int]] | None = None
        self._rng = np.random.default_rng(seed)

    # ---- strokes --------------------------------------------------------------------------

    @property
    def in_stroke(self) -> bool:
        """``True`` between :meth:`press` and :meth:`release`."""
        return self._current is not None

    def set_brush(self, radius: int) -> int:
        """Set the brush radius (stroke width ``2 * radius + 1``); other values raise ``BadValue``."""
        self.brush = _check_brush(radius)
        return self.brush

    def set_eraser(self, on: bool) -> None:
        """``True``: strokes restore valid pixels (1); ``False``: strokes paint holes (0)."""
        self.eraser = bool(on)

    def press(self, x: float, y: float) -> Box:
        """Start a stroke at (x, y) (one undo step) with a disc there; return the changed box."""
        if self._current is not None:
            self.release()
        self._push_history()
        self._current = [_pt(x, y)]
        return _paint_segment(self.mask, (x, y), (x, y), self.brush, self._value)

    def drag(self, x: float, y: float) -> Box | None:
        """Continue the stroke to (x, y) with a thick segment; ``None`` (nothing) outside a stroke."""
        if self._current is None:
            return None
        point = _pt(x, y)
        box = _paint_segment(self.mask, self._current[-1], point, self.brush, self._value)
        self._current.append(point)
        return box

    def release(self, x: float | None = None, y: float | None = None) -> Box | None:
        """Finish the stroke, painting to (x, y) first when given; return that box or ``None``."""
        if self._current is None:
            return None
        box = self.drag(x, y) if x is not None and y is not None else None
        self.strokes.append((self._current, self.brush, self.eraser))
        self._current = None
        return box

    def add_strokes(self, strokes: Iterable[Sequence[Point]]) -> None:
        """Replay ``strokes`` (lists of (x, y) points) with the current brush, each undoable."""
        for stroke in strokes:
            points = list(stroke)
            if not points:
                continue
            self.press(*points[0])
            for point in points[1:]:
                self.drag(*point)
            self.release()

    # ---- whole-mask steps -----------------------------------------------------------------

    def undo(self) -> bool:
        """Go back one step (stroke, clear, random mask, set or load); ``False`` if none is left."""
        return self._step(self._history, self._future)

    def redo(self) -> bool:
        """Redo the last undone step; ``False`` if there is none (any new change drops them)."""
        return self._step(self._future, self._history)

    def clear(self) -> None:
        """Remove every hole (undoable)."""
        self.set_mask(np.ones_like(self.mask))

    def random_mask(self) -> None:
        """Replace the mask with a random one (:func:`pconv_lib.masks.random_irregular_mask`)."""
        self.set_mask(masks_lib.random_irregular_mask(self.height, self.width, self._rng))

    def set_mask(self, mask: np.ndarray) -> None:
        """Replace the mask (undoable); ``mask`` is (H, W) like the photo, 1 = valid, 0 = hole."""
        mask = masks_lib.validate_mask(mask)
        if mask.shape != self.mask.shape:
            raise BadValue(
                f"mask is {mask.shape[0]}x{mask.shape[1]} but the photo is "
                f"{self.height}x{self.width}; resize it with pconv_lib.masks.resize_mask "
                "(nearest neighbour)"
            )
        self._current = None
        self._push_history()
        self.mask = mask.copy()
        self.strokes = []

    def load_mask_bytes(self, data: bytes, holes_are: str = "black") -> str | None:
        """Use PNG bytes as the mask (:func:`mask_from_png_bytes`, undoable); return a hint for the
        status line when the mask has more holes than valid pixels, else ``None``."""
        self.set_mask(mask_from_png_bytes(data, holes_are))
        self.uploaded, self._uploaded_mask = bytes(data), self.mask.copy()
        if self.hole_ratio() <= 0.5:
            return None
        other = "white" if holes_are == "black" else "black"
        return (
            f"more holes than valid pixels: if the holes in the file are {other}, "
            f"set 'holes in file' to {other}"
        )

    def shows_upload(self) -> bool:
        """``True`` while the mask is still exactly the last loaded PNG."""
        return self._uploaded_mask is not None and np.array_equal(self.mask, self._uploaded_mask)

    # ---- text -----------------------------------------------------------------------------

    def hole_ratio(self) -> float:
        """Fraction of hole pixels in the mask, in [0, 1]."""
        return float(np.count_nonzero(self.mask == 0)) / self.mask.size

    def describe(self, inpainted: bool = False) -> str:
        """One line, e.g. ``"mask 256x256, 12.3% holes, 3 strokes"`` (height x width)."""
        n = len(self.strokes)
        text = (
            f"mask {self.height}x{self.width}, {100 * self.hole_ratio():.1f}% holes, "
            f"{n} stroke{'' if n == 1 else 's'}"
        )
        return text + (", inpainted" if inpainted else "")

    def __repr__(self) -> str:
        return f"MaskEditor({self.describe()})"

    # ---- internals ------------------------------------------------------------------------

    @property
    def _value(self) -> int:
        return 1 if self.eraser else 0

    def _snapshot(self) -> tuple[np.ndarray, list]:
        return np.packbits(self.mask), list(self.strokes)

    def _restore(self, state: tuple[np.ndarray, list]) -> None:
        packed, strokes = state
        self.mask = np.unpackbits(packed, count=self.mask.size).reshape(self.mask.shape)
        self.strokes = strokes

    def _step(self, source: deque | list, target: deque | list) -> bool:
        """Undo (history -> future) or redo (future -> history): finish a stroke in progress, keep
        the current state in ``target``, restore the newest one of ``source``."""
        if self._current is not None:
            self.release()
        if not source:
            return False
        target.append(self._snapshot())
        self._restore(source.pop())
        return True

    def _push_history(self) -> None:
        self._history.append(self._snapshot())
        self._future.clear()
