"""Step 6, ship it: a local web app to upload a photo, paint the holes and download the fill.

``python -m pconv_lib app [--checkpoint demo|PATH] [--port N] [--host H]`` (or ``make app``)
loads the model once, starts a web server on ``127.0.0.1`` (this computer only; ``--host 0.0.0.0``
makes it reachable from other machines, on purpose) and prints its address. The page
(``app_page.html``, one static file, no framework) lets you upload a photo or pick a sample
photo, paint holes with a brush (size, eraser, undo, clear) or load a mask file (black = hole, or
white with "holes in file: white"), then "Inpaint" shows the model's fill beside the input and
OpenCV Telea's fill, with the seconds each took, and offers the PNG and the mask for download.

Why no web framework: the standard library's :mod:`http.server` and one HTML page with a canvas
are enough for one user on one computer, and they add nothing to install. Gradio, the usual
choice, would add 33 packages the course does not already install (pip's resolution of gradio
6.31: FastAPI, Starlette, Uvicorn, Pydantic, pandas, huggingface_hub, ...) to every learner's laptop.

The server is stateless: the page keeps the photo as the PNG the server decoded and sends it back
with the mask (a black-and-white PNG, black = hole) on every "Inpaint". JSON API, every answer
``{"error": "<one line>"}`` with status 400 for bad input (never a traceback):

- ``GET /`` the page; ``GET /api/info`` the model, its training size and the limits;
  ``GET /api/samples`` the sample photos' names and descriptions.
- ``GET /api/sample?name=coffee`` and ``POST /api/photo {"name", "data": base64 file bytes}``
  -> ``{"png": base64 PNG, "width", "height", "note"}``: the photo as the command line reads it
  (header checked against the pixel limit before decoding, EXIF orientation applied).
- ``POST /api/mask {"name", "data", "holes_are", "width", "height"}`` -> ``{"png", "note"}``:
  a mask file decoded as ``--mask`` is (binary, same aspect ratio as the photo, resized with
  nearest neighbour), as a black-and-white PNG of the photo's size.
- ``POST /api/inpaint {"photo": base64 PNG, "mask": base64 PNG}`` -> ``{"result", "telea",
  "mask", "model_seconds", "telea_seconds", "summary"}``: the library's prediction path for photos of
  any size, :func:`pconv_lib.tiling.predict_multiscale`, with the command line's defaults (tiles
  at the training size overlapping by a quarter, a coarse pass first when the holes are wider than
  the training holes). One inpaint at a time: a second request while one runs is refused with
  status 409 and a message (the page says "busy, try again when it finishes").

Only the page talks to it: POSTs must be JSON (another site's page cannot send JSON here without
the browser asking first, and the server never allows it), and on the loopback address requests
addressed to any other name are refused (DNS rebinding). Nothing is stored: the server keeps no
photo once it has answered.

Images in the code: ``uint8`` (H, W, 3) RGB; masks ``uint8`` (H, W), 1 = valid, 0 = hole.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from pconv_lib.util.errors import BadValue, PconvError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "AppServer", "Inpainter", "add_app_parser", "run_app"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Request bodies larger than this are refused before they are read (a base64 photo of about
#: 190 MB: far beyond what a CPU inpaints in reasonable time; the pixel limit applies as well).
MAX_BODY_BYTES = 256 * 2**20
#: Side of the square photo the model runs on once at start-up (the kernels' first-call cost).
WARM_UP_SIZE = 128
BUSY = (
    "busy: another inpaint is running ({seconds:.1f} s so far); one runs at a time so that each "
    "gets the whole CPU - try again when it finishes"
)


# --------------------------------------------------------------------------------------------
# Decoding uploads with the command line's readers (same checks, same one-line messages)
# --------------------------------------------------------------------------------------------


def _safe_name(name: object, default: str) -> str:
    """A plain file name for messages and the temporary file: the last path part, odd characters
    replaced; ``default`` when nothing is left."""
    text = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = re.sub(r"[^\w.\- ]", "_", text).strip(" .")[:100]
    return text or default


def _b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise BadValue(f"{what}: nothing was uploaded; choose a file")
    if text.startswith("data:"):  # a data: URL from the browser
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadValue(f"{what}: the upload is not valid base64 (reload the page and try again)") from None


@contextmanager
def _upload_file(data: bytes, name: str) -> Iterator[Path]:
    """The uploaded bytes as a temporary file called ``name``, for the command line's readers (so
    that the same checks run); their messages name ``name``, not the temporary folder."""
    with tempfile.TemporaryDirectory(prefix="pconv-app-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            yield path
        except (PconvError, OSError) as error:
            raise type(error)(str(error).replace(str(path), name)) from None


def read_photo(data: bytes, name: str = "photo.png", max_pixels: int | None = None) -> np.ndarray:
    """Decode uploaded photo bytes exactly as ``predict --image`` reads a file: the header is
    checked against the pixel limit and the free memory before decoding, EXIF orientation is
    applied. Returns ``uint8`` (H, W, 3) RGB.

    Raises:
        ImageRejected / ImageTooLarge: the command line's one-line message, naming ``name``.
    """
    from pconv_lib.tiling import PREDICT_BYTES_PER_PIXEL
    from pconv_lib.util.image_files import load_image

    with _upload_file(data, _safe_name(name, "photo.png")) as path:
        return load_image(path, max_pixels=max_pixels, bytes_per_pixel=PREDICT_BYTES_PER_PIXEL,
                          what="inpainting it")


def decode_mask(
    data: bytes, name: str, holes_are: str = "black", max_pixels: int | None = None
) -> np.ndarray:
    """Decode uploaded mask bytes as ``predict --mask`` reads its file: the header checked against
    the pixel limit and the memory first (a small PNG can hold a huge mask), binary (0/255 or
    0/1, else a message), EXIF orientation applied. Returns ``uint8`` (H, W), 1 = valid, 0 = hole."""
    from pconv_lib import masks as mask_lib
    from pconv_lib.util.files import check_image_resources, read_image_header
    from pconv_lib.util.image_files import apply_orientation

    with _upload_file(data, _safe_name(name, "mask.png")) as path:
        header = read_image_header(path)
        check_image_resources(header, path, limit=max_pixels, bytes_per_pixel=16, what="loading it")
        return apply_orientation(mask_lib.load_mask_png(path, holes_are=holes_are), header.orientation)


def read_mask(data: bytes, name: str, holes_are: str, height: int, width: int,
              max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """Decode an uploaded mask file (:func:`decode_mask`) and fit it to an ``height`` x ``width``
    photo as ``predict --mask`` does: the photo's aspect ratio (up to one mask pixel), resized with
    nearest neighbour when only the resolution differs. Returns ``(mask, note)``, mask ``uint8``
    (H, W) with 1 = valid, 0 = hole, and a note for the status line ("" when there is nothing to say).
    """
    from pconv_lib import masks as mask_lib

    mask = decode_mask(data, name, holes_are, max_pixels)
    mh, mw = mask.shape
    notes = []
    mask = mask_lib.fit_mask_to_photo(mask, height, width, name)
    if (mh, mw) != (height, width):
        notes.append(f"resized the mask {mw}x{mh} to the photo's {width}x{height} (nearest, same aspect "
                     "ratio)")
    ratio = mask_lib.hole_ratio(mask)
    other = "white" if holes_are == "black" else "black"
    if ratio > 0.5:
        notes.append(f"{name} marks {100 * ratio:.0f}% of the photo as holes ({holes_are} = hole); if the "
                     f"holes in your file are {other}, set 'holes in file' to {other}")
    elif ratio == 0.0:
        notes.append(f"{name} has no holes ({holes_are} = hole); paint some, or if the holes in your file "
                     f"are {other}, set 'holes in file' to {other}")
    return mask, "; ".join(notes)


def check_painted_mask(mask: np.ndarray, height: int, width: int) -> None:
    """Refuse a mask that cannot be inpainted: another size than the photo, no hole, all holes."""
    if mask.shape != (height, width):
        raise BadValue(
            f"the mask is {mask.shape[1]}x{mask.shape[0]} but the photo is {width}x{height}; "
            "reload the photo and paint the holes again"
        )
    if mask.all():
        raise BadValue("no holes to fill: paint over what should go (or load a mask file), then Inpaint")
    if not mask.any():
        raise BadValue(
            "every pixel is a hole, so there is nothing to inpaint from: undo or erase some; for a "
            "loaded mask whose holes are white, set 'holes in file' to white and load it again"
        )


def png_base64(image: np.ndarray) -> str:
    """``uint8`` (H, W, 3) RGB or (H, W) grey -> base64 text of a PNG file."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 images
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(encoded.tobytes()).decode("ascii")


# --------------------------------------------------------------------------------------------
# The model, loaded once; one inpaint at a time
# --------------------------------------------------------------------------------------------


@dataclass
class InpaintResult:
    """The model's fill and Telea's, ``uint8`` (H, W, 3) RGB, and the seconds each took."""

    image: np.ndarray
    telea: np.ndarray
    model_seconds: float
    telea_seconds: float
    summary: str


class Busy(RuntimeError):
    """An inpaint is already running (the message says for how long)."""


class Inpainter:
    """A loaded model and the command line's prediction settings, run one call at a time.

    Args:
        model: ``model(image, mask) -> image``, image float (N, 3, H, W) in [0, 1], mask
            (N, 1, H, W) 1 = valid; H and W multiples of ``2**depth``.
        image_size: the model's training crop size: the tile size, as ``predict``'s default.
        depth: the model's depth (sizes must be multiples of ``2**depth``).
        name: how the page names the model (e.g. "the course demo model").
        device: where it runs (default: its parameters' device).
    """

    def __init__(self, model, image_size: int, depth: int, name: str, device=None) -> None:  # noqa: ANN001
        self.model, self.image_size, self.depth, self.name = model, int(image_size), int(depth), name
        self.device = device
        self._lock = threading.Lock()
        self._started: float | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, device=None) -> Inpainter:  # noqa: ANN001
        """Load ``checkpoint`` (a file or ``"demo"``) as ``predict --checkpoint`` does."""
        from pconv_lib.runs.checkpoints import DEMO_NAME, model_from_checkpoint
        from pconv_lib.runtime import resolve_device

        device = resolve_device(device)
        model, config = model_from_checkpoint(checkpoint, device)  # names a missing or broken file
        is_demo = str(checkpoint) == DEMO_NAME and not Path(checkpoint).exists()
        name = "the course demo model" if is_demo else f"checkpoint {checkpoint}"
        return cls(model, config.image_size, config.depth, name, device)

    def describe(self) -> str:
        """One line: which model, its training size and how photos are tiled."""
        return (f"{self.name} (trained on {self.image_size}x{self.image_size} crops; photos of any size "
                f"in tiles of {self.image_size}, a coarse pass first for wide holes)")

    def predict(self, image: np.ndarray, mask: np.ndarray):  # noqa: ANN201
        """The command line's ``predict`` on one photo (``--scale auto``, ``--tile-size`` = the
        training size, ``--overlap`` = a quarter of it): a :class:`pconv_lib.tiling.TiledResult`."""
        from pconv_lib.tiling import predict_multiscale

        tile = self.image_size
        return predict_multiscale(self.model, image, mask, tile_size=tile, overlap=tile // 4,
                                  multiple=2**self.depth, device=self.device)

    def warm_up(self) -> float:
        """One inpaint of a grey WARM_UP_SIZE square with a hole, through the request's path (photo
        read from PNG bytes, model, Telea), so that the first click does not pay the first-call
        costs (imports, kernels: seconds on a laptop CPU); returns the seconds it took."""
        side = WARM_UP_SIZE
        mask = np.ones((side, side), np.uint8)
        mask[side // 4 : 3 * side // 4, side // 4 : 3 * side // 4] = 0
        start = time.perf_counter()
        grey = np.full((side, side, 3), 128, np.uint8)
        self.inpaint(read_photo(base64.b64decode(png_base64(grey)), "warm-up.png"), mask)
        return time.perf_counter() - start

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> InpaintResult:
        """Fill the holes of ``mask`` in ``image`` with the model and with Telea.

        Raises:
            Busy: another call is running (never waits: the page says so at once).
        """
        from pconv_lib.evaluate import inpaint_telea

        if not self._lock.acquire(blocking=False):
            started = self._started
            raise Busy(BUSY.format(seconds=time.monotonic() - started if started else 0.0))
        try:
            self._started = time.monotonic()
            start = time.perf_counter()
            result = self.predict(image, mask)
            model_seconds = time.perf_counter() - start
            start = time.perf_counter()
            telea = inpaint_telea(image, mask)
            telea_seconds = time.perf_counter() - start
        finally:
            self._started = None
            self._lock.release()
        return InpaintResult(result.image, telea, model_seconds, telea_seconds, result.summary())


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


def page_html() -> bytes:
    """The app's page (``pconv_lib/app/app_page.html``, installed as package data)."""
    return resources.files("pconv_lib.app").joinpath("app_page.html").read_bytes()


class AppServer(ThreadingHTTPServer):
    """The app's HTTP server: one thread per request (a click while an inpaint runs gets its
    "busy" answer at once), the shared :class:`Inpainter` (set before serving), the pixel limit."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], inpainter: Inpainter | None, max_pixels: int | None = None,
                 quiet: bool = False) -> None:
        super().__init__(address, _Handler)
        self.inpainter, self.max_pixels, self.quiet = inpainter, max_pixels, quiet
        self.loopback = address[0] in ("127.0.0.1", "localhost", "::1")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"


def _bad_input_line(error: BaseException) -> str | None:
    """The one-line message for an error that means bad input (as the command line prints it),
    or None for a bug."""
    if isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and "out of memory" in str(error)):
        return "ran out of memory: use a smaller photo (or free memory)"
    if isinstance(error, (PconvError, OSError)):
        text = str(error).strip() or type(error).__name__
        return text.splitlines()[0]
    return None


class _Handler(BaseHTTPRequestHandler):
    server: AppServer
    server_version = "pconv-app"

    # ---- plumbing ------------------------------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No line per request: the app prints one line per inpaint and per refusal (:meth:`_say`)."""

    def _say(self, line: str) -> None:
        if not self.server.quiet:
            print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, payload: dict, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _read_json(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise BadValue("the request has no Content-Length; reload the page") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is never read: this connection cannot go on
            raise BadValue(
                f"the upload is {length / 2**20:.0f} MB, over the app's limit of {MAX_BODY_BYTES // 2**20} "
                "MB; downscale the photo"
            )
        try:
            payload = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadValue("the request is not JSON; reload the page") from None
        if not isinstance(payload, dict):
            raise BadValue("the request is not a JSON object; reload the page")
        return payload

    def _answer(self, action) -> None:  # noqa: ANN001
        """Run ``action() -> dict`` and send its JSON; bad input -> 400 with one line, busy -> 409,
        a bug -> 500 with one line (the traceback goes to the terminal, never to the page)."""
        try:
            self._json(action())
        except Busy as error:
            self._say(f"refused (busy): {self.path}")
            self._json({"error": str(error), "busy": True}, HTTPStatus.CONFLICT)
        except Exception as error:
            line = _bad_input_line(error)
            if line is not None:
                self._say(f"refused: {line}")
                self._json({"error": line}, HTTPStatus.BAD_REQUEST)
                return
            import traceback

            traceback.print_exc()
            self._json({"error": f"unexpected {type(error).__name__}: {error} (this is a bug: the terminal "
                                 "running the app shows the traceback; please report it)"},
                       HTTPStatus.INTERNAL_SERVER_ERROR)

    def _refused_host(self) -> bool:
        """Served on the loopback address, answer only requests addressed to it (a web page that
        points a name of its own at 127.0.0.1 - DNS rebinding - is refused); True when refused."""
        if not self.server.loopback:
            return False
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host in ("127.0.0.1", "localhost", "::1"):
            return False
        self.close_connection = True
        self._json({"error": f"this app answers http://127.0.0.1 only, not {host or 'no host'}"},
                   HTTPStatus.FORBIDDEN)
        return True

    # ---- routes --------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802
        if self._refused_host():
            return
        url = urlparse(self.path)
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page_html(), "text/html; charset=utf-8")
        elif url.path == "/api/info":
            self._answer(self._info)
        elif url.path == "/api/samples":
            self._answer(self._samples)
        elif url.path == "/api/sample":
            name = parse_qs(url.query).get("name", [""])[0]
            self._answer(lambda: self._sample(name))
        elif url.path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        else:
            self._json({"error": f"no page {url.path}"}, HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:  # noqa: N802
        if self._refused_host():
            return
        routes = {"/api/photo": self._photo, "/api/mask": self._mask, "/api/inpaint": self._inpaint}
        route = routes.get(urlparse(self.path).path)
        if route is None:
            self.close_connection = True
            self._json({"error": f"no API {self.path}"}, HTTPStatus.NOT_FOUND)
            return
        # Another site's page can make the browser POST a form here without asking; for JSON the
        # browser asks first (OPTIONS, CORS), which this server never allows.
        if self.headers.get_content_type() != "application/json":
            self.close_connection = True
            self._json({"error": "send JSON (Content-Type: application/json), as the app's page does"},
                       HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
            return
        self._answer(lambda: route(self._read_json()))

    def _info(self) -> dict:
        from pconv_lib.util.files import max_pixels

        return {"model": self.server.inpainter.describe(), "max_pixels": max_pixels(self.server.max_pixels),
                "max_upload_mb": MAX_BODY_BYTES // 2**20}

    def _samples(self) -> dict:
        from pconv_lib.photos import SAMPLE_PHOTOS

        return {"samples": [{"name": name, "description": text} for name, (_, text) in SAMPLE_PHOTOS.items()]}

    def _photo_answer(self, image: np.ndarray, note: str = "") -> dict:
        height, width = image.shape[:2]
        return {"png": png_base64(image), "width": width, "height": height, "note": note}

    def _sample(self, name: str) -> dict:
        from pconv_lib.photos import sample_photo

        return self._photo_answer(sample_photo(name))

    def _photo(self, payload: dict) -> dict:
        name = _safe_name(payload.get("name"), "photo.png")
        data = _b64decode(payload.get("data"), name)
        return self._photo_answer(read_photo(data, name, self.server.max_pixels))

    def _mask(self, payload: dict) -> dict:
        name = _safe_name(payload.get("name"), "mask.png")
        holes_are = payload.get("holes_are", "black")
        height, width = _size(payload)
        data = _b64decode(payload.get("data"), name)
        mask, note = read_mask(data, name, holes_are, height, width, self.server.max_pixels)
        return {"png": png_base64(mask * 255), "note": note}

    def _inpaint(self, payload: dict) -> dict:
        from pconv_lib import masks as mask_lib

        photo = _b64decode(payload.get("photo"), "the photo")
        image = read_photo(photo, "photo.png", self.server.max_pixels)
        mask_bytes = _b64decode(payload.get("mask"), "the mask")
        mask = decode_mask(mask_bytes, "painted-mask.png", max_pixels=self.server.max_pixels)
        height, width = image.shape[:2]
        check_painted_mask(mask, height, width)
        done = self.server.inpainter.inpaint(image, mask)
        self._say(f"inpainted {width}x{height} ({mask_lib.hole_stats(mask)}): model "
                  f"{done.model_seconds:.2f} s, Telea {done.telea_seconds:.2f} s")
        return {
            "result": png_base64(done.image),
            "telea": png_base64(done.telea),
            "mask": png_base64(mask * 255),
            "model_seconds": round(done.model_seconds, 3),
            "telea_seconds": round(done.telea_seconds, 3),
            "summary": f"{width}x{height}, {mask_lib.hole_stats(mask)}; {done.summary}",
        }


def _size(payload: dict) -> tuple[int, int]:
    """``(height, width)`` of the photo a mask is for, from the request."""
    try:
        height, width = int(payload["height"]), int(payload["width"])
    except (KeyError, TypeError, ValueError):
        raise BadValue("load a photo before loading a mask (the mask must fit the photo)") from None
    if height < 1 or width < 1:
        raise BadValue("load a photo before loading a mask (the mask must fit the photo)")
    return height, width


# --------------------------------------------------------------------------------------------
# Command line: python -m pconv_lib app
# --------------------------------------------------------------------------------------------


def add_app_parser(sub: argparse._SubParsersAction) -> None:
    """The ``app`` sub-command's flags."""
    p = sub.add_parser("app", help="a local web app: upload a photo, paint holes, inpaint, download")
    p.add_argument("--checkpoint", default="demo",
                   help="a checkpoint file (e.g. runs/NAME/best.pt from step 4), or 'demo' (default)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"default {DEFAULT_PORT}; 0 = any free port")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"default {DEFAULT_HOST}: this computer only; 0.0.0.0 lets every machine that can "
                   "reach this one use the app (and your CPU) - only on a network you trust")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="refuse larger photos before decoding (default: $PCONV_MAX_PIXELS or 100000000)")


def check_app_args(args: argparse.Namespace) -> None:
    """The flags, before anything is loaded (one line naming the flag and the fix)."""
    from pconv_lib.runs.checkpoints import resolve_checkpoint
    from pconv_lib.util.errors import UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    if args.max_pixels is not None and args.max_pixels < 1:
        raise UsageError(f"--max-pixels must be at least 1 (a number of pixels), got {args.max_pixels}")
    if not resolve_checkpoint(args.checkpoint).exists():
        raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")


def make_server(args: argparse.Namespace, quiet: bool = False) -> AppServer:
    """Check the flags, load the model, bind the address (one clear line when any of it fails)."""
    from pconv_lib.util.errors import UsageError

    check_app_args(args)
    try:  # the address first: a port in use is said before seconds of loading
        server = AppServer((args.host, args.port), None, args.max_pixels, quiet=quiet)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(
            f"cannot serve on {args.host}:{args.port} ({reason}); choose another --port "
            "(e.g. --port 0 for any free one)" + (" or --host" if args.host != DEFAULT_HOST else "")
        ) from None
    try:
        server.inpainter = Inpainter.from_checkpoint(args.checkpoint, args.device)
    except BaseException:
        server.server_close()
        raise
    return server


def run_app(args: argparse.Namespace) -> int:
    """``python -m pconv_lib app``: serve until Ctrl-C (exit 0)."""
    from pconv_lib.runtime import apply_thread_policy

    threads = apply_thread_policy()
    check_app_args(args)
    print(f"loading {args.checkpoint} ...", flush=True)
    server = make_server(args)
    print(f"model: {server.inpainter.describe()}; {threads}", flush=True)
    print(f"warming up the model: {server.inpainter.warm_up():.1f} s", flush=True)
    where = "this computer only" if args.host == DEFAULT_HOST else f"every machine that reaches {args.host}"
    print(f"open {server.url} in a browser ({where}); Ctrl-C stops the app", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
    return 0
