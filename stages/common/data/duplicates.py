"""Duplicate and near-duplicate reviews, within and across splits: what leaks into the test split.

Exact duplicates compare normalised text (lower-case, every run of other characters than letters
and digits as one space). Near-duplicates compare word 3-shingles by MinHash LSH (datasketch):
two reviews whose estimated Jaccard similarity is at least ``jaccard`` but whose normalised texts
differ (one review quoted with a line added, the same text with other punctuation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SHINGLE_WORDS = 3
NUM_PERM = 128
EXAMPLES = 5
_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalise(text: str) -> str:
    """The text duplicates are compared on: lower-case words and digits, single spaces."""
    return _NON_WORD.sub(" ", text.lower()).strip()


@dataclass(frozen=True)
class Duplicates:
    """What :func:`find_duplicates` found: data-card counts and, per review, a training twin."""

    card: dict[str, Any]
    in_train: np.ndarray  # per review: a test review whose exact or near twin is in the training split


def _shingles(text: str) -> list[bytes]:
    words = text.split()
    if len(words) <= SHINGLE_WORDS:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + SHINGLE_WORDS]).encode() for i in range(len(words) - SHINGLE_WORDS + 1)]


def _near_pairs(norm: Sequence[str], jaccard: float, seed: int) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of different texts with estimated Jaccard ≥ ``jaccard``."""
    from datasketch import MinHash, MinHashLSH

    hashes = MinHash.bulk([_shingles(t) for t in norm], num_perm=NUM_PERM, seed=seed)
    lsh = MinHashLSH(threshold=jaccard, num_perm=NUM_PERM)
    first: dict[str, int] = {}
    for i, text in enumerate(norm):
        if text in first:  # exact copies are counted as exact; one of them stands for all
            continue
        first[text] = i
        lsh.insert(i, hashes[i])
    pairs = set()
    for i in first.values():
        for j in lsh.query(hashes[i]):
            if j != i and hashes[i].jaccard(hashes[j]) >= jaccard:
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


def find_duplicates(
    ids: Sequence[str], texts: Sequence[str], splits: Sequence[str], jaccard: float, seed: int
) -> Duplicates:
    """Count exact and near-duplicate reviews within each split and test reviews found in training. Pure.

    Counts are of reviews: ``within_train`` is the number of training reviews that have a twin
    earlier in the training split (extra copies), ``test_in_train`` the number of test reviews
    with a twin in the training split. Examples are id pairs, never text.
    """
    ids = [str(i) for i in ids]
    norm = [normalise(t) for t in texts]
    split = np.asarray(splits)
    train_at: dict[str, int] = {}
    exact = {"within_train": 0, "within_test": 0, "test_in_train": 0, "examples": []}
    seen: dict[tuple[str, str], int] = {}
    in_train = np.zeros(len(norm), dtype=bool)
    for i, (text, s) in enumerate(zip(norm, split, strict=True)):
        if (s, text) in seen:
            exact[f"within_{s}"] += 1
        else:
            seen[(s, text)] = i
        if s == "train":
            train_at.setdefault(text, i)
    for i, (text, s) in enumerate(zip(norm, split, strict=True)):
        if s == "test" and text in train_at:
            in_train[i] = True
            exact["test_in_train"] += 1
            if len(exact["examples"]) < EXAMPLES:
                exact["examples"].append([ids[i], ids[train_at[text]]])
    near = {"within_train": 0, "within_test": 0, "test_in_train": 0, "examples": []}
    twin: dict[str, set[int]] = {"train": set(), "test": set(), "cross": set()}
    for i, j in _near_pairs(norm, jaccard, seed):
        if split[i] == split[j]:
            twin[str(split[i])].add(j)
        else:
            test, train = (i, j) if split[i] == "test" else (j, i)
            if not in_train[test]:
                twin["cross"].add(test)
                if len(near["examples"]) < EXAMPLES and all(e[0] != ids[test] for e in near["examples"]):
                    near["examples"].append([ids[test], ids[train]])
    near["within_train"], near["within_test"] = len(twin["train"]), len(twin["test"])
    near["test_in_train"] = len(twin["cross"])
    in_train[sorted(twin["cross"])] = True
    card = {
        "normalised": "lower-case letters and digits, other characters as one space",
        "exact": exact,
        "near": {"jaccard": jaccard, "shingle_words": SHINGLE_WORDS, "minhash_permutations": NUM_PERM, **near},
        "test_in_train": int(in_train.sum()),
    }
    return Duplicates(card=card, in_train=in_train)
