"""Shared fixtures: generated datasets on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.synthetic import aclimdb_members, write_tar, write_yelp_csv

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def imdb_archive(tmp_path: Path) -> Path:
    """A small archive in the official aclImdb layout."""
    return write_tar(tmp_path / "aclImdb_small.tar.gz", aclimdb_members(per_class=30))


@pytest.fixture()
def yelp_csv(tmp_path: Path) -> Path:
    """A small Yelp-style reviews CSV (gzip)."""
    return write_yelp_csv(tmp_path / "reviews.csv.gz", n=160)


def free_port() -> int:
    """A TCP port nothing listens on now (loopback)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_postgres() -> None:
    """Fail in CI (which installs PostgreSQL) and skip elsewhere when PostgreSQL is missing."""
    if any(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or os.environ.get("PGBIN"):
        return
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL is not installed; .ci/run installs the Debian package `postgresql`")
    pytest.skip("PostgreSQL (Debian package `postgresql`) not installed here; CI installs it and runs this")


@contextmanager
def team_server() -> Iterator[tuple[str, str, Path]]:
    """A fresh ``tools/mlflow_server.sh`` on free ports: (tracking URI, Optuna storage URL, its folder)."""
    import tempfile

    require_postgres()
    home = Path(tempfile.mkdtemp(prefix="mlflow-team-"))
    home.chmod(0o755)  # PostgreSQL runs as the `postgres` user when the tests run as root
    port, pgport = free_port(), free_port()
    env = {**os.environ, "MLFLOW_PORT": str(port), "PG_PORT": str(pgport)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = [str(ROOT / "tools" / "mlflow_server.sh")]
    started = subprocess.run(["bash", *script, "start", str(home / "srv")], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"http://127.0.0.1:{port}", f"postgresql+psycopg2://mlflow@127.0.0.1:{pgport}/optuna", home / "srv"
    finally:
        subprocess.run(["bash", *script, "stop", str(home / "srv")], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


# what a client of the local S3 endpoint presents (moto accepts any credentials)
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
S3_CLIENT = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}  # boto3


@contextmanager
def s3_endpoint(bucket: str) -> Iterator[str]:
    """A real S3-compatible server (``moto_server``, the moto package) on loopback, with ``bucket``.

    Yields its endpoint URL; clients need :data:`S3_ENV`'s credentials.
    """
    import signal

    import boto3

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/moto-api/", server, 60, "moto_server")
        boto3.client("s3", endpoint_url=url, **S3_CLIENT).create_bucket(Bucket=bucket)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def wait_for_http(url: str, process: subprocess.Popen, seconds: float, name: str) -> None:
    """Wait until ``url`` answers, failing if ``process`` (the server) exits or ``seconds`` pass."""
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, f"{name} did not start"
            time.sleep(0.5)
