"""evaluate: metrics against a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest

from stages.common.errors import DataError
from stages.common.features.featurizer import TokenBatch, fit_featurizer
from stages.common.params.schema import EvaluateConfig, FeaturizerConfig
from stages.evaluate import confusion_png, evaluate_predictions, order_sensitivity, shuffled_features


def test_metrics_match_a_hand_computed_example() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.4, 0.05])
    m = evaluate_predictions(y, p, EvaluateConfig()).metrics
    # predictions at 0.5: 1 1 0 1 0 0 0 0 → tp=2 fn=1 fp=1 tn=4
    assert m["confusion"] == {
        "tn": 4,
        "fp": 1,
        "fn": 1,
        "tp": 2,
        "tn_pct": 80.0,
        "fp_pct": 20.0,
        "fn_pct": pytest.approx(33.333333),
        "tp_pct": pytest.approx(66.666667),
    }
    assert m["accuracy"] == 0.75
    assert m["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2, abs=1e-6)
    # AUC: of 15 positive/negative pairs, the positive ranks higher in 13
    assert m["roc_auc"] == pytest.approx(13 / 15, abs=1e-6)
    expected_ll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert m["log_loss"] == pytest.approx(expected_ll, abs=1e-6)


def test_threshold_and_curves() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    p = np.clip(y * 0.3 + rng.random(5000) * 0.7, 0, 1)
    ev = evaluate_predictions(y, p, EvaluateConfig(threshold=0.9, curve_points=50))
    assert ev.metrics["confusion"]["tp"] + ev.metrics["confusion"]["fp"] == int((p >= 0.9).sum())
    assert len(ev.roc) <= 50 and len(ev.pr) <= 50
    assert ev.roc["fpr"].iloc[0] == 0 and ev.roc["tpr"].iloc[-1] == 1
    assert ev.roc["fpr"].is_monotonic_increasing


def test_one_class_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="one class only"):
        evaluate_predictions(np.ones(4), np.full(4, 0.7), EvaluateConfig())


def test_confusion_png_is_a_png() -> None:
    m = evaluate_predictions(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.6, 0.4]), EvaluateConfig()).metrics
    assert confusion_png(m, "t").startswith(b"\x89PNG")


TEXTS = [
    "the plot was not good at all and the acting was worse",
    "a wonderful film with a great cast and a clever script",
    "short",
    "",
]


def test_shuffled_words_keep_each_reviews_words_in_another_order() -> None:
    seq = fit_featurizer(TEXTS, FeaturizerConfig(kind="seq", max_tokens=50, maxlen=6, min_count=1))
    plain = seq.transform(TEXTS)
    shuffled = shuffled_features(seq, TEXTS, seed=3)
    for a, b in zip(plain, shuffled, strict=True):  # the same words the model reads (the last 6), padding kept
        assert sorted(a.tolist()) == sorted(b.tolist())
        assert (a == 0).sum() == (b == 0).sum()
    assert not np.array_equal(plain[:2], shuffled[:2])
    np.testing.assert_array_equal(shuffled, shuffled_features(seq, TEXTS, seed=3))  # seeded
    np.testing.assert_array_equal(shuffled, shuffled_features(seq, TEXTS, seed=3, rows=1))  # piece by piece
    assert not np.array_equal(shuffled, shuffled_features(seq, TEXTS, seed=4))

    bow = fit_featurizer(TEXTS, FeaturizerConfig(kind="bow", max_tokens=200, ngram_range=(1, 2), min_count=1))
    words = bow.vocabulary.index("not good")
    moved = shuffled_features(bow, TEXTS, seed=3)
    assert (moved != shuffled_features(bow, TEXTS, seed=3, rows=3)).nnz == 0
    unigrams = [i for i, t in enumerate(bow.vocabulary) if " " not in t]
    np.testing.assert_array_equal(moved[:, unigrams].toarray(), bow.transform(TEXTS)[:, unigrams].toarray())
    assert moved[0, words] == 0  # "not good" is a pair of the review as written only
    batch = TokenBatch.from_texts(TEXTS)
    assert bow.shuffle_words(batch, 3).rows.tolist() == batch.rows.tolist()


def test_order_sensitivity_against_a_hand_computed_example() -> None:
    y = np.array([1, 1, 0, 0])
    plain = np.array([0.9, 0.8, 0.2, 0.1])
    shuffled = np.array([0.6, 0.4, 0.7, 0.1])  # one positive and one negative flip
    m = order_sensitivity(y, plain, shuffled, threshold=0.5)
    assert m["accuracy"] == 0.5 and m["flipped"] == 0.5 and m["balanced_accuracy"] == 0.5
    assert m["roc_auc"] == pytest.approx(0.5)  # of 4 pairs: 0.6>0.1, 0.4>0.1 right; 0.6<0.7, 0.4<0.7 wrong
    assert order_sensitivity(y, plain, plain, 0.5)["flipped"] == 0.0
