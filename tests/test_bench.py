"""The benchmark's paired bootstrap: what it says about two models scored on the same reviews."""

from __future__ import annotations

import numpy as np

from bench.benchmark import paired_bootstrap


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
