"""The one text → features transform, used by training, evaluation, LIME and prediction.

A :class:`Featurizer` is fitted on the training split only and saved as JSON next to the
features. It turns review text into either

* ``bow``: a sparse CSR bag-of-words matrix (``multi_hot``, ``count`` or ``tfidf``) over a
  vocabulary of word n-grams, for the MLP; or
* ``seq``: left/right padded integer sequences (0 = padding, 1 = out-of-vocabulary,
  2.. = words by training frequency), for the LSTM; a text without words is one
  out-of-vocabulary word.

Vocabularies rank terms by their total count in the training texts (ties broken
alphabetically, so the order is deterministic), drop the ``skip_top`` most frequent ones
(the original analysis's ``skip.dim``) and keep the next ``max_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from stages.common.features.counting import TermCounter
from stages.common.features.tokens import tokenize
from stages.common.params.parsing import check
from stages.common.params.schema import FeaturizerConfig

TRANSFORM_ROWS = 10_000  # texts featurized at once (the tokens' scratch arrays grow with the words)
PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2


@dataclass(frozen=True)
class TokenBatch:
    """Token sequences of many texts, flat: token ``k`` is ``terms[ids[k]]`` of text ``rows[k]``.

    ``rows`` is non-decreasing and each text's tokens are in reading order.
    """

    terms: Sequence[str]
    ids: np.ndarray
    rows: np.ndarray
    n_rows: int

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> TokenBatch:
        """Tokenize ``texts`` with :func:`tokenize`."""
        index: dict[str, int] = {}
        ids: list[int] = []
        lengths: list[int] = []
        for text in texts:
            tokens = tokenize(text)
            ids.extend(index.setdefault(t, len(index)) for t in tokens)
            lengths.append(len(tokens))
        rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        return cls(terms=list(index), ids=np.asarray(ids, dtype=np.int64), rows=rows, n_rows=len(lengths))


@dataclass(frozen=True)
class _NgramLookup:
    """Vocabulary n-grams as sorted integer keys over word ids, for vectorized lookups."""

    words: dict[str, int]
    keys: dict[int, tuple[np.ndarray, np.ndarray]]  # n → (sorted keys, vocabulary columns)

    @classmethod
    def build(cls, vocabulary: Sequence[str]) -> _NgramLookup:
        words: dict[str, int] = {}
        grams: dict[int, list[tuple[list[int], int]]] = {}
        for col, term in enumerate(vocabulary):
            parts = term.split(" ")
            grams.setdefault(len(parts), []).append(([words.setdefault(w, len(words)) for w in parts], col))
        radix = max(len(words), 1)
        keys = {}
        for n, entries in grams.items():
            key = np.array([_pack(ids, radix) for ids, _ in entries], dtype=np.int64)
            cols = np.array([c for _, c in entries], dtype=np.int64)
            order = np.argsort(key, kind="stable")
            keys[n] = (key[order], cols[order])
        return cls(words=words, keys=keys)

    def lookup(self, word_ids: np.ndarray) -> np.ndarray:
        """Vocabulary column of each n-gram given as an ``(n, N)`` array of word ids; -1 if absent."""
        n = word_ids.shape[0]
        out = np.full(word_ids.shape[1], -1, dtype=np.int64)
        if n not in self.keys or word_ids.shape[1] == 0:
            return out
        known = (word_ids >= 0).all(axis=0)
        radix = max(len(self.words), 1)
        key = np.zeros(int(known.sum()), dtype=np.int64)
        for j in range(n):
            key = key * radix + word_ids[j, known]
        sorted_keys, cols = self.keys[n]
        pos = np.minimum(np.searchsorted(sorted_keys, key), len(sorted_keys) - 1)
        out[known] = np.where(sorted_keys[pos] == key, cols[pos], -1)
        return out

    def table(self, terms: Sequence[str], n: int) -> np.ndarray:
        """Vocabulary column of every n-gram of ``terms`` (``table[i, j]``: ``terms[i] terms[j]``), -1 if absent."""
        word_of_term = np.array([self.words.get(t, -1) for t in terms], dtype=np.int64)
        combos = np.indices((len(terms),) * n).reshape(n, -1)
        return self.lookup(word_of_term[combos]).reshape((len(terms),) * n)

    def columns(self, batch: TokenBatch, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(row, vocabulary column) of every in-vocabulary n-gram of ``batch``."""
        m = len(batch.ids) - n + 1
        if m <= 0 or n not in self.keys:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        word_of_term = np.array([self.words.get(t, -1) for t in batch.terms], dtype=np.int64)
        ids, rows = batch.ids, batch.rows
        # rows are sorted: an n-gram lies in one text where its first and last tokens do
        starts = np.arange(m) if n == 1 else np.flatnonzero(rows[:m] == rows[n - 1 :])
        n_terms = len(batch.terms)
        if n_terms**n <= min(1 << 20, 4 * len(starts)):
            # few distinct terms, many n-grams (LIME's samples of one review): look every combination up once
            table = self.table(batch.terms, n).reshape(-1)
            local = np.zeros(len(starts), dtype=np.int64)
            for j in range(n):
                local = local * n_terms + ids[starts + j]
            cols = table[local]
        else:
            cols = self.lookup(np.stack([word_of_term[ids[starts + j]] for j in range(n)]))
        found = cols >= 0
        return rows[starts[found]], cols[found]


def _pack(ids: Sequence[int], radix: int) -> int:
    key = 0
    for i in ids:
        key = key * radix + i
    return key


@dataclass(frozen=True)
class Featurizer:
    """A fitted vocabulary plus everything needed to turn text into model inputs."""

    config: FeaturizerConfig
    vocabulary: list[str]
    idf: list[float] | None = None
    n_train_docs: int = 0
    _index: dict[str, int] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _ngrams: _NgramLookup = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _idf: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.vocabulary)})
        if self.config.kind == "bow":
            object.__setattr__(self, "_ngrams", _NgramLookup.build(self.vocabulary))
        if self.idf is not None:
            object.__setattr__(self, "_idf", np.asarray(self.idf, dtype=np.float32))

    @property
    def input_dim(self) -> int:
        """Number of model input columns (bow) or embedding rows (seq)."""
        if self.config.kind == "bow":
            return len(self.vocabulary)
        return len(self.vocabulary) + FIRST_WORD_ID

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix | np.ndarray:
        """Texts → features: CSR float32 matrix (bow) or int32 ``(n, maxlen)`` array (seq)."""
        if isinstance(texts, str):
            raise TypeError("transform() takes a sequence of texts, not one string")
        return self.encode(TokenBatch.from_texts(texts))

    def encode(self, batch: TokenBatch) -> sp.csr_matrix | np.ndarray:
        """Token sequences → features; :meth:`transform` is ``encode(TokenBatch.from_texts(texts))``.

        LIME's fast path hands perturbed token sequences straight to this, so a perturbed review
        gets exactly the features its perturbed text would get, without building the text.
        """
        batch = self.without_excluded(batch)
        if self.config.kind == "bow":
            return self._bow(batch)
        return self._seq(batch)

    def without_excluded(self, batch: TokenBatch) -> TokenBatch:
        """``batch`` less the words of ``exclude_terms``: the model reads the text as if they were not there."""
        if not self.config.exclude_terms or not len(batch.ids):
            return batch
        excluded = set(self.config.exclude_terms)
        drop = np.array([t in excluded for t in batch.terms], dtype=bool)
        keep = ~drop[batch.ids]
        return TokenBatch(terms=batch.terms, ids=batch.ids[keep], rows=batch.rows[keep], n_rows=batch.n_rows)

    def shuffle_words(self, batch: TokenBatch, seed: int | np.random.Generator) -> TokenBatch:
        """``batch`` with each text's words in a seeded random order: what word order is worth.

        Only the words this featurizer reads are shuffled: a sequence keeps at most ``maxlen``
        words (``truncating``), and those are shuffled among themselves, so the model sees the
        same words in another order; a bag of words reads them all (its word pairs change).
        Batches shuffled one after another with one ``Generator`` get the words one batch of all
        their texts would.
        """
        ids, rows = batch.ids, batch.rows
        if self.config.kind == "seq" and len(ids):
            lengths = np.bincount(rows, minlength=batch.n_rows)
            pos = np.arange(len(ids)) - np.concatenate([[0], np.cumsum(lengths)[:-1]])[rows]
            cut = np.maximum(lengths - self.config.maxlen, 0)
            keep = pos >= cut[rows] if self.config.truncating == "pre" else pos < self.config.maxlen
            ids, rows = ids[keep], rows[keep]
        order = np.lexsort((np.random.default_rng(seed).random(len(ids)), rows))
        return TokenBatch(terms=batch.terms, ids=ids[order], rows=rows[order], n_rows=batch.n_rows)

    def _kept_positions(self, tokens: Sequence[str]) -> list[int]:
        """Positions of the tokens this featurizer reads (all but ``exclude_terms``)."""
        excluded = set(self.config.exclude_terms)
        return [p for p, t in enumerate(tokens) if t not in excluded]

    def ngram_positions(self, tokens: Sequence[str]) -> list[tuple[int, tuple[int, ...]]]:
        """(bag-of-words column, positions of its tokens) of each n-gram feature of one text's tokens.

        What :meth:`encode` counts, occurrence by occurrence, so that a column's attribution can be
        handed back to the words that make it.
        """
        lo, hi = self.config.ngram_range
        kept = self._kept_positions(tokens)
        out = []
        for n in range(lo, hi + 1):
            for i in range(len(kept) - n + 1):
                at = tuple(kept[i : i + n])
                col = self._index.get(" ".join(tokens[p] for p in at))
                if col is not None:
                    out.append((col, at))
        return out

    def sequence_slots(self, tokens: Sequence[str]) -> np.ndarray:
        """For each of the ``maxlen`` slots :meth:`encode` fills for one text, the position of its token
        (-1: padding): which word an attribution to a slot belongs to."""
        cfg = self.config
        kept = np.asarray(self._kept_positions(tokens), dtype=np.int64)
        rows = np.zeros(len(kept), dtype=np.int64)
        return pad_flat(kept + 1, rows, 1, cfg.maxlen, cfg.padding, cfg.truncating)[0].astype(np.int64) - 1

    def _bow(self, batch: TokenBatch) -> sp.csr_matrix:
        cfg = self.config
        lo, hi = cfg.ngram_range
        shape = (batch.n_rows, len(self.vocabulary))
        counts = None
        for n in range(lo, hi + 1):
            rows, cols = self._ngrams.columns(batch, n)  # rows are non-decreasing: CSR without a COO pass
            indptr = np.zeros(batch.n_rows + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=batch.n_rows), out=indptr[1:])
            part = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, indptr), shape=shape)
            part.sum_duplicates()  # sorts each row's columns and adds repeats, as CountVectorizer counts
            counts = part if counts is None else counts + part  # n-gram orders have disjoint columns
        return self.weigh(counts)

    def ngram_table(self, terms: Sequence[str], n: int) -> np.ndarray:
        """Bag-of-words column of each n-gram of ``terms`` (an ``(len(terms),) * n`` array; -1: not a feature)."""
        lo, hi = self.config.ngram_range
        if self.config.kind != "bow" or not lo <= n <= hi or n not in self._ngrams.keys:
            return np.full((len(terms),) * n, -1, dtype=np.int64)
        return self._ngrams.table(terms, n)

    def weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """Raw n-gram counts (as :meth:`encode` counts them) → this featurizer's bag-of-words features."""
        return weight_counts(counts, self.config, self._idf)

    def _seq(self, batch: TokenBatch) -> np.ndarray:
        cfg = self.config
        index = self._index
        term_ids = np.array([index.get(t, OOV_ID - FIRST_WORD_ID) + FIRST_WORD_ID for t in batch.terms], np.int32)
        out = pad_flat(
            term_ids[batch.ids] if len(batch.ids) else np.zeros(0, np.int32),
            batch.rows,
            batch.n_rows,
            cfg.maxlen,
            cfg.padding,
            cfg.truncating,
        )
        # a text without words (LIME removes them all in some samples) is one unknown word,
        # so that a model that averages over the words never divides by zero
        empty = ~(out != PAD_ID).any(axis=1)
        out[empty, -1 if cfg.padding == "pre" else 0] = OOV_ID
        return out

    def to_json(self) -> str:
        """Stable JSON (the file DVC tracks and MLflow logs as the vocabulary)."""
        data: dict[str, Any] = {
            "config": asdict(self.config),
            "vocabulary": self.vocabulary,
            "idf": self.idf,
            "n_train_docs": self.n_train_docs,
        }
        data["config"]["ngram_range"] = list(self.config.ngram_range)
        if not self.config.exclude_terms:  # a featurizer without exclusions stays byte-identical to earlier ones
            del data["config"]["exclude_terms"]
        else:
            data["config"]["exclude_terms"] = list(self.config.exclude_terms)
        return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Featurizer:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        cfg = dict(data["config"])
        cfg["ngram_range"] = tuple(cfg["ngram_range"])
        cfg["exclude_terms"] = tuple(cfg.get("exclude_terms", ()))
        return cls(
            config=FeaturizerConfig(**cfg),
            vocabulary=list(data["vocabulary"]),
            idf=data.get("idf"),
            n_train_docs=int(data.get("n_train_docs", 0)),
        )


def in_pieces(texts: Sequence[str], featurize: Callable[[Sequence[str]], Any], rows: int = TRANSFORM_ROWS) -> Any:
    """``featurize`` applied to ``rows`` texts at a time and the pieces stacked: the features of all
    the texts, with the tokens of one piece in memory."""
    pieces = [featurize(texts[i : i + rows]) for i in range(0, len(texts), rows)] or [featurize([])]
    return sp.vstack(pieces, format="csr") if sp.issparse(pieces[0]) else np.concatenate(pieces)


def weight_counts(
    counts: sp.csr_matrix, cfg: FeaturizerConfig, idf: Sequence[float] | np.ndarray | None
) -> sp.csr_matrix:
    """Turn raw term counts into the configured bag-of-words weighting."""
    counts = counts.astype(np.float32)
    if cfg.mode == "multi_hot":
        counts.data[:] = 1.0
        return counts
    if cfg.mode == "count":
        return counts
    if cfg.sublinear_tf:
        counts.data = (1.0 + np.log(counts.data)).astype(np.float32)
    assert idf is not None, "tfidf featurizer without idf weights"
    # each stored count times its column's idf (what ``counts @ diags(idf)`` computes, without the product)
    counts.data *= np.asarray(idf, dtype=np.float32)[counts.indices]
    return normalize(counts, norm="l2", copy=False)


def pad_flat(
    values: np.ndarray, rows: np.ndarray, n_rows: int, maxlen: int, padding: str, truncating: str
) -> np.ndarray:
    """Pad/truncate sequences given flat (``values[k]`` belongs to row ``rows[k]``, rows sorted) like
    ``keras.utils.pad_sequences`` (value 0)."""
    out = np.full((n_rows, maxlen), PAD_ID, dtype=np.int32)
    if len(values) == 0:
        return out
    lengths = np.bincount(rows, minlength=n_rows)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(len(values)) - starts[rows]
    if truncating == "pre":
        drop = np.maximum(lengths - maxlen, 0)
        keep = pos >= drop[rows]
        pos = pos - drop[rows]
    else:
        keep = pos < maxlen
    kept = np.minimum(lengths, maxlen)
    col = pos + (maxlen - kept)[rows] if padding == "pre" else pos
    out[rows[keep], col[keep]] = values[keep]
    return out


def _idf(document_counts: np.ndarray, n_texts: int) -> list[float]:
    """Smoothed idf, as sklearn's ``TfidfTransformer`` computes it: ln((1 + n) / (1 + df)) + 1."""
    return (np.log((1.0 + n_texts) / (1.0 + document_counts)) + 1.0).astype(np.float32).tolist()


def term_counter(cfg: FeaturizerConfig) -> TermCounter:
    """A counter of the terms a featurizer with ``cfg`` reads (its n-grams, less ``exclude_terms``)."""
    return TermCounter(cfg.ngram_range, cfg.exclude_terms)


def fit_featurizer(train_texts: Sequence[str], cfg: FeaturizerConfig) -> Featurizer:
    """Fit a vocabulary (and idf weights) on training texts only."""
    counter = term_counter(cfg)
    counter.add(train_texts)
    return featurizer_from_counts(counter, cfg)


def featurizer_from_counts(counter: TermCounter, cfg: FeaturizerConfig) -> Featurizer:
    """The featurizer of the training texts ``counter`` has counted (chunk by chunk, for large tables)."""
    if counter.n_texts == 0:
        raise ValueError("cannot fit a vocabulary on an empty training split")
    found = counter.counts(min_docs=cfg.min_count, top=cfg.skip_top + cfg.max_tokens)
    if not len(found.terms):
        raise ValueError(f"no term occurs in at least {cfg.min_count} training texts")
    order = np.lexsort((found.terms, -found.totals))  # by total count desc, then alphabetically
    keep = order[cfg.skip_top : cfg.skip_top + cfg.max_tokens]
    vocabulary = [str(found.terms[i]) for i in keep]
    idf: list[float] | None = None
    if cfg.kind == "bow" and cfg.mode == "tfidf":
        idf = _idf(found.docs[keep], counter.n_texts)
    return Featurizer(config=cfg, vocabulary=vocabulary, idf=idf, n_train_docs=counter.n_texts)


def extend_vocabulary(featurizer: Featurizer, train_texts: Sequence[str], min_count: int) -> Featurizer:
    """A featurizer with the terms of ``train_texts`` it lacks appended to its vocabulary.

    For fine-tuning on a new domain: a word (a sequence featurizer) or an n-gram of its
    ``ngram_range`` (bag of words) that occurs in at least ``min_count`` of the texts but is out
    of the source vocabulary (Yelp's "flavorful", "the waitress" in IMDB's) gets its own id or
    column instead of none. The new terms come after the existing ones (by number of texts, then
    alphabetically), so every existing id or column, and so the source model's weights for it,
    stays as it was. With ``tfidf`` a new term's idf is computed on ``train_texts`` (as
    :func:`fit_featurizer` computes it); the existing terms keep the source's.
    """
    check(min_count >= 1, "min_count", f"must be >= 1, got {min_count}")
    cfg = featurizer.config
    known = set(featurizer.vocabulary)
    counter = term_counter(cfg)
    counter.add(train_texts)
    found = counter.counts(min_docs=min_count)
    docs = {str(t): int(n) for t, n in zip(found.terms, found.docs, strict=True) if t not in known}
    new = sorted(docs, key=lambda w: (-docs[w], w))
    if not new:
        return featurizer
    vocabulary = featurizer.vocabulary + new
    idf = None
    if featurizer.idf is not None:
        idf = featurizer.idf + _idf(np.array([docs[w] for w in new]), len(train_texts))
    config = replace(cfg, max_tokens=max(cfg.max_tokens, len(vocabulary)))
    return Featurizer(config=config, vocabulary=vocabulary, idf=idf, n_train_docs=featurizer.n_train_docs)
