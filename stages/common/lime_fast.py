"""The two hot loops of ``LimeTextExplainer``, compiled or vectorized, with the same results.

1. The neighbourhood: for each of ``num_samples - 1`` samples LIME calls
   ``random_state.choice(range(d), k, replace=False)``, which NumPy's legacy ``RandomState``
   computes as ``permutation(d)[:k]``: a Fisher–Yates shuffle whose swap positions come from
   ``random_interval`` (masked rejection sampling over raw 32-bit MT19937 words). One Python
   call per sample costs more than everything else in an explanation, so
   :func:`legacy_removals` runs those very steps in one numba-compiled loop over the
   generator's own state and writes the state back: the same samples, and the generator
   ends where LIME's loop leaves it.
2. The surrogate: LIME fits ``Ridge(alpha=0.01)`` on every word to pick the top ones, then
   ``Ridge(alpha=1)`` on those. :class:`FastLimeBase` solves the same weighted, centred
   normal equations in NumPy (what scikit-learn's cholesky solver does), without the
   estimator's per-call validation.

``tests/test_lime_fast.py`` checks both against the stock code.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np


@cache
def _kernel() -> Any:
    """Compile (once per process; cached on disk by numba) the MT19937 + Fisher–Yates loop."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def _mt_refill(key: np.ndarray) -> None:  # numpy's mt19937_gen, on uint32 words held in int64
        n, m, upper, lower, matrix_a = 624, 397, 0x80000000, 0x7FFFFFFF, 0x9908B0DF
        for i in range(n):
            y = (key[i] & upper) | (key[(i + 1) % n] & lower)
            key[i] = key[(i + m) % n] ^ (y >> 1) ^ (matrix_a if y & 1 else 0)

    @numba.njit(cache=True, nogil=True)
    def removals(key: np.ndarray, pos: int, d: int, sizes: np.ndarray, removed: np.ndarray) -> int:
        """Mark ``permutation(d)[:size]`` of each sample in ``removed``; returns the new position."""
        perm = np.empty(d, np.int64)
        for s in range(sizes.shape[0]):
            for k in range(d):
                perm[k] = k
            for i in range(d - 1, 0, -1):  # numpy's _shuffle_raw with random_interval(i)
                mask = i | (i >> 1)
                mask |= mask >> 2
                mask |= mask >> 4
                mask |= mask >> 8
                mask |= mask >> 16
                while True:
                    if pos >= 624:
                        _mt_refill(key)
                        pos = 0
                    y = key[pos]
                    pos += 1
                    y ^= y >> 11
                    y ^= (y << 7) & 0x9D2C5680
                    y ^= (y << 15) & 0xEFC60000
                    y ^= y >> 18
                    j = y & mask
                    if j <= i:
                        break
                t = perm[i]
                perm[i] = perm[j]
                perm[j] = t
            for k in range(sizes[s]):
                removed[s, perm[k]] = True
        return pos

    return removals


def legacy_removals(random_state: np.random.RandomState, d: int, sizes: np.ndarray) -> np.ndarray:
    """``removed[i, w]``: word ``w`` is in ``random_state.permutation(d)[:sizes[i]]`` of draw ``i``.

    Exactly what calling ``random_state.choice(range(d), size, replace=False)`` once per size,
    in order, would remove, and ``random_state`` is left in the same state as after those calls.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    removed = np.zeros((len(sizes), d), dtype=np.bool_)
    if d <= 0 or not len(sizes):
        return removed
    name, key, pos, has_gauss, gauss = random_state.get_state(legacy=True)
    if name != "MT19937":  # pragma: no cover - RandomState is always MT19937
        raise ValueError(f"legacy_removals needs an MT19937 RandomState, got {name}")
    key64 = key.astype(np.int64)
    pos = _kernel()(key64, int(pos), int(d), sizes, removed)
    random_state.set_state((name, key64.astype(np.uint32), int(pos), has_gauss, gauss))
    return removed


def weighted_ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """``Ridge(alpha, fit_intercept=True).fit(X, y, sample_weight=w)``: (coef, intercept).

    scikit-learn's dense cholesky path solves ``(Xc' W Xc + alpha I) coef = Xc' W yc`` with X
    and y centred on their weighted means. The same system without centred copies:
    ``Xc' W Xc = Xs' Xs - S mu mu'`` with ``Xs = sqrt(W) X``, and ``Xc' W yc = X' W (y - ybar)``
    (S = sum of weights, mu = weighted mean of X).
    """
    root = np.sqrt(w)
    Xs = X * root[:, None]
    total = w.sum()
    x_mean = (root @ Xs) / total
    y_mean = float(w @ y) / total
    A = Xs.T @ Xs  # NumPy computes a'a as a symmetric rank-k update (syrk)
    A -= total * np.outer(x_mean, x_mean)
    A.flat[:: A.shape[0] + 1] += alpha
    rhs = Xs.T @ (root * (y - y_mean))
    coef = np.linalg.solve(A, rhs)
    return coef, y_mean - float(x_mean @ coef)


def weighted_r2(y: np.ndarray, pred: np.ndarray, w: np.ndarray) -> float:
    """``r2_score(y, pred, sample_weight=w)`` (1.0 or 0.0 when ``y`` is constant, as scikit-learn)."""
    num = float(w @ (y - pred) ** 2)
    den = float(w @ (y - np.average(y, weights=w)) ** 2)
    if den == 0.0:
        return 1.0 if num == 0.0 else 0.0
    return 1.0 - num / den


def fast_lime_base_class() -> type:
    """``lime_base.LimeBase`` with the default Ridge surrogate solved in NumPy (lazy import of lime)."""
    from lime.lime_base import LimeBase

    class FastLimeBase(LimeBase):
        """Same feature selection and surrogate as ``LimeBase``; other settings defer to it."""

        def explain_instance_with_data(  # type: ignore[override]
            self,
            neighborhood_data: np.ndarray,
            neighborhood_labels: np.ndarray,
            distances: np.ndarray,
            label: int,
            num_features: int,
            feature_selection: str = "auto",
            model_regressor: Any = None,
        ) -> tuple[float, list[tuple[int, float]], float, np.ndarray]:
            method = feature_selection
            if method == "auto":
                method = "forward_selection" if num_features <= 6 else "highest_weights"
            if model_regressor is not None or method not in ("highest_weights", "none"):
                return super().explain_instance_with_data(
                    neighborhood_data,
                    neighborhood_labels,
                    distances,
                    label,
                    num_features,
                    feature_selection=feature_selection,
                    model_regressor=model_regressor,
                )
            X = np.asarray(neighborhood_data, dtype=np.float64)
            y = np.asarray(neighborhood_labels[:, label], dtype=np.float64)
            w = np.asarray(self.kernel_fn(distances), dtype=np.float64)
            if method == "highest_weights":
                coef, _ = weighted_ridge(X, y, w, alpha=0.01)
                # sorted(..., key=|coef * x0|, reverse=True) is stable, as this argsort is
                used = np.argsort(-np.abs(coef * X[0]), kind="stable")[:num_features]
            else:
                used = np.arange(X.shape[1])
            Xu = X[:, used]
            coef, intercept = weighted_ridge(Xu, y, w, alpha=1.0)
            score = weighted_r2(y, Xu @ coef + intercept, w)
            local_pred = np.array([X[0, used] @ coef + intercept])
            exp = sorted(zip(used.tolist(), coef.tolist(), strict=True), key=lambda x: abs(x[1]), reverse=True)
            return intercept, exp, score, local_pred

    return FastLimeBase
