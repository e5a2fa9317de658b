"""Step 1: random irregular masks (the original Keras course's generator: random lines, circles
and ellipse arcs drawn with OpenCV; the drawing is the hole).

Convention: **1 = valid pixel, 0 = hole**. OpenCV's ``cv2.inpaint`` and scikit-image use
"nonzero = hole": convert with :func:`to_nonzero_hole` / :func:`from_nonzero_hole`.
Masks are (H, W) arrays of exactly 0 and 1 (``uint8``/``bool``/float); results are ``uint8``
unless a ``dtype`` is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pconv_lib.util import arg_checks as check
from pconv_lib.util.errors import BadValue
from pconv_lib.util.files import ImageRejected, check_image_resources, read_image_header

#: The paper's hole-to-image ratio buckets, as half-open intervals (low, high].
HOLE_RATIO_BUCKETS: tuple[tuple[float, float], ...] = (
    (0.01, 0.1),
    (0.1, 0.2),
    (0.2, 0.3),
    (0.3, 0.4),
    (0.4, 0.5),
    (0.5, 0.6),
)

MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")

RngLike = int | np.random.Generator | None


def make_rng(rng: RngLike = None) -> np.random.Generator:
    """Return a ``numpy.random.Generator``: ``rng`` itself, or a new one seeded with ``rng``."""
    check.check_rng(rng)
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


# --------------------------------------------------------------------------------------------
# Validation and conversions
# --------------------------------------------------------------------------------------------


def validate_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Check that ``mask`` is a binary (H, W) or (H, W, 1) NumPy mask (1 = valid, 0 = hole), with
    :func:`pconv_lib.util.arg_checks.check_mask_array`; return it as ``uint8`` (H, W)."""
    check.check_mask_array(mask, name)
    return (mask[:, :, 0] if mask.ndim == 3 else mask).astype(np.uint8)


def to_nonzero_hole(mask: np.ndarray, value: int = 255) -> np.ndarray:
    """Convert a ``1 = valid`` mask to OpenCV's "nonzero = hole" ``uint8`` mask (holes = ``value``).

    ``cv2.inpaint(image, to_nonzero_hole(mask), radius, cv2.INPAINT_TELEA)`` fills our holes.
    For scikit-image, ``to_nonzero_hole(mask).astype(bool)`` is its "True = hole" mask.
    """
    return np.where(validate_mask(mask) == 0, value, 0).astype(np.uint8)


def from_nonzero_hole(hole_mask: np.ndarray) -> np.ndarray:
    """Convert an OpenCV/scikit-image "nonzero = hole" mask (any dtype) to ``1 = valid`` ``uint8``."""
    hole_mask = np.asarray(hole_mask)
    check.check_2d(hole_mask, "hole_mask")
    return (hole_mask == 0).astype(np.uint8)


def as_dtype(mask: np.ndarray, dtype: type | np.dtype) -> np.ndarray:
    """Return a 0/1 ``uint8`` mask as ``dtype`` (``np.uint8``, ``bool`` or a float type)."""
    dtype = np.dtype(dtype)
    check.check_mask_dtype(dtype)
    return mask.astype(dtype)


# --------------------------------------------------------------------------------------------
# Hole ratio and buckets
# --------------------------------------------------------------------------------------------


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of hole pixels (zeros) in a ``1 = valid`` mask, in [0, 1]."""
    mask = validate_mask(mask)
    return float(np.count_nonzero(mask == 0)) / mask.size


def hole_ratio_bucket(ratio: float) -> int | None:
    """Index (0..5) of the paper's bucket (low, high] that contains ``ratio``, or None if outside.

    >>> hole_ratio_bucket(0.1), hole_ratio_bucket(0.1000001), hole_ratio_bucket(0.7)
    (0, 1, None)
    """
    check.check_hole_ratio(ratio)
    for index, (low, high) in enumerate(HOLE_RATIO_BUCKETS):
        if low < ratio <= high:
            return index
    return None


def bucket_label(index: int | None) -> str:
    """Human-readable label of a bucket index, e.g. ``'(0.1, 0.2]'``; ``'outside'`` for None."""
    if index is None:
        return "outside"
    low, high = HOLE_RATIO_BUCKETS[index]
    return f"({low:g}, {high:g}]"


@dataclass(frozen=True)
class HoleStats:
    """Hole ratio of a mask and its bucket (index into :data:`HOLE_RATIO_BUCKETS` or None)."""

    ratio: float
    bucket: int | None

    @property
    def label(self) -> str:
        return bucket_label(self.bucket)

    def __str__(self) -> str:
        return f"{self.ratio:.1%} holes, bucket {self.label}"


def hole_stats(mask: np.ndarray) -> HoleStats:
    """Report a mask's hole ratio and the paper's bucket it falls in."""
    ratio = hole_ratio(mask)
    return HoleStats(ratio, hole_ratio_bucket(ratio))


# --------------------------------------------------------------------------------------------
# The generator, in small steps
# --------------------------------------------------------------------------------------------


def stroke_size(height: int, width: int) -> int:
    """Largest stroke thickness / radius, as in the original course: ``int((H + W) * 0.03)``, ≥ 4."""
    return max(4, int((height + width) * 0.03))


def draw_random_line(canvas: np.ndarray, rng: np.random.Generator, max_size: int) -> None:
    """Draw one random straight line (thickness 3..max_size) with value 1 on ``canvas`` in place."""
    height, width = canvas.shape
    x1, x2 = rng.integers(0, width, size=2)
    y1, y2 = rng.integers(0, height, size=2)
    thickness = int(rng.integers(3, max_size + 1))
    cv2.line(canvas, (int(x1), int(y1)), (int(x2), int(y2)), 1, thickness)


def draw_random_circle(canvas: np.ndarray, rng: np.random.Generator, max_size: int) -> None:
    """Draw one random filled circle (radius 3..max_size) with value 1 on ``canvas`` in place."""
    height, width = canvas.shape
    x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
    radius = int(rng.integers(3, max_size + 1))
    cv2.circle(canvas, (x, y), radius, 1, -1)


def draw_random_ellipse(canvas: np.ndarray, rng: np.random.Generator, max_size: int) -> None:
    """Draw one random ellipse arc (thickness 3..max_size) with value 1 on ``canvas`` in place."""
    height, width = canvas.shape
    x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
    axes = (int(rng.integers(1, max(2, width // 2))), int(rng.integers(1, max(2, height // 2))))
    angle, start, end = (int(v) for v in rng.integers(3, 181, size=3))
    thickness = int(rng.integers(3, max_size + 1))
    cv2.ellipse(canvas, (x, y), axes, angle, start, end, 1, thickness)


#: The three kinds of stroke, in the order the generator draws them.
STROKES = (draw_random_line, draw_random_circle, draw_random_ellipse)


def random_irregular_mask(
    height: int,
    width: int,
    rng: RngLike = None,
    *,
    max_strokes: int = 20,
    dtype: type | np.dtype = np.uint8,
) -> np.ndarray:
    """A random irregular mask like the original course's: 1..``max_strokes`` lines, circles and
    ellipse arcs each, thickness 3..``stroke_size(H, W)``.

    Args:
        height, width: mask size in pixels (any positive size; ≥ 64 looks like the paper's).
        rng: seed or ``numpy.random.Generator``; the same seed gives the same mask.
        max_strokes: at most this many strokes of each kind.
        dtype: output dtype (``np.uint8`` default, ``bool`` or a float type).

    Returns:
        (H, W) array, 1 = valid, 0 = hole. Its hole ratio is uncontrolled (typically 5-50 %);
        use :func:`random_mask_in_ratio` to control it.
    """
    check.check_size(height, width)
    rng = make_rng(rng)
    canvas = np.zeros((height, width), np.uint8)
    size = stroke_size(height, width)
    for draw in STROKES:
        for _ in range(int(rng.integers(1, max_strokes + 1))):
            draw(canvas, rng, size)
    return as_dtype(1 - canvas, dtype)


def random_mask_in_ratio(
    height: int,
    width: int,
    min_ratio: float,
    max_ratio: float,
    rng: RngLike = None,
    *,
    max_tries: int = 200,
    dtype: type | np.dtype = np.uint8,
) -> np.ndarray:
    """A random irregular mask whose hole ratio lies in ``(min_ratio, max_ratio]``.

    Strokes are added one at a time (in random order of kind) until the hole ratio exceeds
    ``min_ratio``; if the last stroke overshoots ``max_ratio`` the stroke is undone and another
    one is tried, and after ``max_tries`` failed strokes the mask is started again.

    Raises:
        ValueError: for an empty or impossible range, or when no mask was found (tiny images
            cannot make very small ratios: one 3-pixel stroke is already a large share).
    """
    check.check_size(height, width)
    check.check_ratio_range(min_ratio, max_ratio)
    return _mask_in_ratio(height, width, min_ratio, max_ratio, make_rng(rng), max_tries, dtype)


def _mask_in_ratio(height, width, min_ratio, max_ratio, rng, max_tries, dtype) -> np.ndarray:
    """:func:`random_mask_in_ratio` for checked arguments."""
    size = stroke_size(height, width)
    total = height * width
    for _restart in range(20):
        canvas = np.zeros((height, width), np.uint8)
        failures = 0
        while failures < max_tries:
            # Thinner strokes as we approach the target keep the last step small.
            ratio = np.count_nonzero(canvas) / total
            limit = size if ratio < 0.5 * min_ratio else max(3, size // 2)
            candidate = canvas.copy()
            STROKES[int(rng.integers(0, len(STROKES)))](candidate, rng, limit)
            new_ratio = np.count_nonzero(candidate) / total
            if new_ratio > max_ratio:
                failures += 1
                continue
            canvas = candidate
            if new_ratio > min_ratio:
                return as_dtype(1 - canvas, dtype)
    raise BadValue(
        f"could not draw a {height}x{width} mask with a hole ratio in ({min_ratio}, {max_ratio}]; "
        "the image is probably too small for such a narrow range: use a larger mask or range"
    )


def random_mask_in_bucket(
    height: int,
    width: int,
    bucket: int,
    rng: RngLike = None,
    *,
    dtype: type | np.dtype = np.uint8,
) -> np.ndarray:
    """A random irregular mask whose hole ratio lies in the paper's bucket number ``bucket``.

    The ratios spread over the whole bucket ``(low, high]`` instead of piling up at its lower
    edge: a target is drawn uniformly in the lower 80 % of the bucket and strokes are added until
    the ratio passes the target without passing ``high``. (If a small image cannot hit the target,
    the mask is drawn for the whole bucket instead.) The same seed gives the same mask.

    Args:
        height, width: mask size in pixels.
        bucket: 0..5, an index into :data:`HOLE_RATIO_BUCKETS`.
        rng: seed or ``numpy.random.Generator``.
        dtype: output dtype (``np.uint8`` default, ``bool`` or a float type).

    Returns:
        (H, W) array, 1 = valid, 0 = hole, with ``low < hole_ratio(mask) <= high``.
    """
    check.check_bucket(bucket, len(HOLE_RATIO_BUCKETS))
    check.check_size(height, width)
    low, high = HOLE_RATIO_BUCKETS[bucket]
    rng = make_rng(rng)
    target = float(rng.uniform(low, high - _TARGET_MARGIN * (high - low)))
    try:
        return _mask_in_ratio(height, width, target, high, rng, 50, dtype)
    except ValueError:
        return _mask_in_ratio(height, width, low, high, rng, 200, dtype)


#: Targets stay this share of the bucket's width below its upper edge (the last stroke overshoots).
_TARGET_MARGIN = 0.2


# --------------------------------------------------------------------------------------------
# Object-removal masks: one to three large filled shapes (the "remove this" hole)
# --------------------------------------------------------------------------------------------

#: Hole ratio range of :func:`random_object_mask` (the wide/box masks of later work, e.g. LaMa).
OBJECT_HOLE_RANGE: tuple[float, float] = (0.10, 0.40)


def _random_centre(rng: np.random.Generator, height: int, width: int) -> tuple[int, int]:
    """A centre in the middle 70 % of the image, so most of a large shape stays inside it."""
    return int(rng.uniform(0.15, 0.85) * width), int(rng.uniform(0.15, 0.85) * height)


def draw_random_filled_ellipse(canvas: np.ndarray, rng: np.random.Generator, area: float) -> None:
    """Draw one filled ellipse of about ``area`` pixels (aspect 1:2..2:1, any angle) on ``canvas``."""
    height, width = canvas.shape
    aspect = float(np.exp(rng.uniform(-np.log(2), np.log(2))))
    a = max(2.0, np.sqrt(area / np.pi * aspect))
    b = max(2.0, area / (np.pi * a))
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(canvas, _random_centre(rng, height, width), (int(a), int(b)), angle, 0, 360, 1, -1)


def draw_random_box(canvas: np.ndarray, rng: np.random.Generator, area: float) -> None:
    """Draw one filled, rotated rectangle of about ``area`` pixels (aspect 1:2..2:1) on ``canvas``."""
    height, width = canvas.shape
    aspect = float(np.exp(rng.uniform(-np.log(2), np.log(2))))
    w = max(3.0, np.sqrt(area * aspect))
    h = max(3.0, area / w)
    angle = float(rng.choice([0.0, float(rng.uniform(-45, 45))]))  # half axis-aligned, as drawn boxes are
    corners = cv2.boxPoints((_random_centre(rng, height, width), (w, h), angle))
    cv2.fillPoly(canvas, [np.round(corners).astype(np.int32)], 1)


def draw_random_blob(canvas: np.ndarray, rng: np.random.Generator, area: float) -> None:
    """Draw one filled irregular blob of about ``area`` pixels on ``canvas``: a polygon whose radius
    varies smoothly around the centre (a few low-frequency sine waves), like a painted-over object."""
    height, width = canvas.shape
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = np.zeros_like(angles)
    for harmonic in (2, 3, 4):
        wobble += rng.uniform(0, 0.25 / harmonic * 2) * np.sin(harmonic * angles + rng.uniform(0, 2 * np.pi))
    radius = np.sqrt(area / np.pi) * (1 + wobble)
    cx, cy = _random_centre(rng, height, width)
    points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)


#: The three kinds of object shape, drawn with equal chance.
OBJECT_SHAPES = (draw_random_filled_ellipse, draw_random_box, draw_random_blob)


def random_object_mask(
    height: int,
    width: int,
    rng: RngLike = None,
    *,
    max_objects: int = 3,
    dtype: type | np.dtype = np.uint8,
) -> np.ndarray:
    """An object-removal mask: 1..``max_objects`` large filled ellipses, boxes or blobs covering
    10-40 % of the image (:data:`OBJECT_HOLE_RANGE`), the hole a user paints over a thing to remove.

    Unlike :func:`random_irregular_mask`'s thin strokes, the centre of such a hole is far from any
    valid pixel (about 45-70 px at 256 px), which is what the demo model v3 was fine-tuned for.

    Args:
        height, width: mask size in pixels (≥ 32 for the hole ratio to be reachable).
        rng: seed or ``numpy.random.Generator``; the same seed gives the same mask.
        max_objects: at most this many shapes (their areas share one drawn target ratio).
        dtype: output dtype (``np.uint8`` default, ``bool`` or a float type).

    Returns:
        (H, W) array, 1 = valid, 0 = hole, with a hole ratio in (0.10, 0.40].
    """
    check.check_size(height, width)
    check.check_positive_int("max_objects", max_objects)
    rng = make_rng(rng)
    low, high = OBJECT_HOLE_RANGE
    total = height * width
    for _try in range(50):
        target = float(rng.uniform(low + 0.02, high - 0.02))
        count = int(rng.integers(1, max_objects + 1))
        canvas = np.zeros((height, width), np.uint8)
        for share in rng.dirichlet(np.full(count, 2.0)):
            OBJECT_SHAPES[int(rng.integers(len(OBJECT_SHAPES)))](canvas, rng, share * target * total)
        if low < np.count_nonzero(canvas) / total <= high:
            return as_dtype(1 - canvas, dtype)
    raise BadValue(
        f"could not draw a {height}x{width} object mask with a hole ratio in ({low}, {high}]; "
        "use a mask of at least 32x32 pixels"
    )


#: Mask kinds by name: ``fn(height, width, rng) -> (H, W) uint8 mask, 1 = valid``.
#: ``strokes`` is the paper's (and the original course's) generator, ``objects`` the large holes.
MASK_KINDS = {"strokes": random_irregular_mask, "objects": random_object_mask}


#: The column name of object-removal masks in an evaluation table (beside bucket numbers 0..5).
OBJECTS = "objects"

#: Evaluation mask kinds -> their columns: a bucket number draws the paper's strokes in that
#: hole-ratio bucket (:func:`random_mask_in_bucket`), :data:`OBJECTS` draws
#: :func:`random_object_mask`. Thin strokes are 10-30 % holes, dense scribbles 30-60 %.
MASK_KIND_COLUMNS: dict[str, tuple[int | str, ...]] = {
    "strokes": (1, 2),
    "scribbles": (3, 4, 5),
    OBJECTS: (OBJECTS,),
}

Column = int | str


def column_label(column: Column) -> str:
    """An evaluation column's label: ``'(0.1, 0.2]'`` for a bucket number, ``'objects'``."""
    return column if isinstance(column, str) else bucket_label(column)


def column_mask(column: Column, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One (H, W) uint8 mask (1 = valid) of an evaluation column: a bucket number or :data:`OBJECTS`."""
    if column == OBJECTS:
        return random_object_mask(height, width, rng)
    return random_mask_in_bucket(height, width, int(column), rng)


def column_seed(column: Column) -> int:
    """A number for seeding a column's masks: the bucket number, 100 for :data:`OBJECTS`."""
    return 100 if column == OBJECTS else int(column)


def random_training_mask(
    rng: np.random.Generator, height: int, width: int, object_share: float = 0.5
) -> np.ndarray:
    """The demo model v3's training mix: an object mask with probability ``object_share``, else the
    paper's strokes. Signature of a dataset ``mask_fn``: ``(rng, height, width) -> (H, W)``."""
    kind = "objects" if rng.random() < object_share else "strokes"
    return MASK_KINDS[kind](height, width, rng)


def apply_mask(image: np.ndarray, mask: np.ndarray, fill: int | float = 255) -> np.ndarray:
    """Return a copy of ``image`` (H, W[, C]) with the holes of ``mask`` (0 = hole) set to ``fill``."""
    mask = validate_mask(mask)
    check.check_same_size(image, mask)
    out = image.copy()
    out[mask == 0] = fill
    return out


# --------------------------------------------------------------------------------------------
# Files: binary PNG masks and mask folders
# --------------------------------------------------------------------------------------------


def save_mask_png(mask: np.ndarray, path: str | Path) -> Path:
    """Save a ``1 = valid`` mask as a binary 8-bit PNG: valid = 255 (white), hole = 0 (black)."""
    path = Path(path)
    check.check_png_name(path)
    mask = validate_mask(mask)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", mask * 255)  # OpenCV never sees the name (it crashes on one
    if not ok:  # that is not valid text); Python writes the bytes
        raise OSError(f"could not encode mask file {path}")
    path.write_bytes(data.tobytes())
    return path


def load_mask_png(
    path: str | Path,
    size: tuple[int, int] | None = None,
    holes_are: str = "black",
) -> np.ndarray:
    """Load a binary mask image as ``uint8`` (H, W), 1 = valid, 0 = hole.

    Args:
        path: an 8-bit grey or colour PNG (or BMP/TIFF) whose pixels are all 0 or 255 (or 0/1),
            or a 16-bit one holding only 0 and 65535.
        size: optional ``(height, width)``; resized with nearest neighbour only (any other
            interpolation creates grey pixels and hole outlines).
        holes_are: ``"black"`` (0 = hole, this library's files) or ``"white"`` (255 = hole, e.g.
            masks drawn as white strokes on black).

    Raises:
        FileNotFoundError / ValueError: naming the file, for a missing, unreadable, non-binary or
        multi-channel-with-different-channels image; ``ImageTooLarge`` (a ``ValueError``), from
        its header, for one over the pixel limit or the memory available.
    """
    path = Path(path)
    check.check_file(path, "mask file")
    try:
        header = read_image_header(path)
    except ImageRejected:
        header = None  # not an image: decode_mask_image says what is wrong with the file
    if header is not None:  # a 30000x30000 mask is refused before it is decoded
        check_image_resources(header, path, bytes_per_pixel=4.0, what="decoding the mask")
    mask = decode_mask_image(path.read_bytes(), holes_are=holes_are, source=str(path))
    if size is not None:
        check.check_size(*size)
        mask = _resize_nearest(mask, size)
    return mask


def decode_mask_image(data: bytes, holes_are: str = "black", source: str = "mask") -> np.ndarray:
    """Decode the bytes of a binary mask image file (PNG, BMP, TIFF) to ``uint8`` (H, W),
    1 = valid, 0 = hole. ``source`` names the file in error messages (see :func:`load_mask_png`).
    """
    check.check_holes_are(holes_are)
    buffer = np.frombuffer(bytes(data), np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED) if buffer.size else None
    if image is None:
        raise BadValue(f"{source}: could not decode it as an image (corrupt file or not an image)")
    if image.ndim == 3:
        channels = image[:, :, :3]
        if not np.all(channels == channels[:, :, :1]):
            raise BadValue(f"{source}: mask must be grey (all channels equal), got a colour image")
        image = channels[:, :, 0]
    values = np.unique(image)
    if set(values.tolist()) <= {0, 1}:
        valid = image == 1
    elif set(values.tolist()) <= {0, 255}:
        valid = image == 255
    elif image.dtype == np.uint16 and set(values.tolist()) <= {0, 65535}:  # binary 16-bit PNG
        valid = image == 65535
    else:
        raise BadValue(
            f"{source}: mask is not binary (found {values.size} grey levels, e.g. "
            f"{values[:5].tolist()}); save masks as PNG with only 0 (hole) and 255 (valid), never "
            "JPEG, and resize them with nearest-neighbour interpolation"
        )
    if holes_are == "white":
        valid = ~valid
    return valid.astype(np.uint8)


def same_aspect_ratio(mask_size: tuple[int, int], image_size: tuple[int, int]) -> bool:
    """Whether a mask of ``(height, width)`` = ``mask_size`` has the aspect ratio of an image of
    ``image_size``, up to the rounding of one mask pixel: then :func:`resize_mask` to the image's
    size keeps the holes where they were drawn (the rule of ``predict --mask`` and the app)."""
    mh, mw = mask_size
    height, width = image_size
    return abs(mw * height / mh - width) <= max(1.0, height / mh) + 1e-9


def fit_mask_to_photo(mask: np.ndarray, height: int, width: int, name: str, note: str = "") -> np.ndarray:
    """``mask`` (H, W), 1 = valid, resized (nearest) to a ``height`` x ``width`` photo when only the
    resolution differs; the one rule of ``predict --mask``, the web app and the widget's mask files.

    Raises:
        BadValue: naming ``name``, when the aspect ratios differ (stretching would move the holes),
            saying so when the mask fits the photo turned by 90 degrees; ``note`` (e.g. "both as
            displayed, EXIF orientation applied") is added after the sizes.
    """
    mh, mw = mask.shape
    if not same_aspect_ratio((mh, mw), (height, width)):
        turned = same_aspect_ratio((mw, mh), (height, width))
        raise BadValue(
            f"{name} is {mw}x{mh} but the photo is {width}x{height}{note}: another aspect ratio, so "
            "stretching it would move the holes"
            + ("; it matches the photo turned by 90 degrees - was it drawn on the un-rotated photo?"
               if turned else "")
            + "; give a mask drawn on this photo (same aspect ratio)"
        )
    return mask if (mh, mw) == (height, width) else resize_mask(mask, (height, width))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a binary mask to ``(height, width)`` with nearest neighbour (stays binary)."""
    check.check_size(*size)
    return _resize_nearest(validate_mask(mask), size)


def _resize_nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)


class MaskFolder:
    """A folder of binary mask images (e.g. NVIDIA's irregular mask set), sampled with random
    flips, rotations and crops, nearest-neighbour only.

    Args:
        folder: directory searched recursively for ``.png``/``.bmp``/``.tif`` files.
        holes_are: ``"black"`` or ``"white"``, see :func:`load_mask_png`. NVIDIA's released
            irregular masks mark holes in white on black for the test set in many re-uploads:
            look at one file and choose.
    """

    def __init__(self, folder: str | Path, holes_are: str = "black") -> None:
        self.folder = Path(folder)
        check.check_folder(self.folder, "mask folder")
        self.files: list[Path] = sorted(
            p for p in self.folder.rglob("*") if p.suffix.lower() in MASK_EXTENSIONS
        )
        if not self.files:
            raise BadValue(
                f"no mask files ({', '.join(MASK_EXTENSIONS)}) found in {self.folder}"
            )
        self.holes_are = holes_are
        # probed up front like photo folders: unreadable files skipped, the hole convention checked
        ratio = lambda path: hole_ratio(self._read(path))  # noqa: E731
        self._bad = check.check_mask_files(self.files, ratio, holes_are, self.folder)

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, path: Path) -> np.ndarray:
        return load_mask_png(path, holes_are=self.holes_are)

    def sample(self, rng: RngLike, height: int, width: int) -> np.ndarray:
        """One randomly chosen, flipped, rotated and cropped mask of size (height, width), 1 = valid.
        A file that cannot be read is skipped (warning naming it) and another one drawn."""
        rng = make_rng(rng)
        path = self.files[int(rng.integers(len(self.files)))]
        while (mask := check.read_or_skip(path, self._bad, self._read)) is None:
            path = check.another_file(self.files, self._bad, rng, self.folder)
        return random_mask_transform(mask, rng, height, width)


def random_mask_transform(
    mask: np.ndarray, rng: RngLike, height: int, width: int
) -> np.ndarray:
    """Randomly flip, rotate (any angle, scaled ×1.5 so no corner is empty) and crop a mask to
    (height, width), nearest-neighbour only, as the original course did for mask folders."""
    check.check_size(height, width)
    rng = make_rng(rng)
    mask = validate_mask(mask)
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    if rng.random() < 0.5:
        mask = mask[::-1, :]
    h, w = mask.shape
    angle = float(rng.uniform(-180, 180))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.5)
    mask = cv2.warpAffine(
        np.ascontiguousarray(mask), matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=1
    )
    # Crop a random window with the target aspect ratio, then resize (nearest) to the target.
    scale = min(h / height, w / width)
    crop_h, crop_w = max(1, int(height * scale)), max(1, int(width * scale))
    top = int(rng.integers(0, h - crop_h + 1))
    left = int(rng.integers(0, w - crop_w + 1))
    return _resize_nearest(mask[top : top + crop_h, left : left + crop_w], (height, width))


def bucket_counts(masks: Sequence[np.ndarray]) -> list[int]:
    """How many of ``masks`` fall in each of the paper's six buckets (outside ones not counted)."""
    counts = [0] * len(HOLE_RATIO_BUCKETS)
    for mask in masks:
        bucket = hole_stats(mask).bucket
        if bucket is not None:
            counts[bucket] += 1
    return counts
