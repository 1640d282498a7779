"""finetune: start a dataset's model from what it learned on the source dataset.

Per target dataset × model (``finetune.targets``): the source's featurizer (vocabulary)
turns the target's reviews into features, and the source's trained model is the starting
point that training on the target's own training split refines (early stopping on a
validation split carved from it, as in train). For datasets with few reviews: the Yelp
LSTM sees ~6,800 training reviews, the IMDB one 25,000. A model's vocabulary may first gain
the target's own frequent words or n-grams (``finetune.new_words_min_count``). Writes the same features
directory as vectorize and the same model, history and summary as train, so every later
stage treats fine-tuned and from-scratch models alike.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

from stages.common import cli
from stages.common.cli import DataError
from stages.common.features import Featurizer, extend_vocabulary
from stages.common.io import features_from_npz
from stages.common.models import ModelConfig, grow_inputs, load_model
from stages.common.params import FINETUNE_PER_MODEL as PER_MODEL
from stages.common.params import check, load_params, parse, section, seed_from
from stages.common.store import load_featurizer, load_split, read_table
from stages.train import TrainResult, train_model, write_result
from stages.vectorize import transform_splits, write_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """``finetune:`` params: which datasets start from which, and how they are refined."""

    source: str
    targets: list[str]
    # one rate per model name ({mlp: 0.002, lstm: 0.002}), so that each finetune stage depends on
    # its own model's rate (dvc.yaml: finetune.learning_rate.${item.model}); for_model() resolves
    # it to that one number before finetune()
    learning_rate: dict[str, float] | float
    epochs: int = 3
    early_stopping_patience: int | None = 1
    # LSTMs: refine the source's word vectors on the target (a model section's freeze_embedding
    # holds while it learns from scratch; a new domain uses words differently)
    freeze_embedding: bool = False
    # one per model, like learning_rate: > 0 gives a target word (LSTM) or n-gram (bag of words)
    # missing from the source vocabulary its own word vector or input column (weights starting at
    # zero) when it occurs in at least this many of the target's training reviews; 0 keeps the
    # source vocabulary
    new_words_min_count: dict[str, int] | int = 0
    # one per model, like learning_rate: > 1 fine-tunes the model this many times (seeds base.seed,
    # base.seed + 1, ...) from the same source weights and keeps one model whose weights are their
    # mean (a "weight soup": an ensemble's gain at one model's cost to predict and explain); 1: one
    soup: dict[str, int] | int = 1
    # one per model, like learning_rate: this many of the source's training reviews (a seeded
    # sample, the same in every fine-tune of a soup) join the target's fitting rows, never its
    # validation rows, so refining on a small target rehearses what the source taught; 0: none
    source_reviews: dict[str, int] | int = 0

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.source not in self.targets, f"{path}.targets", f"must not contain the source {self.source!r}")
        check(
            isinstance(self.learning_rate, dict),
            f"{path}.learning_rate",
            f"expected one rate per model ({{mlp: 0.002, lstm: 0.002}}), got {self.learning_rate!r}",
        )
        for model, rate in self.learning_rate.items():  # type: ignore[union-attr]
            check(rate > 0, f"{path}.learning_rate.{model}", f"must be > 0, got {rate}")
        check(self.epochs >= 1, f"{path}.epochs", f"must be >= 1, got {self.epochs}")
        for name, least, meaning in (
            ("new_words_min_count", 0, "keep the source vocabulary"),
            ("soup", 1, "one fine-tune"),
            ("source_reviews", 0, "the target's reviews only"),
        ):
            values = getattr(self, name)  # per model, or one value once for_model() resolved it
            for model, value in values.items() if isinstance(values, dict) else [(None, values)]:
                key = f"{path}.{name}" + ("" if model is None else f".{model}")
                check(value >= least, key, f"must be >= {least} ({least}: {meaning}), got {value}")

    def for_model(self, model: str, path: str = "finetune") -> FinetuneConfig:
        """This config with one model's value of each per-model key (:data:`PER_MODEL`; a mapping must name it)."""
        resolved: dict[str, Any] = {}
        for key in PER_MODEL:
            values = getattr(self, key)
            if isinstance(values, dict):
                check(
                    model in values,
                    f"{path}.{key}.{model}",
                    f"missing: the per-model values name only {', '.join(sorted(values))}",
                )
                resolved[key] = values[model]
        return dataclasses.replace(self, **resolved)


def weight_soup(models: Iterable[Any]) -> Any:
    """The first of ``models`` (one architecture) with every weight replaced by the models' mean.

    ``models`` is consumed one at a time and only the first and a running sum are kept, so a
    generator that trains each model on demand holds two models at most, however many there are
    (peak memory). The sum runs in the weights' dtype in order, as ``np.mean(axis=0)`` does: the
    same bits.
    """
    it = iter(models)
    first = next(it)
    total: list[np.ndarray] | None = None
    count = 1
    for model in it:
        if total is None:
            total = [w.copy() for w in first.get_weights()]
        for acc, w in zip(total, model.get_weights(), strict=True):
            acc += w
        count += 1
        del model  # before the next one is made
    if total is not None:
        first.set_weights([acc / count for acc in total])
    return first


def source_rows(
    source_train: tuple[Any, np.ndarray] | None, count: int, input_dim: int, seed: int
) -> tuple[Any, np.ndarray] | None:
    """A seeded sample of ``count`` source training rows (``None`` for 0), widened to ``input_dim``.

    A bag-of-words target whose vocabulary grew has more input columns than the source's rows:
    those rows get zeros there (the source's reviews are not re-read; its own terms keep their
    columns and idf). Sequences keep their width (grown words get new ids only).
    """
    if count == 0:
        return None
    if source_train is None:
        raise ValueError("finetune(): source_reviews > 0 needs source_train (the source's training features)")
    X, y = source_train
    check(
        count <= len(y),
        "finetune.source_reviews",
        f"asks for {count} source training reviews; the source has {len(y)}",
    )
    pick = np.sort(np.random.default_rng(seed).choice(len(y), size=count, replace=False))
    X, y = X[pick], np.asarray(y)[pick].astype(np.int64)
    if sp.issparse(X) and X.shape[1] < input_dim:
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], input_dim))
    return X, y


class Finetuned(NamedTuple):
    """What :func:`finetune` returns: the target's featurizer, its features and the refined model."""

    featurizer: Featurizer
    splits: dict[str, dict[str, np.ndarray]]
    result: TrainResult


def finetune(
    table: pd.DataFrame,
    featurizer: Featurizer,
    source_model: Any,
    model_cfg: ModelConfig,
    cfg: FinetuneConfig,
    seed: int,
    source_train: tuple[Any, np.ndarray] | None = None,
) -> Finetuned:
    """Target reviews through the source featurizer, then the source model refined on them. Pure.

    ``cfg`` holds one model's values, from :meth:`FinetuneConfig.for_model`. With
    ``new_words_min_count`` > 0 the source vocabulary first gains the target's frequent
    training words or n-grams it lacks (their weights start at zero); the returned featurizer is
    the one the target's features and later stages use. With ``soup`` > 1 the model is fine-tuned
    that many times (seeds ``seed``, ``seed + 1``, ...) and the result is their weight mean; its
    history and validation figures are the first fine-tune's. With ``source_reviews`` > 0 that
    many rows of ``source_train`` (the source's training features and labels, made by
    ``featurizer`` before any growth) join every fine-tune's fitting rows.
    """
    if any(isinstance(getattr(cfg, key), dict) for key in PER_MODEL):
        raise TypeError("finetune(): cfg has per-model values; pass cfg.for_model(<model name>)")
    added = 0
    if cfg.new_words_min_count > 0:
        train_texts = table.loc[table["split"] == "train", "text"].tolist()
        grown = extend_vocabulary(featurizer, train_texts, cfg.new_words_min_count)
        added = len(grown.vocabulary) - len(featurizer.vocabulary)
        log.info("vocabulary: the source's %d terms + %d of the target's", len(featurizer.vocabulary), added)
        if added:
            source_model = grow_inputs(source_model, model_cfg, grown.input_dim)
            featurizer = grown
    splits = transform_splits(table, featurizer)
    tuned = dataclasses.replace(
        model_cfg,
        learning_rate=cfg.learning_rate,
        epochs=cfg.epochs,
        early_stopping_patience=cfg.early_stopping_patience,
        freeze_embedding=cfg.freeze_embedding,
    )
    train = splits["train"]
    X, y = features_from_npz(train), train["y"].astype(np.int64)
    rehearsal = source_rows(source_train, cfg.source_reviews, featurizer.input_dim, seed)

    def fine_tune(i: int) -> TrainResult:
        return train_model(
            tuned,
            X,
            y,
            input_dim=featurizer.input_dim,
            seq_len=featurizer.config.maxlen if featurizer.config.kind == "seq" else None,
            seed=seed + i,
            initial=source_model,
            extra=rehearsal,
        )

    result = fine_tune(0)
    best_epochs = [result.summary["best_epoch"]]

    def other_members() -> Iterator[Any]:
        """Fine-tunes 2, 3, ... one at a time: each is added to the soup and dropped before the next."""
        for i in range(1, cfg.soup):
            member = fine_tune(i)
            best_epochs.append(member.summary["best_epoch"])
            model = member.model
            del member
            yield model
            del model
            gc.collect()  # a Keras model's traced functions refer back to it: free it now

    result.model = weight_soup(itertools.chain([result.model], other_members()))
    if cfg.soup > 1:
        result.summary["soup"] = cfg.soup
        result.summary["soup_best_epochs"] = best_epochs
    result.summary["initialised_from"] = cfg.source
    result.summary["new_words"] = added
    result.summary["source_reviews"] = 0 if rehearsal is None else len(rehearsal[1])
    return Finetuned(featurizer, splits, result)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.finetune --model lstm --table <target>.parquet --source-features <dir> ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name: its params section")
    p.add_argument("--table", type=Path, required=True, help="the target dataset's prepared table")
    p.add_argument("--source-features", type=Path, required=True, help="the source's features directory")
    p.add_argument("--source-model", type=Path, required=True, help="the source's trained model (.keras)")
    p.add_argument("--features", type=Path, required=True, help="features directory to write")
    p.add_argument("--out", type=Path, required=True, help="fine-tuned model (.keras)")
    p.add_argument("--history", type=Path, required=True, help="per-epoch history (.csv)")
    p.add_argument("--summary", type=Path, required=True, help="training summary (.json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    seed = seed_from(params)
    cfg = parse(FinetuneConfig, section(params, "finetune"), "finetune").for_model(args.model)
    model_cfg = parse(ModelConfig, section(params, args.model), args.model)
    featurizer = load_featurizer(args.source_features)
    if not args.source_model.is_file():
        raise DataError(f"{args.source_model}: source model not found; run train for finetune.source first")
    table = read_table(args.table)
    source_train = None
    if cfg.source_reviews > 0:
        split = load_split(args.source_features, "train")
        source_train = (split.X, split.y)
    source = load_model(args.source_model)
    featurizer, splits, result = finetune(table, featurizer, source, model_cfg, cfg, seed, source_train)
    log.info("%s from %s: %s", args.model, cfg.source, result.summary)
    write_features(args.features, featurizer, splits)
    write_result(result, args.out, args.history, args.summary)


if __name__ == "__main__":
    cli.run("finetune", main)
