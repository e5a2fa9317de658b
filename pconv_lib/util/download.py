"""Download a public ImageNet subset (Imagenette) safely: the standard download path
(``torch.hub.download_url_to_file``: progress bar, temporary file then rename), a check of what
arrived (an archive, not a web page; the pinned checksums) and an extraction that cannot write
outside its folder.

How a download works (:func:`download_file`):

1. If the destination file already exists it is kept (and checked against the pins given).
2. ``torch.hub.download_url_to_file`` writes to a temporary file beside it and renames it when all
   bytes are in: an interrupted download never leaves a truncated file under the final name (it
   starts again from zero; see the note on resuming below).
3. The SHA-256 / MD5 pins given are checked; without any, both digests are printed so you can pin
   them. :func:`download_imagenette` also checks that the file *is* an archive: an HTML page (a
   login page, an error page of a proxy) is deleted with one line saying so.

Offline? The error says where to put a file downloaded on another machine.

Imagenette (https://github.com/fastai/imagenette, Apache 2.0): 10 easy ImageNet classes,
``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``, which :class:`pconv_lib.data.InpaintingDataset`
reads as is. The MD5 of each archive is pinned (the values torchvision 0.29 pins in
``torchvision/datasets/imagenette.py``); their SHA-256 is not known offline and is left empty:
pass ``sha256=`` once you have recorded one.

Resuming a cut download (HTTP ``Range``) was dropped with the switch to the standard path: the
default variant is about 95 MB, and a cut download is fetched again whole.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pconv_lib.util.errors import (
    BadValue,
    ChecksumError,
    DownloadError,
    NotAnArchiveError,
    UnsafeArchiveError,
)


@dataclass(frozen=True)
class ArchiveSpec:
    """A downloadable archive: its URL, file name, folder it extracts to, approximate size and
    the digests pinned for it (``None``: not known; then it is not checked)."""

    url: str
    filename: str
    folder: str
    approx_size: str
    md5: str | None = None
    sha256: str | None = None


#: Imagenette variants: shorter side 160 px, 320 px, or full size. Sizes are approximate; the MD5
#: pins are torchvision's (``torchvision.datasets.Imagenette._ARCHIVES``); SHA-256 unknown.
IMAGENETTE: dict[str, ArchiveSpec] = {
    "160": ArchiveSpec(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
        "imagenette2-160.tgz",
        "imagenette2-160",
        "about 95 MB",
        md5="e793b78cc4c9e9a4ccc0c1155377a412",
    ),
    "320": ArchiveSpec(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
        "imagenette2-320.tgz",
        "imagenette2-320",
        "about 330 MB",
        md5="3df6f0d01a2c9592104656642f5e78a3",
    ),
    "full": ArchiveSpec(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz",
        "imagenette2.tgz",
        "imagenette2",
        "about 1.5 GB",
        md5="fe2fc210e6bb7c5664d602c3cd71e612",
    ),
}


def file_digest(
    path: str | os.PathLike, algorithm: str = "sha256", chunk_size: int = 1 << 20
) -> str:
    """Hex digest of a file (``"sha256"``, ``"md5"`` or any :mod:`hashlib` name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_digests(path: Path, *, sha256: str | None = None, md5: str | None = None) -> None:
    """Compare ``path`` with the pins given (each skipped when None); print both digests when
    none is given.

    Raises:
        ChecksumError: naming the file, the expected and the actual digest.
    """
    pins = {"sha256": sha256, "md5": md5}
    if all(value is None for value in pins.values()):
        print(
            f"{path.name}: sha256 {file_digest(path, 'sha256')}  md5 {file_digest(path, 'md5')}  "
            "(pass sha256=... to verify next time)"
        )
        return
    for algorithm, expected in pins.items():
        if expected is None:
            continue
        actual = file_digest(path, algorithm)
        if actual != expected.strip().lower():
            raise ChecksumError(
                f"{algorithm.upper().replace('SHA', 'SHA-')} mismatch for {path.name}: expected "
                f"{expected.strip().lower()}, got {actual}. The file ({path}) is corrupt or not the "
                "expected version; delete it and download again, or check the expected checksum."
            )


#: The first bytes of the archive formats :func:`safe_extract` reads (plain tar: ``ustar`` at 257).
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


def archive_kind(path: str | os.PathLike) -> str | None:
    """``"gzip"``, ``"bzip2"``, ``"xz"`` or ``"tar"`` from the file's first bytes; None for
    anything else (an HTML page, an empty file, a JPEG...)."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return "tar" if head[257:262] == b"ustar" else None


def check_archive_file(path: Path, url: str) -> None:
    """Delete ``path`` and refuse it when it is not an archive (e.g. an HTML page).

    Raises:
        NotAnArchiveError: one line naming the file, what it starts with, and what to do.
    """
    if archive_kind(path) is not None:
        return
    with open(path, "rb") as handle:
        head = handle.read(64)
    size = path.stat().st_size
    page = b"<html" in head.lower() or b"<!doctype" in head.lower()
    shown = head[:24].decode("ascii", "replace").replace("\n", " ").strip()
    path.unlink(missing_ok=True)
    what = "an HTML page (a login, error or proxy page)" if page else f"no archive (it starts {shown!r})"
    raise NotAnArchiveError(
        f"{path.name} ({size} bytes, from {url}) is {what}; it was deleted. Check the address "
        f"(or your network's login page) and run again, or put the archive fetched elsewhere at {path}"
    )


def _announced_size(url: str) -> int | None:
    """The ``Content-Length`` a ``HEAD`` request announces for ``url``; None when unknown (torch.hub
    does not compare the bytes received with it, and a cut connection ends the read silently)."""
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "torch.hub"})
    try:
        with urllib.request.urlopen(request) as response:
            length = response.headers.get("Content-Length")
    except (urllib.error.URLError, http.client.HTTPException, OSError):
        return None
    return int(length) if length and length.isdigit() else None


#: Errors of writing the file (not of the network): reported as such, naming the file.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT)


def download_file(
    url: str,
    destination: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to the file ``destination`` (``torch.hub.download_url_to_file``) and check it.

    Args:
        url: an ``http(s)://`` URL.
        destination: the final file path (parent folders are created).
        sha256, md5: expected digests (hex), checked when given; with neither, both are printed.
        progress: show a tqdm progress bar (on stderr).
        overwrite: download again even if ``destination`` exists.
        timeout: seconds a connection may stay silent before the download is given up.

    Returns:
        ``destination`` as a ``Path``.

    Raises:
        DownloadError: the server cannot be reached (the message says where to put a file
            fetched elsewhere), answers with an HTTP error, or the connection is cut.
        ChecksumError: a digest differs; a freshly downloaded file is then deleted.
        OSError: the file cannot be written (full disk, read-only folder), naming it.
    """
    from torch.hub import download_url_to_file

    from pconv_lib.util.files import write_error

    destination = Path(destination)
    if destination.exists() and not overwrite:
        check_digests(destination, sha256=sha256, md5=md5)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # torch.hub opens the URL without a timeout of its own
    try:
        expected = _announced_size(url)
        download_url_to_file(url, str(destination), progress=progress)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"{url}: HTTP error {error.code} {error.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        if isinstance(error, OSError) and error.errno in _WRITE_ERRNOS:
            raise write_error(destination, error) from None
        if isinstance(error, (http.client.IncompleteRead, TimeoutError, ConnectionError)):
            raise DownloadError(
                f"{url}: the connection was cut or went silent ({type(error).__name__}); nothing was "
                f"kept: run again, or download it on another machine and put the file at {destination}"
            ) from None
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"could not reach {url} ({reason}); download it on another machine and put the file "
            f"at {destination}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    size = destination.stat().st_size
    if expected is not None and size != expected:
        destination.unlink(missing_ok=True)
        raise DownloadError(
            f"{url}: the connection was cut after {size} of {expected} bytes; nothing was kept: run again"
        )
    try:
        check_digests(destination, sha256=sha256, md5=md5)
    except ChecksumError:
        destination.unlink(missing_ok=True)
        raise
    return destination


# --------------------------------------------------------------------------------------------
# Safe extraction: every member resolved against the tree as it will be after extraction
# --------------------------------------------------------------------------------------------


def _parts(name: str) -> list[str]:
    return [part for part in name.split("/") if part not in ("", ".")]


def _absolute(name: str) -> bool:
    """A POSIX or Windows absolute name (``/x``, ``\\x``, ``C:x``)."""
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")


def _key(parts: list[str]) -> str:
    """How a file system may compare a path: case-insensitive and Unicode-normalised, as on macOS
    and Windows (on Linux this only makes the check stricter)."""
    return unicodedata.normalize("NFC", "/".join(parts)).casefold()


def _walk(start: list[str], path: str, links: set[str], root: Path, member: str) -> list[str] | None:
    """Resolve ``path`` (components split on ``/``) from the folder ``start`` (components below the
    destination ``root``); None when it climbs above ``root``.

    Refused (:class:`UnsafeArchiveError`): a step *through* a symbolic link, i.e. a component
    before the last that is a link in the archive (``links``) or on disk under ``root``. As no
    step passes a link, the lexical result is where the operating system will resolve it."""
    stack = list(start)
    parts = _parts(path)
    for index, part in enumerate(parts):
        if part == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(part)
        key = "/".join(stack)
        if index < len(parts) - 1 and (_key(stack) in links or (root / key).is_symlink()):
            raise UnsafeArchiveError(
                f"archive member {member!r} goes through the link {key!r}: links are not followed "
                "inside an archive (a crafted chain could write outside the destination)"
            )
    return stack


def check_tar_members(archive: tarfile.TarFile, destination: str | os.PathLike) -> None:
    """Raise :class:`UnsafeArchiveError` if any member of ``archive`` could write outside
    ``destination``, resolving every name against the tree the archive will build (so the check
    holds on any Python version, including patch levels whose ``data`` filter is fooled by a chain
    of links, CVE-2025-4517).

    Refused: absolute names; names, link targets or hard-link targets that climb out; any name or
    target that goes *through* a symbolic link (of the archive, or already on disk); a symbolic
    link to another link (a chain); a hard link to anything but a regular file of the archive;
    a link given twice or replaced by another member; device files and FIFOs.
    """
    root = Path(destination).resolve()
    members = archive.getmembers()
    symlinks = {_key(_parts(m.name)) for m in members if m.issym()}
    links = symlinks | {_key(_parts(m.name)) for m in members if m.islnk()}
    files = {_key(_parts(m.name)) for m in members if m.isfile()}
    seen: set[str] = set()
    for member in members:
        name = member.name
        if _absolute(name):
            raise UnsafeArchiveError(f"archive member has an absolute path: {name!r}")
        where = _walk([], name, symlinks, root, name)
        if where is None or (not where and not member.isdir()):  # "./" is the destination itself
            raise UnsafeArchiveError(f"archive member would be written outside {root}: {name!r}")
        key = _key(where)
        if key in seen and key in links:
            raise UnsafeArchiveError(f"archive member {name!r} is given twice, once as a link: refused")
        seen.add(key)
        if member.issym() or member.islnk():
            kind, link = ("a link" if member.issym() else "a hard link"), member.linkname
            start = where[:-1] if member.issym() else []  # hard links are named from the archive's top
            target = None if _absolute(link) else _walk(start, link, symlinks, root, name)
            if target is None:
                raise UnsafeArchiveError(f"archive member {name!r} is {kind} to {link!r}, outside {root}")
            found = _key(target)
            if member.issym() and (found in links or (target and (root / "/".join(target)).is_symlink())):
                raise UnsafeArchiveError(
                    f"archive member {name!r} is a link to {link!r}, itself a link: chains are refused"
                )
            if member.islnk() and found not in files:
                raise UnsafeArchiveError(
                    f"archive member {name!r} is a hard link to {link!r}, which is not a regular file of "
                    "the archive (hard links to links, folders or files on disk are refused)"
                )
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"archive member {name!r} is a device file or FIFO")


def check_disk_space(archive: tarfile.TarFile, destination: Path) -> None:
    """Refuse, before writing anything, an archive whose files need more than the free space of
    the disk holding ``destination``."""
    need = sum(member.size for member in archive.getmembers() if member.isfile())
    free = shutil.disk_usage(destination).free
    if need > free:
        raise OSError(
            errno.ENOSPC,
            f"extracting needs {need / 1e9:.2f} GB and the disk holding {destination} has "
            f"{free / 1e9:.2f} GB free: free disk space or extract elsewhere, then run again",
        )


def safe_extract(archive_path: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Extract a tar archive (``.tar``, ``.tgz``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``) safely.

    Every member is checked first (:func:`check_tar_members`) and the free disk space with it;
    nothing is written if one is unsafe. Where Python provides it, the ``"data"`` extraction
    filter is applied as well (no set-uid bits, no device files).

    Returns:
        ``destination`` as a ``Path``.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        archive = tarfile.open(archive_path, "r:*")
    except tarfile.ReadError as error:
        raise NotAnArchiveError(
            f"{archive_path} is not a readable tar archive ({error}); delete it and download again"
        ) from None
    with archive:
        check_tar_members(archive, destination)
        check_disk_space(archive, destination)
        if hasattr(tarfile, "data_filter"):
            archive.extractall(destination, filter="data")
        else:  # pragma: no cover - old Python without extraction filters
            archive.extractall(destination)  # members checked above
    return destination


def download_imagenette(
    root: str | os.PathLike = "data",
    variant: str = "160",
    *,
    sha256: str | None = None,
    extract: bool = True,
    progress: bool = True,
) -> Path:
    """Download (and extract) Imagenette into ``root``; return the extracted folder.

    Args:
        root: where the archive and the extracted folder go.
        variant: ``"160"`` (shorter side 160 px, about 95 MB), ``"320"`` (about 330 MB) or
            ``"full"`` (about 1.5 GB). See :data:`IMAGENETTE`.
        sha256: expected SHA-256 of the archive (instead of the pinned one, if any); the
            pinned MD5 is checked in any case.
        extract: extract the archive (skipped if the folder is already there).

    Returns:
        ``root/imagenette2-160`` (or the variant's folder), holding ``train/`` and ``val/``;
        the archive itself when ``extract=False``.

    Raises:
        NotAnArchiveError: what arrived (or lies at the archive's path) is not an archive; deleted.
        ChecksumError, DownloadError, UnsafeArchiveError: see :func:`download_file`, :func:`safe_extract`.
    """
    if variant not in IMAGENETTE:
        raise BadValue(f"variant must be one of {', '.join(IMAGENETTE)}, got {variant!r}")
    spec = IMAGENETTE[variant]
    root = Path(root)
    folder = root / spec.folder
    if extract and folder.is_dir():
        return folder
    target = root / spec.filename
    if target.exists():
        check_archive_file(target, spec.url)  # a page saved under the archive's name is no archive
    archive = download_file(spec.url, target, progress=progress, md5=spec.md5, sha256=sha256 or spec.sha256)
    check_archive_file(archive, spec.url)
    if not extract:
        return archive
    # Extract beside the target, then rename: an interrupted extraction leaves no half-filled
    # folder that a later call would take for a finished one.
    staging = root / f".{spec.folder}.extracting"
    shutil.rmtree(staging, ignore_errors=True)
    safe_extract(archive, staging)
    inner = staging / spec.folder
    os.replace(inner if inner.is_dir() else staging, folder)
    shutil.rmtree(staging, ignore_errors=True)
    return folder
