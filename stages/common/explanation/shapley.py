"""SHAP values of a review's words: the ``shap`` package's Partition explainer with its text masker.

The masker splits the review with LIME's expression, so its tokens are the pieces LIME perturbs,
in reading order; a masked piece is removed. The Partition explainer computes Owen values over a
hierarchy of those pieces: the review's sentences, each split in halves down to single words. A
word's weight is the sum over its occurrences, so that, as with LIME, one word gets one weight.

Two changes are for speed. shap's own text hierarchy merges neighbours by a heuristic score in
O(n²) Python (seconds for a long review); this one is built in O(n). Owen values depend on the
hierarchy: docs/decisions.md compares the two. And the masker hands the model a boolean mask per
sample instead of a string to re-tokenize: the kept tokens become features through the same
encoding as LIME's fast path (checked against the review's own features, with the strings as
fallback), which gives the predictions the strings would get.

The explainer breaks ties between equally promising parts of the hierarchy with NumPy's global
random generator: it is seeded per review (and restored after), so an explanation is reproducible.
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

        def pieces(self, s: str) -> list[tuple[int, int]]:
            """Each piece's (start, end) offsets in ``s``."""
            return [(int(a), int(b)) for a, b in self.tokenizer(s, return_offsets_mapping=True)["offset_mapping"]]

    return PieceMasker


def masked_text(text: str, offsets: Sequence[tuple[int, int]], keep: Sequence[bool]) -> str:
    """``text`` without the pieces not kept; separators stay, as LIME removes words."""
    out, pos = [], 0
    for (start, end), k in zip(offsets, keep, strict=True):
        out.append(text[pos:start])
        if k:
            out.append(text[start:end])
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mask_predictor(
    text: str, offsets: Sequence[tuple[int, int]], model: TextModel
) -> Callable[[np.ndarray], np.ndarray]:
    """``f(masks)``: P(positive) of ``text`` keeping, in each row, the pieces where the mask is True."""
    starts = np.array([start for start, _ in offsets], dtype=np.int64)
    spans = token_spans(text)
    encode = None
    if spans is not None:
        index: dict[str, int] = {}
        term_ids = np.array([index.setdefault(tok, len(index)) for _, tok in spans], dtype=np.int64)
        pieces = np.searchsorted(starts, [start for start, _ in spans], side="right") - 1
        terms = list(index)

        def encode(masks: np.ndarray) -> Any:
            return encode_samples(model.featurizer, terms, term_ids, pieces, masks.astype(np.float64))

        if not same_features(encode(np.ones((1, len(offsets)), bool)), model.featurizer.transform([text])):
            encode = None

    def predict(masks: np.ndarray) -> np.ndarray:
        masks = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
        if encode is not None:
            features = encode(masks)
        else:
            features = model.featurizer.transform([masked_text(text, offsets, row) for row in masks])
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
    offsets = masker.pieces(text)
    words = [text[a:b] for a, b in offsets]
    predict = mask_predictor(text, offsets, model)
    start = time.perf_counter()
    proba = float(predict(np.ones((1, len(words)), bool))[0])
    if len(words) < 2:  # no hierarchy to split: the one piece gets the whole difference
        base = float(predict(np.zeros((1, len(words)), bool))[0])
        values = np.array([proba - base] * len(words))
    else:
        state = np.random.get_state()
        np.random.seed(review_seed(random_state, review_id))  # the explainer's tie-breaks
        try:
            explainer = shap.explainers.Partition(predict, masker)
            out = explainer([text], max_evals=max_evals, batch_size=max_evals, silent=True)
        finally:
            np.random.set_state(state)
        values, base = np.asarray(out.values[0], dtype=np.float64), float(np.ravel(out.base_values)[0])
    seconds = time.perf_counter() - start
    return word_explanation(review_id, label, proba, base, zip(words, values, strict=True), num_features, seconds)
