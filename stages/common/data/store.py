"""The on-disk formats stages hand to each other (paths themselves live in dvc.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.common.data import layout
from stages.common.data.io import atomic_path, features_from_npz, features_to_npz, load_npz, npz_bytes
from stages.common.errors import DataError
from stages.common.features.featurizer import Featurizer

TABLE_COLUMNS = ("id", "text", "label", "split", "rating")


@dataclass(frozen=True)
class Split:
    """One split of a features directory: model inputs, labels and review ids."""

    X: Any
    y: np.ndarray
    ids: np.ndarray
    group: np.ndarray | None = None  # per row: a minimal-edit pair's id (datasets.<name>.augment), else ""


def read_table(path: Path) -> pd.DataFrame:
    """Read a prepared review table, checking the columns every stage relies on."""
    df = pd.read_parquet(path)
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found; re-run the prepare stage")
    return df


def load_featurizer(features_dir: Path) -> Featurizer:
    """The featurizer saved in a features directory."""
    return Featurizer.from_json((Path(features_dir) / layout.FEATURIZER).read_text(encoding="utf-8"))


def load_split(features_dir: Path, split: str) -> Split:
    """Load ``<features_dir>/<split>.npz`` (sparse or dense ``X``, ``y``, ``id``)."""
    path = Path(features_dir) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: features not found; re-run the vectorize stage")
    arrays = load_npz(path)
    return Split(
        X=features_from_npz(arrays),
        y=arrays["y"].astype(np.int64),
        ids=arrays["id"],
        group=arrays.get("group"),
    )


def transform_splits(table: pd.DataFrame, featurizer: Featurizer) -> dict[str, dict[str, np.ndarray]]:
    """Both splits through a fitted featurizer, as the arrays of ``<split>.npz``. Pure."""
    splits: dict[str, dict[str, np.ndarray]] = {}
    for split in ("train", "test"):
        part = table[table["split"] == split]
        arrays = features_to_npz(featurizer.transform(part["text"].tolist()))
        arrays["y"] = part["label"].to_numpy(dtype=np.int8)
        arrays["id"] = part["id"].to_numpy(dtype=str)
        if split == "train" and "group" in part and (part["group"] != "").any():
            arrays["group"] = part["group"].to_numpy(dtype=str)
        splits[split] = arrays
    return splits


def write_features(out: Path, featurizer: Featurizer, splits: dict[str, dict[str, np.ndarray]]) -> None:
    """Write a features directory atomically: ``featurizer.json`` plus ``<split>.npz``."""
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / layout.FEATURIZER).write_text(featurizer.to_json(), encoding="utf-8")
        for split, arrays in splits.items():
            (tmp / f"{split}.npz").write_bytes(npz_bytes(arrays))
