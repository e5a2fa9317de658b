"""Files and resources, checked before work: shared by data loading, training, the command line
and ``doctor``.

- :func:`check_writable_folder`: an output folder is writable (probed with a temporary file).
- :func:`read_image_header`, :func:`check_image_resources`, :func:`max_pixels`,
  :func:`available_memory`: an image's size and EXIF orientation from its header (nothing
  decoded), refused when it has more pixels than the limit (``PCONV_MAX_PIXELS``, default
  100 million) or would not fit in the free memory.
- :func:`replace_atomically`, :func:`write_atomically`, :func:`write_error`: every file is
  written to ``<name>.tmp`` and renamed, so a full disk or a crash never leaves a half-written
  file; the error names the path.

This module imports nothing heavy (no torch; Pillow only when a header is read), so
``python -m pconv_lib doctor`` can use it even when PyTorch is missing or broken.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pconv_lib.util.errors import BadValue, ImageRejected, ImageTooLarge

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "ImageHeader",
    "ImageRejected",
    "ImageTooLarge",
    "available_memory",
    "check_image_resources",
    "check_writable_folder",
    "max_pixels",
    "read_image_header",
    "replace_atomically",
    "write_atomically",
    "write_error",
]


def check_writable_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Check (by writing a temporary file) that ``folder`` exists or can be created and is writable.

    Nothing is created when ``folder`` does not exist yet: its nearest existing parent is tested.

    Raises:
        NotADirectoryError: ``folder`` or a parent is a file.
        PermissionError: it cannot be written (permissions, read-only file system); the message
            names the path.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(f"{what} {folder}: {probe} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as error:
        raise PermissionError(
            f"{what} {folder} is not writable ({error.strerror or error}, tested in {probe}); "
            "choose a writable folder (read-only file system or missing permissions)"
        ) from None
    return folder


# --------------------------------------------------------------------------------------------
# Resources before work: image headers, the pixel limit, available memory
# --------------------------------------------------------------------------------------------

#: Photos with more pixels than this are refused before decoding (100 megapixels, e.g. 12000x8000);
#: override with the environment variable :data:`MAX_PIXELS_ENV` or ``--max-pixels``.
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "PCONV_MAX_PIXELS"

_PIL_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding its pixels.

    ``width``/``height`` are the stored size; ``orientation`` the EXIF orientation tag (1 = as
    stored, 5-8 swap width and height); :attr:`size` is ``(height, width)`` as displayed.
    """

    width: int
    height: int
    orientation: int = 1
    format: str = ""

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` after the EXIF orientation (as a photo viewer shows it)."""
        if self.orientation in (5, 6, 7, 8):
            return self.width, self.height
        return self.height, self.width


def max_pixels(override: int | None = None) -> int:
    """The pixel limit: ``override`` if given, else ``$PCONV_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        ValueError: the override or the variable is not a positive whole number.
    """
    if override is not None:
        if int(override) < 1:
            raise BadValue(f"--max-pixels must be a positive number of pixels, got {override}")
        return int(override)
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = 0.0
    if not (value >= 1 and value == int(value)):
        raise BadValue(
            f"{MAX_PIXELS_ENV}={text!r} is not a positive whole number of pixels; "
            f"e.g. {MAX_PIXELS_ENV}=200000000 (unset it for the default {DEFAULT_MAX_PIXELS})"
        )
    return int(value)


def read_image_header(path: str | os.PathLike) -> ImageHeader:
    """Size, EXIF orientation and format of an image file, from its header only (no pixels decoded,
    so a 30000x30000 file costs nothing here).

    Raises:
        ImageRejected: the file cannot be opened or is not an image; the message names it.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with _PIL_LOCK:  # Pillow's own bomb check would refuse before we can name the size
            limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(path) as image:
                    width, height = image.size
                    try:
                        orientation = int(image.getexif().get(0x0112, 1) or 1)
                    except Exception:  # a broken EXIF block: the pixels may still be fine
                        orientation = 1
                    kind = image.format or ""
            finally:
                Image.MAX_IMAGE_PIXELS = limit
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        reason = getattr(error, "strerror", None) or "corrupt file or not an image"
        raise ImageRejected(f"{path} is not a readable image ({reason})") from None
    if width < 1 or height < 1:
        raise ImageRejected(f"{path} is not a readable image (its header says {width}x{height})")
    return ImageHeader(int(width), int(height), orientation if 1 <= orientation <= 8 else 1, kind)


def available_memory() -> int | None:
    """Bytes of memory available to this process now (Linux ``MemAvailable``, capped by a cgroup
    limit), or None where it cannot be read."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def _count(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} megapixels" if pixels >= 10**7 else f"{pixels} pixels"


def _gb(size: float) -> str:
    return f"{size / 1e9:.1f} GB"


def check_image_resources(
    header: ImageHeader,
    path: str | os.PathLike,
    *,
    limit: int | None = None,
    bytes_per_pixel: float = 6.0,
    what: str = "decoding it",
) -> None:
    """Refuse an image (from its header) with more pixels than :func:`max_pixels` or whose
    ``bytes_per_pixel * pixels`` would not fit in :func:`available_memory`.

    Raises:
        ImageTooLarge: one line naming the file, its size, the limit and how to change it.
    """
    limit = max_pixels(limit)
    if header.pixels > limit:
        raise ImageTooLarge(
            f"{path} is {header.width}x{header.height} = {_count(header.pixels)}, over the "
            f"limit of {_count(limit)}; downscale it, or raise the limit with "
            f"{MAX_PIXELS_ENV}=<pixels> (or --max-pixels) if this machine has the memory"
        )
    need = header.pixels * bytes_per_pixel
    free = available_memory()
    if free is not None and need > free:
        raise ImageTooLarge(
            f"{path} is {header.width}x{header.height}: {what} needs about {_gb(need)} of memory and "
            f"{_gb(free)} is available; downscale the image or free memory"
        )


# --------------------------------------------------------------------------------------------
# Writes that never leave a half-written file: temporary file, then rename
# --------------------------------------------------------------------------------------------


#: What to do after a failed write, by its ``errno`` (the cause, never the message text).
_WRITE_HINTS = {
    errno.ENOSPC: "free disk space (the disk is full) or choose another folder, and rerun",
    errno.EDQUOT: "your disk quota is used up: free space in it and rerun",
    errno.EROFS: "that file system is read-only: choose another folder",
    errno.EACCES: "you may not write there: choose a folder you own",
    errno.EPERM: "you may not write there: choose a folder you own",
    errno.ENAMETOOLONG: "the file name is too long for this file system: choose a shorter name",
    errno.EILSEQ: "this file system refuses characters of that name: use plain letters, digits, - and _",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f) or the file system allows",
}


def errno_hint(code: int | None) -> str | None:
    """What to do after a file operation failed with ``errno`` ``code`` (None: no specific hint)."""
    return _WRITE_HINTS.get(code) if code is not None else None


def _write_cause(tmp: Path) -> OSError | None:
    """Why writing ``tmp`` fails, found by writing 1 MiB there with Python (a third-party writer
    such as ``torch.save`` reports a full disk as a RuntimeError with no ``errno``); None if
    that works. ``tmp`` is removed afterwards."""
    try:
        with open(tmp, "ab") as handle:
            handle.write(bytes(1 << 20))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as probe:
        return probe
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    return None


def write_error(path: str | os.PathLike, error: BaseException) -> OSError:
    """An ``OSError`` whose one-line message names ``path`` and says what to do, chosen by the
    error's ``errno`` (disk full, read-only, name too long, ...)."""
    lines = str(error).strip().splitlines()
    reason = getattr(error, "strerror", None) or (lines[0] if lines else type(error).__name__)
    hint = errno_hint(getattr(error, "errno", None))
    hint = hint or "check that the folder is writable and the disk is not full"
    result = OSError(f"could not write {path}: {reason}; {hint} (nothing half-written was left behind)")
    result.errno = getattr(error, "errno", None)  # type: ignore[misc]
    return result


def replace_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill ``<path>.tmp``, then rename it over ``path``.

    A failed or interrupted write leaves the previous ``path`` (if any) untouched and removes the
    temporary file, so nothing half-written blocks a rerun.

    Raises:
        OSError: naming ``path`` (see :func:`write_error`).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(error, RuntimeError):  # torch.save: a full disk is a RuntimeError, no errno
            cause = _write_cause(tmp)
            raise write_error(path, cause or error) from error
        if isinstance(error, OSError):
            raise write_error(path, error) from error
        raise
    return path


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (:func:`replace_atomically`)."""
    return replace_atomically(path, lambda tmp: tmp.write_bytes(data))
