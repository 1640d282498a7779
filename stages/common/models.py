"""Keras 3 model definitions and their params (``mlp:``, ``lstm:`` sections).

A model section names its ``architecture`` so a variant (say ``lstm_big``) is a
params-only change: add the section, a ``vectorize.<name>`` featurizer, and the name to
``models``. Keras is imported lazily so that light stages and tests stay fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from stages.common.params import check

if TYPE_CHECKING:  # pragma: no cover
    import keras


@dataclass(frozen=True)
class ModelConfig:
    """Params shared by every model: architecture, optimiser and the training loop."""

    architecture: Literal["mlp", "lstm"]
    # MLP
    hidden_units: list[int] | None = None
    kernel_initializer: str = "glorot_uniform"
    activation: str = "relu"
    # LSTM
    embedding_dim: int = 128
    units: int = 128
    bidirectional: bool = False
    recurrent_dropout: float = 0.0
    # both
    dropout: float = 0.0
    l2: float = 0.0
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    learning_rate: float = 0.001
    epochs: int = 10
    batch_size: int = 32
    validation_split: float = 0.2
    early_stopping_patience: int | None = 2

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.epochs >= 1, f"{path}.epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"{path}.batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.learning_rate > 0, f"{path}.learning_rate", f"must be > 0, got {self.learning_rate}")
        check(0.0 <= self.dropout < 1.0, f"{path}.dropout", f"must be in [0, 1), got {self.dropout}")
        check(
            0.0 <= self.recurrent_dropout < 1.0,
            f"{path}.recurrent_dropout",
            f"must be in [0, 1), got {self.recurrent_dropout}",
        )
        check(self.l2 >= 0, f"{path}.l2", f"must be >= 0, got {self.l2}")
        check(
            0.0 < self.validation_split < 1.0,
            f"{path}.validation_split",
            f"must be in (0, 1), got {self.validation_split}",
        )
        if self.early_stopping_patience is not None:
            check(self.early_stopping_patience >= 0, f"{path}.early_stopping_patience", "must be >= 0 or null")
        if self.architecture == "mlp":
            check(bool(self.hidden_units), f"{path}.hidden_units", "an MLP needs at least one hidden layer")
            for i, u in enumerate(self.hidden_units or []):
                check(u >= 1, f"{path}.hidden_units[{i}]", f"must be >= 1, got {u}")
        else:
            check(self.units >= 1, f"{path}.units", f"must be >= 1, got {self.units}")
            check(self.embedding_dim >= 1, f"{path}.embedding_dim", f"must be >= 1, got {self.embedding_dim}")


def configure_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow from one value and make TF ops deterministic."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["PYTHONHASHSEED"] = str(seed)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _initializer(name: str) -> Any:
    import keras

    # The original R recipe's "uniform" is Keras 2's RandomUniform(-0.05, 0.05).
    if name == "uniform":
        return keras.initializers.RandomUniform(minval=-0.05, maxval=0.05)
    return keras.initializers.get(name)


def build_model(cfg: ModelConfig, input_dim: int, seq_len: int | None = None) -> keras.Model:
    """Build and compile the model a config describes (sigmoid output, binary cross-entropy)."""
    import keras

    reg = keras.regularizers.L2(cfg.l2) if cfg.l2 > 0 else None
    if cfg.architecture == "mlp":
        inputs = keras.Input(shape=(input_dim,), sparse=True, name="bow")
        x = inputs
        for i, units in enumerate(cfg.hidden_units or []):
            x = keras.layers.Dense(
                units,
                activation=cfg.activation,
                kernel_initializer=_initializer(cfg.kernel_initializer),
                kernel_regularizer=reg,
                name=f"dense_{i + 1}",
            )(x)
            if cfg.dropout > 0:
                x = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i + 1}")(x)
        out_init = _initializer(cfg.kernel_initializer)
    else:
        inputs = keras.Input(shape=(seq_len,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(input_dim, cfg.embedding_dim, mask_zero=True, name="embedding")(inputs)
        lstm = keras.layers.LSTM(
            cfg.units,
            dropout=cfg.dropout,
            recurrent_dropout=cfg.recurrent_dropout,
            kernel_regularizer=reg,
            name="lstm",
        )
        x = keras.layers.Bidirectional(lstm, name="bilstm")(x) if cfg.bidirectional else lstm(x)
        out_init = "glorot_uniform"
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=out_init, name="proba")(x)
    model = keras.Model(inputs, outputs, name=cfg.architecture)
    optimizer = keras.optimizers.get({"class_name": cfg.optimizer, "config": {"learning_rate": cfg.learning_rate}})
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def load_model(path: str | os.PathLike[str]) -> keras.Model:
    """Load a saved ``.keras`` model in Keras safe mode (no arbitrary code from the file)."""
    import keras

    return keras.models.load_model(path, safe_mode=True, compile=False)


def predict_proba(model: keras.Model, features: Any, batch_size: int = 1024) -> Any:
    """Positive-class probabilities as a 1-D float64 array (works on sparse or dense input)."""
    import numpy as np

    out = model.predict(features, batch_size=batch_size, verbose=0)
    return np.asarray(out, dtype=np.float64).reshape(-1)
