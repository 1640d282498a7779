"""95% intervals of the difference between two models on one measure.

Where the per-item outcomes of both models are on disk for the same items (the test split's
predictions, the selected reviews' explanations) the interval is a **paired bootstrap**: items
are resampled with replacement, the same draw for both models, and the measure is recomputed
for each. A resample is a vector of counts (how often each item was drawn), so every statistic
here takes per-item weights. Where only a rate and its count are kept (behavioural cases, the
minimal-edit pairs, the other dataset's reviews) the interval is the normal one for a
difference of two independent proportions, wider than a paired one would be: an "ahead" it
grants is not a false one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Interval = tuple[float, float]
Z95 = 1.959964


def bootstrap_counts(n: int, resamples: int, seed: int, block: int = 100) -> np.ndarray:
    """``resamples`` × ``n`` counts: how often each of ``n`` items is drawn in each resample. Seeded.

    One byte per count (an item drawn over 255 times in one resample is checked, never seen),
    drawn ``block`` resamples at a time from one stream: the counts of one draw of them all.
    """
    rng = np.random.default_rng(seed)
    p = np.full(n, 1.0 / n)
    counts = np.empty((resamples, n), dtype=np.uint8)
    for start in range(0, resamples, block):
        drawn = rng.multinomial(n, p, size=min(block, resamples - start))
        if drawn.size and drawn.max() > np.iinfo(np.uint8).max:
            raise OverflowError(f"an item drawn {drawn.max()} times in one resample")
        counts[start : start + len(drawn)] = drawn
    return counts


def paired_interval(diff: Callable[[np.ndarray], float], counts: np.ndarray) -> Interval:
    """The 2.5th and 97.5th percentiles of ``diff(weights)`` over the resamples' counts."""
    values = np.array([diff(w.astype(np.float64)) for w in counts])
    values = values[~np.isnan(values)]  # a resample without one class has no balanced accuracy or AUC
    if not len(values):
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """The mean of ``values`` with per-item ``weights`` (a bootstrap resample's counts)."""
    total = weights.sum()
    return float(np.dot(values, weights) / total) if total else float("nan")


def balanced_accuracy(y: np.ndarray, correct: np.ndarray, weights: np.ndarray) -> float:
    """The mean of the weighted recall of each class."""
    recalls = [weighted_mean(correct[y == c], weights[y == c]) for c in (0, 1)]
    return float(np.mean(recalls))


class RocAuc:
    """ROC AUC with per-item weights, fast for many resamples of the same scores.

    The scores are sorted once; a weighted AUC is then the weighted share of (positive, negative)
    pairs ordered rightly, ties counting one half (the Mann-Whitney statistic), in O(n).
    """

    def __init__(self, y: np.ndarray, scores: np.ndarray) -> None:
        self._levels, self._level = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
        self._pos = np.asarray(y) == 1

    def __call__(self, weights: np.ndarray) -> float:
        """The AUC of the scores with ``weights`` per item."""
        n = len(self._levels)
        pos = np.bincount(self._level[self._pos], weights=weights[self._pos], minlength=n)
        neg = np.bincount(self._level[~self._pos], weights=weights[~self._pos], minlength=n)
        below = np.cumsum(neg) - neg  # negative weight strictly below each score level
        total = pos.sum() * neg.sum()
        return float(np.dot(pos, below + 0.5 * neg) / total) if total else float("nan")


def proportion_interval(p1: float, n1: int, p2: float, n2: int) -> Interval | None:
    """95% interval of ``p1 - p2`` for two independent proportions (``None`` without counts)."""
    if n1 <= 0 or n2 <= 0:
        return None
    half = Z95 * float(np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2))
    return p1 - p2 - half, p1 - p2 + half
