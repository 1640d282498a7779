"""SHAP values of a review's words: the ``shap`` package's Partition explainer with its text masker.

The masker splits the review with LIME's expression, so its tokens are the pieces LIME perturbs,
in reading order; a masked piece is removed. The Partition explainer computes Owen values over a
hierarchy of those pieces: the review's sentences, each split in halves down to single words. A
word's weight is the sum over its occurrences, so that, as with LIME, one word gets one weight.

Two changes are for speed and leave the semantics alone. shap's own text hierarchy merges
neighbours by a heuristic score in O(n²) Python (seconds for a long review); this one is built in
O(n). And the masker hands the model a boolean mask per sample instead of a string to
re-tokenize: the kept tokens become features through the same encoding as LIME's fast path
(checked against the review's own features, with the strings as fallback).

The explainer breaks ties between equally promising parts of the hierarchy with NumPy's global
random generator: it is seeded per review, so an explanation is reproducible.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np

from stages.common.explanation.explaining import Explanation, review_seed, word_explanation
from stages.common.explanation.lime_samples import SPLIT_EXPRESSION, encode_samples, same_features
from stages.common.features.tokens import token_spans
from stages.common.modelling.prediction import TextModel

_SENTENCE_END = re.compile(r"[.!?]")


def sentence_tree(segments: Sequence[str]) -> np.ndarray:
    """A hierarchy of ``segments`` (a piece and the separator after it) as a linkage matrix.

    Rows ``[left, right, distance, size]`` as SciPy's linkage has them: sentences (a separator
    with ``.``, ``!`` or ``?`` ends one) are joined in halves, and so are the pieces of each
    sentence. The distance is the share of pieces a node covers.
    """
    n = len(segments)
    rows: list[list[float]] = []
    size = [1] * n

    def join(nodes: list[int]) -> int:
        if len(nodes) == 1:
            return nodes[0]
        mid = len(nodes) // 2
        left, right = join(nodes[:mid]), join(nodes[mid:])
        size.append(size[left] + size[right])
        rows.append([left, right, size[-1] / n, size[-1]])
        return n + len(rows) - 1

    sentences, current = [], []
    for i, segment in enumerate(segments):
        current.append(i)
        if _SENTENCE_END.search(segment):
            sentences.append(join(current))
            current = []
    if current:
        sentences.append(join(current))
    join(sentences)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


@cache
def _masker_class() -> type:
    import shap

    class PieceMasker(shap.maskers.Text):
        """shap's text masker over LIME's pieces that returns the boolean mask itself, with
        :func:`sentence_tree` as the hierarchy."""

        def __init__(self) -> None:
            super().__init__(SPLIT_EXPRESSION)

        def __call__(self, mask: np.ndarray, s: str) -> tuple[np.ndarray]:
            return (np.asarray(mask, dtype=bool).reshape(1, -1),)

        def clustering(self, s: str) -> np.ndarray:
            self._update_s_cache(s)
            return sentence_tree(list(self._segments_s))

        def pieces(self, s: str) -> tuple[list[str], np.ndarray, list[str]]:
            """Each piece's text, start offset and segment (the piece and the separator after it)."""
            self._update_s_cache(s)
            offsets = self.tokenizer(s, return_offsets_mapping=True)["offset_mapping"]
            return [s[a:b] for a, b in offsets], np.array([a for a, _ in offsets]), list(self._segments_s)

    return PieceMasker


def mask_predictor(
    text: str, starts: np.ndarray, segments: Sequence[str], model: TextModel
) -> Callable[[np.ndarray], np.ndarray]:
    """``f(masks)``: P(positive) of ``text`` keeping, in each row, the pieces where the mask is True."""
    spans = token_spans(text)
    encode = None
    if spans is not None:
        index: dict[str, int] = {}
        term_ids = np.array([index.setdefault(tok, len(index)) for _, tok in spans], dtype=np.int64)
        pieces = np.searchsorted(starts, [start for start, _ in spans], side="right") - 1
        terms = list(index)

        def encode(masks: np.ndarray) -> Any:
            return encode_samples(model.featurizer, terms, term_ids, pieces, masks.astype(np.float64))

        if not same_features(encode(np.ones((1, len(segments)), bool)), model.featurizer.transform([text])):
            encode = None

    def predict(masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
        if encode is not None:
            features = encode(masks)
        else:
            kept = ["".join(s for s, keep in zip(segments, row, strict=True) if keep) for row in masks]
            features = model.featurizer.transform(kept)
        return np.asarray(model.predict(features), dtype=np.float64).reshape(-1)

    return predict


def explain_text(
    text: str,
    review_id: str,
    label: int,
    model: TextModel,
    *,
    random_state: int,
    num_features: int = 10,
    max_evals: int = 500,
) -> Explanation:
    """One review's SHAP explanation (Owen values of its words for P(positive))."""
    import shap

    masker = _masker_class()()
    words, starts, segments = masker.pieces(text)
    predict = mask_predictor(text, starts, segments, model)
    start = time.perf_counter()
    proba = float(predict(np.ones((1, len(words)), bool))[0])
    if len(words) < 2:  # no hierarchy to split: the one piece gets the whole difference
        base = float(predict(np.zeros((1, len(words)), bool))[0])
        values = np.array([proba - base] * len(words))
    else:
        np.random.seed(review_seed(random_state, review_id))  # the explainer's tie-breaks
        explainer = shap.explainers.Partition(predict, masker)
        out = explainer([text], max_evals=max_evals, batch_size=max_evals, silent=True)
        values, base = np.asarray(out.values[0], dtype=np.float64), float(np.ravel(out.base_values)[0])
    seconds = time.perf_counter() - start
    weights: dict[str, float] = {}
    for word, value in zip(words, values, strict=True):
        if word:
            weights[word] = weights.get(word, 0.0) + float(value)
    return word_explanation(review_id, label, proba, base, weights, num_features, seconds)
