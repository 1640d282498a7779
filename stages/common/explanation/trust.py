"""How far to trust an explanation: faithfulness (ERASER's comprehensiveness and sufficiency),
stability, and SP-LIME's pick of representative explanations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from stages.common.explanation.lime_samples import SPLIT_EXPRESSION

if TYPE_CHECKING:  # pragma: no cover
    from stages.common.explanation.explaining import Explanation

ProbaFn = Callable[[Sequence[str]], np.ndarray]


def remove_words(text: str, words: Sequence[str], keep_only: bool = False) -> str:
    """Delete every occurrence of ``words`` (or of all other words) the way LIME perturbs."""
    from lime.lime_text import IndexedString

    s = IndexedString(text, split_expression=SPLIT_EXPRESSION, bow=True)
    index = {w: i for i, w in enumerate(s.inverse_vocab)}
    chosen = {index[w] for w in words if w in index}
    ids = [i for i in range(s.num_words()) if (i in chosen) != keep_only]
    return s.inverse_removing(ids)


def vocabulary_of(text: str) -> list[str]:
    """The distinct words LIME would perturb in ``text``."""
    from lime.lime_text import IndexedString

    return list(IndexedString(text, split_expression=SPLIT_EXPRESSION, bow=True).inverse_vocab)


def deletion_curves(
    texts: Sequence[str],
    ranked_words: Sequence[Sequence[str]],
    predicted: Sequence[int],
    proba_positive: ProbaFn,
    ks: Sequence[int],
) -> dict[str, np.ndarray]:
    """ERASER comprehensiveness and sufficiency for each review × k (DeYoung et al. 2020).

    comprehensiveness_k = p(ŷ | review) − p(ŷ | review without its top-k words)
    sufficiency_k       = p(ŷ | review) − p(ŷ | only its top-k words)
    One batched prediction covers every perturbed text.
    """
    batch = list(texts)
    for text, words in zip(texts, ranked_words, strict=True):
        for k in ks:
            batch.append(remove_words(text, words[:k]))
            batch.append(remove_words(text, words[:k], keep_only=True))
    p = np.asarray(proba_positive(batch), dtype=np.float64)
    n, m = len(texts), len(ks)
    sign = np.where(np.asarray(predicted) == 1, 1.0, -1.0)
    base = p[:n]
    rest = p[n:].reshape(n, m, 2)
    # probability of the predicted class = p if ŷ = 1 else 1 − p; differences flip sign
    comp = sign[:, None] * (base[:, None] - rest[:, :, 0])
    suff = sign[:, None] * (base[:, None] - rest[:, :, 1])
    return {"comprehensiveness": comp, "sufficiency": suff}


def aopc(curve: np.ndarray) -> float:
    """Area over the perturbation curve: the mean over reviews and k bins."""
    return float(np.mean(curve)) if curve.size else float("nan")


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """|A ∩ B| / |A ∪ B| (1.0 for two empty sets)."""
    sa, sb = set(a), set(b)
    return 1.0 if not sa and not sb else len(sa & sb) / len(sa | sb)


def submodular_pick(explanations: Sequence[Explanation], budget: int) -> list[int]:
    """SP-LIME (Ribeiro et al. 2016): greedily pick explanations covering important words.

    Word importance is ``sqrt(sum_i |W_ij|)`` over all explanations; each step adds the
    explanation that most increases the total importance of the words covered.
    """
    vocab = sorted({w for e in explanations for w, _ in e.words})
    index = {w: j for j, w in enumerate(vocab)}
    W = np.zeros((len(explanations), len(vocab)))
    for i, e in enumerate(explanations):
        for w, v in e.words:
            W[i, index[w]] = abs(v)
    importance = np.sqrt(W.sum(axis=0))
    chosen: list[int] = []
    covered = np.zeros(len(vocab), dtype=bool)
    for _ in range(min(budget, len(explanations))):
        gains = [
            -1.0 if i in chosen else float(importance[(W[i] > 0) & ~covered].sum()) for i in range(len(explanations))
        ]
        best = int(np.argmax(gains))
        chosen.append(best)
        covered |= W[best] > 0
    return chosen


def rank_agreement(a: Explanation, b: Explanation, k: int = 10) -> tuple[float, float]:
    """Two explanations of one review: Spearman's rho over the words either ranks among its
    ``num_features`` (a word one method leaves out weighs 0 there, as in LIME's surrogate), and the
    share of their top-``k`` words they have in common. NaN where rho is undefined."""
    from scipy.stats import spearmanr

    words = sorted({w for w, _ in a.words} | {w for w, _ in b.words})
    if len(words) < 2:
        rho = float("nan")
    else:
        x = [a.weights.get(w, 0.0) for w in words]
        y = [b.weights.get(w, 0.0) for w in words]
        rho = float("nan") if len(set(x)) < 2 or len(set(y)) < 2 else float(spearmanr(x, y).statistic)
    top_a, top_b = set(a.top_words(k)), set(b.top_words(k))
    overlap = len(top_a & top_b) / max(len(top_a), len(top_b), 1)
    return rho, overlap


def most_faithful_first(per_method: dict[str, dict[str, float]]) -> list[str]:
    """Methods ranked by faithfulness: the largest comprehensiveness (removing the method's top words
    changes the prediction most), then the smallest sufficiency."""
    return sorted(
        per_method, key=lambda m: (-per_method[m]["aopc_comprehensiveness"], per_method[m]["aopc_sufficiency"])
    )
