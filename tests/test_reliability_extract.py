"""Issue 27, part 1: an archive extractor that cannot write outside its folder, and a downloader that
checks what arrived. Crafted archives (link chains as in CVE-2025-4517, hard links, long names,
absolute names, ``..``) must be refused before anything is written; a web page instead of an
archive is deleted with one line. Downloads come from a loopback ``http.server`` (no network)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pconv_lib.util import download
from pconv_lib.util.download import archive_kind, download_imagenette, safe_extract
from pconv_lib.util.errors import ChecksumError, NotAnArchiveError, UnsafeArchiveError

# ------------------------------------------------------------------ building crafted archives


def _entry(kind: str, name: str, target: str = "", data: bytes = b"evil") -> tuple:
    return (kind, name, target, data)


def make_tar(path: Path, entries: list[tuple], fmt: int = tarfile.GNU_FORMAT, mode: str = "w") -> Path:
    """A tar file with ``entries`` (kind ``file``/``dir``/``sym``/``hard``, name, link target, data)."""
    with tarfile.open(path, mode, format=fmt) as archive:
        for kind, name, target, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            info.linkname = target
            archive.addfile(info)
    return path


def cve_2025_4517_chain(outside: str) -> list[tuple]:
    """The pattern of CVE-2025-4517 (Python gh-135034): a chain of directories with long names and
    symbolic links to them, each harmless as text, so that a path through all of them exceeds
    PATH_MAX and ``os.path.realpath`` stops resolving; then a link up through the chain, a link
    "escape" through that, a hard link through "escape" and a file written through the hard link."""
    comp = "d" * 247
    steps = "abcdefghijklmnop"
    entries, path = [], ""
    for step in steps:
        entries.append(_entry("dir", os.path.join(path, comp)))
        entries.append(_entry("sym", os.path.join(path, step), comp))
        path = os.path.join(path, comp)
    long_link = os.path.join(*steps, "l" * 254)
    entries.append(_entry("sym", long_link, "../" * len(steps)))
    entries.append(_entry("sym", "escape", os.path.join(long_link, "../" * 4 + outside)))
    entries.append(_entry("hard", "flaglink", os.path.join("escape", "flag")))
    entries.append(_entry("file", "flaglink", data=b"overwritten"))
    return entries


@pytest.fixture
def sandbox(tmp_path):
    """``tmp_path/outside`` holds a file an attack would overwrite; ``tmp_path/a/b/c/d/dest`` is the
    destination (deep enough for ``../../..`` to stay inside ``tmp_path``)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "flag").write_text("original")
    dest = tmp_path / "a" / "b" / "c" / "d" / "dest"
    return tmp_path, outside, dest


def everything_under(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (links not followed) with the bytes of regular files."""
    found = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        found[rel] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return found


# ------------------------------------------------------------------ refusals, nothing written


CVE = "CVE-2025-4517-style chain (symlinks, hard link, file)"
ATTACKS = {
    CVE: lambda: cve_2025_4517_chain("../../../../outside"),
    "link to '.' then '..' through it": lambda: [
        _entry("sym", "here", "."),
        _entry("file", "here/../../../../../outside/flag"),
    ],
    "link to '.' then a file through it upward": lambda: [
        _entry("dir", "sub"),
        _entry("sym", "sub/up", ".."),
        _entry("file", "sub/up/../../../../../outside/flag"),
    ],
    "chain of two links": lambda: [
        _entry("dir", "sub"),
        _entry("sym", "l1", "sub"),
        _entry("sym", "l2", "l1"),
    ],
    "link whose target goes through a link": lambda: [
        _entry("sym", "here", "."),
        _entry("sym", "out", "here/../../../../../outside"),
    ],
    "hard link to a link": lambda: [
        _entry("sym", "s", "."),
        _entry("hard", "h", "s"),
    ],
    "hard link to a folder": lambda: [_entry("dir", "sub"), _entry("hard", "h", "sub")],
    "hard link outside": lambda: [_entry("hard", "h", "../../../../outside/flag")],
    "hard link to an absolute path": lambda: [_entry("hard", "h", "/etc/passwd")],
    "hard link through a link": lambda: [
        _entry("dir", "sub"),
        _entry("file", "sub/f", data=b"x"),
        _entry("sym", "s", "sub"),
        _entry("hard", "h", "s/f"),
    ],
    "file replacing an earlier link": lambda: [
        _entry("sym", "s", "sub"),
        _entry("dir", "sub"),
        _entry("file", "s", data=b"through the link"),
    ],
    "through a link named in another case (macOS, Windows)": lambda: [
        _entry("sym", "Up", "."),
        _entry("file", "up/../../../../../outside/flag"),
    ],
    "through a link named in another Unicode form (macOS)": lambda: [
        _entry("sym", "caf\u00e9", "."),  # composed
        _entry("file", "cafe\u0301/../../../../../outside/flag"),  # decomposed
    ],
    "absolute name": lambda: [_entry("file", "/tmp/pconv-evil")],
    "Windows drive name": lambda: [_entry("file", "C:/evil")],
    "backslash root name": lambda: [_entry("file", "\\evil")],
    "dot-dot name": lambda: [_entry("file", "../../../../outside/flag")],
    "absolute link": lambda: [_entry("sym", "s", "/etc")],
    "long link target climbing out": lambda: [_entry("sym", "s", "x/" * 60 + "../" * 65 + "outside")],
    "long name climbing out": lambda: [_entry("file", "n" * 120 + "/" + "../" * 6 + "outside/flag")],
}


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_crafted_archives_are_refused_before_anything_is_written(sandbox, attack, fmt):
    root, outside, dest = sandbox
    entries = [_entry("file", "fine.txt", data=b"ok"), *ATTACKS[attack]()]
    archive = make_tar(root / "evil.tar", entries, fmt=fmt)
    before = everything_under(root)
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract(archive, dest)
    assert "\n" not in str(info.value)
    assert (outside / "flag").read_text() == "original"
    after = everything_under(root)
    assert {k: v for k, v in after.items() if not k.startswith("a")} == {
        k: v for k, v in before.items() if not k.startswith("a")
    }
    assert list(dest.iterdir()) == []  # nothing extracted, not even the harmless member


def test_a_link_left_on_disk_in_the_destination_is_not_followed(sandbox):
    root, outside, dest = sandbox
    dest.mkdir(parents=True)
    (dest / "old").symlink_to(outside)  # e.g. from an earlier, hand-made extraction
    archive = make_tar(root / "evil.tar", [_entry("file", "old/flag", data=b"overwritten")])
    with pytest.raises(UnsafeArchiveError, match="through the link 'old'"):
        safe_extract(archive, dest)
    assert (outside / "flag").read_text() == "original"


def test_a_link_on_disk_is_no_hard_link_target_either(sandbox):
    root, outside, dest = sandbox
    dest.mkdir(parents=True)
    (dest / "old").symlink_to(outside / "flag")
    archive = make_tar(root / "evil.tar", [_entry("hard", "h", "old")])
    with pytest.raises(UnsafeArchiveError, match="not a regular file of the archive"):
        safe_extract(archive, dest)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_ordinary_archives_with_safe_links_extract(tmp_path, mode):
    entries = [
        _entry("dir", "./"),
        _entry("dir", "./top/"),
        _entry("file", "./top/a.txt", data=b"alpha"),
        _entry("dir", "top/sub"),
        _entry("sym", "top/sub/to_a", "../a.txt"),
        _entry("sym", "top/sub_link", "sub"),  # a link to a folder inside: allowed, not followed
        _entry("hard", "top/hard_a", "top/a.txt"),
        _entry("file", "l" * 150 + ".txt", data=b"long name"),
    ]
    archive = make_tar(tmp_path / "ok.tar", entries, mode=mode)
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "top" / "sub" / "to_a").read_bytes() == b"alpha"
    assert (out / "top" / "hard_a").read_bytes() == b"alpha"
    assert (out / "top" / "sub_link").is_symlink()
    assert (out / ("l" * 150 + ".txt")).read_bytes() == b"long name"
    assert archive_kind(archive) == {"w": "tar", "w:gz": "gzip", "w:bz2": "bzip2", "w:xz": "xz"}[mode]


NAMES = st.sampled_from(["a", "b", "a/b", "a/c", "..", "a/..", "b/../..", ".", "a/b/../../..", "c/a"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entries=st.lists(
        st.tuples(st.sampled_from(["file", "dir", "sym", "hard"]), NAMES, NAMES, st.just(b"x")),
        min_size=1,
        max_size=6,
    )
)
def test_whatever_the_archive_nothing_lands_outside(tmp_path_factory, entries):
    """Any archive of files, folders, links and hard links over a small alphabet of names: either it
    is refused, or after extraction every path under the destination really lies inside it."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "outside").mkdir()
    (root / "outside" / "flag").write_text("original")
    dest = root / "x" / "y" / "dest"
    archive = make_tar(root / "t.tar", entries)
    try:
        safe_extract(archive, dest)
    except (UnsafeArchiveError, tarfile.TarError, OSError):
        pass
    assert (root / "outside" / "flag").read_text() == "original"
    assert sorted(p.name for p in root.iterdir()) == ["outside", "t.tar", "x"]
    assert sorted(p.name for p in (root / "x").iterdir()) == ["y"]
    real = dest.resolve()
    for path in dest.rglob("*"):
        resolved = path.resolve()
        assert resolved == real or real in resolved.parents, (path, resolved)


# ------------------------------------------------------------------ what the downloader fetched


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        body = self.server.files.get(self.path, b"")
        self.send_response(200 if self.path in self.server.files else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()

    def do_GET(self) -> None:
        body = self.server.files.get(self.path)
        self.server.requests += 1
        self.send_response(404 if body is None else 200)
        page = (body or b"").startswith(b"<")
        self.send_header("Content-Type", "text/html" if page else "application/x-gzip")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture
def imagenette_server(monkeypatch):
    """A loopback server standing in for the Imagenette bucket: ``server.files[PATH] = bytes``."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.files, httpd.requests = {}, 0
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def serve(body: bytes, *, md5: str | None = "auto", sha256: str | None = None) -> download.ArchiveSpec:
        httpd.files["/imagenette2-160.tgz"] = body
        pin = hashlib.md5(body).hexdigest() if md5 == "auto" else md5
        spec = download.ArchiveSpec(base + "/imagenette2-160.tgz", "imagenette2-160.tgz", "imagenette2-160",
                                    "tiny", md5=pin, sha256=sha256)
        monkeypatch.setitem(download.IMAGENETTE, "160", spec)
        return spec

    httpd.serve = serve
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _tgz(tmp_path: Path, entries: list[tuple]) -> bytes:
    return make_tar(tmp_path / "src.tgz", entries, mode="w:gz").read_bytes()


HTML_PAGES = {
    "login page": b"<!DOCTYPE html>\n<html><head><title>Sign in to the hotel Wi-Fi</title></head></html>",
    "S3 error": b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>",
    "empty": b"",
    "JPEG": b"\xff\xd8\xff\xe0" + b"\0" * 600,
}


@pytest.mark.parametrize("page", list(HTML_PAGES))
def test_a_download_that_is_no_archive_is_deleted_with_one_line(imagenette_server, tmp_path, page):
    imagenette_server.serve(HTML_PAGES[page], md5=None)
    with pytest.raises(NotAnArchiveError) as info:
        download_imagenette(tmp_path / "data", progress=False)
    message = str(info.value)
    assert "\n" not in message and "deleted" in message and "imagenette2-160.tgz" in message
    assert ("HTML page" in message) == (page == "login page")
    assert list((tmp_path / "data").iterdir()) == []


def test_a_page_already_saved_under_the_archive_name_is_deleted_without_downloading(
    imagenette_server, tmp_path
):
    imagenette_server.serve(_tgz(tmp_path, [_entry("file", "imagenette2-160/train/x/a.txt")]))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "imagenette2-160.tgz").write_bytes(HTML_PAGES["login page"])
    with pytest.raises(NotAnArchiveError, match="HTML page"):
        download_imagenette(tmp_path / "data", progress=False)
    assert imagenette_server.requests == 0 and list((tmp_path / "data").iterdir()) == []
    folder = download_imagenette(tmp_path / "data", progress=False)  # the next call fetches it
    assert (folder / "train" / "x" / "a.txt").read_bytes() == b"evil"


def test_the_pinned_md5_is_checked_and_a_mismatch_deletes_the_file(imagenette_server, tmp_path):
    imagenette_server.serve(_tgz(tmp_path, [_entry("file", "imagenette2-160/a")]), md5="0" * 32)
    with pytest.raises(ChecksumError, match="MD5 mismatch"):
        download_imagenette(tmp_path / "data", progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_a_pinned_sha256_in_the_table_is_checked_too(imagenette_server, tmp_path):
    imagenette_server.serve(_tgz(tmp_path, [_entry("file", "imagenette2-160/a")]), sha256="f" * 64)
    with pytest.raises(ChecksumError, match="SHA-256 mismatch"):
        download_imagenette(tmp_path / "data", progress=False)


def test_every_known_archive_has_a_pin():
    for spec in download.IMAGENETTE.values():
        assert spec.md5 is not None and len(spec.md5) == 32  # torchvision's pins
        assert spec.sha256 is None  # not known offline: checked when someone fills it in


@pytest.mark.parametrize("attack", [CVE, "hard link outside"])
def test_a_crafted_archive_from_the_server_is_refused_and_nothing_is_extracted(
    imagenette_server, sandbox, attack
):
    root, outside, _ = sandbox
    data = root / "a" / "b" / "c" / "d" / "data"
    entries = [_entry("file", "imagenette2-160/train/x/a.txt"), *ATTACKS[attack]()]
    imagenette_server.serve(make_tar(root / "src.tgz", entries, mode="w:gz").read_bytes())
    with pytest.raises(UnsafeArchiveError):
        download_imagenette(data, progress=False)
    assert (outside / "flag").read_text() == "original"
    assert not (data / "imagenette2-160").exists()
    staging = data / ".imagenette2-160.extracting"
    assert not staging.exists() or list(staging.iterdir()) == []
