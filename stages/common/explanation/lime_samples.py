"""LIME's perturbed samples as features, without building a string per sample (the fast path).

``LimeTextExplainer`` removes words from the review and hands the perturbed strings to
``classifier_fn``, which re-tokenizes each. Here the explainer hands over its 0/1 word masks
instead (:func:`masked_explainer_class`, the very same samples), and each mask becomes the
features its text would get: the review's tokens are mapped to LIME's words once, and the kept
tokens go straight to :meth:`Featurizer.encode` (bags of uni- and bigrams are counted by
:func:`~stages.common.explanation.lime_fast.masked_ngram_counter`). Where the mapping cannot be exact, or the
unperturbed row does not reproduce the review's features, it falls back to strings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from stages.common.features.featurizer import Featurizer, TokenBatch
from stages.common.features.tokens import token_spans

if TYPE_CHECKING:  # pragma: no cover
    from stages.common.modelling.prediction import TextModel

# LIME splits text into the words it perturbs with this; it keeps inner apostrophes
# ("don't") together like the featurizer's tokenizer does.
SPLIT_EXPRESSION = r"[^\w']+"
MIN_ROWS_PER_THREAD = 256  # smaller batches are encoded in the calling thread
log = logging.getLogger(__name__)


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


def same_features(a: Any, b: Any) -> bool:
    """Whether two feature matrices (sparse or dense) are equal."""
    if sp.issparse(a) or sp.issparse(b):
        a, b = sp.csr_matrix(a), sp.csr_matrix(b)
        return a.shape == b.shape and (a != b).nnz == 0
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def masked_explainer_class() -> type:
    from lime.lime_text import LimeTextExplainer

    from stages.common.explanation.lime_fast import fast_lime_base_class, legacy_removals

    fast_base = fast_lime_base_class()

    class MaskedLimeTextExplainer(LimeTextExplainer):
        """``LimeTextExplainer`` whose ``classifier_fn(indexed, data)`` gets LIME's 0/1 sample matrix.

        Overrides the one private step that builds the neighbourhood, with the same random
        calls (:func:`~stages.common.explanation.lime_fast.legacy_removals` replays them in compiled code),
        and solves the surrogate in NumPy (:class:`~stages.common.explanation.lime_fast.FastLimeBase`):
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
            if distance_metric != "cosine":
                raise ValueError(f"distance_metric {distance_metric!r}: only LIME's default, 'cosine', is used here")
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

    Uni- and bigram bags of words are counted by :func:`~stages.common.explanation.lime_fast.masked_ngram_counter`
    and weighted by the featurizer; other featurizers get :func:`encode_masked`. The same matrix either way.
    """
    hi = featurizer.config.ngram_range[1]
    if featurizer.config.kind == "bow" and hi <= 2:
        from stages.common.explanation.lime_fast import masked_ngram_counter

        if featurizer.config.exclude_terms:  # the featurizer reads the text without them: so do the n-grams
            excluded = np.isin(np.asarray(terms, dtype=object), list(featurizer.config.exclude_terms))
            keep = ~excluded[term_ids]
            term_ids, words = term_ids[keep], words[keep]

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
            if not same_features(features[:1], model.featurizer.transform([text])):
                features = None
        if features is None:
            log.warning("LIME fast path not exact for this review; perturbing strings instead")
            texts = [indexed.inverse_removing(np.flatnonzero(row == 0)) for row in data]
            features = model.featurizer.transform(texts)
        p = np.asarray(model.predict(features), dtype=np.float64).reshape(-1)
        return np.column_stack([1.0 - p, p])

    return classifier_fn
