"""Checks of plain arguments at the library's boundary: sizes, ratios, counts, seeds, NumPy masks.

Each public entry point validates its arguments with one call to a check here (or in
:mod:`pconv_lib.util.tensor_checks` for tensors) and then runs the algorithm; internal code trusts
its callers. Every check raises :class:`~pconv_lib.util.errors.BadValue` / ``BadType`` with one
message that says what was wrong and how to fix it.

:func:`check_binary_mask` is the library's one 0/1 mask rule (NumPy arrays and tensors alike):
``1 = valid pixel, 0 = hole``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pconv_lib.util.errors import BadType, BadValue

# --------------------------------------------------------------------------------------------
# The 0/1 mask rule
# --------------------------------------------------------------------------------------------


def check_binary_mask(mask, name: str = "mask", off_switch: str = "") -> None:
    """Raise ``BadValue`` unless every value of ``mask`` (NumPy array or torch tensor, any dtype)
    is exactly 0 or 1, 1 = valid, 0 = hole.

    One pass, no copy (``!=`` works alike on arrays and tensors; a GPU tensor is answered on the
    GPU). The message names the values found and the fix (e.g. divide a 0/255 mask by 255);
    ``off_switch`` ends the hint (the layers say how to skip their check).
    """
    if bool(((mask != 0) & (mask != 1)).any()):
        values, numpy = _distinct_values(mask), isinstance(mask, np.ndarray)
        found = "found values" if numpy else "got values in"
        raise BadValue(
            f"{name} must be binary with 1 = valid, 0 = hole; {found} {_describe_values(values)}",
            hint=_binary_hint(values, numpy) + off_switch,
        )


def _distinct_values(mask) -> np.ndarray:
    """The sorted distinct values of a NumPy or torch mask, as float64 (NaN last)."""
    if not isinstance(mask, np.ndarray):  # a torch tensor: copy to the host, for the message only
        mask = mask.detach().cpu().double().numpy()
    return np.unique(np.asarray(mask, dtype=np.float64))


def _describe_values(values: np.ndarray, limit: int = 6) -> str:
    """Distinct values as ``{0, 255}`` (at most ``limit`` of them)."""
    shown = [f"{v:g}" for v in values[:limit].tolist()]
    if values.size > limit:
        shown.append(f"... ({values.size} distinct values)")
    return "{" + ", ".join(shown) + "}"


def _binary_hint(values: np.ndarray, numpy: bool) -> str:
    """How to turn a non-binary mask into a 1 = valid / 0 = hole one."""
    to_binary = ".astype(np.uint8)" if numpy else ".float()"
    if np.isnan(values).any():
        return "the mask contains NaN: build it from a binary image"
    lo, hi = values.min(), values.max()
    if hi == 255 and set(values.tolist()) <= {0.0, 255.0}:
        return ("divide by 255 (mask / 255): it looks like a 0/255 image (if 255 marks the holes, "
                "use pconv_lib.masks.from_nonzero_hole(mask))")
    if lo >= 0 and hi > 1:
        return f"scale to [0, 1] (mask / {hi:g}) and threshold, e.g. (mask > 0.5){to_binary}"
    if lo < 0:
        return "negative values are not a mask: use 1.0 for valid pixels, 0.0 for holes"
    return (
        f"threshold it, e.g. (mask > 0.5){to_binary}; resize masks with nearest neighbour only "
        "(bilinear resizing creates in-between values)"
    )


def check_mask_array(mask: object, name: str = "mask") -> None:
    """A NumPy mask: (H, W) (or (H, W, 1)), values 0/1 (:func:`check_binary_mask`)."""
    if not isinstance(mask, np.ndarray):
        raise BadType(f"{name} must be a numpy array of shape (H, W), got {type(mask).__name__}")
    if not (mask.ndim == 2 or (mask.ndim == 3 and mask.shape[2] == 1)):
        raise BadValue(
            f"{name} must be 2-D (H, W) with 1 = valid, 0 = hole; got shape {mask.shape}. "
            "For an (H, W, 3) mask, take one channel: mask[:, :, 0]."
        )
    check_binary_mask(mask, name)


def check_mask_2d(mask: np.ndarray) -> None:
    """A NumPy mask (H, W), (1, H, W) or (1, 1, H, W), values 0/1 (:func:`check_binary_mask`)."""
    if mask.ndim < 2 or int(np.prod(mask.shape[:-2])) != 1:
        raise BadValue(f"mask must be (H, W), (1, H, W) or (1, 1, H, W), got shape {mask.shape}")
    check_binary_mask(mask)


def check_2d(array: np.ndarray, name: str) -> None:
    if array.ndim != 2:
        raise BadValue(f"{name} must be 2-D (H, W), got shape {array.shape}")


def check_same_size(image: np.ndarray, mask: np.ndarray) -> None:
    if image.shape[:2] != mask.shape[:2]:
        raise BadValue(f"image {image.shape[:2]} and mask {mask.shape} sizes differ")


# --------------------------------------------------------------------------------------------
# Step 1: masks
# --------------------------------------------------------------------------------------------


def check_rng(rng: object) -> None:
    """``rng`` is an int seed, a ``numpy.random.Generator`` or None."""
    if not (rng is None or isinstance(rng, (int, np.integer, np.random.Generator))):
        raise BadType(f"rng must be an int seed, a numpy Generator or None, got {type(rng).__name__}")


def check_size(height: int, width: int) -> None:
    """A mask or image size: two positive integers."""
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise BadValue(f"mask size must be positive integers, got {height}x{width}")


def check_mask_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in "buif":
        raise BadType(f"mask dtype must be bool, an integer or a float type, got {dtype}")


def check_hole_ratio(ratio: float) -> None:
    if not 0.0 <= ratio <= 1.0:
        raise BadValue(f"a hole ratio lies in [0, 1], got {ratio}")


def check_ratio_range(min_ratio: float, max_ratio: float) -> None:
    if not 0.0 <= min_ratio < max_ratio <= 1.0:
        raise BadValue(f"need 0 <= min_ratio < max_ratio <= 1, got ({min_ratio}, {max_ratio}]")


def check_bucket(bucket: int, count: int) -> None:
    """``bucket`` indexes one of ``count`` hole-ratio buckets."""
    if not 0 <= bucket < count:
        raise BadValue(f"bucket must be 0..{count - 1}, got {bucket}")


def check_png_name(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise BadValue(f"masks are saved as PNG (lossless); got {path.name}: use a .png name")


def check_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")


def check_folder(path: Path, what: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: {path}")


def check_holes_are(holes_are: str) -> None:
    if holes_are not in ("black", "white"):
        raise BadValue(f"holes_are must be 'black' or 'white', got {holes_are!r}")


# --------------------------------------------------------------------------------------------
# Steps 2-3: layers and UNet
# --------------------------------------------------------------------------------------------


def check_padding_mode(padding_mode: str) -> None:
    if padding_mode != "zeros":
        raise BadValue(
            f"PartialConv2d needs padding_mode='zeros' (got {padding_mode!r}): the padded "
            "border is treated as hole; pad the input yourself (F.pad) and pass a mask instead"
        )


def check_depth_width(depth: int, width: float, depths: tuple[int, int]) -> None:
    """``depth`` an int in ``depths`` (low, high), ``width`` a positive number."""
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise BadType(f"depth must be an int, got {type(depth).__name__}")
    if not depths[0] <= depth <= depths[1]:
        raise BadValue(
            f"depth must be between {depths[0]} and {depths[1]}, got {depth}: the paper uses 7 "
            "for 256x256 and 8 for 512x512 images; 3-6 make small CPU models"
        )
    if not isinstance(width, (int, float)) or isinstance(width, bool) or not width > 0:
        raise BadValue(
            f"width must be a positive number (channel multiplier), got {width!r}; "
            "1.0 is the paper's model, e.g. 0.125 makes a small CPU model"
        )


def check_layer_kind(layer: str, layers: tuple[str, ...]) -> None:
    if layer not in layers:
        raise BadValue(f"layer must be one of {layers}, got {layer!r}")


def check_hole_fill(values: list[float], in_channels: int) -> None:
    if len(values) not in (1, in_channels):
        raise BadValue(f"hole_fill must be one value or {in_channels} (one per channel), got {values}")


# --------------------------------------------------------------------------------------------
# Step 4: losses
# --------------------------------------------------------------------------------------------


def check_loss_weights(weights: dict[str, object]) -> None:
    """Every loss weight is a finite number >= 0."""
    for name, value in weights.items():
        if not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
            raise BadValue(f"loss weight {name} must be a finite number >= 0, got {value!r}")


def check_feature_lists(*lists) -> None:
    """Feature lists (one per image) are non-empty and of equal length."""
    lengths = {len(lst) for lst in lists}
    if len(lengths) != 1 or 0 in lengths:
        raise BadValue(f"feature lists must be non-empty and of equal length, got {lengths}")


# --------------------------------------------------------------------------------------------
# Step 5: tiling
# --------------------------------------------------------------------------------------------

#: The largest tile side accepted (the command line's --tile-size and --image-size share it).
MAX_TILE_SIZE = 8192


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer))


def check_positive_int(name: str, value: object, note: str = "") -> None:
    """``value`` is an int >= 1; ``note`` (e.g. ``" (1 = single-scale)"``) follows "int" in the message."""
    if not _is_int(value) or value < 1:
        raise BadValue(f"{name} must be a positive int{note}, got {value!r}")


def check_tile_size(size: object, name: str = "tile_size") -> None:
    """An int or a (height, width) pair of ints, each in 1..MAX_TILE_SIZE."""
    pair = (size, size) if _is_int(size) else size
    if not isinstance(pair, tuple) or len(pair) != 2 or not all(_is_int(s) for s in pair):
        raise BadType(f"{name} must be an int or a (height, width) pair of ints, got {size!r}")
    if pair[0] < 1 or pair[1] < 1:
        raise BadValue(f"{name} must be positive, got {size!r}")
    if max(pair) > MAX_TILE_SIZE:  # before any window or padded image is allocated
        raise BadValue(f"{name} must be at most {MAX_TILE_SIZE} (valid: 1..{MAX_TILE_SIZE}), got {size!r}")


def check_overlap(overlap: object, tile: int | None = None) -> None:
    """A non-negative int, smaller than ``tile`` when one is given."""
    if not _is_int(overlap) or overlap < 0:
        raise BadValue(f"overlap must be a non-negative int, got {overlap!r}")
    if tile is not None and overlap >= tile:
        raise BadValue(
            f"overlap ({overlap}) must be smaller than the tile size ({tile}); "
            "a typical choice is tile_size // 4"
        )


def check_tile_grid(height: int, width: int, tile: tuple[int, int], overlap: int) -> None:
    """The image is at least one tile, and the overlap smaller than the tile along every axis
    with several tiles."""
    check_overlap(overlap)
    axes = ((height, tile[0]), (width, tile[1]))
    for length, side in axes:
        if length > side:  # the overlap only matters along axes with several tiles
            check_overlap(overlap, side)
    for length, side in axes:
        if length < side:
            raise BadValue(
                f"the image side ({length}) is smaller than the tile ({side}); pad it first "
                "(predict_tiled does this for you)"
            )


def check_tiling(tile_size: object, overlap: object, batch_size: object, multiple: int) -> None:
    """:func:`pconv_lib.tiling.predict_tiled`'s numbers."""
    check_positive_int("tile_size", tile_size)
    if tile_size % multiple:
        raise BadValue(
            f"tile_size ({tile_size}) must be a multiple of {multiple} (the model's size "
            f"multiple, 2**depth); try {-(-tile_size // multiple) * multiple}"
        )
    check_overlap(overlap, tile_size)
    check_positive_int("batch_size", batch_size)


def check_chunks(chunk: object, overlap: object) -> None:
    check_positive_int("chunk", chunk)
    if not _is_int(overlap) or not 0 <= overlap < 2 * chunk:
        raise BadValue(f"overlap must be an int in [0, 2 * chunk), got {overlap!r}")


def check_multiscale(factor: object, band: float) -> None:
    """:func:`pconv_lib.tiling.predict_multiscale`: a positive int ``factor`` and, for a coarse
    pass (``factor > 1``), a positive ``band``."""
    check_positive_int("factor", factor, " (1 = single-scale)")
    if factor > 1 and not band > 0:
        raise BadValue(f"band must be a positive number of pixels, got {band!r}")


def check_type(name: str, value: object, cls: type, optional: bool = False) -> None:
    """``value`` is a ``cls`` (or None when ``optional``)."""
    if not (isinstance(value, cls) or (optional and value is None)):
        raise BadType(f"{name} must be a {cls.__name__}, got {type(value).__name__}")


# --------------------------------------------------------------------------------------------
# Mask folders: probed before training, like photo folders
# --------------------------------------------------------------------------------------------


def hole_share_problem(
    ratio: float, what: str, holes_are: str, no_holes: str = "the output equals the input"
) -> tuple[str, str] | None:
    """The hole-convention rule for masks a user gave, read with ``holes_are`` (1 = valid after
    reading): ``("error", line)`` when every pixel is a hole, ``("warning", line)`` when more than
    half are (the file probably marks holes in the other colour) or none is (``no_holes`` says
    what follows), else None. ``what`` names the mask(s); each line ends with the flag to switch."""
    other = "white" if holes_are == "black" else "black"
    switch = f"if the holes in your file(s) are {other}, add --holes-are {other}"
    if ratio == 1.0:
        return "error", (
            f"{what} marks every pixel as a hole ({holes_are} = hole), so there is nothing to inpaint "
            f"from; {switch}"
        )
    if ratio > 0.5:
        share = f"{100 * ratio:.0f}%"
        return "warning", f"{what} marks {share} of the image as holes ({holes_are} = hole); {switch}"
    if ratio == 0.0:
        return "warning", f"{what} has no holes ({holes_are} = hole): {no_holes}"
    return None


def check_mask_files(
    files: list[Path], hole_ratio_of: Callable[[Path], float], holes_are: str, folder: Path, sample: int = 16
) -> set[Path]:
    """Read up to ``sample`` evenly spread mask ``files`` (``hole_ratio_of(path)`` reads one and
    returns its hole share) before any training: unreadable ones are returned, to be skipped, with
    a warning naming them; none readable is an error; the median hole share follows
    :func:`hole_share_problem` (all holes: an error; over half: a warning naming --holes-are)."""
    step = max(1, len(files) // sample)
    ratios, bad, names = [], set(), []
    for path in files[::step][:sample]:
        try:
            ratios.append(hole_ratio_of(path))
        except (OSError, ValueError) as error:
            bad.add(path)
            names.append(f"{path.name} ({error})" if len(names) < 3 else path.name)
    if not ratios:
        raise BadValue(
            f"mask folder {folder}: none of the {len(bad)} checked mask file(s) could be read "
            f"(e.g. {names[0]}); give a folder of binary mask PNGs"
        )
    if names:
        skipped = ", ".join(names)
        warnings.warn(f"mask folder {folder}: skipping unreadable mask file(s): {skipped}", stacklevel=3)
    what = f"the masks in {folder} (median of {len(ratios)} checked)"
    problem = hole_share_problem(float(np.median(ratios)), what, holes_are, "the model would learn nothing")
    if problem is not None and problem[0] == "error":
        raise BadValue(problem[1])
    if problem is not None:
        warnings.warn(problem[1], stacklevel=3)
    return bad


def read_or_skip(path: Path, bad: set[Path], read: Callable[[Path], Any]) -> Any:
    """``read(path)``, or None (``path`` added to ``bad``, a warning naming it) when it cannot be read."""
    if path in bad:
        return None
    try:
        return read(path)
    except (OSError, ValueError) as error:
        bad.add(path)
        warnings.warn(f"skipping mask {error}; using another mask", stacklevel=3)
        return None


def another_file(files: list[Path], bad: set[Path], rng: np.random.Generator, folder: Path) -> Path:
    """A file of ``files`` not in ``bad``, drawn with ``rng``; an error when none is left."""
    good = [path for path in files if path not in bad]
    if not good:
        raise BadValue(f"mask folder {folder}: no readable mask file left ({len(bad)} skipped)")
    return good[int(rng.integers(len(good)))]
