"""train: fit one Keras model on one dataset's training features.

Per dataset × model, params from the model's own section (``mlp:``, ``lstm:``) and
``base.seed``. A seeded stratified validation split is carved from the training rows
(never the test split); early stopping on validation loss restores the best weights.
Writes the model (``.keras``), the per-epoch history (a DVC plot; MLflow's step metrics
are logged from it by the track stage) and a JSON summary (a DVC metric).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from stages.common import cli
from stages.common.cli import DataError
from stages.common.io import atomic_path, write_json
from stages.common.models import (
    ModelConfig,
    build_embedding_warmup,
    build_model,
    configure_determinism,
    distribution_strategy,
    lstm_share,
    save_model,
)
from stages.common.params import load_params, parse, section, seed_from
from stages.common.store import load_featurizer, load_split

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class TrainResult:
    """A trained model, its per-epoch history and a summary for metrics."""

    model: Any
    history: pd.DataFrame
    summary: dict[str, Any]


def validation_indices(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified (train, validation) row indices carved from the training split."""
    idx = np.arange(len(y))
    try:
        fit_idx, val_idx = train_test_split(idx, test_size=fraction, stratify=y, random_state=seed)
    except ValueError as exc:
        raise DataError(f"cannot carve a stratified validation split of {fraction} ({exc})") from None
    return np.sort(fit_idx), np.sort(val_idx)


def append_rows(
    X: Any, y: np.ndarray, fit_idx: np.ndarray, X_more: Any, y_more: np.ndarray
) -> tuple[Any, np.ndarray, np.ndarray]:
    """``X``, ``y`` with more rows after them (sparse or dense alike), and ``fit_idx`` naming them too."""
    if X.shape[1:] != X_more.shape[1:]:
        raise DataError(f"extra training rows: feature shape {X_more.shape[1:]} does not match {X.shape[1:]}")
    X = sp.vstack([X, X_more], format="csr") if sp.issparse(X) else np.concatenate([X, X_more])
    more = len(y) + np.arange(len(y_more))
    return X, np.concatenate([y, np.asarray(y_more, dtype=y.dtype)]), np.concatenate([fit_idx, more])


def _fit(
    model: Any,
    X: Any,
    y: np.ndarray,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    callbacks: list[Any] | None = None,
    class_weight: str = "none",
) -> Any:
    """``model.fit`` on the fitting rows, validated on the carved-out ones (Keras' History)."""
    weights = None
    if class_weight == "balanced":
        counts = np.bincount(y[fit_idx].astype(np.int64), minlength=2)
        weights = {c: len(fit_idx) / (2.0 * max(int(n), 1)) for c, n in enumerate(counts)}
    return model.fit(
        X[fit_idx],
        y[fit_idx],
        validation_data=(X[val_idx], y[val_idx]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=callbacks or [],
        class_weight=weights,
        verbose=2,
    )


def early_stopping_from(start_loss: float | None, patience: int) -> Any:
    """Keras ``EarlyStopping`` on ``val_loss`` (best epoch restored) that, given ``start_loss``, also
    counts the model as it starts as a candidate: if no epoch beats ``start_loss``, the starting
    weights come back. Without it, a model handed over from the warm-up would be replaced by its
    first epoch even where that epoch overfits."""
    import keras

    class _KeepStart(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            if start_loss is not None:
                self.best = start_loss
                self.best_weights = self.model.get_weights()
                self.best_epoch = -1

    return _KeepStart(monitor="val_loss", patience=patience, restore_best_weights=True, verbose=0)


def hand_over_warmup(warmup: Any, model: Any) -> None:
    """Give the LSTM model what the warm-up learned: its word vectors and, with ``bag_of_embeddings``,
    its bag path (word-pair vectors included) and output layer, the LSTM's share of the output at
    zero (so training starts from the warm-up's predictions and the LSTM learns what word order adds)."""
    model.get_layer("embedding").set_weights(warmup.get_layer("embedding").get_weights())
    share = lstm_share(model)
    if share is None:
        return
    model.get_layer("warmup_hidden").set_weights(warmup.get_layer("warmup_hidden").get_weights())
    if any(layer.name == "word_pairs" for layer in warmup.layers):
        model.get_layer("word_pairs").set_weights(warmup.get_layer("word_pairs").get_weights())
    kernel, bias = warmup.get_layer("proba").get_weights()
    model.get_layer("proba").set_weights([np.vstack([np.zeros((share.stop, 1), kernel.dtype), kernel]), bias])


def train_model(
    cfg: ModelConfig,
    X: Any,
    y: np.ndarray,
    *,
    input_dim: int,
    seq_len: int | None,
    seed: int,
    initial: Any = None,
    extra: tuple[Any, np.ndarray] | None = None,
) -> TrainResult:
    """Build (starting from ``initial``'s weights if given), fit and return a model. Deterministic for a seed.

    ``extra`` (features, labels) join the fitting rows only: the validation rows are carved from
    ``X``, ``y`` alone, so early stopping watches the data the model is for (finetune's source rows).
    """

    configure_determinism(seed)
    fit_idx, val_idx = validation_indices(y, cfg.validation_split, seed)
    if extra is not None and len(extra[1]):
        X, y, fit_idx = append_rows(X, y, fit_idx, *extra)
    y = y.astype(np.float32)
    warmup = None
    with distribution_strategy(cfg.distribution).scope():
        model = build_model(cfg, input_dim=input_dim, seq_len=seq_len)
        if initial is not None:  # the same architecture (same params section): start from its weights
            model.set_weights(initial.get_weights())
        elif cfg.architecture == "lstm" and cfg.embedding_warmup_epochs > 0:
            warmup = build_embedding_warmup(cfg, input_dim=input_dim)
    warmup_summary: dict[str, Any] = {}
    if warmup is not None:  # learn the embedding with a bag-of-embeddings model, then hand it to the LSTM
        fit = _fit(
            warmup,
            X,
            y,
            fit_idx,
            val_idx,
            epochs=cfg.embedding_warmup_epochs,
            batch_size=cfg.batch_size,
            class_weight=cfg.class_weight,
        )
        hand_over_warmup(warmup, model)
        warmup_summary = {"embedding_warmup_val_accuracy": float(fit.history["val_accuracy"][-1])}
    # a model that starts from the warm-up's predictions (through the bag path) keeps them unless
    # an epoch does better on the validation rows
    start = None
    if cfg.early_stopping_patience is not None and warmup is not None and lstm_share(model) is not None:
        start = model.evaluate(X[val_idx], y[val_idx], batch_size=1024, verbose=0, return_dict=True)
    callbacks = []
    if cfg.early_stopping_patience is not None:
        callbacks.append(
            early_stopping_from(None if start is None else float(start["loss"]), cfg.early_stopping_patience)
        )
    fit = _fit(
        model,
        X,
        y,
        fit_idx,
        val_idx,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        callbacks=callbacks,
        class_weight=cfg.class_weight,
    )
    hist = pd.DataFrame({k: fit.history[k] for k in HISTORY_COLUMNS[1:]})
    hist.insert(0, "epoch", np.arange(1, len(hist) + 1))
    best = int(hist["val_loss"].idxmin())
    if start is not None and not hist.loc[best, "val_loss"] < start["loss"]:  # no epoch beat the start: kept
        best_epoch, best_loss, best_acc = 0, float(start["loss"]), float(start["accuracy"])
    else:
        best_epoch = int(hist.loc[best, "epoch"])
        best_loss, best_acc = float(hist.loc[best, "val_loss"]), float(hist.loc[best, "val_accuracy"])
    summary = {
        "epochs_run": len(hist),
        "best_epoch": best_epoch,  # 0: the model as the warm-up handed it over was kept
        "best_val_loss": best_loss,
        "best_val_accuracy": best_acc,
        "train_rows": len(fit_idx),
        "validation_rows": len(val_idx),
        "parameters": int(model.count_params()),
        **warmup_summary,
    }
    return TrainResult(model=model, history=hist, summary=summary)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.train --model mlp --features <dir> --out ... --history ... --summary ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name: its params section")
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="trained model (.keras)")
    p.add_argument("--history", type=Path, required=True, help="per-epoch history (.csv)")
    p.add_argument("--summary", type=Path, required=True, help="training summary (.json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    seed = seed_from(params)
    cfg = parse(ModelConfig, section(params, args.model), args.model)
    featurizer = load_featurizer(args.features)
    expected = "bow" if cfg.architecture == "mlp" else "seq"
    if featurizer.config.kind != expected:
        raise DataError(
            f"vectorize.{args.model}.kind: an {cfg.architecture} needs '{expected}' features, "
            f"got '{featurizer.config.kind}'"
        )
    train = load_split(args.features, "train")
    result = train_model(
        cfg,
        train.X,
        train.y,
        input_dim=featurizer.input_dim,
        seq_len=featurizer.config.maxlen if expected == "seq" else None,
        seed=seed,
    )
    log.info("%s: %s", args.model, result.summary)
    write_result(result, args.out, args.history, args.summary)


def write_result(result: TrainResult, model_file: Path, history: Path, summary: Path) -> None:
    """Write the model, its history (CSV) and summary (JSON), each atomically."""
    save_model(result.model, model_file)
    with atomic_path(history) as tmp:
        result.history.to_csv(tmp, index=False, float_format="%.6f")
    write_json(summary, result.summary)


if __name__ == "__main__":
    cli.run("train", main)
