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
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from stages.common import cli
from stages.common.config import FinetuneConfig, ModelConfig
from stages.common.errors import DataError
from stages.common.features import Featurizer, extend_vocabulary
from stages.common.io import features_from_npz
from stages.common.models import grow_inputs
from stages.common.params import FINETUNE_PER_MODEL as PER_MODEL
from stages.common.params import load_params, parse, section, seed_from
from stages.common.persistence import load_model
from stages.common.store import load_featurizer, read_table, transform_splits, write_features
from stages.common.training import TrainResult, train_model, write_result

log = logging.getLogger(__name__)


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
) -> Finetuned:
    """Target reviews through the source featurizer, then the source model refined on them. Pure.

    ``cfg`` holds one model's values, from :meth:`FinetuneConfig.for_model`. With
    ``new_words_min_count`` > 0 the source vocabulary first gains the target's frequent
    training words or n-grams it lacks (their weights start at zero); the returned featurizer is
    the one the target's features and later stages use. With ``soup`` > 1 the model is fine-tuned
    that many times (seeds ``seed``, ``seed + 1``, ...) and the result is their weight mean; its
    history and validation figures are the first fine-tune's.
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
    )
    train = splits["train"]
    X, y = features_from_npz(train), train["y"].astype(np.int64)

    def fine_tune(i: int) -> TrainResult:
        return train_model(
            tuned,
            X,
            y,
            input_dim=featurizer.input_dim,
            seed=seed + i,
            initial=source_model,
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
    source = load_model(args.source_model)
    featurizer, splits, result = finetune(table, featurizer, source, model_cfg, cfg, seed)
    log.info("%s from %s: %s", args.model, cfg.source, result.summary)
    write_features(args.features, featurizer, splits)
    write_result(result, args.out, args.history, args.summary)


if __name__ == "__main__":
    cli.run("finetune", main)
