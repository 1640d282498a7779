"""Shared fixtures: generated datasets on disk."""

from __future__ import annotations

import os
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
