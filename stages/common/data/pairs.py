"""Tables of minimal-edit pairs: a review and a copy edited as little as possible to flip its label."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from stages.common.errors import DataError
from stages.common.params.schema import PairsConfig

PAIR_COLUMNS = ("pair", "text", "label")


def read_pairs(path: Path, cfg: PairsConfig) -> pd.DataFrame:
    """The pairs as ``pair, text, label`` (1 positive, 0 negative), two rows per pair, checked.

    A tab-separated file (``.tsv``, any compression pandas infers) or a CSV. Every error names the
    file, and the row or pair at fault.
    """
    tsv = ".tsv" in [s.lower() for s in path.suffixes]
    quoting = csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL  # a review may open with a quote mark
    try:
        raw = pd.read_csv(path, sep="\t" if tsv else ",", keep_default_na=False, dtype=str, quoting=quoting)
    except (ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read pairs table ({exc})") from None
    missing = [c for c in (cfg.text_column, cfg.label_column, cfg.pair_column) if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found (columns: {', '.join(map(str, raw.columns))})")
    if raw.empty:
        raise DataError(f"{path}: no pairs (the table has a header and no rows)")
    labels = raw[cfg.label_column].str.strip()
    values = sorted(set(labels))
    if len(values) != 2 or cfg.positive_label not in values:
        raise DataError(
            f"{path}: column {cfg.label_column!r} must hold {cfg.positive_label!r} and one other value, got {values}"
        )
    texts = raw[cfg.text_column]
    empty = texts.str.strip() == ""
    if empty.any():
        raise DataError(f"{path}: column {cfg.text_column!r} row {int(np.flatnonzero(empty)[0])}: empty text")
    df = pd.DataFrame(
        {
            "pair": raw[cfg.pair_column].str.strip(),
            "text": texts,
            "label": (labels == cfg.positive_label).astype(np.int8),
        }
    )
    counts = df.groupby("pair", sort=False)["label"].agg(["size", "sum"])
    bad = counts[(counts["size"] != 2) | (counts["sum"] != 1)]
    if len(bad):
        pair, row = bad.index[0], bad.iloc[0]
        raise DataError(
            f"{path}: pair {pair!r} ({cfg.pair_column}) has {row['size']} rows and {row['sum']} positive: "
            "a pair is two rows with opposite labels"
        )
    return df.reset_index(drop=True)


def pair_rows(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs (:func:`read_pairs`) as training rows of a prepared table. Pure.

    Ids are ``pairs/<pair>/<pos|neg>`` and ``group`` the pair: the validation carve keeps a group
    together and each model weighs its rows by ``pair_weight``.
    """
    return pd.DataFrame(
        {
            "id": "pairs/" + pairs["pair"] + "/" + np.where(pairs["label"] == 1, "pos", "neg"),
            "text": pairs["text"],
            "label": pairs["label"].astype(np.int8),
            "split": "train",
            "rating": np.nan,
            "group": pairs["pair"],
        }
    ).reset_index(drop=True)
