"""The Keras 3 architectures a model section (``mlp:``, ``lstm:``; :class:`ModelConfig`) describes.

A model section names its ``architecture`` so a variant (say ``lstm_big``) is a
params-only change: add the section, a ``vectorize.<name>`` featurizer, and the name to
``models``. Keras is imported lazily so that light stages and tests stay fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from stages.common.params.parsing import check
from stages.common.params.schema import ModelConfig

if TYPE_CHECKING:  # pragma: no cover
    import keras


def distribution_strategy(name: str) -> Any:
    """The ``tf.distribute`` strategy a model section's ``distribution`` names.

    ``default``: one device (the CPU, or the one GPU TensorFlow finds); ``mirrored``:
    synchronous data parallelism over every local GPU (``batch_size`` is the global batch).
    (Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy``: docs/decisions.md.)
    """
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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


def build_model(cfg: ModelConfig, input_dim: int) -> keras.Model:
    """Build and compile the model a config describes (sigmoid output, binary cross-entropy).

    ``lstm``: word ids → embedding → (bidirectional) LSTM → its last state or the mean of its
    states over the words → sigmoid. The LSTM is the only way from the words to the output.
    """
    import keras

    if cfg.architecture == "mlp":
        inputs = keras.Input(shape=(input_dim,), sparse=True, name="bow")
        x = inputs
        for i, units in enumerate(cfg.hidden_units or []):
            x = keras.layers.Dense(
                units,
                activation=cfg.activation,
                kernel_initializer=_initializer(cfg.kernel_initializer),
                name=f"dense_{i + 1}",
            )(x)
            if cfg.dropout > 0:
                x = keras.layers.Dropout(cfg.dropout, name=f"dropout_{i + 1}")(x)
        out_init = _initializer(cfg.kernel_initializer)
    else:
        # any length: the featurizer pads to maxlen, and padding is masked, so LIME's fast path
        # may drop all-padding columns without changing a prediction
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(input_dim, cfg.embedding_dim, mask_zero=True, name="embedding")(inputs)
        lstm = keras.layers.LSTM(
            cfg.units,
            dropout=cfg.dropout,
            recurrent_dropout=cfg.recurrent_dropout,
            return_sequences=cfg.pooling == "mean",
            name="lstm",
        )
        x = keras.layers.Bidirectional(lstm, name="bilstm")(x) if cfg.bidirectional else lstm(x)
        if cfg.pooling == "mean":  # masked: the mean over the review's words, padding left out
            x = keras.layers.GlobalAveragePooling1D(name="mean_over_words")(x)
        out_init = "glorot_uniform"
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=out_init, name="proba")(x)
    model = keras.Model(inputs, outputs, name=cfg.architecture)
    compile_model(model, cfg)
    return model


def compile_model(model: keras.Model, cfg: ModelConfig) -> None:
    """Compile with Adam at the config's learning rate (binary cross-entropy, accuracy)."""
    import keras

    # named, or Keras numbers it (adam, adam_1, ...) by how many the process has made, and the
    # saved model's config.json would depend on that (save_model)
    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate, name="adam")
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])


def grow_inputs(model: keras.Model, cfg: ModelConfig, input_dim: int) -> keras.Model:
    """A copy of ``model`` (built from ``cfg``) that reads ``input_dim`` input ids or columns.

    What grows is the layer that reads the inputs: an LSTM's embedding (rows), an MLP's first
    Dense layer (kernel rows). The existing rows and every other weight are ``model``'s; the added
    rows, for terms a vocabulary gained (:func:`stages.common.features.featurizer.extend_vocabulary`), start at
    zero, so the new terms change no prediction until fine-tuning teaches them something.
    """
    import numpy as np

    grows = "embedding" if cfg.architecture == "lstm" else "dense_1"
    grown = build_model(cfg, input_dim=input_dim)
    for layer in model.layers:
        weights = layer.get_weights()
        if layer.name == grows:
            table, *rest = weights
            check(
                input_dim >= table.shape[0],
                "input_dim",
                f"cannot shrink {grows} from {table.shape[0]} input rows to {input_dim}",
            )
            weights = [np.vstack([table, np.zeros((input_dim - table.shape[0], table.shape[1]), table.dtype)]), *rest]
        if weights:
            grown.get_layer(layer.name).set_weights(weights)
    return grown
