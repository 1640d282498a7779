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
compiled pass, :func:`~stages.common.lime_fast.masked_ngram_counter`); predictions skip Keras'
``predict`` loop. Where the
token ↔ word mapping cannot be exact (see :func:`~stages.common.features.token_spans`), or the
unperturbed row does not reproduce the review's features, it falls back to strings.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import scipy.sparse as sp

from stages.common.features import Featurizer, TokenBatch, token_spans

# LIME splits text into the words it perturbs with this; it keeps inner apostrophes
# ("don't") together like the featurizer's tokenizer does.
SPLIT_EXPRESSION = r"[^\w']+"

ProbaFn = Callable[[Sequence[str]], np.ndarray]
MIN_ROWS_PER_THREAD = 256  # smaller batches are encoded in the calling thread
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextModel:
    """What is explained: the featurizer and a features → P(positive) function."""

    featurizer: Featurizer
    predict: Callable[[Any], np.ndarray]

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → P(positive), through the one featurizer."""
        return np.asarray(self.predict(self.featurizer.transform(list(texts))), dtype=np.float64).reshape(-1)


def word_tokens(text: str, indexed: Any) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """The featurizer's tokens of ``text`` as (terms, term id per token, LIME word id per token).

    None where the mapping cannot be exact. Every token lies inside one LIME word (tokens use
    word characters and apostrophes only, which LIME never splits on), and removing a LIME
    word removes exactly its tokens.
    """
    spans = token_spans(text)
    if spans is None:
        return None
    piece_word = np.full(len(indexed.as_list), -1, dtype=np.int64)
    for word_id, pieces in enumerate(indexed.positions):
        piece_word[pieces] = word_id
    starts = np.array([start for start, _ in spans], dtype=np.int64)
    pieces = np.searchsorted(indexed.string_start, starts, side="right") - 1
    words = piece_word[pieces] if len(spans) else np.zeros(0, np.int64)
    if (words < 0).any():
        return None
    index: dict[str, int] = {}
    term_ids = np.array([index.setdefault(tok, len(index)) for _, tok in spans], dtype=np.int64)
    return list(index), term_ids, words


def _same_features(a: Any, b: Any) -> bool:
    if sp.issparse(a) or sp.issparse(b):
        a, b = sp.csr_matrix(a), sp.csr_matrix(b)
        return a.shape == b.shape and (a != b).nnz == 0
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _masked_explainer_class() -> type:
    from lime.lime_text import LimeTextExplainer

    from stages.common.lime_fast import fast_lime_base_class, legacy_removals

    fast_base = fast_lime_base_class()

    class MaskedLimeTextExplainer(LimeTextExplainer):
        """``LimeTextExplainer`` whose ``classifier_fn(indexed, data)`` gets LIME's 0/1 sample matrix.

        Overrides the one private step that builds the neighbourhood, with the same random
        calls (:func:`~stages.common.lime_fast.legacy_removals` replays them in compiled code),
        and solves the surrogate in NumPy (:class:`~stages.common.lime_fast.FastLimeBase`):
        samples, weights and surrogate are those of the stock explainer.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.base = fast_base(self.base.kernel_fn, self.base.verbose, random_state=self.random_state)

        def _LimeTextExplainer__data_labels_distances(  # noqa: N802 - overrides lime's mangled name
            self, indexed_string: Any, classifier_fn: Any, num_samples: int, distance_metric: str = "cosine"
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            doc_size = indexed_string.num_words()
            sample = self.random_state.randint(1, doc_size + 1, num_samples - 1)
            data = np.ones((num_samples, doc_size))
            data[1:][legacy_removals(self.random_state, doc_size, sample)] = 0
            labels = classifier_fn(indexed_string, data)
            if distance_metric != "cosine":  # pragma: no cover - LIME's default is the only one used
                from sklearn.metrics.pairwise import pairwise_distances

                x = sp.csr_matrix(data)
                return data, labels, pairwise_distances(x, x[0], metric=distance_metric).ravel() * 100
            # cosine distance of a 0/1 row keeping m of d words to the all-ones row: 1 - sqrt(m / d)
            # (a row without words is at distance 1, as scikit-learn's cosine distance has it)
            kept = data.sum(axis=1)
            return data, labels, (1.0 - np.sqrt(kept / doc_size)) * 100

    return MaskedLimeTextExplainer


@cache
def _encode_pool() -> tuple[ThreadPoolExecutor | None, int]:
    """Threads for encoding LIME's samples, one per core (NumPy and SciPy release the GIL), and their number."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    workers = min(cores, 8)
    return (ThreadPoolExecutor(workers, thread_name_prefix="lime-encode") if workers > 1 else None), workers


def encode_masked(featurizer: Featurizer, terms: list[str], term_ids: np.ndarray, kept: np.ndarray) -> Any:
    """Features of ``kept.shape[0]`` token sequences: row i keeps the tokens where ``kept[i]`` is True.

    :meth:`Featurizer.encode` on the kept tokens, in one chunk of rows per core (a row's features
    depend on that row alone), stacked in row order.
    """

    def encode(block: np.ndarray) -> Any:
        rows, cols = np.nonzero(block)
        return featurizer.encode(TokenBatch(terms=terms, ids=term_ids[cols], rows=rows, n_rows=len(block)))

    return _by_row_blocks(encode, kept)


def _by_row_blocks(encode: Callable[[np.ndarray], Any], rows: np.ndarray) -> Any:
    """``encode(rows)`` where a row's features depend on that row alone: one block of rows per core, stacked."""
    pool, workers = _encode_pool()
    if pool is None or len(rows) < MIN_ROWS_PER_THREAD * 2:
        return encode(rows)
    blocks = np.array_split(rows, min(workers, len(rows) // MIN_ROWS_PER_THREAD))
    parts = list(pool.map(encode, blocks))
    return sp.vstack(parts, format="csr") if sp.issparse(parts[0]) else np.concatenate(parts)


def encode_samples(
    featurizer: Featurizer, terms: list[str], term_ids: np.ndarray, words: np.ndarray, data: np.ndarray
) -> Any:
    """Features of LIME's samples of one review: token ``p`` stays where ``data[:, words[p]]``.

    Uni- and bigram bags of words are counted by :func:`~stages.common.lime_fast.masked_ngram_counter`
    and weighted by the featurizer; other featurizers get :func:`encode_masked`. The same matrix either way.
    """
    hi = featurizer.config.ngram_range[1]
    if featurizer.config.kind == "bow" and hi <= 2:
        from stages.common.lime_fast import masked_ngram_counter

        unigram = featurizer.ngram_table(terms, 1)
        bigram = featurizer.ngram_table(terms, 2) if hi == 2 else np.zeros((0, 0), np.int64)
        count = masked_ngram_counter(words, term_ids, unigram, bigram, featurizer.input_dim)

        def encode(block: np.ndarray) -> Any:
            return featurizer.weigh(count(block))

        return _by_row_blocks(encode, data)
    return encode_masked(featurizer, terms, term_ids, data.astype(bool)[:, words])


def masked_classifier(text: str, model: TextModel) -> Callable[[Any, np.ndarray], np.ndarray]:
    """``classifier_fn(indexed, data)`` for the masked explainer: kept tokens → features → (n, 2)."""

    def classifier_fn(indexed: Any, data: np.ndarray) -> np.ndarray:
        mapping = word_tokens(text, indexed)
        features = None
        if mapping is not None:
            terms, term_ids, words = mapping
            features = encode_samples(model.featurizer, terms, term_ids, words, data)
            if not _same_features(features[:1], model.featurizer.transform([text])):
                features = None
        if features is None:
            log.warning("LIME fast path not exact for this review; perturbing strings instead")
            texts = [indexed.inverse_removing(np.flatnonzero(row == 0)) for row in data]
            features = model.featurizer.transform(texts)
        p = np.asarray(model.predict(features), dtype=np.float64).reshape(-1)
        return np.column_stack([1.0 - p, p])

    return classifier_fn


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
    local_pred: float
    intercept: float
    score: float
    words: list[tuple[str, float]]
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

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
            "score": round(self.score, 6),
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

    explainer_class = _masked_explainer_class() if fast else LimeTextExplainer
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
    )


def warm_up(model: TextModel, *, fast: bool = True) -> None:
    """One small untimed explanation: one-off costs (numba's compile or cache load, TensorFlow's
    tracing) stay out of the seconds that explanations report."""
    text = "A warm-up review: the plot was good, the acting bad, and the ending good."
    explain_text(text, "warm-up", 1, model, random_state=0, num_samples=600, fast=fast)


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
