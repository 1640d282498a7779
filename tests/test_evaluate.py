"""evaluate: metrics against a hand-computed example."""

from __future__ import annotations

import numpy as np
import pytest

from stages.common.cli import DataError
from stages.evaluate import EvaluateConfig, confusion_png, evaluate_predictions


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
