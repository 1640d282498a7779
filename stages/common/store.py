"""The on-disk formats stages hand to each other (paths themselves live in dvc.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.common.cli import DataError
from stages.common.features import Featurizer
from stages.common.io import features_from_npz, load_npz

FEATURIZER_FILE = "featurizer.json"
TABLE_COLUMNS = ("id", "text", "label", "split", "rating")


@dataclass(frozen=True)
class Split:
    """One split of a features directory: model inputs, labels and review ids."""

    X: Any
    y: np.ndarray
    ids: np.ndarray


def read_table(path: Path) -> pd.DataFrame:
    """Read a prepared review table, checking the columns every stage relies on."""
    df = pd.read_parquet(path)
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found; re-run the prepare stage")
    return df


def load_featurizer(features_dir: Path) -> Featurizer:
    """The featurizer saved in a features directory."""
    return Featurizer.from_json((Path(features_dir) / FEATURIZER_FILE).read_text(encoding="utf-8"))


def load_split(features_dir: Path, split: str) -> Split:
    """Load ``<features_dir>/<split>.npz`` (sparse or dense ``X``, ``y``, ``id``)."""
    path = Path(features_dir) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: features not found; re-run the vectorize stage")
    arrays = load_npz(path)
    return Split(X=features_from_npz(arrays), y=arrays["y"].astype(np.int64), ids=arrays["id"])
