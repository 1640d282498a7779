"""The on-disk formats stages hand to each other (paths themselves live in dvc.yaml).

A prepared table is Parquet in row groups (:func:`iter_table` reads it a chunk at a time); a
features directory is ``featurizer.json`` plus each split in numbered ``.npz`` shards of
``SHARD_ROWS`` reviews (:func:`iter_split`), so that neither has to fit in memory at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from stages.common.data import layout
from stages.common.data.io import atomic_path, features_from_npz, features_to_npz, load_npz, npz_bytes
from stages.common.data.raw import CHUNK_ROWS, open_parquet
from stages.common.errors import DataError
from stages.common.features.featurizer import Featurizer, in_pieces

TABLE_COLUMNS = ("id", "text", "label", "split", "rating")
SHARD_ROWS = 50_000  # reviews per features shard: what a stage holds of one split at a time when it streams


@dataclass(frozen=True)
class Split:
    """One split of a features directory: model inputs, labels and review ids."""

    X: Any
    y: np.ndarray
    ids: np.ndarray
    group: np.ndarray | None = None  # per row: a minimal-edit pair's id (datasets.<name>.augment), else ""


def read_table(
    path: Path, columns: Sequence[str] | None = None, split: str | None = None, ids: Iterable[str] | None = None
) -> pd.DataFrame:
    """Read a prepared review table, or only its ``columns`` of one ``split`` or of some review ``ids``.

    Read a row group at a time and filtered as it is read: a stage that needs the test split never
    holds the training split. Checks the columns every stage relies on.
    """
    if columns is None:
        columns = _prepared_table(path, TABLE_COLUMNS).schema_arrow.names
    parts = list(iter_table(path, columns, split=split, ids=ids))
    if not parts:  # a table without rows
        return pq.read_table(path, columns=list(columns)).to_pandas()
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def iter_table(
    path: Path,
    columns: Sequence[str],
    rows: int = CHUNK_ROWS,
    split: str | None = None,
    ids: Iterable[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """A prepared table's ``columns`` (of one ``split``, or some review ``ids``), up to ``rows`` reviews
    at a time (its row groups, never the whole table)."""
    wanted = None if ids is None else pa.array(list(ids), type=pa.string())
    extra = [c for c, used in (("split", split is not None), ("id", wanted is not None)) if used and c not in columns]
    read = [*columns, *extra]
    for batch in _prepared_table(path, read).iter_batches(batch_size=rows, columns=read):
        keep = None
        if split is not None:
            keep = pc.equal(batch.column("split"), split)
        if wanted is not None:
            found = pc.is_in(batch.column("id"), value_set=wanted)
            keep = found if keep is None else pc.and_(keep, found)
        if keep is not None:
            batch = batch.filter(keep)
        yield batch.select(list(columns)).to_pandas()


def _prepared_table(path: Path, columns: Sequence[str]) -> pq.ParquetFile:
    """The prepared table at ``path``, opened and checked for ``columns``, or an error naming it."""
    try:
        table = open_parquet(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read the prepared table ({exc}); re-run the prepare stage") from None
    missing = [c for c in columns if c not in table.schema_arrow.names]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found; re-run the prepare stage")
    return table


def load_featurizer(features_dir: Path) -> Featurizer:
    """The featurizer saved in a features directory."""
    return Featurizer.from_json((Path(features_dir) / layout.FEATURIZER).read_text(encoding="utf-8"))


def shard_paths(features_dir: Path, split: str) -> list[Path]:
    """``<features_dir>/<split>-00000.npz``, ``-00001``, ...: one split's shards, in order."""
    paths = sorted(Path(features_dir).glob(f"{split}-*.npz"))
    if not paths:
        raise DataError(f"{Path(features_dir) / split}-*.npz: features not found; re-run the vectorize stage")
    return paths


def iter_split(features_dir: Path, split: str) -> Iterator[Split]:
    """One split's features, a shard (``SHARD_ROWS`` reviews) at a time."""
    for path in shard_paths(features_dir, split):
        arrays = load_npz(path)
        yield Split(X=features_from_npz(arrays), y=arrays["y"].astype(np.int64), ids=arrays["id"],
                    group=arrays.get("group"))  # fmt: skip


def load_split(features_dir: Path, split: str) -> Split:
    """One split's features, every shard at once: sparse or dense ``X``, ``y``, ``ids``, ``group``."""
    shards = list(iter_split(features_dir, split))
    if len(shards) == 1:
        return shards[0]
    X = [s.X for s in shards]
    groups = [s.group if s.group is not None else np.full(len(s.y), "") for s in shards]
    return Split(
        X=sp.vstack(X, format="csr") if sp.issparse(X[0]) else np.concatenate(X),
        y=np.concatenate([s.y for s in shards]),
        ids=np.concatenate([s.ids for s in shards]),
        group=np.concatenate(groups) if any(s.group is not None for s in shards) else None,
    )


def shard_arrays(part: pd.DataFrame, featurizer: Featurizer, split: str) -> dict[str, np.ndarray]:
    """One split's reviews (a shard, or all of a small table's) through a fitted featurizer: the
    arrays of a ``.npz`` shard (``X``, ``y``, ``id``; ``group`` for training rows with pairs). Pure."""
    arrays = features_to_npz(in_pieces(part["text"].tolist(), featurizer.transform))
    arrays["y"] = part["label"].to_numpy(dtype=np.int8)
    arrays["id"] = part["id"].to_numpy(dtype=str)
    if split == "train" and "group" in part and (part["group"] != "").any():
        arrays["group"] = part["group"].to_numpy(dtype=str)
    return arrays


def transform_splits(table: pd.DataFrame, featurizer: Featurizer) -> dict[str, dict[str, np.ndarray]]:
    """Both splits of an in-memory table through a fitted featurizer, as shard arrays. Pure."""
    return {split: shard_arrays(table[table["split"] == split], featurizer, split) for split in ("train", "test")}


def split_shards(chunks: Iterable[pd.DataFrame], rows: int = SHARD_ROWS) -> Iterator[tuple[str, pd.DataFrame]]:
    """Regroup table chunks into (split, reviews) shards of ``rows`` reviews, the last of a split shorter."""
    pending: dict[str, list[pd.DataFrame]] = {"train": [], "test": []}
    held = dict.fromkeys(pending, 0)
    for chunk in chunks:
        for split in pending:
            part = chunk[chunk["split"] == split]
            pending[split].append(part)
            held[split] += len(part)
            while held[split] >= rows:
                rows_of_split = pd.concat(pending[split], ignore_index=True)
                yield split, rows_of_split.iloc[:rows]
                pending[split], held[split] = [rows_of_split.iloc[rows:]], held[split] - rows
    for split, parts in pending.items():
        if held[split]:
            yield split, pd.concat(parts, ignore_index=True)


class FeatureWriter:
    """Writes a features directory atomically: ``featurizer.json`` and each split's numbered shards."""

    def __init__(self, out: Path, featurizer: Featurizer) -> None:
        self.out, self.featurizer = Path(out), featurizer
        self._stack = contextlib.ExitStack()
        self._count: dict[str, int] = {}

    def __enter__(self) -> FeatureWriter:
        self.tmp = self._stack.enter_context(atomic_path(self.out))
        self.tmp.mkdir()
        (self.tmp / layout.FEATURIZER).write_text(self.featurizer.to_json(), encoding="utf-8")
        return self

    def write(self, split: str, arrays: dict[str, np.ndarray]) -> None:
        """The next shard of ``split``."""
        k = self._count.get(split, 0)
        (self.tmp / f"{split}-{k:05d}.npz").write_bytes(npz_bytes(arrays))
        self._count[split] = k + 1

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(*exc)


def write_features(out: Path, featurizer: Featurizer, splits: dict[str, dict[str, np.ndarray]]) -> None:
    """Write a small table's features (:func:`transform_splits`): ``SHARD_ROWS`` reviews per shard."""
    with FeatureWriter(out, featurizer) as writer:
        for split, arrays in splits.items():
            n = len(arrays["y"])
            if n <= SHARD_ROWS:
                writer.write(split, arrays)
                continue
            X = features_from_npz(arrays)
            for start in range(0, n, SHARD_ROWS):
                rows = slice(start, start + SHARD_ROWS)
                labels = {k: arrays[k][rows] for k in ("y", "id", "group") if k in arrays}
                writer.write(split, {**features_to_npz(X[rows]), **labels})
