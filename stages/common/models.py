"""Keras 3 model definitions and their params (``mlp:``, ``lstm:`` sections).

A model section names its ``architecture`` so a variant (say ``lstm_big``) is a
params-only change: add the section, a ``vectorize.<name>`` featurizer, and the name to
``models``. Keras is imported lazily so that light stages and tests stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from stages.common.params import check

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import numpy as np


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
    pooling: Literal["last", "mean"] = "last"  # the LSTM's last state, or the mean of its states over the words
    recurrent_dropout: float = 0.0
    # epochs of a bag-of-embeddings model (mean word vector → Dense → sigmoid) that learns the
    # embedding before the LSTM trains on it (0: the LSTM learns its embedding from random)
    embedding_warmup_epochs: int = 0
    freeze_embedding: bool = False  # keep the embedding fixed while the LSTM trains
    # keep the warm-up's bag-of-embeddings path beside the LSTM: both feed the output layer, which
    # starts as the warm-up's (the LSTM's share at zero), so the LSTM learns what word order adds
    bag_of_embeddings: bool = False
    # how the bag path pools the review's word vectors: their mean, or their sum ÷ √(number of words)
    bag_pooling: Literal["mean", "sqrt_n"] = "mean"
    # > 0: the bag path also pools a vector per pair of consecutive words, hashed into this many rows
    bag_bigram_buckets: int = 0
    # both
    dropout: float = 0.0
    l2: float = 0.0
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    # > 0: binary cross-entropy against labels pulled this far towards 0.5 (Keras' label_smoothing)
    label_smoothing: float = 0.0
    # balanced: each class's reviews weigh n / (2 × the class's count) in the training loss
    class_weight: Literal["none", "balanced"] = "none"
    learning_rate: float = 0.001
    epochs: int = 10
    batch_size: int = 32
    validation_split: float = 0.2
    early_stopping_patience: int | None = 2
    # how training spreads over hardware: tf.distribute strategies (README: scaling)
    distribution: Literal["default", "mirrored", "multi_worker_mirrored"] = "default"

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
            0.0 <= self.label_smoothing < 1.0,
            f"{path}.label_smoothing",
            f"must be in [0, 1), got {self.label_smoothing}",
        )
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
            check(
                self.embedding_warmup_epochs >= 0,
                f"{path}.embedding_warmup_epochs",
                f"must be >= 0, got {self.embedding_warmup_epochs}",
            )
            check(
                self.bag_bigram_buckets >= 0,
                f"{path}.bag_bigram_buckets",
                f"must be >= 0 (0: no word pairs), got {self.bag_bigram_buckets}",
            )


def distribution_strategy(name: str) -> Any:
    """The ``tf.distribute`` strategy a model section's ``distribution`` names.

    ``default``: one device (the CPU, or the one GPU TensorFlow finds); ``mirrored``:
    synchronous data parallelism over every local GPU (``batch_size`` is the global batch);
    ``multi_worker_mirrored``: the same over several machines, each described by ``TF_CONFIG``.
    """
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
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
        # any length: the featurizer pads to maxlen, and padding is masked, so LIME's fast path
        # may drop all-padding columns without changing a prediction
        inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
        embedded = keras.layers.Embedding(
            input_dim, cfg.embedding_dim, mask_zero=True, trainable=not cfg.freeze_embedding, name="embedding"
        )(inputs)
        x = embedded
        lstm = keras.layers.LSTM(
            cfg.units,
            dropout=cfg.dropout,
            recurrent_dropout=cfg.recurrent_dropout,
            kernel_regularizer=reg,
            return_sequences=cfg.pooling == "mean",
            name="lstm",
        )
        x = keras.layers.Bidirectional(lstm, name="bilstm")(x) if cfg.bidirectional else lstm(x)
        if cfg.pooling == "mean":  # masked: the mean over the review's words, padding left out
            x = keras.layers.GlobalAveragePooling1D(name="mean_over_words")(x)
        if cfg.bag_of_embeddings:
            x = keras.layers.Concatenate(name="lstm_and_bag")(
                [x, _bag_of_embeddings(cfg, embedded, inputs, trainable=not cfg.freeze_embedding)]
            )
        out_init = "glorot_uniform"
    outputs = keras.layers.Dense(1, activation="sigmoid", kernel_initializer=out_init, name="proba")(x)
    model = keras.Model(inputs, outputs, name=cfg.architecture)
    compile_model(model, cfg)
    return model


def build_embedding_warmup(cfg: ModelConfig, input_dim: int) -> keras.Model:
    """The bag-of-embeddings model that learns an LSTM's embedding first (``embedding_warmup_epochs``).

    The review's pooled word vectors (padding masked; with ``bag_bigram_buckets`` its pooled word
    pairs too) → a ReLU layer of ``units`` × 2 → sigmoid: quick to train (no recurrence), it puts
    sentiment into the word vectors that the LSTM then reads. Its layers have the LSTM model's names
    and shapes, so weights carry over.
    """
    import keras

    inputs = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(input_dim, cfg.embedding_dim, mask_zero=True, name="embedding")(inputs)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="proba")(
        _bag_of_embeddings(cfg, x, inputs, trainable=True)
    )
    model = keras.Model(inputs, outputs, name="embedding_warmup")
    compile_model(model, cfg)
    return model


def _bag_of_embeddings(cfg: ModelConfig, embedded: Any, tokens: Any, *, trainable: bool) -> Any:
    """Pooled word vectors (padding masked; ``bag_pooling``), with ``bag_bigram_buckets`` the pooled
    vectors of the review's word pairs beside them → ReLU layer of ``units`` × 2 → dropout: the
    warm-up's features. ``trainable``: whether the pair table learns (it follows the word vectors).
    """
    import keras

    from stages.common.layers import BagPooling, HashedBigramBag

    if cfg.bag_pooling == "mean":
        x = keras.layers.GlobalAveragePooling1D(name="mean_of_word_vectors")(embedded)
    else:
        x = BagPooling(cfg.bag_pooling, name="pooled_word_vectors")(embedded)
    if cfg.bag_bigram_buckets > 0:
        pairs = HashedBigramBag(
            cfg.bag_bigram_buckets, cfg.embedding_dim, cfg.bag_pooling, name="word_pairs", trainable=trainable
        )(tokens)
        x = keras.layers.Concatenate(name="words_and_pairs")([x, pairs])
    x = keras.layers.Dense(2 * cfg.units, activation="relu", name="warmup_hidden")(x)
    return keras.layers.Dropout(0.5, name="warmup_dropout")(x)


def lstm_share(model: keras.Model) -> slice | None:
    """Rows of the output layer's kernel that read the LSTM's features, where the model has a bag path.

    ``build_model`` concatenates [LSTM features, bag-of-embeddings features] (``lstm_and_bag``)
    into the output layer; None for a model without that concatenation.
    """
    if "lstm_and_bag" not in {layer.name for layer in model.layers}:
        return None
    return slice(0, model.get_layer("proba").kernel.shape[0] - model.get_layer("warmup_hidden").units)


def compile_model(model: keras.Model, cfg: ModelConfig) -> None:
    """Compile with the config's optimiser (binary cross-entropy, accuracy)."""
    import keras

    # named, or Keras numbers it (adam, adam_1, ...) by how many the process has made, and the
    # saved model's config.json would depend on that (save_model)
    config = {"learning_rate": cfg.learning_rate, "name": cfg.optimizer}
    optimizer = keras.optimizers.get({"class_name": cfg.optimizer, "config": config})
    loss: Any = "binary_crossentropy"
    if cfg.label_smoothing > 0:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=cfg.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def load_model(path: str | os.PathLike[str]) -> keras.Model:
    """Load a saved ``.keras`` model in Keras safe mode (no arbitrary code from the file)."""
    import keras

    import stages.common.layers  # noqa: F401 - registers the custom layers a saved model may use

    return keras.models.load_model(path, safe_mode=True, compile=False)


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Save ``model`` to ``path`` (``.keras``) atomically, its bytes a function of the model alone.

    Keras stamps every file with the time it was saved (``metadata.json``'s ``date_saved``, the
    zip entries' times) and numbers the objects that layers share (an initializer, say) in
    ``config.json`` by their memory addresses, so the same weights made a different file on
    every run: DVC recorded a new model each time and re-ran everything downstream of it, and a
    re-run could not be checked byte for byte. The times become :data:`stages.common.io.ZIP_EPOCH`
    (as in the pipeline's ``.npz`` files), the shared objects are numbered 0, 1, ... in the order
    the config names them; the weights and the rest are Keras's own, unchanged.
    """
    import datetime
    import json

    from stages.common.io import ZIP_EPOCH, atomic_path, restamp_zip

    def metadata(raw: bytes) -> bytes:
        saved = datetime.datetime(*ZIP_EPOCH).strftime("%Y-%m-%d@%H:%M:%S")  # Keras's format
        return json.dumps({**json.loads(raw), "date_saved": saved}).encode()

    def config(raw: bytes) -> bytes:
        return json.dumps(_number_shared_objects(json.loads(raw), {})).encode()

    with atomic_path(path) as tmp:
        model.save(tmp)
        restamp_zip(tmp, {"metadata.json": metadata, "config.json": config})


def _number_shared_objects(node: Any, numbers: dict[Any, int]) -> Any:
    """``node`` (a Keras config) with each ``shared_object_id`` replaced by its first-seen rank."""
    if isinstance(node, dict):
        return {
            key: numbers.setdefault(value, len(numbers))
            if key == "shared_object_id"
            else _number_shared_objects(value, numbers)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_number_shared_objects(value, numbers) for value in node]
    return node


def grow_inputs(model: keras.Model, cfg: ModelConfig, input_dim: int) -> keras.Model:
    """A copy of ``model`` (built from ``cfg``) that reads ``input_dim`` input ids or columns.

    What grows is the layer that reads the inputs: an LSTM's embedding (rows), an MLP's first
    Dense layer (kernel rows). The existing rows and every other weight are ``model``'s; the added
    rows, for terms a vocabulary gained (:func:`stages.common.features.extend_vocabulary`), start at
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


def predict_proba(model: keras.Model, features: Any, batch_size: int = 1024) -> Any:
    """Positive-class probabilities as a 1-D float64 array (works on sparse or dense input)."""
    import numpy as np

    out = model.predict(features, batch_size=batch_size, verbose=0)
    return np.asarray(out, dtype=np.float64).reshape(-1)


def fast_predictor(model: keras.Model, batch_size: int = 256) -> Callable[[Any], np.ndarray]:
    """Features → P(positive), as :func:`predict_proba` but without Keras' ``predict`` loop.

    For the many small batches LIME needs: one traced function per model. Sequence batches
    are sorted by length and cut into chunks whose all-padding columns are dropped; the
    embedding masks padding (``mask_zero``), so the outputs are the same, with less work.
    """
    import numpy as np
    import tensorflow as tf

    if getattr(model.inputs[0], "sparse", False):
        return _sparse_predictor(model)

    call = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, None], tf.int32)])
    masked = any(getattr(layer, "mask_zero", False) for layer in model.layers)

    def predict_dense(X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.int32)
        out = np.empty(len(X), dtype=np.float64)
        order = np.argsort((X != 0).sum(axis=1), kind="stable") if masked else np.arange(len(X))
        for lo in range(0, len(X), batch_size):
            idx = order[lo : lo + batch_size]
            chunk = X[idx]
            if masked:
                used = np.flatnonzero((chunk != 0).any(axis=0))
                chunk = chunk[:, used[0] : used[-1] + 1] if len(used) else chunk[:, :1]
            out[idx] = np.asarray(call(chunk), dtype=np.float64).reshape(-1)
        return out

    return predict_dense


def _sparse_predictor(model: keras.Model) -> Callable[[Any], np.ndarray]:
    """Bag-of-words models: the first (sparse × dense) layer in SciPy, the rest traced in TF.

    TensorFlow's sparse matmul is many times slower than SciPy's CSR product on LIME-sized
    batches. Valid for a chain of layers starting with a Dense one (what ``build_model``
    makes); the first call checks that against the whole model and otherwise keeps to it.
    """
    import keras
    import numpy as np
    import scipy.sparse as sp
    import tensorflow as tf

    width = model.inputs[0].shape[1]
    whole = tf.function(
        lambda x: model(x, training=False), input_signature=[tf.SparseTensorSpec([None, width], tf.float32)]
    )

    def via_tf(X: sp.csr_matrix) -> np.ndarray:
        coo = X.tocoo()  # CSR → COO is row-major sorted, as tf.SparseTensor wants
        tensor = tf.SparseTensor(
            np.column_stack([coo.row, coo.col]).astype(np.int64), coo.data, np.asarray(coo.shape, dtype=np.int64)
        )
        return np.asarray(whole(tensor), dtype=np.float64).reshape(-1)

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or not isinstance(layers[0], keras.layers.Dense):
        return lambda X: via_tf(sp.csr_matrix(X, dtype=np.float32))
    first = layers[0]
    kernel = keras.ops.convert_to_numpy(first.kernel)
    bias = keras.ops.convert_to_numpy(first.bias) if first.use_bias else np.zeros(kernel.shape[1], np.float32)

    def chain(z: Any) -> Any:
        x = first.activation(z)
        for layer in layers[1:]:
            x = layer(x, training=False)
        return x

    tail = tf.function(chain, input_signature=[tf.TensorSpec([None, kernel.shape[1]], tf.float32)])
    state = {"checked": False, "chain": True}

    def predict(X: Any) -> np.ndarray:
        X = sp.csr_matrix(X, dtype=np.float32)
        if not state["chain"]:
            return via_tf(X)
        z = np.asarray(X @ kernel, dtype=np.float32) + bias
        out = np.asarray(tail(z), dtype=np.float64).reshape(-1)
        if not state["checked"]:
            head = slice(0, min(64, X.shape[0]))
            state["chain"] = bool(np.allclose(out[head], via_tf(X[head]), rtol=1e-4, atol=1e-6))
            state["checked"] = True
            if not state["chain"]:
                return via_tf(X)
        return out

    return predict
