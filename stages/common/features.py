"""The one text → features transform, used by training, evaluation, LIME and prediction.

A :class:`Featurizer` is fitted on the training split only and saved as JSON next to the
features. It turns review text into either

* ``bow``: a sparse CSR bag-of-words matrix (``multi_hot``, ``count`` or ``tfidf``) over a
  vocabulary of word n-grams, for the MLP; or
* ``seq``: left/right padded integer sequences (0 = padding, 1 = out-of-vocabulary,
  2.. = words by training frequency), for the LSTM.

Vocabularies rank terms by their total count in the training texts (ties broken
alphabetically, so the order is deterministic), drop the ``skip_top`` most frequent ones
(the original analysis's ``skip.dim``) and keep the next ``max_tokens``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from stages.common.params import check

PAD_ID = 0
OOV_ID = 1
FIRST_WORD_ID = 2

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_TAG = re.compile(r"<[^>]{0,40}>")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters/digits, inner apostrophes kept: ``don't``)."""
    return _TOKEN.findall(_TAG.sub(" ", text.lower()))


@dataclass(frozen=True)
class FeaturizerConfig:
    """``vectorize.<model>`` params: how one model sees text."""

    kind: Literal["bow", "seq"]
    max_tokens: int
    skip_top: int = 0
    min_count: int = 1
    ngram_range: tuple[int, int] = (1, 1)
    mode: Literal["multi_hot", "count", "tfidf"] = "multi_hot"
    sublinear_tf: bool = False
    maxlen: int = 200
    padding: Literal["pre", "post"] = "pre"
    truncating: Literal["pre", "post"] = "pre"

    def validate(self, path: str) -> None:
        """Cross-field checks, with the key path in the message."""
        check(self.max_tokens > 0, f"{path}.max_tokens", f"must be > 0, got {self.max_tokens}")
        check(self.skip_top >= 0, f"{path}.skip_top", f"must be >= 0, got {self.skip_top}")
        check(
            self.skip_top < self.max_tokens,
            f"{path}.skip_top",
            f"must be smaller than max_tokens ({self.max_tokens}), got {self.skip_top}",
        )
        check(self.min_count >= 1, f"{path}.min_count", f"must be >= 1, got {self.min_count}")
        lo, hi = self.ngram_range
        check(1 <= lo <= hi, f"{path}.ngram_range", f"must be [min, max] with 1 <= min <= max, got {[lo, hi]}")
        check(self.maxlen > 0, f"{path}.maxlen", f"must be > 0, got {self.maxlen}")
        if self.kind == "seq":
            check(hi == 1, f"{path}.ngram_range", "sequences use single words: must be [1, 1]")


@dataclass(frozen=True)
class Featurizer:
    """A fitted vocabulary plus everything needed to turn text into model inputs."""

    config: FeaturizerConfig
    vocabulary: list[str]
    idf: list[float] | None = None
    n_train_docs: int = 0
    _index: dict[str, int] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.vocabulary)})

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
        if self.config.kind == "bow":
            return self._bow(texts)
        return self._seq(texts)

    def _bow(self, texts: Sequence[str]) -> sp.csr_matrix:
        cfg = self.config
        vectorizer = CountVectorizer(
            tokenizer=tokenize,
            token_pattern=None,
            lowercase=False,
            ngram_range=tuple(cfg.ngram_range),
            vocabulary=self._index,
            dtype=np.float32,
        )
        counts = vectorizer.transform(list(texts)).tocsr()
        return weight_counts(counts, cfg, self.idf)

    def _seq(self, texts: Sequence[str]) -> np.ndarray:
        cfg = self.config
        index = self._index
        rows = [[index.get(tok, OOV_ID - FIRST_WORD_ID) + FIRST_WORD_ID for tok in tokenize(t)] for t in texts]
        return pad(rows, cfg.maxlen, cfg.padding, cfg.truncating)

    def to_json(self) -> str:
        """Stable JSON (the file DVC tracks and MLflow logs as the vocabulary)."""
        data: dict[str, Any] = {
            "config": asdict(self.config),
            "vocabulary": self.vocabulary,
            "idf": self.idf,
            "n_train_docs": self.n_train_docs,
        }
        data["config"]["ngram_range"] = list(self.config.ngram_range)
        return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Featurizer:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        cfg = dict(data["config"])
        cfg["ngram_range"] = tuple(cfg["ngram_range"])
        return cls(
            config=FeaturizerConfig(**cfg),
            vocabulary=list(data["vocabulary"]),
            idf=data.get("idf"),
            n_train_docs=int(data.get("n_train_docs", 0)),
        )


def weight_counts(counts: sp.csr_matrix, cfg: FeaturizerConfig, idf: Sequence[float] | None) -> sp.csr_matrix:
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
    weighted = counts @ sp.diags(np.asarray(idf, dtype=np.float32))
    return normalize(weighted.tocsr(), norm="l2", copy=False).astype(np.float32)


def pad(rows: Sequence[Sequence[int]], maxlen: int, padding: str, truncating: str) -> np.ndarray:
    """Pad/truncate id lists to ``maxlen`` like ``keras.utils.pad_sequences`` (value 0)."""
    out = np.full((len(rows), maxlen), PAD_ID, dtype=np.int32)
    for i, row in enumerate(rows):
        if not row:
            continue
        kept = row[-maxlen:] if truncating == "pre" else row[:maxlen]
        if padding == "pre":
            out[i, maxlen - len(kept) :] = kept
        else:
            out[i, : len(kept)] = kept
    return out


def fit_featurizer(train_texts: Sequence[str], cfg: FeaturizerConfig) -> Featurizer:
    """Fit a vocabulary (and idf weights) on training texts only."""
    if len(train_texts) == 0:
        raise ValueError("cannot fit a vocabulary on an empty training split")
    counter = CountVectorizer(
        tokenizer=tokenize,
        token_pattern=None,
        lowercase=False,
        ngram_range=tuple(cfg.ngram_range),
        min_df=cfg.min_count,
        dtype=np.int64,
    )
    try:
        counts = counter.fit_transform(list(train_texts)).tocsr()
    except ValueError as exc:  # sklearn: "empty vocabulary; perhaps the documents only contain stop words"
        raise ValueError(f"no term occurs in at least {cfg.min_count} training texts ({exc})") from exc
    terms = counter.get_feature_names_out()
    totals = np.asarray(counts.sum(axis=0)).ravel()
    order = np.lexsort((terms, -totals))  # by total count desc, then alphabetically
    keep = order[cfg.skip_top : cfg.skip_top + cfg.max_tokens]
    vocabulary = [str(terms[i]) for i in keep]
    idf: list[float] | None = None
    if cfg.kind == "bow" and cfg.mode == "tfidf":
        df = np.bincount(counts[:, keep].indices, minlength=len(keep))
        n = counts.shape[0]
        idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32).tolist()
    return Featurizer(config=cfg, vocabulary=vocabulary, idf=idf, n_train_docs=len(train_texts))
