"""report: a self-contained page that escapes review text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stages.common.params.schema import EvaluateConfig, ReportConfig
from stages.correlate import lollipop_png
from stages.evaluate import confusion_png, deduplicated, evaluate_predictions, order_sensitivity
from stages.report import build_report, build_scorecard

PNG = lollipop_png(pd.DataFrame({"word": ["a", "b"], "correlation": [0.1, -0.1]}), 1, "t")


def _inputs() -> dict:
    ev = evaluate_predictions([0, 1, 0, 1], [0.2, 0.8, 0.6, 0.4], EvaluateConfig())
    ev.metrics["deduplicated"] = deduplicated(
        np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.6, 0.4]), np.array([False, False, True, False]), 0.5
    )
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
        "explain_metrics": {
            "seconds_per_explanation": {"lime": 0.1, "shap": 0.05},
            "faithfulness_k": [1, 2],
            "random": {"aopc_comprehensiveness": 0.01, "aopc_sufficiency": 0.2},
            "lime": {"aopc_comprehensiveness": 0.2, "aopc_sufficiency": 0.0, "stability_top10_jaccard": 0.8},
            "shap": {"aopc_comprehensiveness": 0.3, "aopc_sufficiency": -0.1, "additivity_gap": 0.0},
            "agreement": {"lime_vs_shap": {"spearman": 0.5, "top10_overlap": 0.6}},
        },
        "ranking": [
            {"method": m, "comprehensiveness over random words": c, "sufficiency below random words": s}
            for m, c, s in (("shap", 0.29, 0.3), ("lime", 0.19, 0.2))
        ],
        "confusion_png": confusion_png(ev.metrics, "t"),
        "roc": ev.roc,
        "history": pd.DataFrame({"epoch": [1, 2], "loss": [0.6, 0.5], "val_loss": [0.7, 0.6]}),
        "methods": {
            m: {
                "features_png": PNG,
                "heatmap_png": PNG,
                "explanations": [explanation],
                "sp_pick": ["test/pos/1_9"],
                "global_words": pd.DataFrame({"word": ["<b>great</b>"], "importance": [0.4]}),
            }
            for m in ("shap", "lime")
        },
        "behaviour": [
            {
                "name": "negated positive",
                "kind": "mft",
                "n_cases": 40,
                "failed": 10,
                "failure_rate": 0.25,
                "skipped": None,
                "failing_examples": [{"text": "The <em>film</em> was not good.", "p_positive": 0.8}],
            },
            {
                "name": "person names swapped",
                "kind": "inv",
                "n_cases": 50,
                "failed": 1,
                "failure_rate": 0.02,
                "skipped": None,
                "failing_examples": [
                    {
                        "review_id": "test/pos/1_9",
                        "edit": "<u>John</u> → Mary",
                        "p_positive": 0.4,
                        "p_positive_before": 0.6,
                    }
                ],
            },
            {
                "name": "places swapped",
                "kind": "inv",
                "n_cases": 2,
                "failed": 0,
                "failure_rate": None,
                "skipped": "2 of the 4 test reviews have a word from words.place, fewer than behave.min_cases (20)",
                "failing_examples": [],
            },
        ],
        "cross_domain": {"yelp": {"n_test": 10, "accuracy": 0.7, "balanced_accuracy": 0.65, "roc_auc": 0.8}},
        "behaviour_metrics": {"mft": {"failure_rate": 0.25, "n_cases": 40}, "inv": {"failure_rate": 0.02}},
        "predictions": pd.DataFrame({"id": ["a", "b", "c", "d"], "label": [0, 1, 0, 1],
                                     "proba": [0.2, 0.8, 0.6, 0.4], "predicted": [0, 1, 1, 0]}),
    }  # fmt: skip
    lstm = {
        **model,
        "metrics": {**ev.metrics, "accuracy": 0.6},
        "predictions": pd.DataFrame(
            {
                "id": ["a", "b", "c", "d"],
                "label": [0, 1, 0, 1],
                "proba": [0.2, 0.8, 0.4, 0.3],
                "predicted": [0, 1, 0, 0],
            }
        ),
    }
    data = {
        "card": {
            "splits": {"train": {"rows": 4, "negative": 2, "positive": 2}},
            "text_words": {"median": 3},
            "source": {"location": "x", "via": "path", "sha256": "0"},
            "duplicates": {
                "normalised": "lower-case",
                "exact": {"within_train": 3, "within_test": 1, "test_in_train": 2, "examples": [["te1", "tr<9>"]]},
                "near": {"jaccard": 0.8, "within_train": 5, "within_test": 0, "test_in_train": 1, "examples": []},
                "test_in_train": 3,
            },
            "augment": {"pairs": 10, "rows": 20, "dropped_pairs_in_test": 1, "source": {"location": "pairs.tsv"}},
        },
        "models": {"mlp": model, "lstm": lstm},
        "texts": {"test/pos/1_9": "A great film <script>alert('x')</script>"},
        "lollipop_png": PNG,
        "suspicious": pd.DataFrame({"word": ["<i>zombie</i>"], "importance": [0.3], "model": ["lstm"]}),
        "correlate_metrics": {"mlp": {"spearman_vs_correlation": 0.5}},
    }
    data["scorecard"] = build_scorecard(data, ReportConfig(), seed=0)
    return data


def test_report_is_self_contained_and_escapes_reviews() -> None:
    page = build_report("imdb", _inputs())
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "<b>great" not in page and "<i>zombie" not in page
    assert "&lt;" in page and "&lt;b&gt;great&lt;/b&gt;" in page
    assert page.count("data:image/png;base64,") >= 8  # every chart embedded
    assert "src='http" not in page and "href=" not in page
    assert "<td>0.2500</td>" in page  # the shuffled reviews' accuracy: one of four right
    for text in ("accuracy", "roc_auc", "words shuffled", "comprehensiveness", "submodular pick", "Suspicious words"):
        assert text in page
    assert "<em>" not in page and "<u>" not in page and "tr<9>" not in page  # suite text and ids escaped too


def test_report_shows_duplicates_deduplicated_cross_domain_and_behaviour() -> None:
    page = build_report("imdb", _inputs())
    assert "3 test reviews have a twin in the training split, e.g. te1 ~ tr&lt;9&gt;" in page
    assert "Training split: 20 rows are 10 minimal-edit pairs (<code>pairs.tsv</code>)" in page
    assert "1 pair(s) with a member in the test split were left out" in page
    # without the one leaked (and misclassified) review: two of three right
    assert "<td>mlp</td><td>1</td><td>3</td><td>0.6667</td>" in page
    assert "<td>yelp</td><td>0.7000</td><td>0.5000</td>" in page  # cross-domain beside its own test accuracy
    assert "<td>negated positive</td><td>mft</td><td>25.0% of 40</td>" in page
    assert "skipped (2 cases)" in page and "fewer than behave.min_cases (20)" in page
    assert "test/pos/1_9: &lt;u&gt;John&lt;/u&gt; → Mary, p(positive) 0.600 → 0.400" in page


def test_the_report_says_which_explanation_to_believe_and_uses_it() -> None:
    page = build_report("imdb", _inputs())
    believe = page.split("mlp: which explanation to believe</h3>")[1]
    assert believe.index("<td>SHAP</td>") < believe.index("<td>LIME</td>")  # ranked by faithfulness
    assert "<h4>SHAP, the most faithful here</h4>" in believe
    assert "<td>LIME vs SHAP</td><td>0.5000</td><td>0.6000</td>" in believe
    assert "most faithful explanation method (mlp: SHAP, lstm: SHAP)" in page


def test_the_scorecard_opens_the_report_with_its_generated_paragraph() -> None:
    page = build_report("imdb", _inputs())
    assert page.index("<h2>Scorecard</h2>") < page.index("<h2>Data</h2>")
    # lstm is right on one review more of four: a difference whose interval includes 0, so nobody is ahead
    row = "<td>accuracy ↑</td><td>accuracy</td><td>0.5000</td><td>0.6000</td><td>lstm - mlp: +0.100"
    assert row in page
    # one of the four test reviews is labelled differently by the two models
    assert "The models label 1 of the 4 test reviews differently (25.0%)." in page
    verdict = page.split("id='verdict'>")[1].split("</p>")[0]
    assert verdict.startswith("The evidence favours neither model: none is ahead on any measure")
    assert "Inspect first in lstm: &#x27;negated positive&#x27;, 25.0% of its cases failed" in verdict
    assert "suspicious words it leans on: &lt;i&gt;zombie&lt;/i&gt;." in verdict
