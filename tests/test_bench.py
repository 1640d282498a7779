"""The benchmark's paired bootstrap: what it says about two models scored on the same reviews."""

from __future__ import annotations

import numpy as np

from bench.benchmark import Bench, Row, evaluate_targets, paired_bootstrap


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


def test_zeroing_the_lstm_share_leaves_the_bag_path_alone() -> None:
    """After the ablation the LSTM's weights no longer matter; before it they do; an MLP is left alone."""
    from bench.benchmark import zero_sequence_share
    from stages.common.models import ModelConfig, build_model, predict_proba

    cfg = ModelConfig(
        architecture="lstm", embedding_dim=4, units=3, bidirectional=True, pooling="mean", bag_of_embeddings=True
    )
    model = build_model(cfg, input_dim=30)
    kernel, bias = model.get_layer("proba").get_weights()
    model.get_layer("proba").set_weights([np.ones_like(kernel), bias])  # both shares non-zero
    X = np.random.default_rng(0).integers(0, 30, size=(16, 7)).astype(np.int32)
    bilstm = model.get_layer("bilstm")
    lstm_weights = bilstm.get_weights()

    def with_other_lstm_weights() -> np.ndarray:
        bilstm.set_weights([w + 0.5 for w in lstm_weights])
        p = predict_proba(model, X)
        bilstm.set_weights(lstm_weights)
        return p

    before = predict_proba(model, X)
    assert not np.allclose(with_other_lstm_weights(), before)
    assert zero_sequence_share(model)
    after = predict_proba(model, X)
    np.testing.assert_allclose(with_other_lstm_weights(), after, rtol=1e-6)
    assert not np.allclose(after, before)
    kernel = model.get_layer("proba").get_weights()[0]
    assert np.all(kernel[:6] == 0) and np.all(kernel[6:] == 1)  # 2 × 3 LSTM features first, then the bag's 6

    mlp = build_model(ModelConfig(architecture="mlp", hidden_units=[4]), input_dim=10)
    assert not zero_sequence_share(mlp)


def test_targets_compare_the_baseline_at_the_precision_of_metrics_json() -> None:
    """1577 of 1708 reviews right is the same accuracy for both, though metrics.json holds 6 decimals."""
    b = Bench()
    b.rows.append(Row("yelp", "TF-IDF + logistic regression", 1577 / 1708, 0.81, 0.9739))
    b.rows.append(Row("yelp", "pipeline lstm", round(1577 / 1708, 6), 0.86, 0.9599))
    evaluate_targets(b, {"datasets": {"yelp": {}}, "models": ["lstm"]})
    met = {name: ok for name, _, ok in b.targets}
    assert met["yelp lstm accuracy ≥ baseline"] is True
    assert met["yelp lstm balanced_accuracy ≥ baseline"] is True
    assert met["yelp lstm roc_auc ≥ baseline"] is False
    b.rows[1] = Row("yelp", "pipeline lstm", round(1576 / 1708, 6), 0.86, 0.9599)  # one review fewer: short
    b.targets.clear()
    evaluate_targets(b, {"datasets": {"yelp": {}}, "models": ["lstm"]})
    assert {name: ok for name, _, ok in b.targets}["yelp lstm accuracy ≥ baseline"] is False
