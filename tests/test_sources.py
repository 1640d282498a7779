"""Downloads against a local HTTP server; local paths; the mirror; checksums."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from stages.common.data.sources import fetch
from stages.common.errors import SourceError
from tests.synthetic import aclimdb_members, write_tar


class _Handler(http.server.BaseHTTPRequestHandler):
    # set per test on a subclass (see the ``server`` fixture)
    files: ClassVar[dict[str, bytes]] = {}
    failures_left: ClassVar[dict[str, int]] = {}
    hits: ClassVar[dict[str, int]] = {}

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.failures_left.get(self.path, 0) > 0:
            self.failures_left[self.path] -= 1
            self.send_error(503, "try again")
            return
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404, "not here")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, type[_Handler]]]:
    archive = write_tar(tmp_path / "a.tar.gz", aclimdb_members(per_class=3))
    handler = type(
        "H", (_Handler,), {"files": {"/aclImdb_v1.tar.gz": archive.read_bytes()}, "failures_left": {}, "hits": {}}
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_verifies_checksum_and_caches(server, tmp_path: Path) -> None:
    base, handler = server
    data = handler.files["/aclImdb_v1.tar.gz"]
    md5 = hashlib.md5(data).hexdigest()
    got = fetch(f"{base}/aclImdb_v1.tar.gz", tmp_path / "cache", checksum=f"md5:{md5}", mirror_dir="")
    assert got.path.read_bytes() == data
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.via == "download"
    again = fetch(f"{base}/aclImdb_v1.tar.gz", tmp_path / "cache", checksum=f"md5:{md5}", mirror_dir="")
    assert again.path == got.path
    assert handler.hits["/aclImdb_v1.tar.gz"] == 1  # second call served from the cache


def test_download_retries_transient_errors(server, tmp_path: Path) -> None:
    base, handler = server
    handler.failures_left["/aclImdb_v1.tar.gz"] = 2
    got = fetch(f"{base}/aclImdb_v1.tar.gz", tmp_path / "cache", mirror_dir="", retries=3, backoff=0.01)
    assert got.size == len(handler.files["/aclImdb_v1.tar.gz"])
    assert handler.hits["/aclImdb_v1.tar.gz"] == 3


def test_checksum_mismatch_fails_and_keeps_nothing(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(SourceError, match="sha256 mismatch"):
        fetch(f"{base}/aclImdb_v1.tar.gz", tmp_path / "cache", checksum="sha256:" + "0" * 64, mirror_dir="")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_missing_url_is_a_clear_error(server, tmp_path: Path) -> None:
    base, handler = server
    with pytest.raises(SourceError, match="404"):
        fetch(f"{base}/nope.tar.gz", tmp_path / "cache", mirror_dir="", retries=3, backoff=0.01)
    assert handler.hits["/nope.tar.gz"] == 1  # a 404 is not retried


def test_mirror_replaces_the_network(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "imdb").mkdir(parents=True)
    (mirror / "imdb" / "copy.tar.gz").write_bytes(b"abc")
    sha = hashlib.sha256(b"abc").hexdigest()
    got = fetch(
        "http://127.0.0.1:9/unreachable.tar.gz",
        tmp_path / "cache",
        mirror_file="imdb/copy.tar.gz",
        mirror_checksum=f"sha256:{sha}",
        mirror_dir=mirror,
    )
    assert got.via == "mirror" and got.sha256 == sha
    with pytest.raises(SourceError, match="mirror file not found"):
        fetch("http://127.0.0.1:9/x", tmp_path / "cache", mirror_file="imdb/other.tar.gz", mirror_dir=mirror)


def test_local_paths(tmp_path: Path) -> None:
    f = tmp_path / "reviews.csv"
    f.write_text("text,label\nok,1\n")
    assert fetch(str(f), tmp_path / "cache").via == "path"
    with pytest.raises(SourceError, match="source file not found"):
        fetch(str(tmp_path / "missing.csv"), tmp_path / "cache")
    with pytest.raises(SourceError, match="unknown algorithm"):
        fetch(str(f), tmp_path / "cache", checksum="crc99:abc")
