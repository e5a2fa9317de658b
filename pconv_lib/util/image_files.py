"""The one photo reader, below the data (step 4), the prediction path and the command line.

:func:`load_image` reads a photo file as ``uint8`` (H, W, 3) RGB, upright, checking its header
first (:mod:`pconv_lib.util.files`: the pixel limit and the free memory) so that nothing is decoded
that cannot fit; :func:`read_image` is the same with None for an unreadable file; :func:`find_images`
walks a folder of photos.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from pconv_lib.util.errors import BadValue
from pconv_lib.util.files import ImageRejected, check_image_resources, read_image_header

#: Photo file extensions found by :func:`find_images` (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: Photo formats that :func:`find_images` does not use; a folder holding some is warned about.
OTHER_PHOTO_EXTENSIONS = (
    ".heic", ".heif", ".avif", ".jxl", ".tif", ".tiff", ".gif",
    ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raw",
)  # fmt: skip


def find_images(root: str | os.PathLike) -> list[Path]:
    """All photos under ``root`` (recursive), sorted by their path relative to ``root``.

    Extensions: :data:`IMAGE_EXTENSIONS`, case-insensitive. Hidden files and folders (name
    starting with ``.``) are skipped. Sorting makes the index → file mapping identical on every
    machine. Files in other photo formats (:data:`OTHER_PHOTO_EXTENSIONS`, e.g. HEIC) are
    counted in a ``UserWarning``, never silently left out.

    Symbolic links are followed, but the walk is finite: a folder reached again (a link loop, or
    two links to one folder) is walked once, and a file reached by several paths is listed once
    (by its real path when it has one, else the first in sorted order); a ``UserWarning`` says
    how many were left out. Broken links are skipped.

    Raises:
        FileNotFoundError: if ``root`` is not a directory.
        ValueError: if it holds no photo; the message names the folder and the extensions.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    found: list[tuple[bool, str, Path]] = []  # (reached through a link, relative path, path)
    seen_dirs: set[tuple[int, int]] = set()
    repeated = 0
    other: dict[str, int] = {}
    stack: list[tuple[Path, bool]] = [(root, False)]
    while stack:  # depth first; os.scandir gives names, types and link flags without a syscall each
        folder, via_link = stack.pop()
        try:
            info = os.stat(folder)
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in seen_dirs:  # a link loop or a second link to a folder
            repeated += 1
            continue
        seen_dirs.add((info.st_dev, info.st_ino))
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_folder = entry.is_dir()  # follows links; a broken link is neither
                is_link = entry.is_symlink()
            except OSError:
                continue
            if is_folder:
                folders.append((Path(entry.path), via_link or is_link))
                continue
            suffix = os.path.splitext(entry.name)[1].lower()
            if suffix in OTHER_PHOTO_EXTENSIONS:
                other[suffix] = other.get(suffix, 0) + 1
            elif suffix in IMAGE_EXTENSIONS and (not is_link or os.path.exists(entry.path)):
                path = Path(entry.path)
                found.append((via_link or is_link, path.relative_to(root).as_posix(), path))
        # real folders are walked before links to folders, so a folder is reached by its real path
        # first; the stack pops from its end: real folders in name order, then the links
        real = sorted((f for f in folders if not f[1]), key=lambda item: item[0].name, reverse=True)
        linked = sorted((f for f in folders if f[1]), key=lambda item: item[0].name, reverse=True)
        stack.extend(linked + real)
    kept: dict[object, tuple[str, Path]] = {}
    links = any(item[0] for item in found)  # without links a file cannot be reached twice: no stat
    # of several paths to one file keep the real one (no link on the way), else the first by name
    for _, relative, path in sorted(found, key=lambda item: item[:2]):
        key: object = relative
        if links:
            try:
                target = os.stat(path)
            except OSError:
                continue
            key = (target.st_dev, target.st_ino)
        if key in kept:
            repeated += 1
        else:
            kept[key] = (relative, path)
    files = [path for _, path in sorted(kept.values(), key=lambda item: item[0])]
    if other:
        counts = ", ".join(f"{count} {suffix}" for suffix, count in sorted(other.items()))
        warnings.warn(
            f"{root}: left out {sum(other.values())} file(s) in formats this course does not read "
            f"({counts}); convert them to JPEG or PNG to use them",
            UserWarning,
            stacklevel=2,
        )
    if repeated:
        warnings.warn(
            f"{root}: left out {repeated} folder(s) or file(s) reached a second time through symbolic "
            "links (link loops or duplicate links); each photo is used once",
            UserWarning,
            stacklevel=2,
        )
    if not files:
        raise BadValue(
            f"no images found in {root} (searched recursively for files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}, any case); check the path"
        )
    return files


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an (H, W[, C]) array stored with EXIF orientation ``orientation`` (1-8) upright, as
    a photo viewer shows it (the same result as Pillow's ``ImageOps.exif_transpose``)."""
    transforms = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    if orientation not in transforms:
        return image
    return np.ascontiguousarray(transforms[orientation](image))


def load_image(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = None,
    bytes_per_pixel: float = 6.0,
    what: str = "decoding it",
) -> np.ndarray:
    """Read a photo as ``uint8`` (H, W, 3) RGB, upright (EXIF orientation applied), checking its
    header first: nothing is decoded when it has more pixels than the limit
    (:func:`pconv_lib.util.files.max_pixels`: ``max_pixels``, ``$PCONV_MAX_PIXELS`` or 100 megapixels)
    or when ``bytes_per_pixel`` times its pixel count exceeds the available memory.

    Grey images are repeated over three channels, alpha is dropped, 16-bit images are scaled
    to 8 bits. Works with non-ASCII paths.

    Raises:
        FileNotFoundError: no such file.
        ImageRejected: (a ``ValueError``) corrupt, not an image, or too large; the one-line
            message names the file and the reason (:class:`~pconv_lib.util.files.ImageTooLarge` for size).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    header = read_image_header(path)
    check_image_resources(header, path, limit=max_pixels, bytes_per_pixel=bytes_per_pixel, what=what)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    except (OSError, cv2.error) as error:
        raise ImageRejected(f"{path} could not be decoded ({str(error).strip().splitlines()[-1]})") from None
    if image is None or image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageRejected(f"{path} is not a readable image (corrupt file or unknown format)")
    return apply_orientation(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), header.orientation)


def read_image(path: str | os.PathLike, *, max_pixels: int | None = None) -> np.ndarray | None:
    """:func:`load_image`, but None for a file that is missing, unreadable, corrupt or too large."""
    try:
        return load_image(path, max_pixels=max_pixels)
    except (OSError, ValueError):
        return None
