"""Where raw data comes from: an http(s) URL or a local path, with an optional mirror.

A dataset's ``source`` param is either a URL (the default is each dataset's official
download address) or a local path. Downloads stream to ``<cache>/`` with a progress bar,
are retried with backoff, verified against ``checksum`` (``md5:…`` or ``sha256:…``) when
one is given, and renamed into place only when complete.

An offline machine points ``SENTIMENT_DATA_MIRROR`` at a directory laid
out as ``<mirror>/<mirror_file>`` (e.g. ``../shared/data``); a URL source whose dataset has
a ``mirror_file`` is then read from the mirror instead of the network (and checked
against ``mirror_checksum``: a mirror may hold a repackaged copy). The data card
records which location was read and its sha256, so a run always says what it used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm import tqdm

from stages.common.data.io import atomic_path
from stages.common.errors import SourceError
from stages.common.params.schema import DatasetConfig, PairsConfig, PrepareConfig

log = logging.getLogger(__name__)

MIRROR_ENV = "SENTIMENT_DATA_MIRROR"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    """A raw source file that is now on local disk."""

    path: Path
    location: str  # the source param (URL or path), as the user wrote it
    via: str  # "mirror", "download" or "path": how the bytes were obtained
    sha256: str
    size: int


def is_url(source: str) -> bool:
    """True for http(s) URLs."""
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"md5:abc…"`` / ``"sha256:…"`` (a bare hex string means sha256) → (algorithm, hex)."""
    algorithm, sep, value = checksum.partition(":")
    if not sep:
        algorithm, value = "sha256", checksum
    algorithm = algorithm.strip().lower()
    if algorithm not in hashlib.algorithms_available:
        raise SourceError(f"checksum {checksum!r}: unknown algorithm {algorithm!r}")
    return algorithm, value.strip().lower()


def _verify(path: Path, location: str, expected: str | None) -> str:
    """Check ``expected`` (if any) and return the file's sha256 for the data card."""
    sha256 = digest_of(path)
    if expected:
        algorithm, value = parse_checksum(expected)
        actual = sha256 if algorithm == "sha256" else digest_of(path, algorithm)
        if actual != value:
            raise SourceError(
                f"{location}: {algorithm} mismatch (expected {value}, got {actual}); "
                "the file is corrupt or not the one the params name"
            )
    return sha256


def download(url: str, dest: Path, *, retries: int = 3, timeout: float = 60.0, backoff: float = 1.0) -> None:
    """Stream ``url`` to ``dest`` atomically, retrying transient failures."""
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        try:
            with requests.get(url, stream=True, timeout=timeout) as resp:
                resp.raise_for_status()
                total = int(resp.headers.get("content-length") or 0) or None
                with (
                    atomic_path(dest) as tmp,
                    tmp.open("wb") as fh,
                    tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar,
                ):
                    for chunk in resp.iter_content(CHUNK):
                        fh.write(chunk)
                        bar.update(len(chunk))
            return
        except requests.HTTPError as exc:
            last = exc
            status = exc.response.status_code if exc.response is not None else None
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                break  # a client error will not fix itself
        except (requests.RequestException, OSError) as exc:
            last = exc
        if attempt < retries:
            wait = backoff * 2 ** (attempt - 1)
            log.warning("download of %s failed (%s); retry %d/%d in %.1fs", url, last, attempt, retries - 1, wait)
            time.sleep(wait)
    raise SourceError(f"{url}: download failed after {attempt} attempt(s): {last}")


def mirror_path(mirror_file: str | None, mirror_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The local mirror copy for a dataset, if a mirror directory is configured."""
    root = mirror_dir if mirror_dir is not None else os.environ.get(MIRROR_ENV)
    if not root or not mirror_file:
        return None
    return Path(root).expanduser() / mirror_file


def fetch(
    source: str,
    cache_dir: Path,
    *,
    checksum: str | None = None,
    mirror_file: str | None = None,
    mirror_checksum: str | None = None,
    mirror_dir: str | os.PathLike[str] | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> Fetched:
    """Make ``source`` available locally and verify it.

    URL sources are served from the mirror when one is configured, otherwise from the
    download cache (``cache_dir``) or downloaded. Local paths are read in place.
    """
    if is_url(source):
        mirrored = mirror_path(mirror_file, mirror_dir)
        if mirrored is not None:
            if not mirrored.is_file():
                raise SourceError(
                    f"{mirrored}: mirror file not found ({MIRROR_ENV} is set; unset it to download {source})"
                )
            log.info("reading %s from mirror %s", source, mirrored)
            return _local(mirrored, source, "mirror", mirror_checksum)
        parsed = urllib.parse.urlparse(source)
        name = Path(parsed.path).name or "download"
        key = hashlib.sha256(source.encode()).hexdigest()[:12]
        dest = cache_dir / key / name
        if dest.is_file():
            log.info("using cached download %s", dest)
            try:
                return _local(dest, source, "download", checksum)
            except SourceError:
                log.warning("cached %s fails its checksum; downloading again", dest)
                dest.unlink()
        log.info("downloading %s", source)
        download(source, dest, retries=retries, timeout=timeout, backoff=backoff)
        try:
            return _local(dest, source, "download", checksum)
        except SourceError:
            dest.unlink(missing_ok=True)
            raise
    path = Path(source[7:] if source.startswith("file://") else source).expanduser()
    return _local(path, source, "path", checksum)


def fetch_source(cfg: DatasetConfig | PairsConfig, cache_dir: Path, prepare: PrepareConfig) -> Fetched:
    """:func:`fetch` for a params entry with a source (a dataset, a pairs table), with prepare's download policy."""
    return fetch(
        cfg.source,
        cache_dir,
        checksum=cfg.checksum,
        mirror_file=cfg.mirror_file,
        mirror_checksum=cfg.mirror_checksum,
        retries=prepare.download_retries,
        timeout=prepare.download_timeout_s,
    )


def _local(path: Path, location: str, via: str, checksum: str | None) -> Fetched:
    if not path.exists():
        raise SourceError(f"{path}: source file not found")
    if not path.is_file():
        raise SourceError(f"{path}: source is not a regular file")
    try:
        digest = _verify(path, str(path) if via == "mirror" else location, checksum)
    except PermissionError as exc:
        raise SourceError(f"{path}: source file is not readable ({exc})") from exc
    return Fetched(path=path, location=location, via=via, sha256=digest, size=path.stat().st_size)
