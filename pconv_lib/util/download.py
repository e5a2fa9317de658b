"""Download a public ImageNet subset (Imagenette) safely: progress bar, SHA-256 check, resume,
atomic rename and safe archive extraction. Standard library only (``urllib``) plus ``tqdm``.

How a download works (:func:`download_file`):

1. If the destination file already exists it is kept (and checked when a checksum is given).
2. Bytes go to ``<destination>.part``. If a ``.part`` file is there from an interrupted run, the
   request asks for the rest with ``Range: bytes=<size>-``: a ``206 Partial Content`` answer is
   appended, a ``200 OK`` answer (server ignores ranges) restarts from zero.
3. When all bytes are in, the SHA-256 is checked (if given; otherwise SHA-256 and MD5 are
   printed so you can pin them), then ``.part`` is renamed to the destination in one step: an
   interrupted download never leaves a truncated file under the final name.

Offline? The error says where to put a file downloaded on another machine.

Imagenette (https://github.com/fastai/imagenette, Apache 2.0): 10 easy ImageNet classes,
``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``, which :class:`pconv_lib.data.InpaintingDataset`
reads as is. Checksums are not pinned here (the files are not versioned by hash upstream): pass
``sha256=`` once you have recorded one.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from pconv_lib.util.errors import BadValue, ChecksumError, DownloadError, UnsafeArchiveError

_USER_AGENT = "pconv-course-downloader/0.1 (+urllib)"


@dataclass(frozen=True)
class ArchiveSpec:
    """A downloadable archive: its URL, file name, folder it extracts to, approximate size."""

    url: str
    filename: str
    folder: str
    approx_size: str


#: Imagenette variants: shorter side 160 px, 320 px, or full size. Sizes are approximate.
IMAGENETTE: dict[str, ArchiveSpec] = {
    "160": ArchiveSpec(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
        "imagenette2-160.tgz",
        "imagenette2-160",
        "about 95 MB",
    ),
    "320": ArchiveSpec(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
        "imagenette2-320.tgz",
        "imagenette2-320",
        "about 330 MB",
    ),
    "full": ArchiveSpec(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz",
        "imagenette2.tgz",
        "imagenette2",
        "about 1.5 GB",
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


def _check_sha256(path: Path, sha256: str, final: Path) -> None:
    actual = file_digest(path, "sha256")
    if actual.lower() != sha256.strip().lower():
        raise ChecksumError(
            f"SHA-256 mismatch for {final.name}: expected {sha256.strip().lower()}, got {actual}. "
            f"The file ({path}) is corrupt or not the expected version; delete it and download "
            "again, or check the expected checksum."
        )


def _offline_error(url: str, destination: Path, reason: object) -> DownloadError:
    return DownloadError(
        f"could not reach {url} ({reason}); download it on another machine and put the file "
        f"at {destination}"
    )


def _content_range_start(header: str | None) -> int | None:
    """Start offset of ``Content-Range: bytes START-END/TOTAL``, or None."""
    if not header or not header.strip().lower().startswith("bytes"):
        return None
    try:
        return int(header.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def download_file(
    url: str,
    destination: str | os.PathLike,
    *,
    sha256: str | None = None,
    progress: bool = True,
    resume: bool = True,
    overwrite: bool = False,
    timeout: float = 30.0,
    chunk_size: int = 1 << 16,
) -> Path:
    """Download ``url`` to the file ``destination``; resumable, verified, atomic.

    Args:
        url: an ``http(s)://`` URL.
        destination: the final file path (parent folders are created).
        sha256: expected SHA-256 (hex). When None, the SHA-256 and MD5 of the file are printed.
        progress: show a tqdm progress bar (on stderr).
        resume: continue a ``<destination>.part`` file left by an interrupted run.
        overwrite: download again even if ``destination`` exists.
        timeout: socket timeout in seconds.

    Returns:
        ``destination`` as a ``Path``.

    Raises:
        DownloadError: the server cannot be reached (the message says where to put a file
            fetched elsewhere) or answers with an HTTP error.
        ChecksumError: the SHA-256 differs; the ``.part`` file is deleted.
    """
    destination = Path(destination)
    part = destination.with_name(destination.name + ".part")
    if destination.exists() and not overwrite:
        if sha256 is not None:
            _check_sha256(destination, sha256, destination)
        else:
            _print_digests(destination)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)

    offset = part.stat().st_size if (resume and part.exists()) else 0
    if not resume and part.exists():
        part.unlink()
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Range not satisfiable: the .part is already complete (or longer than the file).
            total = (error.headers.get("Content-Range") or "").rpartition("/")[2]
            error.close()
            if total.isdigit() and int(total) == offset:
                return _finish(part, destination, sha256)
            part.unlink()
            return download_file(
                url, destination, sha256=sha256, progress=progress, resume=False,
                overwrite=overwrite, timeout=timeout, chunk_size=chunk_size,
            )
        raise DownloadError(f"{url}: HTTP error {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise _offline_error(url, destination, reason) from error

    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start is not None and start != offset:
                raise DownloadError(
                    f"{url}: server resumed at byte {start}, expected {offset}; delete {part} "
                    "and try again"
                )
            mode = "ab"
        else:  # 200: full content (fresh start, or the server ignored Range)
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        received = 0
        with (
            open(part, mode) as handle,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=destination.name,
                disable=not progress,
            ) as bar,
        ):
            try:
                for chunk in iter(lambda: response.read(chunk_size), b""):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                raise DownloadError(
                    f"{url}: connection lost after {offset + received} bytes ({error}); run "
                    f"again to resume from {part}"
                ) from error
    if total is not None and offset + received != total:
        raise DownloadError(
            f"{url}: got {offset + received} of {total} bytes; run again to resume from {part}"
        )
    return _finish(part, destination, sha256)


def _finish(part: Path, destination: Path, sha256: str | None) -> Path:
    if sha256 is not None:
        try:
            _check_sha256(part, sha256, destination)
        except ChecksumError:
            part.unlink(missing_ok=True)
            raise
    else:
        _print_digests(part, destination)
    os.replace(part, destination)
    return destination


def _print_digests(path: Path, shown: Path | None = None) -> None:
    print(
        f"{(shown or path).name}: sha256 {file_digest(path, 'sha256')}  "
        f"md5 {file_digest(path, 'md5')}  (pass sha256=... to verify next time)"
    )


# --------------------------------------------------------------------------------------------
# Safe extraction
# --------------------------------------------------------------------------------------------


def _inside(root: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def check_tar_members(archive: tarfile.TarFile, destination: str | os.PathLike) -> None:
    """Raise :class:`UnsafeArchiveError` if any member of ``archive`` would escape ``destination``.

    Rejected: absolute names, names that resolve outside ``destination`` (``..``), symbolic
    links whose target (relative to the link's folder) resolves outside, absolute link
    targets, hard links to a path outside, and device files / FIFOs.
    """
    root = Path(destination).resolve()
    for member in archive.getmembers():
        name = member.name
        drive = len(name) > 1 and name[1] == ":"
        if name.startswith(("/", "\\")) or posixpath.isabs(name) or drive:
            raise UnsafeArchiveError(f"archive member has an absolute path: {name!r}")
        if not _inside(root, root / name):
            raise UnsafeArchiveError(f"archive member would be written outside {root}: {name!r}")
        if member.issym():
            link = member.linkname
            if posixpath.isabs(link) or not _inside(root, root / posixpath.dirname(name) / link):
                raise UnsafeArchiveError(
                    f"archive member {name!r} is a link to {link!r}, outside {root}"
                )
        elif member.islnk():
            if posixpath.isabs(member.linkname) or not _inside(root, root / member.linkname):
                raise UnsafeArchiveError(
                    f"archive member {name!r} is a hard link to {member.linkname!r}, outside {root}"
                )
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"archive member {name!r} is a device file or FIFO")


def safe_extract(archive_path: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Extract a tar archive (``.tar``, ``.tgz``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``) safely.

    Every member is checked first (:func:`check_tar_members`); nothing is written if one is
    unsafe. Where Python provides it (3.12, and 3.8.17+/3.9.17+/3.10.12+/3.11.4+), the ``"data"``
    extraction filter is applied as well (no set-uid bits, no device files).

    Returns:
        ``destination`` as a ``Path``.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "r:*") as archive:
        check_tar_members(archive, destination)
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
        sha256: expected SHA-256 of the archive (printed after the first download).
        extract: extract the archive (skipped if the folder is already there).

    Returns:
        ``root/imagenette2-160`` (or the variant's folder), holding ``train/`` and ``val/``;
        the archive itself when ``extract=False``.
    """
    if variant not in IMAGENETTE:
        raise BadValue(f"variant must be one of {', '.join(IMAGENETTE)}, got {variant!r}")
    spec = IMAGENETTE[variant]
    root = Path(root)
    archive = download_file(spec.url, root / spec.filename, sha256=sha256, progress=progress)
    if not extract:
        return archive
    folder = root / spec.folder
    if not folder.is_dir():
        # Extract beside the target, then rename: an interrupted extraction leaves no
        # half-filled folder that a later call would take for a finished one.
        staging = root / f".{spec.folder}.extracting"
        shutil.rmtree(staging, ignore_errors=True)
        safe_extract(archive, staging)
        inner = staging / spec.folder
        os.replace(inner if inner.is_dir() else staging, folder)
        shutil.rmtree(staging, ignore_errors=True)
    return folder
