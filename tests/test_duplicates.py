"""Duplicates and near-duplicates in the data card, de-duplicated test metrics, cross-domain scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stages.common.data.duplicates import DuplicateIndex, find_duplicates, normalise
from stages.crossdomain import cross_domain
from stages.evaluate import deduplicated
from tests.synthetic import reviews_frame

LONG = " ".join(f"word{i}" for i in range(60))


def _corpus() -> pd.DataFrame:
    texts = reviews_frame(40, seed=2)["text"].tolist()
    rows = [(f"tr{i}", t, "train") for i, t in enumerate(texts[:30])]
    rows += [(f"te{i}", t, "test") for i, t in enumerate(texts[30:])]
    rows += [
        ("tr_copy", texts[0].upper() + "!!", "train"),  # the same words as tr0: an exact duplicate
        ("te_leak", "  " + texts[1].replace(" ", "  "), "test"),  # tr1 with other spacing
        ("tr_long", LONG, "train"),
        ("te_near", LONG.replace("word30", "changed"), "test"),  # one word of 60 changed
        ("te_twice_a", "a test review written twice over here", "test"),
        ("te_twice_b", "A test review, written twice over here.", "test"),
    ]
    return pd.DataFrame(rows, columns=["id", "text", "split"])


def test_normalise_ignores_case_punctuation_and_spacing() -> None:
    assert normalise("  Great  film!!<br />Loved it ") == "great film br loved it"


def test_exact_and_near_duplicates_within_and_across_splits() -> None:
    df = _corpus()
    dups = find_duplicates(df["id"], df["text"], df["split"], jaccard=0.8, seed=1)
    card = dups.card
    assert card["exact"]["within_train"] == 1 and card["exact"]["within_test"] == 1
    assert card["exact"]["test_in_train"] == 1 and card["exact"]["examples"] == [["te_leak", "tr1"]]
    assert card["near"]["test_in_train"] == 1 and card["near"]["examples"] == [["te_near", "tr_long"]]
    assert card["test_in_train"] == 2
    assert sorted(df.loc[dups.in_train, "id"]) == ["te_leak", "te_near"]
    # a stricter threshold than their similarity (55 of 61 word triples shared) keeps them apart
    strict = find_duplicates(df["id"], df["text"], df["split"], jaccard=0.95, seed=1)
    assert strict.card["near"]["test_in_train"] == 0 and strict.card["test_in_train"] == 1


def test_generated_reviews_without_copies_have_no_duplicates() -> None:
    df = _corpus().iloc[:40]
    card = find_duplicates(df["id"], df["text"], df["split"], jaccard=0.8, seed=1).card
    assert card["test_in_train"] == 0 and card["exact"]["within_train"] == 0


def test_deduplicated_metrics_leave_out_the_reviews_seen_in_training() -> None:
    y = np.array([1, 1, 0, 0, 1])
    proba = np.array([0.9, 0.2, 0.1, 0.3, 0.8])
    in_train = np.array([False, True, False, False, False])  # the one mistake was a leaked review
    m = deduplicated(y, proba, in_train, 0.5)
    assert m["removed"] == 1 and m["n_test"] == 4 and m["accuracy"] == 1.0 and m["roc_auc"] == 1.0


def test_cross_domain_scores_each_other_tables_test_split() -> None:
    other = pd.DataFrame({"text": ["great", "awful", "great", "awful"], "label": [1, 0, 0, 0]})
    scores = cross_domain({"yelp": other}, lambda texts: np.array([0.9 if "great" in t else 0.1 for t in texts]), 0.5)
    assert scores["yelp"]["n_test"] == 4
    assert scores["yelp"]["accuracy"] == pytest.approx(0.75)
    assert scores["yelp"]["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-6)


def test_reviews_added_in_chunks_find_the_same_twins_as_at_once() -> None:
    df = _corpus()
    whole = find_duplicates(df["id"], df["text"], df["split"], jaccard=0.8, seed=1)
    with DuplicateIndex(jaccard=0.8, seed=1) as index:
        for start in range(0, len(df), 7):
            index.add(df["text"].iloc[start : start + 7].tolist())
        chunked = index.find(np.arange(len(df)), df["split"], df["id"])
        assert chunked.card == whole.card and (chunked.in_train == whole.in_train).all()
        test_only = np.flatnonzero(df["split"] == "test")  # a selection: the training twins are not in it
        assert index.find(test_only, df["split"].iloc[test_only], df["id"].iloc[test_only]).card["test_in_train"] == 0
