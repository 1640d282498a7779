"""Training a Keras model on features, from scratch (train) or from a source model (finetune).

A seeded, stratified validation split is carved from the training rows (never the test split);
early stopping on validation loss restores the best weights. The result is the model, its
per-epoch history (a DVC plot; MLflow's step metrics come from it) and a JSON summary.
Fine-tuning starts from another dataset's model, may first grow its vocabulary with the target's
frequent words, and may average several fine-tunes' weights into one model (a weight soup).
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from stages.common.data.io import atomic_path, features_from_npz, load_npz, write_json
from stages.common.data.store import shard_paths, transform_splits
from stages.common.errors import DataError
from stages.common.features.featurizer import Featurizer, extend_vocabulary
from stages.common.modelling.models import build_model, configure_determinism, distribution_strategy, grow_inputs
from stages.common.modelling.persistence import save_model
from stages.common.modelling.prediction import predict_proba
from stages.common.params.schema import FinetuneConfig, FinetuneModelConfig, ModelConfig

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class TrainResult:
    """A trained model, its per-epoch history and a summary for metrics."""

    model: Any
    history: pd.DataFrame
    summary: dict[str, Any]


def validation_indices(
    y: np.ndarray, fraction: float, seed: int, group: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) row indices carved from the training split.

    Rows without a group (``""``) are split stratified by label; rows sharing a group (the two
    members of a minimal-edit pair) go to the same side, ``fraction`` of the groups to validation.
    """
    idx = np.arange(len(y))
    grouped = np.zeros(len(y), dtype=bool) if group is None else np.asarray(group) != ""
    try:
        fit_idx, val_idx = train_test_split(idx[~grouped], test_size=fraction, stratify=y[~grouped], random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot carve a stratified validation split of {fraction} ({exc})") from None
    if grouped.any():
        names = np.unique(np.asarray(group)[grouped])
        rng = np.random.default_rng(seed)
        val_groups = rng.choice(names, size=max(1, round(fraction * len(names))), replace=False)
        to_val = grouped & np.isin(np.asarray(group), val_groups)
        fit_idx = np.concatenate([fit_idx, idx[grouped & ~to_val]])
        val_idx = np.concatenate([val_idx, idx[to_val]])
    return np.sort(fit_idx), np.sort(val_idx)


def _fit(
    model: Any,
    X: Any,
    y: np.ndarray,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    weight: np.ndarray | None = None,
    callbacks: list[Any] | None = None,
) -> Any:
    """``model.fit`` on the fitting rows (weighted by ``weight``), validated on the carved-out ones
    unweighted (Keras' History)."""
    return model.fit(
        X[fit_idx],
        y[fit_idx],
        sample_weight=None if weight is None else weight[fit_idx],
        validation_data=(X[val_idx], y[val_idx]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=callbacks or [],
        verbose=2,
    )


def train_model(
    cfg: ModelConfig,
    X: Any,
    y: np.ndarray,
    *,
    input_dim: int,
    seed: int,
    initial: Any = None,
    group: np.ndarray | None = None,
) -> TrainResult:
    """Build (starting from ``initial``'s weights if given), fit and return a model. Deterministic for a seed.

    ``group``: per row, the minimal-edit pair it belongs to (``""``: none); a pair stays whole in
    the validation carve and its rows weigh ``cfg.pair_weight`` in the loss. With pairs, the
    summary has the validation pairs' consistency (both members right): a figure to choose the
    weight by without the test split.
    """

    configure_determinism(seed)
    fit_idx, val_idx = validation_indices(y, cfg.validation_split, seed, group)
    paired = group is not None and bool((np.asarray(group) != "").any())
    weight = np.where(np.asarray(group) != "", cfg.pair_weight, 1.0).astype(np.float32) if paired else None
    y = y.astype(np.float32)
    if cfg.shuffled_share > 0:
        X, y, weight, fit_idx = _shuffled_copies(X, y, weight, fit_idx, cfg.shuffled_share, seed)
    with distribution_strategy(cfg.distribution).scope():
        model = build_model(cfg, input_dim=input_dim)
        if initial is not None:  # the same architecture (same params section): start from its weights
            model.set_weights(initial.get_weights())
    callbacks = _callbacks(cfg)
    fit = _fit(
        model, X, y, fit_idx, val_idx, epochs=cfg.epochs, batch_size=cfg.batch_size, weight=weight, callbacks=callbacks
    )
    result = _result(model, fit, cfg, len(fit_idx), len(val_idx))
    if paired and (np.asarray(group)[val_idx] != "").any():
        result.summary["validation_pair_consistency"] = _pair_consistency(model, X, y, val_idx, np.asarray(group))
    return result


def _callbacks(cfg: ModelConfig) -> list[Any]:
    import keras

    if cfg.early_stopping_patience is None:
        return []
    return [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.early_stopping_patience,
                                          restore_best_weights=True)]  # fmt: skip


def _result(model: Any, fit: Any, cfg: ModelConfig, train_rows: int, validation_rows: int) -> TrainResult:
    """The trained model with its per-epoch history and summary."""
    hist = pd.DataFrame({k: fit.history[k] for k in HISTORY_COLUMNS[1:]})
    hist.insert(0, "epoch", np.arange(1, len(hist) + 1))
    # the weights kept: the best epoch's with early stopping, the last epoch's without
    best = int(hist["val_loss"].idxmin()) if cfg.early_stopping_patience is not None else len(hist) - 1
    summary = {
        "epochs_run": len(hist),
        "best_epoch": int(hist.loc[best, "epoch"]),
        "best_val_loss": float(hist.loc[best, "val_loss"]),
        "best_val_accuracy": float(hist.loc[best, "val_accuracy"]),
        "train_rows": train_rows,
        "validation_rows": validation_rows,
        "parameters": int(model.count_params()),
    }
    return TrainResult(model=model, history=hist, summary=summary)


def train_on_shards(cfg: ModelConfig, features_dir: Path, *, input_dim: int, seed: int) -> TrainResult:
    """:func:`train_model` for a training split stored in several shards, read one at a time.

    The validation carve is the same (:func:`validation_indices` on every row's label and pair) and
    its rows are held in memory (as arrays; their tensors a batch at a time); the fitting rows stream
    through ``tf.data`` a shard at a time, the shards and the rows within each in a seeded order
    that changes every epoch. A shard's shuffled
    copies (``shuffled_share``) are drawn from its own fitting rows. Memory holds one shard, the
    validation rows and the model, whatever the number of reviews.
    """
    import tensorflow as tf

    configure_determinism(seed)
    paths = shard_paths(features_dir, "train")
    labels = [load_npz(path, ("y", "group")) for path in paths]
    sizes = [len(a["y"]) for a in labels]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    y = np.concatenate([a["y"] for a in labels]).astype(np.int64)
    group = np.concatenate([a.get("group", np.full(n, "")) for a, n in zip(labels, sizes, strict=True)])
    paired = bool((group != "").any())
    _, val_idx = validation_indices(y, cfg.validation_split, seed, group if paired else None)
    in_val = np.zeros(len(y), dtype=bool)
    in_val[val_idx] = True
    weight = np.where(group != "", cfg.pair_weight, 1.0).astype(np.float32)
    val_parts = [
        features_from_npz(load_npz(path))[in_val[a:b]] for path, a, b in zip(paths, bounds, bounds[1:], strict=False)
    ]
    X_val = sp.vstack(val_parts, format="csr") if sp.issparse(val_parts[0]) else np.concatenate(val_parts)
    y_val = y[val_idx].astype(np.float32)
    sparse = sp.issparse(X_val)
    fitting = [int((~in_val[a:b]).sum()) for a, b in itertools.pairwise(bounds)]
    copies = [round(cfg.shuffled_share * n) if cfg.shuffled_share > 0 else 0 for n in fitting]
    steps = sum(-(-(n + c) // cfg.batch_size) for n, c in zip(fitting, copies, strict=True))  # batches per epoch
    epochs_started = itertools.count()

    def batches() -> Iterator[tuple[Any, np.ndarray, np.ndarray]]:
        rng = np.random.default_rng([seed, next(epochs_started)])
        for k in rng.permutation(len(paths)):
            a, b = bounds[k], bounds[k + 1]
            rows = np.flatnonzero(~in_val[a:b])
            X = features_from_npz(load_npz(paths[k]))[rows]
            yk, wk = y[a:b][rows].astype(np.float32), weight[a:b][rows]
            if copies[k]:
                X, yk, wk, _ = _shuffled_copies(X, yk, wk, np.arange(len(rows)), cfg.shuffled_share, seed + int(k))
            order = rng.permutation(len(yk))
            for start in range(0, len(order), cfg.batch_size):
                at = order[start : start + cfg.batch_size]
                yield (_sparse_tensor(X[at]) if sparse else X[at]), yk[at], wk[at]

    def validation_batches() -> Iterator[tuple[Any, np.ndarray]]:  # a batch's tensors at a time, not all of them
        for start in range(0, len(y_val), cfg.batch_size):
            X = X_val[start : start + cfg.batch_size]
            yield (_sparse_tensor(X) if sparse else X), y_val[start : start + cfg.batch_size]

    features = tf.SparseTensorSpec([None, input_dim], tf.float32) if sparse else tf.TensorSpec([None, None], tf.int32)
    label = tf.TensorSpec([None], tf.float32)
    data = tf.data.Dataset.from_generator(batches, output_signature=(features, label, label))
    data = data.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)
    validation = tf.data.Dataset.from_generator(validation_batches, output_signature=(features, label))
    validation = validation.apply(tf.data.experimental.assert_cardinality(-(-len(y_val) // cfg.batch_size)))
    with distribution_strategy(cfg.distribution).scope():
        model = build_model(cfg, input_dim=input_dim)
    fit = model.fit(
        data, validation_data=validation, epochs=cfg.epochs, callbacks=_callbacks(cfg), shuffle=False, verbose=2
    )
    result = _result(model, fit, cfg, sum(fitting) + sum(copies), len(val_idx))
    if paired and (group[val_idx] != "").any():
        consistency = _pair_consistency(model, X_val, y_val, np.arange(len(val_idx)), group[val_idx])
        result.summary["validation_pair_consistency"] = consistency
    return result


def _sparse_tensor(X: sp.csr_matrix) -> Any:
    import tensorflow as tf

    coo = X.tocoo()
    indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    return tf.SparseTensor(indices, coo.data.astype(np.float32), coo.shape)


def _shuffled_copies(
    X: np.ndarray, y: np.ndarray, weight: np.ndarray | None, fit_idx: np.ndarray, share: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """A seeded ``share`` of the fitting rows added again with their words shuffled and label 0.5:
    a word-order-blind reading is then no better than a coin, so the model has to use the order."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(fit_idx, size=round(share * len(fit_idx)), replace=False))
    copies = np.array(X[picked], copy=True)
    for row in copies:
        words = row != 0
        row[words] = rng.permutation(row[words])
    start = len(y)
    X = np.concatenate([X, copies])
    y = np.concatenate([y, np.full(len(picked), 0.5, dtype=np.float32)])
    if weight is not None:
        weight = np.concatenate([weight, np.ones(len(picked), dtype=np.float32)])
    return X, y, weight, np.concatenate([fit_idx, np.arange(start, start + len(picked))])


def _pair_consistency(model: Any, X: Any, y: np.ndarray, val_idx: np.ndarray, group: np.ndarray) -> float:
    """The share of the validation rows' groups (pairs) whose every member the model gets right."""
    rows = val_idx[group[val_idx] != ""]
    right = (predict_proba(model, X[rows]) >= 0.5) == (y[rows] >= 0.5)
    both = pd.Series(right).groupby(group[rows]).all()
    return round(float(both.mean()), 6)


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
    tuning: FinetuneModelConfig,
    seed: int,
) -> Finetuned:
    """Target reviews through the source featurizer, then the source model refined on them. Pure.

    ``tuning`` holds the model's own values (``finetune.per_model.<model>``). With
    ``new_words_min_count`` > 0 the source vocabulary first gains the target's frequent
    training words or n-grams it lacks (their weights start at zero); the returned featurizer is
    the one the target's features and later stages use. With ``soup`` > 1 the model is fine-tuned
    that many times (seeds ``seed``, ``seed + 1``, ...) and the result is their weight mean; its
    history and validation figures are the first fine-tune's.
    """
    added = 0
    if tuning.new_words_min_count > 0:
        train_texts = table.loc[table["split"] == "train", "text"].tolist()
        grown = extend_vocabulary(featurizer, train_texts, tuning.new_words_min_count)
        added = len(grown.vocabulary) - len(featurizer.vocabulary)
        log.info("vocabulary: the source's %d terms + %d of the target's", len(featurizer.vocabulary), added)
        if added:
            source_model = grow_inputs(source_model, model_cfg, grown.input_dim)
            featurizer = grown
    splits = transform_splits(table, featurizer)
    tuned = dataclasses.replace(
        model_cfg,
        learning_rate=tuning.learning_rate,
        epochs=cfg.epochs,
        early_stopping_patience=cfg.early_stopping_patience,
    )
    train = splits["train"]
    X, y = features_from_npz(train), train["y"].astype(np.int64)
    group = train.get("group")

    def fine_tune(i: int) -> TrainResult:
        return train_model(
            tuned,
            X,
            y,
            input_dim=featurizer.input_dim,
            seed=seed + i,
            initial=source_model,
            group=group,
        )

    result = fine_tune(0)
    best_epochs = [result.summary["best_epoch"]]

    def other_members() -> Iterator[Any]:
        """Fine-tunes 2, 3, ... one at a time: each is added to the soup and dropped before the next."""
        for i in range(1, tuning.soup):
            member = fine_tune(i)
            best_epochs.append(member.summary["best_epoch"])
            model = member.model
            del member
            yield model
            del model
            gc.collect()  # a Keras model's traced functions refer back to it: free it now

    result.model = weight_soup(itertools.chain([result.model], other_members()))
    if tuning.soup > 1:
        result.summary["soup"] = tuning.soup
        result.summary["soup_best_epochs"] = best_epochs
    result.summary["initialised_from"] = cfg.source
    result.summary["new_words"] = added
    return Finetuned(featurizer, splits, result)


def write_result(result: TrainResult, model_file: Path, history: Path, summary: Path) -> None:
    """Write the model, its history (CSV) and summary (JSON), each atomically."""
    save_model(result.model, model_file)
    with atomic_path(history) as tmp:
        result.history.to_csv(tmp, index=False, float_format="%.6f")
    write_json(summary, result.summary)
