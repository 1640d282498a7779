"""The scorecard: which model is ahead on each measure, and the paragraph the rule writes."""

from __future__ import annotations

from stages.common.report.scorecard import Measure, ahead, paragraph, table


def _figures(accuracy: float, mft: float, comp: float, suspicious: int, pairs: float = 0.5) -> dict:
    return {
        "metrics": {"accuracy": accuracy, "balanced_accuracy": accuracy, "roc_auc": 0.95},
        "cross_domain": {"yelp": {"accuracy": 0.85}},
        "contrast": {"pair_consistency": pairs},
        "explain": {
            "aopc_comprehensiveness": comp,
            "aopc_comprehensiveness_random": 0.01,
            "aopc_sufficiency": -0.1,
            "aopc_sufficiency_random": 0.2,
            "stability_top10_jaccard": 0.8,
        },
        "correlate": {"spearman_lime_vs_correlation": 0.7, "suspicious_words": suspicious},
        "behaviour": {"mft": {"failure_rate": mft}, "inv": {"failure_rate": 0.01}},
    }


def test_ahead_needs_more_than_the_margin() -> None:
    higher = Measure("accuracy", "higher", 0.005)
    assert ahead(higher, {"mlp": 0.91, "lstm": 0.90}) == "mlp"
    assert ahead(higher, {"mlp": 0.904, "lstm": 0.90}) is None  # within the margin: nobody
    assert ahead(Measure("failures", "lower", 0.02), {"mlp": 0.40, "lstm": 0.30}) == "lstm"
    assert ahead(higher, {"mlp": 0.9, "lstm": None}) is None


def test_table_and_paragraph_follow_the_rule() -> None:
    models = {"mlp": _figures(0.91, 0.40, 0.18, 5, pairs=0.40), "lstm": _figures(0.88, 0.45, 0.10, 6, pairs=0.47)}
    card = table(models)
    assert list(card.columns) == ["measure", "better", "mlp", "lstm", "ahead"]
    row = card.set_index("measure").loc["comprehensiveness over random words"]
    assert round(row["mlp"], 6) == 0.17 and row["ahead"] == "mlp"
    assert card.set_index("measure").loc["suspicious words", "ahead"] == ""  # 5 vs 6: within a margin of 1
    assert card.set_index("measure").loc["pair consistency on minimal edits (both right)", "ahead"] == "lstm"
    cases = {
        "mlp": [{"name": "negation", "failure_rate": 0.9}, {"name": "typos", "failure_rate": 0.01}],
        "lstm": [{"name": "negation", "failure_rate": 0.95}, {"name": "typos", "failure_rate": 0.3}],
    }
    text = paragraph(card, ["mlp", "lstm"], disagreement=(91, 1000), behaviour=cases, suspicious={"mlp": ["nine"]})
    assert text.startswith(
        "The evidence favours mlp: ahead on 4 of 14 measures (accuracy, balanced accuracy, comprehensiveness over "
        "random words, behavioural failure rate: minimum functionality)"
    )
    assert "behind on 1 (pair consistency on minimal edits (both right))." in text
    assert "The models label 91 of the 1,000 test reviews differently (9.1%)." in text
    assert "Their widest behavioural gap is 'typos' (mlp 1.0%, lstm 30.0% of cases failed)." in text
    assert text.endswith(
        "Inspect first in mlp: 'negation', 90.0% of its cases failed; and the suspicious words it leans on: nine."
    )


def test_a_tie_favours_neither_and_names_each_models_weakest_test() -> None:
    same = _figures(0.9, 0.4, 0.15, 5)
    card = table({"mlp": same, "lstm": same})
    cases = {"mlp": [{"name": "negation", "failure_rate": 0.9}], "lstm": [{"name": "negation", "failure_rate": 0.9}]}
    text = paragraph(card, ["mlp", "lstm"], disagreement=None, behaviour=cases, suspicious={})
    assert text.startswith("The evidence favours neither model: mlp is ahead on 0 of 14 measures; lstm is ahead")
    assert "widest behavioural gap" not in text  # no gap beyond the margin
    assert "Inspect first in mlp: 'negation'" in text and "Inspect first in lstm: 'negation'" in text
