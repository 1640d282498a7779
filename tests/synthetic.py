"""Small generated review corpora (no real review text lives in this repository).

Positive reviews draw more "positive" cue words, negative ones more "negative" cue words,
all padded with neutral filler, so tiny models can learn something in one or two epochs.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.common.params.schema import FeaturizerConfig, ModelConfig

POSITIVE = ["great", "wonderful", "excellent", "loved", "delightful", "superb", "brilliant", "fun"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "dull", "worst", "waste", "mess"]
NEUTRAL = [
    "the",
    "a",
    "movie",
    "film",
    "place",
    "food",
    "story",
    "and",
    "it",
    "was",
    "with",
    "of",
    "plot",
    "actors",
    "service",
    "time",
    "really",
    "quite",
    "very",
    "this",
    "that",
    "we",
]


def review(rng: np.random.Generator, label: int, n_words: int = 18) -> str:
    """One generated review with a few cue words for its label."""
    cues = POSITIVE if label == 1 else NEGATIVE
    other = NEGATIVE if label == 1 else POSITIVE
    words = list(rng.choice(NEUTRAL, size=n_words))
    for _ in range(3):
        words.insert(int(rng.integers(0, len(words))), str(rng.choice(cues)))
    if rng.random() < 0.2:
        words.insert(int(rng.integers(0, len(words))), str(rng.choice(other)))
    return " ".join(words).capitalize() + "."


def reviews_frame(n: int, seed: int = 0, positive_share: float = 0.5) -> pd.DataFrame:
    """``text``/``stars`` table in the Yelp layout (1–5 stars, some 3s)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = int(rng.random() < positive_share)
        stars = int(rng.choice([4, 5])) if label else int(rng.choice([1, 2]))
        if rng.random() < 0.1:
            stars = 3
        rows.append({"text": review(rng, label), "stars": stars})
    return pd.DataFrame(rows)


def write_yelp_csv(path: Path, n: int = 120, seed: int = 0) -> Path:
    """A gzip CSV like ``../shared/data/yelp/reviews.csv.gz`` (extra columns included)."""
    df = reviews_frame(n, seed, positive_share=0.7)
    df.insert(0, "review_id", [f"r{i}" for i in range(len(df))])
    df["useful"] = 0
    df.to_csv(path, index=False)
    return path


def aclimdb_members(per_class: int = 30, seed: int = 1) -> dict[str, bytes]:
    """Files of an ``aclImdb`` archive: ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``."""
    rng = np.random.default_rng(seed)
    members: dict[str, bytes] = {"aclImdb/README": b"generated test data\n", "aclImdb/imdb.vocab": b"the\n"}
    for split in ("train", "test"):
        for polarity, label in (("pos", 1), ("neg", 0)):
            for i in range(per_class):
                rating = int(rng.integers(7, 11)) if label else int(rng.integers(1, 5))
                text = review(rng, label).replace(". ", ".<br /><br />")
                members[f"aclImdb/{split}/{polarity}/{i}_{rating}.txt"] = (text + "<br />The end.").encode()
    return members


def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """Write a ``.tar.gz`` with the given regular files (and optional symlinks)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


TEST_MODEL = {"dropout": 0.0, "epochs": 10, "validation_split": 0.2, "early_stopping_patience": 2, "batch_size": 32}
TEST_LSTM = {"embedding_dim": 128, "units": 128, "bidirectional": False, "pooling": "last"}


def model_config(architecture: str, **fields: Any) -> ModelConfig:
    """A model config for tests: what a test does not set takes a small, fixed value (not params.yaml's)."""
    defaults = {**TEST_MODEL, **(TEST_LSTM if architecture == "lstm" else {})}
    return ModelConfig(architecture=architecture, **{**defaults, **fields})


def write_pairs_tsv(path: Path, n_pairs: int = 20, seed: int = 0) -> Path:
    """Minimal-edit pairs in the counterfactual table's layout: a review and a copy with its cue words flipped."""
    import gzip

    rng = np.random.default_rng(seed)
    flip = dict(zip(POSITIVE, NEGATIVE, strict=False)) | dict(zip(NEGATIVE, POSITIVE, strict=False))
    lines = ["Sentiment\tText\tbatch_id"]
    for i in range(n_pairs):
        label = int(rng.integers(0, 2))
        text = review(rng, label)
        edited = " ".join(flip.get(w.strip(".").lower(), w) for w in text.split())
        for lab, t in ((label, text), (1 - label, edited)):
            lines.append(f"{'Positive' if lab else 'Negative'}\t{t}\t{i}")
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def tiny_text_model(folder: Path, seed: int) -> tuple[Path, Path]:
    """An untrained two-unit MLP and its bag-of-words featurizer, saved in ``folder``: (model, featurizer.json)."""
    from stages.common.features.featurizer import fit_featurizer
    from stages.common.modelling.models import build_model, configure_determinism

    f = fit_featurizer(["good film", "bad film", "great fun"], FeaturizerConfig(kind="bow", max_tokens=10, min_count=1))
    configure_determinism(seed)
    model = build_model(model_config("mlp", hidden_units=[2]), f.input_dim)
    keras_file, feat = folder / f"m{seed}.keras", folder / "featurizer.json"
    model.save(keras_file)
    feat.write_text(f.to_json())
    return keras_file, feat
