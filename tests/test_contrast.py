"""contrast: minimal-edit pairs, read with checks and scored per side and per pair."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.common.data.pairs import read_pairs
from stages.common.errors import DataError
from stages.common.params.schema import PairsConfig
from stages.contrast import contrast

CFG = PairsConfig(source="x", text_column="Text", label_column="Sentiment", pair_column="batch_id",
                  positive_label="Positive")  # fmt: skip


def _write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    text = "Sentiment\tText\tbatch_id\n" + "".join(f"{s}\t{t}\t{b}\n" for s, t, b in rows)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)
    return path


def test_pairs_are_read_two_rows_each_with_opposite_labels(tmp_path: Path) -> None:
    rows = [("Negative", '"Dull," she said.', "7"), ("Positive", '"Fun," she said.', "7"),
            ("Positive", "a great film", "9"), ("Negative", "an awful film", "9")]  # fmt: skip
    df = read_pairs(_write(tmp_path / "pairs.tsv.gz", rows), CFG)
    assert list(df.columns) == ["pair", "text", "label"]
    assert df["label"].tolist() == [0, 1, 1, 0] and df["pair"].tolist() == ["7", "7", "9", "9"]
    assert df["text"][0] == '"Dull," she said.'  # quote marks are text, not CSV quoting


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("Positive", "a", "1"), ("Positive", "b", "1"), ("Negative", "c", "2"), ("Positive", "d", "2")],
         "pair '1' (batch_id) has 2 rows and 2 positive"),
        ([("Positive", "a", "1"), ("Negative", "b", "1"), ("Negative", "c", "1")], "pair '1' (batch_id) has 3 rows"),
        ([("Positive", "a", "1"), ("Bad", "b", "1"), ("Negative", "c", "2")], "must hold 'Positive' and one other"),
        ([("Positive", "a", "1"), ("Negative", " ", "1")], "column 'Text' row 1: empty text"),
        ([], "no pairs (the table has a header and no rows)"),
    ],
)  # fmt: skip
def test_a_bad_pairs_table_names_the_file_and_what_is_wrong(tmp_path: Path, rows: list, message: str) -> None:
    path = _write(tmp_path / "pairs.tsv.gz", rows)
    with pytest.raises(DataError) as err:
        read_pairs(path, CFG)
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    with pytest.raises(DataError, match=r"column 'Label' not found"):
        read_pairs(path, PairsConfig(**{**CFG.__dict__, "label_column": "Label"}))


def test_pair_consistency_counts_pairs_with_both_members_right() -> None:
    pairs = pd.DataFrame({"pair": ["a", "a", "b", "b", "c", "c", "d", "d"], "label": [1, 0] * 4})
    # a: both right; b: positive wrong; c: negative wrong; d: both right, barely
    proba = np.array([0.9, 0.1, 0.4, 0.2, 0.8, 0.7, 0.51, 0.49])
    m = contrast(pairs, proba, threshold=0.5, resamples=500, seed=1)
    assert m["pairs"] == 4 and m["pair_consistency"] == 0.5
    assert m["accuracy_positive"] == 0.75 and m["accuracy_negative"] == 0.75 and m["accuracy"] == 0.75
    assert m["positive_scored_higher"] == 1.0  # every positive member above its twin, right or not
    assert 0.0 <= m["pair_consistency_low"] <= 0.5 <= m["pair_consistency_high"] <= 1.0
    assert m["pair_consistency_low"] < m["pair_consistency_high"]
    assert contrast(pairs, proba, 0.5, 500, seed=1) == m  # seeded
    reordered = pairs.iloc[::-1].reset_index(drop=True)
    assert contrast(reordered, proba[::-1], 0.5, 500, seed=1)["pair_consistency"] == 0.5
