"""Outputs are written atomically and deterministically."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from stages.common.data.io import atomic_path, features_from_npz, features_to_npz, load_npz, npz_bytes, write_json


def test_failed_write_leaves_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_failed_directory_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "features"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "train-00000.npz").write_bytes(b"x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_npz_is_byte_identical_and_scipy_readable(tmp_path: Path) -> None:
    m = sp.random(20, 30, density=0.2, format="csr", dtype=np.float32, random_state=0)
    arrays = {**features_to_npz(m), "y": np.arange(20, dtype=np.int8), "id": np.array([f"r{i}" for i in range(20)])}
    first = npz_bytes(arrays)
    time.sleep(1.1)  # numpy.savez would stamp a new time here
    assert npz_bytes(arrays) == first
    path = tmp_path / "x.npz"
    path.write_bytes(first)
    loaded = load_npz(path)
    back = features_from_npz(loaded)
    assert (back != m).nnz == 0
    assert list(loaded["id"]) == [f"r{i}" for i in range(20)]
    # scipy's own reader understands the same file when only the matrix is stored
    only = tmp_path / "m.npz"
    only.write_bytes(npz_bytes({k[2:]: v for k, v in features_to_npz(m).items()} | {"format": np.array("csr")}))
    assert (sp.load_npz(only) != m).nnz == 0


def test_a_write_killed_earlier_is_cleaned_up_by_the_next_run(tmp_path: Path) -> None:
    target = tmp_path / "model.keras"
    stale = tmp_path / ".model.tmp.keras"  # what a SIGKILL mid-write leaves behind
    stale.write_bytes(b"half a model")
    with atomic_path(target) as tmp:
        assert tmp == stale and not tmp.exists()
        tmp.write_bytes(b"whole model")
    assert target.read_bytes() == b"whole model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_restamp_zip_fixes_member_times_keeps_bytes_and_fails_cleanly(tmp_path: Path) -> None:
    import zipfile

    from stages.common.data.io import ZIP_EPOCH, restamp_zip

    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:  # members stamped with the current time
        zf.writestr("data.bin", b"\x00\x01" * 1000)
        zf.writestr("meta.json", b'{"when": "now"}')
    restamp_zip(path, {"meta.json": lambda raw: raw.replace(b"now", b"then")})
    with zipfile.ZipFile(path) as zf:
        assert [(i.filename, i.date_time) for i in zf.infolist()] == [("data.bin", ZIP_EPOCH), ("meta.json", ZIP_EPOCH)]
        assert zf.read("data.bin") == b"\x00\x01" * 1000 and zf.read("meta.json") == b'{"when": "then"}'
    # not a zip: an error, the file as it was, no temporary left behind
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(zipfile.BadZipFile):
        restamp_zip(bad)
    assert bad.read_bytes() == b"not a zip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "bad.zip"]


def test_a_stage_reads_only_the_split_columns_or_reviews_it_needs(tmp_path: Path) -> None:
    import pandas as pd

    from stages.common.data.store import read_table
    from stages.common.errors import DataError

    table = pd.DataFrame({"id": [f"r{i}" for i in range(9)], "text": [f"review {i}" for i in range(9)],
                          "label": [0, 1, 0] * 3, "split": ["train", "test", "test"] * 3, "rating": 1.0})  # fmt: skip
    path = tmp_path / "t.parquet"
    table.to_parquet(path, row_group_size=4)
    test = read_table(path, ["id", "text"], split="test")
    assert list(test.columns) == ["id", "text"] and test["id"].tolist() == ["r1", "r2", "r4", "r5", "r7", "r8"]
    assert read_table(path, ["text"], ids=["r8", "r0"])["text"].tolist() == ["review 0", "review 8"]
    assert read_table(path).equals(table)
    with pytest.raises(DataError, match=r"t\.parquet: column 'in_train' not found; re-run the prepare stage"):
        read_table(path, ["id", "in_train"], split="test")


def test_reading_a_table_row_group_by_row_group_holds_a_row_group_not_the_file(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from stages.common.data.store import iter_table

    letters = np.random.default_rng(0).integers(97, 123, size=(2_000, 20_000), dtype=np.uint8)
    table = pa.table({"id": [f"r{i}" for i in range(2_000)], "text": [r.tobytes().decode() for r in letters],
                      "label": pa.array([1] * 2_000, pa.int8()), "split": ["test"] * 2_000})  # fmt: skip
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=100)  # 40 MB of incompressible text, 20 row groups
    del table, letters
    before = pa.total_allocated_bytes()
    held = [pa.total_allocated_bytes() - before for _ in iter_table(path, ["id", "text"], rows=100, ids=["r0"])]
    assert len(held) == 20
    assert max(held) < 10 << 20  # pre-buffered, pyarrow held most of the 40 MB
