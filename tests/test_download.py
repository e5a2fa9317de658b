"""Tests for pconv_lib.util.download against a local HTTP server on 127.0.0.1 (no other network).
Crafted archives (link chains, hard links, long names) are in test_reliability_extract.py."""

from __future__ import annotations

import hashlib
import io
import random
import socket
import tarfile
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_lib.util import download
from pconv_lib.util.download import (
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    check_tar_members,
    download_file,
    download_imagenette,
    file_digest,
    safe_extract,
)


def make_tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


ARCHIVE = make_tar_gz(
    {
        "imagenette2-160/train/n01440764/a.txt": b"first file " * 500,
        # incompressible, so that the archive is large enough to cut and resume (~20 kB)
        "imagenette2-160/val/n01440764/b.txt": random.Random(0).randbytes(20_000),
    }
)
SHA256 = hashlib.sha256(ARCHIVE).hexdigest()


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` unless ``server.ranges`` is False;
    with ``server.cut_after`` set, the next response stops after that many bytes (a dropped
    connection). Every request is recorded in ``server.log`` as (path, Range header, status)."""

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        body = self.server.files.get(self.path)
        self.send_response(404 if body is None else 200)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()

    def do_GET(self) -> None:
        server = self.server
        body = server.files.get(self.path)
        range_header = self.headers.get("Range")
        if body is None:
            return self._reply(404, b"not found", range_header)
        if range_header and server.ranges:
            start = int(range_header.split("=")[1].split("-")[0])
            if start >= len(body):
                return self._reply(
                    416, b"", range_header, {"Content-Range": f"bytes */{len(body)}"}
                )
            headers = {"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"}
            return self._reply(206, body[start:], range_header, headers)
        return self._reply(200, body, range_header)

    def _reply(self, status, body, range_header, headers=None) -> None:
        self.server.log.append((self.path, range_header, status))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        cut = self.server.cut_after
        if cut is not None:
            self.server.cut_after = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.daemon_threads = True
    httpd.files = {"/data/imagenette2-160.tgz": ARCHIVE}
    httpd.ranges = True
    httpd.cut_after = None
    httpd.log = []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server) -> str:
    return server.url + "/data/imagenette2-160.tgz"


def test_download_with_checksum_and_progress(server, tmp_path, capsys):
    target = tmp_path / "sub" / "imagenette2-160.tgz"
    result = download_file(url(server), target, sha256=SHA256, progress=True)
    assert result == target and target.read_bytes() == ARCHIVE
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left
    assert "100%" in capsys.readouterr().err
    assert server.log == [("/data/imagenette2-160.tgz", None, 200)]


def test_without_checksum_the_digests_are_printed(server, tmp_path, capsys):
    target = download_file(url(server), tmp_path / "a.tgz", progress=False)
    out = capsys.readouterr().out
    assert SHA256 in out and hashlib.md5(ARCHIVE).hexdigest() in out
    assert file_digest(target) == SHA256


def test_checksum_mismatch_is_an_error_and_leaves_nothing(server, tmp_path):
    target = tmp_path / "a.tgz"
    with pytest.raises(ChecksumError, match="SHA-256 mismatch") as info:
        download_file(url(server), target, sha256="0" * 64, progress=False)
    assert SHA256 in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_dropped_connection_keeps_nothing_and_the_next_call_downloads_it_whole(server, tmp_path):
    target = tmp_path / "a.tgz"
    server.cut_after = 700
    with pytest.raises(DownloadError, match="cut"):
        download_file(url(server), target, sha256=SHA256, progress=False)
    assert list(tmp_path.iterdir()) == []  # no truncated file under any name
    download_file(url(server), target, sha256=SHA256, progress=False)
    assert target.read_bytes() == ARCHIVE
    assert server.log[-1] == ("/data/imagenette2-160.tgz", None, 200)


def test_existing_file_is_kept_and_verified(server, tmp_path):
    target = tmp_path / "a.tgz"
    target.write_bytes(ARCHIVE)
    assert download_file(url(server), target, sha256=SHA256, progress=False) == target
    assert server.log == []
    target.write_bytes(b"corrupt")
    with pytest.raises(ChecksumError):
        download_file(url(server), target, sha256=SHA256, progress=False)


def test_offline_error_says_where_to_put_the_file(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = tmp_path / "imagenette2-160.tgz"
    address = f"http://127.0.0.1:{port}/imagenette2-160.tgz"
    with pytest.raises(DownloadError) as info:
        download_file(address, target, progress=False, timeout=5)
    message = str(info.value)
    assert f"could not reach {address}" in message
    assert "another machine" in message and str(target) in message


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download_file(server.url + "/missing.tgz", tmp_path / "m.tgz", progress=False)


def test_safe_extract(tmp_path):
    archive = tmp_path / "a.tgz"
    archive.write_bytes(ARCHIVE)
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "imagenette2-160" / "train" / "n01440764" / "a.txt").read_bytes() == (
        b"first file " * 500
    )


def _tar_with(tmp_path: Path, add) -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as archive:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        archive.addfile(ok, io.BytesIO(b"ok"))
        add(archive)
    return path


def _file(name: str):
    def add(archive):
        info = tarfile.TarInfo(name)
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))

    return add


def _link(name: str, target: str, kind=tarfile.SYMTYPE):
    def add(archive):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = target
        archive.addfile(info)

    return add


@pytest.mark.parametrize(
    "add, reason",
    [
        (_file("../evil.txt"), "outside"),
        (_file("a/../../evil.txt"), "outside"),
        (_file("/tmp/evil.txt"), "absolute"),
        (_link("link", "../../etc/passwd"), "link"),
        (_link("link", "/etc/passwd"), "link"),
        (_link("hard", "../outside.txt", tarfile.LNKTYPE), "hard link"),
        (_link("dev", "", tarfile.CHRTYPE), "device"),
    ],
)
def test_unsafe_archives_are_rejected_before_writing_anything(tmp_path, add, reason):
    archive = _tar_with(tmp_path, add)
    destination = tmp_path / "dest" / "inner"
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract(archive, destination)
    assert not (destination / "fine.txt").exists()
    assert not (tmp_path / "dest" / "evil.txt").exists()


def test_links_inside_the_destination_are_allowed(tmp_path):
    archive = _tar_with(tmp_path, _link("sub/link", "../fine.txt"))
    out = safe_extract(archive, tmp_path / "out")
    assert (out / "sub" / "link").read_bytes() == b"ok"


@settings(max_examples=25, deadline=None)
@given(
    parts=st.lists(st.text("abcxyz_.", min_size=1, max_size=4), min_size=1, max_size=4),
    ups=st.integers(0, 3),
)
def test_member_names_escaping_with_dotdot_are_always_rejected(parts, ups):
    root = Path(tempfile.gettempdir()) / "pconv-check-root"  # need not exist
    parts = [p for p in parts if p not in (".", "..")] or ["x"]
    escape = "/".join([".."] * (len(parts) + ups + 1) + ["evil"])
    for name, safe in (("/".join(parts), True), ("/".join(parts) + "/" + escape, False)):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.addfile(tarfile.TarInfo(name))
        buffer.seek(0)
        with tarfile.open(fileobj=buffer) as archive:
            if safe:
                check_tar_members(archive, root)
            else:
                with pytest.raises(UnsafeArchiveError):
                    check_tar_members(archive, root)


def test_download_imagenette_end_to_end(server, tmp_path, monkeypatch):
    spec = download.IMAGENETTE["160"]
    local = download.ArchiveSpec(url(server), spec.filename, spec.folder, spec.approx_size)
    monkeypatch.setitem(download.IMAGENETTE, "160", local)
    folder = download_imagenette(tmp_path, "160", sha256=SHA256, progress=False)
    assert folder == tmp_path / "imagenette2-160"
    assert (folder / "train" / "n01440764" / "a.txt").is_file()
    assert (folder / "val" / "n01440764" / "b.txt").is_file()
    assert not list(tmp_path.glob(".*extracting"))
    # second call: nothing downloaded or extracted again
    assert download_imagenette(tmp_path, "160", sha256=SHA256, progress=False) == folder
    assert len(server.log) == 1
    with pytest.raises(ValueError, match="variant"):
        download_imagenette(tmp_path, "999")


def test_the_known_imagenette_urls():
    assert download.IMAGENETTE["160"].url == (
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz"
    )
    assert download.IMAGENETTE["320"].url.endswith("imagenette2-320.tgz")
    assert download.IMAGENETTE["full"].url.endswith("/imagenette2.tgz")
