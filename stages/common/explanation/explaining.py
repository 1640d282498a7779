"""LIME text explanations and their faithfulness, on top of the one featurizer.

Semantics are those of ``lime.lime_text.LimeTextExplainer``: perturb a review by removing
all occurrences of randomly chosen words, weight samples by an exponential kernel on the
cosine distance, and fit a weighted linear surrogate. The ``lime`` package seeds once
per explainer, so explaining several reviews with one explainer makes each explanation
depend on the ones before it; :func:`review_seed` derives a seed per review from
``random_state`` and the review id instead.

The usual recipe builds 5000 perturbed strings and re-tokenizes each. With ``fast=True``
:func:`explain_text` draws the very same samples (the same random calls, so the same
explanation at the same seed) but maps each sample's kept words to the review's tokens and
hands them to :meth:`Featurizer.encode` (uni- and bigram bags of words are counted in one
compiled pass, :func:`~stages.common.explanation.lime_fast.masked_ngram_counter`); predictions skip Keras'
``predict`` loop. Where the
token ↔ word mapping cannot be exact (see :func:`~stages.common.features.featurizer.token_spans`), or the
unperturbed row does not reproduce the review's features, it falls back to strings.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages.common.explanation.lime_samples import SPLIT_EXPRESSION, masked_classifier, masked_explainer_class
from stages.common.modelling.prediction import TextModel

ProbaFn = Callable[[Sequence[str]], np.ndarray]
log = logging.getLogger(__name__)


def review_seed(random_state: int, review_id: str) -> int:
    """A 32-bit seed that depends only on ``random_state`` and the review id."""
    digest = hashlib.sha256(f"{random_state}:{review_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def two_column(proba_positive: ProbaFn) -> Callable[[Sequence[str]], np.ndarray]:
    """LIME's ``classifier_fn`` contract: texts → ``(n, 2)`` class probabilities."""

    def classifier_fn(texts: Sequence[str]) -> np.ndarray:
        p = np.asarray(proba_positive(list(texts)), dtype=np.float64).reshape(-1)
        return np.column_stack([1.0 - p, p])

    return classifier_fn


@dataclass
class Explanation:
    """One review's explanation (weights are for the positive class)."""

    review_id: str
    label: int
    proba: float
    predicted: int
    local_pred: float  # LIME: the surrogate's prediction; SHAP, gradients: intercept + all the weights
    intercept: float  # LIME: the surrogate's; SHAP, gradients: P(positive) of the review without its words
    score: float | None  # LIME's surrogate fit (R²); None for the other methods
    words: list[tuple[str, float]]  # the num_features largest weights
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict, repr=False)  # every weighted word (not saved)

    def top_words(self, k: int) -> list[str]:
        """The ``k`` words with the largest absolute weight."""
        return [w for w, _ in sorted(self.words, key=lambda wv: -abs(wv[1]))[:k]]

    def supporting(self, k: int) -> list[str]:
        """Up to ``k`` words pushing towards the predicted class, strongest first."""
        sign = 1 if self.predicted == 1 else -1
        ranked = sorted((wv for wv in self.words if sign * wv[1] > 0), key=lambda wv: -sign * wv[1])
        return [w for w, _ in ranked[:k]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "review_id": self.review_id,
            "label": self.label,
            "proba": round(self.proba, 6),
            "predicted": self.predicted,
            "local_pred": round(self.local_pred, 6),
            "intercept": round(self.intercept, 6),
            "score": None if self.score is None else round(self.score, 6),
            "words": [[w, round(v, 6)] for w, v in self.words],
            **self.extra,
        }


def explain_text(
    text: str,
    review_id: str,
    label: int,
    model: TextModel,
    *,
    random_state: int,
    num_features: int = 10,
    num_samples: int = 5000,
    kernel_width: float = 25.0,
    fast: bool = True,
) -> Explanation:
    """Explain one review with LIME, seeded from ``random_state`` and its id.

    ``fast=False`` is the usual recipe (perturbed strings through ``model.proba``); both give
    the same explanation.
    """
    import time

    from lime.lime_text import LimeTextExplainer

    explainer_class = masked_explainer_class() if fast else LimeTextExplainer
    explainer = explainer_class(
        kernel_width=kernel_width,
        class_names=["negative", "positive"],
        split_expression=SPLIT_EXPRESSION,
        bow=True,
        random_state=review_seed(random_state, review_id),
    )
    classifier_fn = masked_classifier(text, model) if fast else two_column(model.proba)
    start = time.perf_counter()
    exp = explainer.explain_instance(
        text, classifier_fn, labels=(1,), num_features=num_features, num_samples=num_samples
    )
    seconds = time.perf_counter() - start
    proba = float(exp.predict_proba[1])
    return Explanation(
        review_id=review_id,
        label=int(label),
        proba=proba,
        predicted=int(proba >= 0.5),
        local_pred=float(np.ravel(exp.local_pred)[0]),
        intercept=float(exp.intercept[1]),
        score=float(exp.score),
        words=[(str(w), float(v)) for w, v in exp.as_list(label=1)],
        seconds=seconds,
        weights={str(w): float(v) for w, v in exp.as_list(label=1)},
    )


def word_explanation(
    review_id: str,
    label: int,
    proba: float,
    intercept: float,
    occurrences: Iterable[tuple[str, float]],
    num_features: int,
    seconds: float,
) -> Explanation:
    """An explanation from weighted word occurrences (SHAP, gradients): a word weighs the sum over its
    occurrences (empty words left out), and the ``num_features`` largest are kept as words."""
    weights: dict[str, float] = {}
    for word, value in occurrences:
        if word:
            weights[word] = weights.get(word, 0.0) + float(value)
    top = sorted(weights.items(), key=lambda wv: (-abs(wv[1]), wv[0]))[:num_features]
    return Explanation(
        review_id=review_id,
        label=int(label),
        proba=proba,
        predicted=int(proba >= 0.5),
        local_pred=intercept + float(sum(weights.values())),
        intercept=intercept,
        score=None,
        words=top,
        seconds=seconds,
        weights=weights,
    )


def warm_up(model: TextModel, *, fast: bool = True) -> None:
    """One small untimed explanation: one-off costs (numba's compile or cache load, TensorFlow's
    tracing) stay out of the seconds that explanations report."""
    text = "A warm-up review: the plot was good, the acting bad, and the ending good."
    explain_text(text, "warm-up", 1, model, random_state=0, num_samples=600, fast=fast)
