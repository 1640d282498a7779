"""The hot loops of ``LimeTextExplainer``, compiled or vectorized, with the same results.

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
3. The features: :func:`masked_ngram_counter` counts the uni- and bigrams of every sample of
   one review in one compiled loop, into the canonical CSR rows ``Featurizer.encode`` builds.

``tests/test_lime_fast.py`` checks each against the stock code (or encode).
"""

from __future__ import annotations

from collections.abc import Callable
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


@cache
def _counts_kernel() -> Any:
    """Compile (once per process; cached on disk by numba) the masked n-gram counting loop."""
    import numba

    debruijn = 0x03F79D71B4CB0A89  # (lowest set bit * debruijn) >> 58 differs for each of the 64 bits
    bit_of = np.zeros(64, np.int64)
    for bit in range(64):
        bit_of[((debruijn << bit) & 0xFFFFFFFFFFFFFFFF) >> 58] = bit

    @numba.njit(cache=True, nogil=True)
    def counts(
        data: np.ndarray, words: np.ndarray, terms: np.ndarray, uni: np.ndarray, bi: np.ndarray, cols: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, n_tokens, n_local, use_bi = data.shape[0], words.shape[0], cols.shape[0], bi.shape[0] > 0
        per_row = min(n_local, 2 * n_tokens)
        indptr = np.zeros(n + 1, np.int64)
        indices = np.empty(n * per_row, cols.dtype)
        values = np.empty(n * per_row, np.float32)
        tally = np.zeros(n_local, np.float32)
        present = np.zeros((n_local + 63) // 64, np.uint64)  # one bit per column the row has
        one, magic, shift = np.uint64(1), np.uint64(debruijn), np.uint64(58)
        nnz = 0
        for i in range(n):
            prev = -1
            for p in range(n_tokens):
                if data[i, words[p]] == 0:
                    continue
                t = terms[p]
                c = uni[t]
                if c >= 0:
                    tally[c] += 1.0
                    present[c >> 6] |= one << np.uint64(c & 63)
                if use_bi and prev >= 0:
                    c = bi[prev, t]
                    if c >= 0:
                        tally[c] += 1.0
                        present[c >> 6] |= one << np.uint64(c & 63)
                prev = t
            # the row's columns in ascending order (as sum_duplicates leaves them), lowest set bit first
            for k in range(present.shape[0]):
                w = present[k]
                while w != 0:
                    low = w & (~w + one)
                    c = k * 64 + bit_of[(low * magic) >> shift]
                    indices[nnz] = cols[c]
                    values[nnz] = tally[c]
                    tally[c] = 0.0
                    nnz += 1
                    w ^= low
                present[k] = 0
            indptr[i + 1] = nnz
        return indptr, indices[:nnz], values[:nnz]

    return counts


def masked_ngram_counter(
    words: np.ndarray, term_ids: np.ndarray, unigram: np.ndarray, bigram: np.ndarray, width: int
) -> Callable[[np.ndarray], Any]:
    """``count(data)``: uni- and bigram counts of LIME's samples of one review, as a canonical CSR matrix.

    Token ``p`` of the review is term ``term_ids[p]`` inside LIME word ``words[p]``; sample ``i``
    keeps the tokens whose word has ``data[i, word] != 0``, and its bigrams join consecutive
    kept tokens, as in the perturbed text. ``unigram[t]`` / ``bigram[t, u]`` are vocabulary
    columns (-1: not a feature; ``bigram`` may be empty). The matrix of counts that
    ``Featurizer.encode`` builds from those tokens (same entries, same order), in one compiled
    pass over the kept tokens instead of NumPy passes and a sort per n-gram order. The review's
    tables are prepared once; ``count`` may run on blocks of samples in several threads.
    """
    import scipy.sparse as sp

    cols = np.union1d(unigram[unigram >= 0], bigram[bigram >= 0])  # the review's possible columns, ascending
    local_uni = np.where(unigram >= 0, np.searchsorted(cols, unigram), -1).astype(np.int64)
    local_bi = np.where(bigram >= 0, np.searchsorted(cols, bigram), -1).astype(np.int64)
    local_bi = local_bi.reshape(bigram.shape if bigram.size else (0, 0))
    cols = cols.astype(np.int32 if width <= np.iinfo(np.int32).max else np.int64)
    words, term_ids = np.asarray(words, np.int64), np.asarray(term_ids, np.int64)
    kernel = _counts_kernel()

    def count(data: np.ndarray) -> Any:
        indptr, indices, values = kernel(np.ascontiguousarray(data), words, term_ids, local_uni, local_bi, cols)
        out = sp.csr_matrix((values, indices, indptr), shape=(len(data), width))
        out.has_sorted_indices = True
        out.has_canonical_format = True
        return out

    return count


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
