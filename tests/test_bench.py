"""The benchmark's paired bootstrap: what it says about two models scored on the same reviews."""

from __future__ import annotations

import numpy as np

from bench.benchmark import Bench, Row, evaluate_targets, paired_bootstrap, stage_stats


def test_paired_bootstrap_interval_sees_real_and_null_differences() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.8).astype(int)
    noise = rng.normal(0, 1, 600)
    weak = 1 / (1 + np.exp(-(1.0 * (2 * y - 1) + 1.5 * noise)))
    strong = 1 / (1 + np.exp(-(3.0 * (2 * y - 1) + 1.5 * noise)))

    same = paired_bootstrap(y, weak, weak, seed=1, rounds=200)
    assert all(v == (0.0, 0.0, 0.0) for v in same.values())

    better = paired_bootstrap(y, strong, weak, seed=1, rounds=200)
    for diff, lo, hi in better.values():
        assert 0 < lo <= diff <= hi
    worse = paired_bootstrap(y, weak, strong, seed=1, rounds=200)
    assert all(hi < 0 for _, _, hi in worse.values())
    assert paired_bootstrap(y, strong, weak, seed=1, rounds=200) == better  # seeded


def test_targets_compare_the_baseline_at_the_precision_of_metrics_json() -> None:
    """1577 of 1708 reviews right is the same accuracy for both, though metrics.json holds 6 decimals."""
    b = Bench()
    b.rows.append(Row("yelp", "TF-IDF + logistic regression", 1577 / 1708, 0.81, 0.9739))
    b.rows.append(Row("yelp", "pipeline mlp", round(1577 / 1708, 6), 0.86, 0.9599))
    b.rows.append(Row("yelp", "pipeline lstm", 0.9190, round(0.81, 6), 0.95))
    evaluate_targets(b, ["yelp"], ["mlp", "lstm"])
    met = {name: ok for name, _, ok in b.targets}
    assert met["yelp mlp accuracy ≥ baseline"] is True
    assert met["yelp mlp balanced_accuracy ≥ baseline"] is True
    assert met["yelp mlp roc_auc ≥ baseline"] is False
    # the LSTM: an accuracy floor of 0.92 and the baseline's balanced accuracy, not its AUC
    assert met["yelp lstm accuracy ≥ 0.92"] is False
    assert met["yelp lstm balanced_accuracy ≥ baseline"] is True
    assert "yelp lstm roc_auc ≥ baseline" not in met
    b.rows[1] = Row("yelp", "pipeline mlp", round(1576 / 1708, 6), 0.86, 0.9599)  # one review fewer: short
    b.targets.clear()
    evaluate_targets(b, ["yelp"], ["mlp"])
    assert {name: ok for name, _, ok in b.targets}["yelp mlp accuracy ≥ baseline"] is False


def test_each_stage_s_figures_are_read_from_dvc_repro_s_output() -> None:
    output = """Running stage 'prepare@imdb':
> python -m stages.prepare --dataset imdb
2026-01-01 INFO stages: stage prepare finished in 18.4 s (peak memory 1546 MiB)
Running stage 'train@imdb-mlp':
> python -m stages.train --model mlp
2026-01-01 ERROR stages: stage train failed: boom
Running stage 'train@imdb-lstm':
2026-01-01 INFO stages: stage train finished in 300.0 s (peak memory 2048 MiB)
"""
    assert stage_stats(output) == [
        {"stage": "prepare@imdb", "seconds": 18.4, "peak_mib": 1546.0},
        {"stage": "train@imdb-lstm", "seconds": 300.0, "peak_mib": 2048.0},
    ]
