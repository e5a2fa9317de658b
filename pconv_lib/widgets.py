"""Step 5: paint holes on a photo with the mouse, then inpaint them.

:class:`MaskPainter` shows a photo; the learner paints holes with the mouse and presses
"Inpaint" to run a ``predict_fn(image_uint8, mask) -> uint8 image`` (for example a lambda around
:func:`pconv_lib.tiling.predict_tiled`); the result appears beside the photo.

How it works: **the mask lives in NumPy**, in a :class:`pconv_lib.mask_editor.MaskEditor`
(``painter.editor``; ``painter.mask`` is its ``uint8`` (H, W) mask, 1 = valid, 0 = hole; strokes,
undo/redo, clear and loading are there, testable without Jupyter). Mouse events only deliver
coordinates; the Python handlers (:meth:`MaskPainter.press`, :meth:`~MaskPainter.drag`,
:meth:`~MaskPainter.release`) pass them to the editor, which draws discs and thick line segments
into the mask with OpenCV, and the canvas is only a view: the photo with the holes tinted is sent with
``put_image_data`` (only the changed rectangle while painting). Pixels are never read back from the
browser (no ``sync_image_data`` / ``get_image_data``), so the mask is exact and everything works
without a browser: tests and nbval drive the same methods, and :func:`mask_from_strokes`,
:meth:`MaskPainter.from_strokes`, :func:`mask_from_png` / :meth:`MaskPainter.load_mask_bytes` and
the "Random mask" button give masks without a mouse.

Front ends:

- **JupyterLab 4 / Notebook 7 / classic notebook**: works with the ``ipycanvas`` and
  ``ipywidgets`` packages installed in the kernel's environment (their front-end parts install
  with them). Restart the kernel and reload the page after installing.
- **Google Colab**: run ``from google.colab import output; output.enable_custom_widget_manager()``
  once before showing the painter, otherwise the canvas shows as text.
- **VS Code**: the Jupyter extension renders ipycanvas and delivers mouse events. Never call
  ``canvas.sync_image_data = True`` or read pixels from the canvas there: it hangs (this module
  never does).
- **No ipycanvas** (or ``use_canvas=False``): the photo and the result are shown as plain
  ``ipywidgets.Image`` views (PNG, via ``cv2.imencode``); mouse painting is not available, but
  strokes given as coordinates, PNG upload, random masks, undo and "Inpaint" all work.
- **No front end at all** (scripts, nbval): displaying the painter gives its one-line text summary;
  all methods work.

Coordinates are image pixels: ``x`` is the column, ``y`` the row (OpenCV's order). The canvas has
exactly the photo's size, so canvas and image pixels coincide; on screen each panel is scaled down
to fit half the available width (the mask keeps the photo's full resolution, and ipycanvas maps
mouse positions back to canvas pixels).

Default inpainter: without ``predict_fn`` the painter uses the bundled demo model
(:func:`pconv_lib.pretrained.demo_model`, loaded once per kernel and shared by every painter) with
:func:`pconv_lib.tiling.predict_multiscale` (:func:`demo_inpainter`): tiles at the training size,
plus a coarse pass on a downscaled copy when the painted holes are wider than the training holes
(chosen from the mask: no dark blotches inside large holes); a 600x400 photo took 0.6 s on 2 CPU
cores, 1.0 s with one of them kept busy by another program (the demo model already loaded). If
that file is missing or unreadable it falls back to OpenCV's Telea inpainting and says so in one
line (``painter.notice`` and the status line). The first forward pass of a model pays the kernels'
warm-up (5.8 s against 0.5 s after, measured on a first click), so a painter with the default
inpainter loads the demo model and runs it once on a 128x128 input in a background thread as it
is made (the status line says "warming up the model..."); an "Inpaint" click meanwhile waits for
it, and inpainting never runs twice at once (a lock). While "Inpaint" works, the status line says what it
is doing (and the button is disabled); afterwards, how long it took.

The command line's rules hold here too (checked when the painter is made or the control used, one
line in the status line): a brush radius from :data:`MIN_BRUSH` to :data:`MAX_BRUSH` pixels; a mask
with every pixel a hole is refused by "Inpaint" (nothing to inpaint from), a mask without holes
returns the photo; photos over the pixel limit (:func:`pconv_lib.util.files.max_pixels`, 100 MP,
``PCONV_MAX_PIXELS``) are refused, and photos with a side over :data:`MAX_SIDE` pixels are
downscaled for painting with a notice (a canvas that size would stall the browser, and the
inpainting would take minutes on a CPU). Uploaded mask PNGs are read with black = hole; the
"holes in file" control switches to white = hole (and re-reads the last upload).

Whenever the mask changes (a stroke, undo, clear, random mask, upload) the result panel is
cleared, so the result shown always belongs to the mask shown (the status line then drops
"inpainted").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

import cv2
import ipywidgets as widgets
import numpy as np

from pconv_lib.mask_editor import (  # noqa: F401  (re-exported: the names notebooks use)
    MAX_BRUSH,
    MIN_BRUSH,
    MaskEditor,
    Point,
    mask_from_png,
    mask_from_png_bytes,
    mask_from_strokes,
)
from pconv_lib.util.errors import BadValue
from pconv_lib.util.tensor_checks import check_rgb_uint8

try:  # ipycanvas is optional at run time: fall back to ipywidgets.Image views without it.
    import ipycanvas
except ImportError:  # pragma: no cover - exercised only where ipycanvas is missing
    ipycanvas = None

__all__ = ["MaskPainter", "demo_inpainter", "mask_from_png", "mask_from_strokes", "mask_from_png_bytes"]

PredictFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Colour (RGB) that tints hole pixels in the view, and how strongly (0..1).
HOLE_TINT = (255, 0, 255)
HOLE_ALPHA = 0.6
#: Photos with a longer side are downscaled (area averaging) for the painter, with a notice.
MAX_SIDE = 2048


_DEMO_CACHE: dict[str, object] = {}
#: Held while the shared demo model loads, warms up or inpaints, and during every "Inpaint":
#: never two at once (a click during the warm-up waits for it).
_MODEL_LOCK = threading.RLock()
#: The warm-up runs the demo model once on a (1, 3, WARM_UP_SIZE, WARM_UP_SIZE) input.
WARM_UP_SIZE = 128
WARMING_UP = "warming up the model..."


def _demo_model_once():
    """The demo model, loaded at the first call of this kernel and reused (or the error message)."""
    from pconv_lib import pretrained

    with _MODEL_LOCK:
        if "model" not in _DEMO_CACHE:
            try:
                _DEMO_CACHE["model"] = pretrained.demo_model()
            except pretrained.DemoModelUnavailable as error:
                return None, str(error)  # not cached: a repaired install works without a restart
        return _DEMO_CACHE["model"], None


def _warm_up_model(model) -> None:
    """One forward pass under ``torch.no_grad`` on a grey WARM_UP_SIZE square with a hole in the
    middle: the kernels' first-call cost is paid here, not by the first "Inpaint" click."""
    import torch

    side = WARM_UP_SIZE
    image = torch.full((1, 3, side, side), 0.5)
    mask = torch.ones((1, 1, side, side))
    mask[..., side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 0
    with torch.no_grad():
        model(image, mask)


def _warm_up_demo_model() -> None:
    """Load the demo model (once per kernel) and warm it up (once per kernel), under the lock;
    the modules "Inpaint" uses are imported here too (0.7 s on 2 CPU cores)."""
    import pconv_lib.evaluate  # noqa: F401
    import pconv_lib.tiling  # noqa: F401

    with _MODEL_LOCK:
        model, _ = _demo_model_once()
        if model is not None and _DEMO_CACHE.get("warm") is not model:
            _warm_up_model(model)
            _DEMO_CACHE["warm"] = model


def demo_inpainter(tile_size: int = 256, overlap: int = 64) -> tuple[PredictFn, str | None]:
    """The painter's default ``predict_fn`` and a notice (``None`` when all is well).

    The bundled demo model (:func:`pconv_lib.pretrained.demo_model`, trained on 256x256 crops;
    loaded once per process and shared) with :func:`pconv_lib.tiling.predict_multiscale`
    (``tile_size``, ``overlap``; the coarse pass only when the holes are wider than the training
    holes, :func:`pconv_lib.tiling.choose_scale`), so any photo size and hole size works. If the
    demo model is missing or unreadable (:class:`~pconv_lib.pretrained.DemoModelUnavailable`),
    OpenCV Telea inpainting (:func:`pconv_lib.evaluate.inpaint_telea`) and a one-line notice saying why.
    """
    from pconv_lib.evaluate import inpaint_telea
    from pconv_lib.tiling import predict_multiscale

    model, error = _demo_model_once()
    if model is None:
        return inpaint_telea, f"demo model unavailable, using OpenCV Telea instead ({error})"

    def predict(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return predict_multiscale(model, image, mask, tile_size=tile_size, overlap=overlap).image

    predict.pconv_demo = (tile_size, overlap)  # type: ignore[attr-defined]  # lets the status line explain
    return predict, None


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


# --------------------------------------------------------------------------------------------
# The painter
# --------------------------------------------------------------------------------------------


class MaskPainter:
    """A photo you paint holes on, with brush, eraser, undo, redo, clear, upload, random and inpaint.

    The view and controller of a :class:`~pconv_lib.mask_editor.MaskEditor` (``painter.editor``):
    canvas events and buttons become editor calls, and the editor's mask is drawn.

    Args:
        image: the photo, ``uint8`` (H, W, 3) RGB.
        predict_fn: ``predict_fn(image, mask) -> uint8 (H, W, 3)`` run by "Inpaint" and
            :meth:`run`; it receives copies of the photo and of the mask (1 = valid, 0 = hole).
            ``None`` (default): :func:`demo_inpainter`; the demo model is loaded and warmed up
            in a background thread as the painter is made (:meth:`wait_until_ready`).
        brush: brush radius in pixels.
        max_undo: how many steps :meth:`undo` can go back (older ones are dropped).
        use_canvas: ``None`` uses ipycanvas when installed; ``False`` forces the plain image view.
        seed: seed for the "Random mask" button.
        max_view_width: the largest on-screen width of each panel in CSS pixels (default: the
            photo's width); panels also shrink to half the available width.

    Attributes:
        mask: ``uint8`` (H, W), 1 = valid, 0 = hole; the single source of truth (``editor.mask``).
        result: the last inpainted image (``uint8`` (H, W, 3)) or ``None``.
        strokes: the strokes on the current mask, each ``(points, brush, eraser)``.
        widget: the ipywidgets box to display (displaying the painter shows it).
        notice: a one-line notice about the default inpainter (the OpenCV fallback) or ``None``.
    """

    def __init__(
        self,
        image: np.ndarray,
        predict_fn: PredictFn | None = None,
        *,
        brush: int = 12,
        max_undo: int = 50,
        use_canvas: bool | None = None,
        seed: int | None = 0,
        max_view_width: int | None = None,
    ) -> None:
        check_rgb_uint8(image, "image")
        if not isinstance(max_undo, int) or max_undo < 1:
            raise BadValue(f"max_undo must be a positive int, got {max_undo!r}")
        self.notice: str | None = None
        image = self._fit_photo(image)
        self.image = np.ascontiguousarray(image)
        self.editor = MaskEditor(*image.shape[:2], brush=brush, max_undo=max_undo, seed=seed)
        self.result: np.ndarray | None = None
        self.predict_fn = predict_fn
        self.max_view_width = int(max_view_width) if max_view_width else self.width
        if use_canvas is None:
            use_canvas = ipycanvas is not None
        if use_canvas and ipycanvas is None:
            raise ImportError("use_canvas=True needs ipycanvas: pip install ipycanvas")
        self.uses_canvas = bool(use_canvas)
        self._build_widgets()
        self._redraw()
        self._warm_up: threading.Thread | None = None
        if predict_fn is None and "warm" not in _DEMO_CACHE:
            self._warm_up = threading.Thread(
                target=self._warm_up_in_background, name="pconv-warm-up", daemon=True
            )
            self._update_status("; ".join(n for n in (self.notice, WARMING_UP) if n))
            self._warm_up.start()
        elif self.notice:
            self._update_status(self.notice)

    # ---- the editor's state, as attributes ------------------------------------------------

    @property
    def mask(self) -> np.ndarray:
        """``uint8`` (H, W), 1 = valid, 0 = hole (the editor's; replace it with :meth:`set_mask`)."""
        return self.editor.mask

    @property
    def strokes(self) -> list:
        return self.editor.strokes

    @property
    def brush(self) -> int:
        return self.editor.brush

    @property
    def eraser(self) -> bool:
        return self.editor.eraser

    @property
    def height(self) -> int:
        return self.editor.height

    @property
    def width(self) -> int:
        return self.editor.width

    # ---- construction helpers -------------------------------------------------------------

    def _fit_photo(self, image: np.ndarray) -> np.ndarray:
        """Refuse photos over the pixel limit; downscale a side over :data:`MAX_SIDE` (notice)."""
        from pconv_lib.util.files import max_pixels

        height, width = image.shape[:2]
        limit = max_pixels()
        if height * width > limit:
            raise BadValue(
                f"photo {width}x{height} has {height * width:,} pixels, over the limit of {limit:,} "
                "(PCONV_MAX_PIXELS): resize it first, e.g. cv2.resize(photo, None, fx=0.25, fy=0.25, "
                "interpolation=cv2.INTER_AREA)"
            )
        if height == 0 or width == 0:
            raise BadValue(f"photo {width}x{height} is empty")
        side = max(height, width)
        if side <= MAX_SIDE:
            return image
        scale = MAX_SIDE / side
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        self.notice = (
            f"photo {width}x{height} downscaled to {size[0]}x{size[1]} for painting (longest side "
            f"{MAX_SIDE} px); painter.image is the downscaled copy"
        )
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    @classmethod
    def from_strokes(
        cls,
        image: np.ndarray,
        strokes: Iterable[Sequence[Point]],
        brush: int = 12,
        **kwargs,
    ) -> MaskPainter:
        """A painter whose mask is ``strokes`` (lists of (x, y) points) painted with ``brush``,
        replayed as if by mouse (:meth:`MaskEditor.add_strokes`, so each stroke can be undone)."""
        painter = cls(image, brush=brush, **kwargs)
        painter.editor.add_strokes(strokes)
        if painter.strokes:  # no strokes: the view and the status line (warming up) stay as built
            painter._mask_replaced()
        return painter

    def _warm_up_in_background(self) -> None:
        try:
            _warm_up_demo_model()
        except Exception:  # noqa: BLE001 - the first "Inpaint" loads it again and reports why
            pass
        if self.status.value.endswith(WARMING_UP):
            self._update_status(self.notice)

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Wait for the demo model's warm-up (if any); ``False`` if still warming after ``timeout`` s."""
        if self._warm_up is not None:
            self._warm_up.join(timeout)
            return not self._warm_up.is_alive()
        return True

    # ---- the Python side of the mouse ------------------------------------------------------

    def press(self, x: float, y: float) -> None:
        """Mouse button down at (x, y): start a stroke (undoable) and paint a disc there."""
        if self.editor.in_stroke:
            self.release()
        self._redraw(self.editor.press(x, y))
        self._drop_result()

    def drag(self, x: float, y: float) -> None:
        """Mouse moved to (x, y): while a stroke is in progress, paint a thick segment from the
        previous point; otherwise (hovering) do nothing."""
        box = self.editor.drag(x, y)
        if box is not None:
            self._redraw(box)

    def release(self, x: float | None = None, y: float | None = None) -> None:
        """Mouse button up (or pointer left the canvas): finish the stroke, painting to (x, y)
        first when given."""
        if not self.editor.in_stroke:
            return
        box = self.editor.release(x, y)
        if box is not None:
            self._redraw(box)
        self._update_status()

    # ---- controls -----------------------------------------------------------------------

    def set_brush(self, radius: int) -> None:
        """Set the brush radius in pixels (stroke width ``2 * radius + 1``), :data:`MIN_BRUSH` to
        :data:`MAX_BRUSH`; other values raise ``ValueError``."""
        brush = self.editor.set_brush(radius)
        if self._brush_slider.max < brush:
            self._brush_slider.max = brush  # the slider shows it (it never goes past MAX_BRUSH)
        if self._brush_slider.value != brush:
            self._brush_slider.value = brush

    def set_eraser(self, on: bool) -> None:
        """``True``: strokes restore valid pixels; ``False``: strokes paint holes."""
        self.editor.set_eraser(on)
        wanted = "erase" if self.eraser else "paint"
        if self._mode.value != wanted:
            self._mode.value = wanted

    def undo(self) -> bool:
        """Go back one step (stroke, clear, random mask or upload); ``False`` if nothing to undo."""
        if not self.editor.undo():
            self._update_status("nothing to undo")
            return False
        self._mask_replaced()
        return True

    def redo(self) -> bool:
        """Redo the last undone step; ``False`` if nothing to redo."""
        if not self.editor.redo():
            self._update_status("nothing to redo")
            return False
        self._mask_replaced()
        return True

    def clear(self) -> None:
        """Remove every hole (undoable)."""
        self.editor.clear()
        self._mask_replaced()

    def random_mask(self) -> None:
        """Replace the mask with a random one (:func:`pconv_lib.masks.random_irregular_mask`)."""
        self.editor.random_mask()
        self._mask_replaced()

    def set_mask(self, mask: np.ndarray) -> None:
        """Replace the mask (undoable); ``mask`` is (H, W) like the photo, 1 = valid, 0 = hole."""
        self.editor.set_mask(mask)
        self._mask_replaced()

    def load_mask_bytes(self, data: bytes, holes_are: str | None = None) -> None:
        """Use uploaded PNG bytes as the mask (:func:`mask_from_png_bytes`); ``holes_are``
        (``"black"`` or ``"white"``) defaults to the "holes in file" control (black at first).

        A mask with more holes than valid pixels is used, with a hint in the status line (the
        file may mark holes in the other colour: switch the control, the upload is read again)."""
        if holes_are is None:
            holes_are = self._holes_are.value
        hint = self.editor.load_mask_bytes(data, holes_are)
        self._mask_replaced()
        if self._holes_are.value != holes_are:
            self._holes_are.value = holes_are  # the control shows how the file was read
        if hint:
            self._update_status(hint)

    def _on_holes_are(self, change: dict) -> None:
        """The control changed: read the last upload again, if the mask is still that upload."""
        if self.editor.shows_upload():
            self._guarded(lambda: self.load_mask_bytes(self.editor.uploaded, change["new"]))

    def run(self) -> np.ndarray:
        """Run ``predict_fn`` on photo and mask; show and return the ``uint8`` (H, W, 3) result.

        Raises ``ValueError`` when every pixel is a hole (nothing to inpaint from, as the command
        line refuses it); a mask without holes returns the photo. The status line says what runs
        while it runs, then how long it took. Waits for the demo model's warm-up; runs one at a
        time (also across painters and threads).
        """
        self.release()
        if not self.mask.any():
            raise BadValue(
                "every pixel is a hole, so there is nothing to inpaint from: undo or erase some; "
                "for an uploaded mask whose holes are white, set 'holes in file' to white"
            )
        button = self.buttons["inpaint"]
        button.disabled = True
        try:
            if not self.wait_until_ready(0):
                self._update_status("waiting for the model warm-up...")
                self.wait_until_ready()
            with _MODEL_LOCK:
                image, mask = self.image.copy(), self.mask.copy()
                if self.predict_fn is None:
                    if "model" not in _DEMO_CACHE:
                        self._update_status("loading the demo model (once per kernel)...")
                    fn, notice = demo_inpainter()
                    self.predict_fn = fn
                    self.notice = "; ".join(n for n in (self.notice, notice) if n) or None
                self._update_status(self._work_description() + "...")
                start = time.perf_counter()
                result = image if mask.all() else self.predict_fn(image, mask.copy())
                seconds = time.perf_counter() - start
        finally:
            button.disabled = False
        check_rgb_uint8(result, "the result of predict_fn")
        if result.shape != self.image.shape:
            raise BadValue(f"predict_fn must return an image of shape {self.image.shape}, got {result.shape}")
        self.result = result
        self._show_result()
        done = "no holes: the photo is unchanged" if mask.all() else f"took {seconds:.1f} s"
        self._update_status("; ".join(n for n in (done, self.notice) if n))
        return result

    def _work_description(self) -> str:
        """What "Inpaint" is about to do, for the status line."""
        if self.mask.all():
            return "no holes"
        demo = getattr(self.predict_fn, "pconv_demo", None)
        if demo is None:
            name = getattr(self.predict_fn, "__name__", "predict_fn")
            return f"inpainting {self.width}x{self.height} with {name}"
        from pconv_lib.tiling import choose_scale

        tile, _ = demo
        factor = choose_scale(self.mask, tile)
        how = f"tiles of {tile}"
        if factor > 1:
            how = f"multi-scale: a coarse pass at 1/{factor}, then {how}"
        return f"inpainting {self.width}x{self.height} with the demo model ({how})"

    # ---- text ---------------------------------------------------------------------------

    def hole_ratio(self) -> float:
        """Fraction of hole pixels in the mask, in [0, 1]."""
        return self.editor.hole_ratio()

    def describe(self) -> str:
        """One line, e.g. ``"mask 256x256, 12.3% holes, 3 strokes"`` (height x width)."""
        return self.editor.describe(inpainted=self.result is not None)

    def __repr__(self) -> str:
        return f"MaskPainter({self.describe()})"

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)  # stable text for nbval and plain consoles
        return bundle

    # ---- the view -----------------------------------------------------------------------

    def _mask_replaced(self) -> None:
        """The editor replaced the whole mask: drop the result and draw everything again."""
        self.result = None
        self._redraw()

    def _drop_result(self) -> None:
        """The mask changed: clear the result panel so it never shows a stale result."""
        if self.result is not None:
            self.result = None
            self._show_result()
            self._update_status()

    def view_image(self) -> np.ndarray:
        """What the canvas shows: the photo with holes tinted, ``uint8`` (H, W, 3)."""
        return self._compose(0, 0, self.height, self.width)

    def _compose(self, top: int, left: int, bottom: int, right: int) -> np.ndarray:
        photo = self.image[top:bottom, left:right].astype(np.float32)
        hole = (self.mask[top:bottom, left:right] == 0)[:, :, None]
        tint = np.asarray(HOLE_TINT, np.float32)
        mixed = np.where(hole, (1 - HOLE_ALPHA) * photo + HOLE_ALPHA * tint, photo)
        return mixed.round().astype(np.uint8)

    def _view_layout(self) -> widgets.Layout:
        """Each panel: at most half the available width (minus a gap) and ``max_view_width``;
        the height follows from the photo's aspect ratio (the canvas keeps full resolution)."""
        return widgets.Layout(
            width=f"min({self.max_view_width}px, calc(50% - 4px))",
            max_width=f"{self.max_view_width}px",
            height="auto",
            flex="0 1 auto",
        )

    def _build_widgets(self) -> None:
        if self.uses_canvas:
            self.canvas = ipycanvas.Canvas(width=self.width, height=self.height, layout=self._view_layout())
            self.result_view = ipycanvas.Canvas(
                width=self.width, height=self.height, layout=self._view_layout()
            )
            self.canvas.on_mouse_down(self._on_mouse_down)
            self.canvas.on_mouse_move(self._on_mouse_move)
            self.canvas.on_mouse_up(self._on_mouse_up)
            self.canvas.on_mouse_out(self._on_mouse_up)
            self.canvas.on_client_ready(self._redraw)
        else:
            self.canvas = widgets.Image(format="png", layout=self._view_layout())
            self.result_view = widgets.Image(format="png", layout=self._view_layout())

        self._brush_slider = widgets.IntSlider(
            value=self.brush, min=MIN_BRUSH, max=max(64, self.brush), description="brush"
        )
        self._brush_slider.observe(lambda change: self.set_brush(change["new"]), names="value")
        self._mode = widgets.ToggleButtons(options=["paint", "erase"], value="paint")
        self._mode.observe(lambda change: self.set_eraser(change["new"] == "erase"), names="value")
        fit = widgets.Layout(width="auto", min_width="max-content")  # labels never cut
        self.buttons = {
            "undo": widgets.Button(description="Undo", icon="undo", layout=fit),
            "redo": widgets.Button(description="Redo", icon="repeat", layout=fit),
            "clear": widgets.Button(description="Clear", icon="eraser", layout=fit),
            "random": widgets.Button(description="Random mask", icon="random", layout=fit),
            "inpaint": widgets.Button(
                description="Inpaint", icon="magic", button_style="primary", layout=fit
            ),
        }
        self.buttons["undo"].on_click(lambda _: self._guarded(self.undo))
        self.buttons["redo"].on_click(lambda _: self._guarded(self.redo))
        self.buttons["clear"].on_click(lambda _: self._guarded(self.clear))
        self.buttons["random"].on_click(lambda _: self._guarded(self.random_mask))
        self.buttons["inpaint"].on_click(lambda _: self._guarded(self.run))
        self.upload = widgets.FileUpload(accept=".png", multiple=False, description="Mask PNG")
        self.upload.observe(self._on_upload, names="value")
        self._holes_are = widgets.ToggleButtons(
            options=["black", "white"], value="black", description="holes in file",
            tooltips=["black pixels of an uploaded mask are holes", "white pixels are holes"],
            style={"button_width": "auto"},
        )
        self._holes_are.observe(self._on_holes_are, names="value")
        self.status = widgets.Label()

        wrap = widgets.Layout(flex_flow="row wrap", width="100%")
        tools = widgets.HBox([self._brush_slider, self._mode], layout=wrap)
        buttons = widgets.HBox([*self.buttons.values(), self.upload, self._holes_are], layout=wrap)
        views = widgets.HBox(
            [self.canvas, self.result_view], layout=widgets.Layout(width="100%", grid_gap="8px")
        )
        self.widget = widgets.VBox([tools, buttons, views, self.status])

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run a button's action; show errors in the status line (callbacks have no cell)."""
        try:
            action()
        except Exception as err:  # reported to the learner in the status line
            self._update_status(f"error: {err}")

    def _on_mouse_down(self, x: float, y: float) -> None:
        self.press(x, y)

    def _on_mouse_move(self, x: float, y: float) -> None:
        self.drag(x, y)

    def _on_mouse_up(self, x: float, y: float) -> None:
        self.release(x, y)

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0] if isinstance(files, (tuple, list)) else next(iter(files.values()))
        self._guarded(lambda: self.load_mask_bytes(bytes(item["content"])))  # as "holes in file" says

    def _redraw(self, box: tuple[int, int, int, int] | None = None) -> None:
        """Send the view (or only rectangle ``box`` = top, left, bottom, right) to the front end."""
        if self.uses_canvas:
            top, left, bottom, right = box or (0, 0, self.height, self.width)
            if bottom > top and right > left:
                patch = self._compose(top, left, bottom, right)
                alpha = np.full(patch.shape[:2] + (1,), 255, np.uint8)
                # RGBA goes as PNG (lossless): hole edges stay crisp.
                self.canvas.put_image_data(np.concatenate([patch, alpha], axis=2), left, top)
        else:
            self.canvas.value = _png_bytes(self.view_image())
        if box is None:
            self._show_result()
            self._update_status()

    def _show_result(self) -> None:
        shown = self.result if self.result is not None else np.full_like(self.image, 240)
        if self.uses_canvas:
            alpha = np.full(shown.shape[:2] + (1,), 255, np.uint8)
            self.result_view.put_image_data(np.concatenate([shown, alpha], axis=2), 0, 0)
        else:
            self.result_view.value = _png_bytes(shown)

    def _update_status(self, message: str | None = None) -> None:
        self.status.value = self.describe() + (f" - {message}" if message else "")
