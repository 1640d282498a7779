"""Exact n-gram counts over texts added chunk by chunk: what a vocabulary is fitted on.

Each word gets an integer id once; an n-gram is its words' ids packed into one 64-bit key, so the
counts are three integer arrays (key, occurrences, texts holding it) merged chunk after chunk,
never the texts or one string per n-gram. Terms are the n-grams of :func:`tokenize`'s tokens (less
``exclude_terms``) joined by one space, as scikit-learn's ``CountVectorizer`` forms them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stages.common.features.tokens import tokenize


@dataclass(frozen=True)
class TermCounts:
    """Terms with their total count and the number of texts they occur in."""

    terms: np.ndarray  # str
    totals: np.ndarray  # int64
    docs: np.ndarray  # int64


class TermCounter:
    """Counts the n-grams of ``ngram_range`` in texts given chunk by chunk (:meth:`add`)."""

    def __init__(self, ngram_range: Sequence[int], exclude_terms: Sequence[str] = ()) -> None:
        self.lo, self.hi = int(ngram_range[0]), int(ngram_range[1])
        self.excluded = frozenset(exclude_terms)
        self.words: dict[str, int] = {}
        self.n_texts = 0
        empty = np.zeros(0, dtype=np.uint64)
        self._keys = {n: empty for n in range(self.lo, self.hi + 1)}
        self._totals = {n: np.zeros(0, dtype=np.int64) for n in self._keys}
        self._docs = {n: np.zeros(0, dtype=np.int64) for n in self._keys}

    def add(self, texts: Sequence[str]) -> None:
        """Count the n-grams of a chunk of texts."""
        words, ids, lengths = self.words, [], []
        for text in texts:  # excluded words are not there: the n-grams join their neighbours
            tokens = [words.setdefault(t, len(words)) for t in tokenize(text) if t not in self.excluded]
            ids.extend(tokens)
            lengths.append(len(tokens))
        ids = np.asarray(ids, dtype=np.uint64)
        rows = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        self.n_texts += len(lengths)
        for n in self._keys:
            bits = 64 // n
            if len(self.words) >= 1 << bits:
                raise ValueError(f"{len(self.words):,} distinct words: too many to count {n}-grams exactly")
            m = len(ids) - n + 1
            if m <= 0:
                continue
            starts = np.flatnonzero(rows[:m] == rows[n - 1 :])  # an n-gram lies within one text
            keys = np.zeros(len(starts), dtype=np.uint64)
            for j in range(n):
                keys = (keys << np.uint64(bits)) | ids[starts + j]
            self._merge(n, keys, rows[starts])

    def _merge(self, n: int, keys: np.ndarray, rows: np.ndarray) -> None:
        order = np.lexsort((rows, keys))
        keys, rows = keys[order], rows[order]
        new_text = np.r_[True, (keys[1:] != keys[:-1]) | (rows[1:] != rows[:-1])]
        chunk_keys, totals = np.unique(keys, return_counts=True)
        docs = np.unique(keys[new_text], return_counts=True)[1]
        merged, at = np.unique(np.concatenate([self._keys[n], chunk_keys]), return_inverse=True)
        size = len(merged)
        self._totals[n] = np.bincount(at, np.concatenate([self._totals[n], totals]), size).astype(np.int64)
        self._docs[n] = np.bincount(at, np.concatenate([self._docs[n], docs]), size).astype(np.int64)
        self._keys[n] = merged

    def _terms(self, n: int, keys: np.ndarray) -> np.ndarray:
        words = np.array(list(self.words), dtype=object)
        bits, mask = 64 // n, (1 << (64 // n)) - 1
        parts = [words[((keys >> np.uint64(bits * (n - 1 - j))) & np.uint64(mask)).astype(np.int64)] for j in range(n)]
        out = parts[0]
        for part in parts[1:]:
            out = out + " " + part
        return out.astype(str) if len(out) else np.zeros(0, dtype=str)

    def counts(self, min_docs: int = 1, top: int | None = None) -> TermCounts:
        """The terms in at least ``min_docs`` texts; with ``top``, only those whose total count is at
        least the ``top``-th largest (ties kept: the caller orders them)."""
        keys, totals, docs = [], [], []
        for n in self._keys:
            found = self._docs[n] >= min_docs
            keys.append(self._keys[n][found])
            totals.append(self._totals[n][found])
            docs.append(self._docs[n][found])
        total = np.concatenate(totals)
        chosen = np.ones(len(total), dtype=bool)
        if top is not None and len(total) > top:
            chosen = total >= np.partition(total, len(total) - top)[len(total) - top]
        terms, offset = [], 0
        for n, k in zip(self._keys, keys, strict=True):
            terms.append(self._terms(n, k[chosen[offset : offset + len(k)]]))
            offset += len(k)
        return TermCounts(terms=np.concatenate(terms), totals=total[chosen], docs=np.concatenate(docs)[chosen])
