"""report: a self-contained page that escapes review text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.common.config import EvaluateConfig
from stages.correlate import lollipop_png
from stages.evaluate import confusion_png, evaluate_predictions, order_sensitivity
from stages.report import build_report

PNG = lollipop_png(pd.DataFrame({"word": ["a", "b"], "correlation": [0.1, -0.1]}), 1, "t")


def _inputs() -> dict:
    ev = evaluate_predictions([0, 1, 0, 1], [0.2, 0.8, 0.6, 0.4], EvaluateConfig())
    ev.metrics["shuffled_words"] = order_sensitivity(
        np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.6, 0.4]), np.array([0.3, 0.4, 0.6, 0.1]), 0.5
    )
    explanation = {
        "review_id": "test/pos/1_9",
        "label": 1,
        "predicted": 1,
        "proba": 0.9,
        "score": 0.5,
        "words": [["great", 0.4], ["script", 0.1]],
    }
    model = {
        "metrics": ev.metrics,
        "explain_metrics": {"seconds_per_explanation": 0.1, "faithfulness_k": [1, 2]},
        "confusion_png": confusion_png(ev.metrics, "t"),
        "roc": ev.roc,
        "history": pd.DataFrame({"epoch": [1, 2], "loss": [0.6, 0.5], "val_loss": [0.7, 0.6]}),
        "features_png": PNG,
        "heatmap_png": PNG,
        "explanations": [explanation],
        "sp_pick": ["test/pos/1_9"],
        "global_words": pd.DataFrame({"word": ["<b>great</b>"], "importance": [0.4]}),
    }
    return {
        "card": {
            "splits": {"train": {"rows": 4, "negative": 2, "positive": 2}},
            "text_words": {"median": 3},
            "source": {"location": "x", "via": "path", "sha256": "0"},
        },
        "models": {"mlp": model, "lstm": model},
        "texts": {"test/pos/1_9": "A great film <script>alert('x')</script>"},
        "lollipop_png": PNG,
        "suspicious": pd.DataFrame({"word": ["<i>zombie</i>"], "importance": [0.3]}),
        "correlate_metrics": {"mlp": {"spearman_lime_vs_correlation": 0.5}},
    }


def test_report_is_self_contained_and_escapes_reviews() -> None:
    page = build_report("imdb", _inputs())
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "<b>great" not in page and "<i>zombie" not in page
    assert "&lt;" in page and "&lt;b&gt;great&lt;/b&gt;" in page
    assert page.count("data:image/png;base64,") >= 8  # every chart embedded
    assert "src='http" not in page and "href=" not in page
    assert "<td>0.2500</td>" in page  # the shuffled reviews' accuracy: one of four right
    for text in ("accuracy", "roc_auc", "words shuffled", "comprehensiveness", "SP-LIME", "Suspicious words"):
        assert text in page
