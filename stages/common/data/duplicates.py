"""Duplicate and near-duplicate reviews, within and across splits: what leaks into the test split.

Exact duplicates compare normalised text (lower-case, every run of other characters than letters
and digits as one space). Near-duplicates compare word 3-shingles by MinHash LSH (datasketch's
MinHash and its banding for the threshold): two reviews whose estimated Jaccard similarity is at
least ``jaccard`` but whose normalised texts differ (one review quoted with a line added, the
same text with other punctuation).

Reviews are added chunk by chunk and the state per review is small and fixed: a 64-bit digest of
its normalised text, one 64-bit key per LSH band and its MinHash signature, which waits in a
temporary file until a candidate pair needs it. Memory grows by ~100 bytes per review, not with
the text.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SHINGLE_WORDS = 3
NUM_PERM = 128
EXAMPLES = 5
_NON_WORD = re.compile(r"[^a-z0-9]+")
_PAIRS_PER_BATCH = 100_000  # candidate pairs whose signatures are compared at once
_TEXTS_PER_BATCH = 2_000  # reviews whose word triples are hashed at once


def normalise(text: str) -> str:
    """The text duplicates are compared on: lower-case words and digits, single spaces."""
    return _NON_WORD.sub(" ", text.lower()).strip()


@dataclass(frozen=True)
class Duplicates:
    """What :meth:`DuplicateIndex.find` found: data-card counts and, per review, a training twin."""

    card: dict[str, Any]
    in_train: np.ndarray  # per review: a test review whose exact or near twin is in the training split


def _shingles(text: str) -> list[bytes]:
    words = text.split()
    if len(words) <= SHINGLE_WORDS:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + SHINGLE_WORDS]).encode() for i in range(len(words) - SHINGLE_WORDS + 1)]


def _digest(text: str) -> int:
    """64 bits of BLAKE2b: two different texts among a billion reviews share one with odds ~3%."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class DuplicateIndex:
    """Reviews added chunk by chunk (:meth:`add`), then looked up over any selection (:meth:`find`).

    Row numbers are the order reviews were added in. Use as a context manager: the signatures'
    temporary file is removed on exit.
    """

    def __init__(self, jaccard: float, seed: int) -> None:
        from datasketch import MinHashLSH

        lsh = MinHashLSH(threshold=jaccard, num_perm=NUM_PERM)  # its optimal banding for the threshold
        self.jaccard, self.seed, self.bands, self.rows_per_band = jaccard, seed, lsh.b, lsh.r
        self._mix = np.random.default_rng(0).integers(1, 2**63, size=lsh.r, dtype=np.uint64) | np.uint64(1)
        self._digests: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._signatures = tempfile.TemporaryFile(prefix="minhash-")  # noqa: SIM115 (closed by __exit__)
        self.size = 0

    def __enter__(self) -> DuplicateIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self._signatures.close()

    def add(self, texts: Sequence[str]) -> None:
        """Index a chunk of reviews (their rows follow the ones added before)."""
        from datasketch import MinHash

        norm = [normalise(t) for t in texts]
        self._digests.append(np.fromiter((_digest(t) for t in norm), dtype=np.uint64, count=len(norm)))
        signatures = np.zeros((len(norm), NUM_PERM), dtype=np.uint32)  # datasketch's values are < 2**32
        for start in range(0, len(norm), _TEXTS_PER_BATCH):  # a few reviews' shingles at a time
            batch = [_shingles(t) for t in norm[start : start + _TEXTS_PER_BATCH]]
            for row, h in enumerate(MinHash.bulk(batch, num_perm=NUM_PERM, seed=self.seed), start):
                signatures[row] = h.hashvalues
        r = self.rows_per_band
        keys = np.empty((len(norm), self.bands), dtype=np.uint64)
        with np.errstate(over="ignore"):  # the keys are hashes: wrapping around is the point
            for band in range(self.bands):
                keys[:, band] = (signatures[:, band * r : (band + 1) * r].astype(np.uint64) * self._mix).sum(axis=1)
        self._keys.append(keys)
        self._signatures.write(signatures.tobytes())
        self.size += len(norm)

    def _stack(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self._digests) > 1:
            self._digests, self._keys = [np.concatenate(self._digests)], [np.concatenate(self._keys)]
        self._signatures.flush()
        signatures = np.memmap(self._signatures, dtype=np.uint32, mode="r", shape=(self.size, NUM_PERM))
        return self._digests[0], self._keys[0], signatures

    def _near_pairs(
        self, rows: np.ndarray, digests: np.ndarray, keys: np.ndarray, signatures: np.ndarray
    ) -> np.ndarray:
        """Pairs ``(i, j)``, ``i < j`` (positions in ``rows``), of different texts with Jaccard ≥ the threshold.

        Exact copies are counted as exact: the first of them stands for all. Candidates share a band
        of their signatures (an equal band key), then their estimated Jaccard similarity decides.
        """
        _, first = np.unique(digests[rows], return_index=True)
        first = np.sort(first)
        found: list[np.ndarray] = []
        for band in range(self.bands):
            band_keys = keys[rows[first], band]
            order = np.argsort(band_keys, kind="stable")
            sorted_keys = band_keys[order]
            starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
            sizes = np.diff(np.r_[starts, len(order)])
            for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
                members = np.sort(first[order[start : start + size]])
                i, j = np.triu_indices(len(members), k=1)
                found.append(members[i] * len(rows) + members[j])
        if not found:
            return np.zeros((0, 2), dtype=np.int64)
        codes = np.unique(np.concatenate(found))
        pairs = np.stack([codes // len(rows), codes % len(rows)], axis=1)
        similar = np.zeros(len(pairs), dtype=bool)
        for at in range(0, len(pairs), _PAIRS_PER_BATCH):
            batch = pairs[at : at + _PAIRS_PER_BATCH]
            same = signatures[rows[batch[:, 0]]] == signatures[rows[batch[:, 1]]]
            similar[at : at + len(batch)] = same.mean(axis=1) >= self.jaccard
        return pairs[similar]

    def find(self, rows: np.ndarray, splits: Sequence[str], ids: Sequence[str]) -> Duplicates:
        """Exact and near-duplicates among the indexed ``rows``, whose splits and ids are given in order.

        Counts are of reviews: ``within_train`` is the number of training reviews that have a twin
        earlier in the training split (extra copies), ``test_in_train`` the number of test reviews
        with a twin in the training split. Examples are id pairs, never text.
        """
        rows = np.asarray(rows, dtype=np.int64)
        split = np.asarray(splits).astype(str)
        ids = np.asarray(ids).astype(str)
        all_digests, keys, signatures = self._stack()
        digests = all_digests[rows]
        exact: dict[str, Any] = {"test_in_train": 0, "examples": []}
        for s in ("train", "test"):
            part = digests[split == s]
            exact[f"within_{s}"] = int(len(part) - len(np.unique(part)))
        train = np.flatnonzero(split == "train")
        train_digests, train_first = np.unique(digests[train], return_index=True)
        test = np.flatnonzero(split == "test")
        at = np.searchsorted(train_digests, digests[test]).clip(max=max(len(train_digests) - 1, 0))
        hit = (train_digests[at] == digests[test]) if len(train_digests) else np.zeros(len(test), dtype=bool)
        in_train = np.zeros(len(rows), dtype=bool)
        in_train[test[hit]] = True
        exact["test_in_train"] = int(hit.sum())
        for t, a in list(zip(test[hit], at[hit], strict=True))[:EXAMPLES]:
            exact["examples"].append([ids[t], ids[train[train_first[a]]]])
        near: dict[str, Any] = {"examples": []}
        twin: dict[str, set[int]] = {"train": set(), "test": set(), "cross": set()}
        for i, j in self._near_pairs(rows, all_digests, keys, signatures).tolist():
            if split[i] == split[j]:
                twin[str(split[i])].add(j)
            else:
                test_row, train_row = (i, j) if split[i] == "test" else (j, i)
                if not in_train[test_row]:
                    twin["cross"].add(test_row)
                    if len(near["examples"]) < EXAMPLES and all(e[0] != ids[test_row] for e in near["examples"]):
                        near["examples"].append([ids[test_row], ids[train_row]])
        near["within_train"], near["within_test"] = len(twin["train"]), len(twin["test"])
        near["test_in_train"] = len(twin["cross"])
        in_train[sorted(twin["cross"])] = True
        card = {
            "normalised": "lower-case letters and digits, other characters as one space",
            "exact": exact,
            "near": {"jaccard": self.jaccard, "shingle_words": SHINGLE_WORDS, "minhash_permutations": NUM_PERM, **near},
            "test_in_train": int(in_train.sum()),
        }
        return Duplicates(card=card, in_train=in_train)


def find_duplicates(
    ids: Sequence[str], texts: Sequence[str], splits: Sequence[str], jaccard: float, seed: int
) -> Duplicates:
    """:meth:`DuplicateIndex.find` over one table's reviews, all in memory (small tables, tests)."""
    with DuplicateIndex(jaccard, seed) as index:
        index.add(list(texts))
        return index.find(np.arange(len(texts)), splits, ids)
