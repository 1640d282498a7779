"""Training a Keras model on features: what the train and finetune stages share.

A seeded, stratified validation split is carved from the training rows (never the test split);
early stopping on validation loss restores the best weights. The result is the model, its
per-epoch history (a DVC plot; MLflow's step metrics come from it) and a JSON summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from stages.common.config import ModelConfig
from stages.common.errors import DataError
from stages.common.io import atomic_path, write_json
from stages.common.models import build_model, configure_determinism, distribution_strategy
from stages.common.persistence import save_model

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
) -> Any:
    """``model.fit`` on the fitting rows, validated on the carved-out ones (Keras' History)."""
    return model.fit(
        X[fit_idx],
        y[fit_idx],
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
) -> TrainResult:
    """Build (starting from ``initial``'s weights if given), fit and return a model. Deterministic for a seed."""
    import keras

    configure_determinism(seed)
    fit_idx, val_idx = validation_indices(y, cfg.validation_split, seed)
    y = y.astype(np.float32)
    with distribution_strategy(cfg.distribution).scope():
        model = build_model(cfg, input_dim=input_dim)
        if initial is not None:  # the same architecture (same params section): start from its weights
            model.set_weights(initial.get_weights())
    callbacks = []
    if cfg.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.early_stopping_patience, restore_best_weights=True
            )
        )
    fit = _fit(model, X, y, fit_idx, val_idx, epochs=cfg.epochs, batch_size=cfg.batch_size, callbacks=callbacks)
    hist = pd.DataFrame({k: fit.history[k] for k in HISTORY_COLUMNS[1:]})
    hist.insert(0, "epoch", np.arange(1, len(hist) + 1))
    # the weights kept: the best epoch's with early stopping, the last epoch's without
    best = int(hist["val_loss"].idxmin()) if cfg.early_stopping_patience is not None else len(hist) - 1
    summary = {
        "epochs_run": len(hist),
        "best_epoch": int(hist.loc[best, "epoch"]),
        "best_val_loss": float(hist.loc[best, "val_loss"]),
        "best_val_accuracy": float(hist.loc[best, "val_accuracy"]),
        "train_rows": len(fit_idx),
        "validation_rows": len(val_idx),
        "parameters": int(model.count_params()),
    }
    return TrainResult(model=model, history=hist, summary=summary)


def write_result(result: TrainResult, model_file: Path, history: Path, summary: Path) -> None:
    """Write the model, its history (CSV) and summary (JSON), each atomically."""
    save_model(result.model, model_file)
    with atomic_path(history) as tmp:
        result.history.to_csv(tmp, index=False, float_format="%.6f")
    write_json(summary, result.summary)
