"""correlate: phi correlation against a hand-computed example; the cross-check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stages.common.params.schema import CorrelateConfig
from stages.correlate import cross_check, lollipop_png, phi, top_words, word_label_correlation

TEXTS = ["good film", "good fun", "bad film", "bad plot good", "dull plot"]
LABELS = np.array([1, 1, 0, 0, 0])


def whole() -> list[tuple[list[str], np.ndarray]]:
    """The training reviews in one chunk."""
    return [(TEXTS, LABELS)]


def review_by_review() -> list[tuple[list[str], np.ndarray]]:
    """The same reviews one per chunk."""
    return [([t], LABELS[i : i + 1]) for i, t in enumerate(TEXTS)]


def phi_table(n11: int, n10: int, n01: int, n00: int) -> float:
    """Phi coefficient of a 2×2 table (word present/absent × positive/negative)."""
    return (n11 * n00 - n10 * n01) / math.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))


def test_phi_matches_a_hand_computed_table() -> None:
    corr = word_label_correlation(whole, CorrelateConfig(max_tokens=100, skip_top=0))
    got = dict(zip(corr["word"], corr["correlation"], strict=True))
    # "good": in 3 reviews, 2 of them positive; absent from 2, both negative
    assert got["good"] == pytest.approx(phi_table(2, 1, 0, 2))
    assert got["bad"] == pytest.approx(phi_table(0, 2, 2, 1))
    assert got["film"] == pytest.approx(phi_table(1, 1, 1, 2))
    assert got["good"] == pytest.approx(np.corrcoef([1, 1, 0, 1, 0], LABELS)[0, 1])
    assert corr["correlation"].is_monotonic_decreasing
    assert corr.loc[corr.word == "good", "reviews"].item() == 3


def test_phi_is_measured_for_any_word() -> None:
    got = phi(whole, ["good", "plot", "absent"]).set_index("word")["correlation"]
    assert got["plot"] == pytest.approx(phi_table(0, 2, 2, 1))
    assert got["absent"] == 0.0  # never present: undefined, reported as 0


def test_chunks_give_the_same_vocabulary_and_correlations() -> None:
    cfg = CorrelateConfig(max_tokens=4, skip_top=1)
    assert top_words(review_by_review, cfg) == top_words(whole, cfg)
    pd.testing.assert_frame_equal(word_label_correlation(review_by_review, cfg), word_label_correlation(whole, cfg))


def test_skip_top_drops_the_most_frequent_words() -> None:
    corr = word_label_correlation(whole, CorrelateConfig(max_tokens=100, skip_top=1))
    assert "good" not in set(corr["word"])  # "good" is the most frequent word


def test_cross_check_flags_important_uncorrelated_words() -> None:
    corr = pd.DataFrame({"word": ["great", "awful", "zombie", "the"], "correlation": [0.4, -0.4, 0.01, 0.0]})
    chart = {"great", "awful"}
    importance = pd.DataFrame(
        {
            "word": ["great", "Awful", "zombie", "the", "outside"],
            "importance": [0.3, 0.3, 0.25, 0.01, 0.02],
            "mean_weight": [0.3, -0.3, -0.25, 0.01, 0.02],
        }
    )
    cfg = CorrelateConfig(suspicious_min_importance_quantile=0.5)
    metrics, suspicious = cross_check(corr, importance, cfg, chart)
    assert suspicious["word"].tolist() == ["zombie"]
    assert suspicious["in_chart"].tolist() == [False]
    assert metrics["words_measured"] == 4 and metrics["words_explained"] == 5
    # ranks by weight: awful 1, zombie 2, the 3, great 4; by correlation: awful 1, the 2, zombie 3, great 4
    assert metrics["spearman_vs_correlation"] == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert lollipop_png(corr, 2, "t").startswith(b"\x89PNG")
