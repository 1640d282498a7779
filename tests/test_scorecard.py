"""The scorecard: who is ahead on each measure (intervals of differences), and the verdict's rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from stages.common.report.scorecard import paragraph, table, verdict
from stages.common.report.significance import RocAuc, bootstrap_counts, proportion_interval

N = 2000


def _predictions(accuracy: float, seed: int) -> pd.DataFrame:
    """``N`` test reviews (the same ids and labels for every model), right on ``accuracy`` of them."""
    rng = np.random.default_rng(seed)
    label = np.arange(N) % 2
    right = rng.random(N) < accuracy
    predicted = np.where(right, label, 1 - label)
    proba = np.clip(np.where(predicted == 1, 0.75, 0.25) + rng.normal(0, 0.1, N), 0, 1)
    return pd.DataFrame({"id": [f"r{i}" for i in range(N)], "label": label, "proba": proba, "predicted": predicted})


def _figures(accuracy: float, pairs: float, mft: float, stability: float, seed: int) -> dict:
    preds = _predictions(accuracy, seed)
    rng = np.random.default_rng(seed + 100)
    explanations = [
        {"review_id": f"r{i}", "comprehensiveness": [0.2, 0.3], "sufficiency": [0.0, -0.1],
         "stability_jaccard": float(np.clip(stability + rng.normal(0, 0.02), 0, 1))}
        for i in range(100)
    ]  # fmt: skip
    acc = float((preds["predicted"] == preds["label"]).mean())
    return {
        "metrics": {"accuracy": acc, "balanced_accuracy": acc, "roc_auc": float(roc_auc_score(preds["label"],
                                                                                             preds["proba"]))},
        "cross_domain": {"yelp": {"accuracy": 0.85, "n_test": 1000}},
        "contrast": {"pair_consistency": pairs, "pairs": 245},
        "explain": {
            "random": {"aopc_comprehensiveness": 0.01, "aopc_sufficiency": 0.2},
            "lime": {
                "aopc_comprehensiveness": 0.25,
                "aopc_sufficiency": -0.05,
                "stability_top10_jaccard": float(np.mean([e["stability_jaccard"] for e in explanations])),
            },
        },
        "correlate": {"spearman_vs_correlation": 0.7, "suspicious_words": 5},
        "behaviour": {"mft": {"failure_rate": mft, "n_cases": 1000}, "inv": {"failure_rate": 0.01, "n_cases": 600}},
        "predictions": preds,
        "explanations": {"lime": explanations},
    }  # fmt: skip


def _card(mlp: dict, lstm: dict) -> pd.DataFrame:
    return table({"mlp": mlp, "lstm": lstm}, resamples=300, seed=0).set_index("measure")


def test_ahead_only_where_the_interval_of_the_difference_excludes_zero() -> None:
    card = _card(_figures(0.91, 0.5, 0.4, 0.8, seed=1), _figures(0.85, 0.5, 0.4, 0.8, seed=2))
    assert card.loc["accuracy", "ahead"] == "mlp"  # 6 points on 2,000 reviews
    assert card.loc["accuracy", "difference (95% interval)"].startswith("mlp - lstm: +0.0")
    close = _card(_figures(0.905, 0.5, 0.4, 0.8, seed=1), _figures(0.90, 0.5, 0.4, 0.8, seed=2))
    assert close.loc["accuracy", "ahead"] == ""  # half a point on 2,000: inside the interval
    assert card.loc["pair consistency on minimal edits (both right)", "ahead"] == ""  # equal
    # a measure kept without counts or items has no interval and never counts, however far apart
    far = _figures(0.9, 0.5, 0.4, 0.8, seed=1)
    far["correlate"] = {"spearman_vs_correlation": 0.9, "suspicious_words": 0}
    card = _card(far, _figures(0.9, 0.5, 0.4, 0.8, seed=1))
    assert card.loc["suspicious words", "ahead"] == ""
    assert card.loc["suspicious words", "difference (95% interval)"] == "mlp - lstm: no interval"


def test_rates_kept_with_counts_use_an_interval_for_two_proportions() -> None:
    low, high = proportion_interval(0.6, 245, 0.45, 245)  # type: ignore[misc]
    assert 0 < low < 0.15 < high
    card = _card(_figures(0.9, 0.60, 0.4, 0.8, seed=1), _figures(0.9, 0.45, 0.2, 0.8, seed=1))
    assert card.loc["pair consistency on minimal edits (both right)", "ahead"] == "mlp"
    assert card.loc["behavioural failure rate: minimum functionality", "ahead"] == "lstm"  # lower is better


def test_the_first_group_decides_and_a_later_group_never_overrules_it() -> None:
    mlp = _figures(0.91, 0.40, 0.40, 0.8, seed=1)
    lstm = _figures(0.85, 0.60, 0.20, 0.95, seed=2)  # worse on accuracy, better on robustness and stability
    card = table({"mlp": mlp, "lstm": lstm}, resamples=300, seed=0)
    favoured, why = verdict(card, ["mlp", "lstm"], ["accuracy", "robustness", "explanation"])
    assert favoured == "mlp"
    assert why.startswith(
        "The evidence favours mlp, decided by accuracy (priority accuracy > robustness > explanation)"
    )
    assert "in later groups behind on pair consistency on minimal edits (both right)" in why
    # the user's priorities say robustness first: the same table favours lstm
    favoured, why = verdict(card, ["mlp", "lstm"], ["robustness", "accuracy", "explanation"])
    assert favoured == "lstm" and "decided by robustness" in why


def test_a_group_without_a_leader_passes_the_decision_on_and_a_split_group_favours_neither() -> None:
    tie = _figures(0.9, 0.5, 0.4, 0.8, seed=1)
    card = table({"mlp": tie, "lstm": _figures(0.9, 0.5, 0.4, 0.95, seed=1)}, resamples=300, seed=0)
    favoured, why = verdict(card, ["mlp", "lstm"], ["accuracy", "robustness", "explanation"])
    assert favoured == "lstm" and "decided by explanation" in why  # stability only
    split = table({"mlp": _figures(0.9, 0.62, 0.4, 0.8, seed=1), "lstm": _figures(0.9, 0.45, 0.2, 0.8, seed=1)},
                  resamples=300, seed=0)  # fmt: skip
    favoured, why = verdict(split, ["mlp", "lstm"], ["accuracy", "robustness", "explanation"])
    assert favoured is None and why.startswith("The evidence favours neither model: in robustness")
    favoured, why = verdict(table({"mlp": tie, "lstm": tie}, resamples=300, seed=0), ["mlp", "lstm"],
                            ["accuracy", "robustness", "explanation"])  # fmt: skip
    assert favoured is None and "none is ahead on any measure" in why


def test_the_paragraph_names_the_decision_the_disagreement_and_what_to_inspect() -> None:
    card = table({"mlp": _figures(0.91, 0.5, 0.4, 0.8, seed=1), "lstm": _figures(0.85, 0.5, 0.4, 0.8, seed=2)},
                 resamples=300, seed=0)  # fmt: skip
    cases = {
        "mlp": [{"name": "negation", "failure_rate": 0.9, "n_cases": 200},
                {"name": "typos", "failure_rate": 0.01, "n_cases": 200}],
        "lstm": [{"name": "negation", "failure_rate": 0.95, "n_cases": 200},
                 {"name": "typos", "failure_rate": 0.3, "n_cases": 200}],
    }  # fmt: skip
    text = paragraph(card, ["mlp", "lstm"], disagreement=(91, 1000), behaviour=cases, suspicious={"mlp": ["nine"]})
    assert text.startswith("The evidence favours mlp, decided by accuracy")
    assert "The models label 91 of the 1,000 test reviews differently (9.1%)." in text
    assert "Their widest behavioural gap is 'typos' (mlp 1.0%, lstm 30.0% of cases failed)." in text
    assert text.endswith(
        "Inspect first in mlp: 'negation', 90.0% of its cases failed; and the suspicious words it leans on: nine."
    )


def test_weighted_roc_auc_is_the_auc_of_the_resampled_reviews() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 2)  # ties included
    auc = RocAuc(y, scores)
    assert abs(auc(np.ones(300)) - roc_auc_score(y, scores)) < 1e-12
    counts = bootstrap_counts(300, 3, seed=1)
    one_draw = np.random.default_rng(1).multinomial(300, np.full(300, 1 / 300), size=3)
    np.testing.assert_array_equal(counts, one_draw)
    np.testing.assert_array_equal(bootstrap_counts(300, 3, seed=1, block=2), one_draw)  # block by block
    for w in counts.astype(np.float64):
        idx = np.repeat(np.arange(300), w.astype(int))
        assert abs(auc(w) - roc_auc_score(y[idx], scores[idx])) < 1e-12
