"""Text in, P(positive) out: a trained model with its featurizer, as every stage and tool scores.

:class:`TextModel` pairs the one featurizer with a features → probability function;
:func:`load_text_model` makes one from a model file and its featurizer, with Keras' ``predict``
or a faster path for LIME's many small batches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stages.common.data.store import load_featurizer
from stages.common.features.featurizer import Featurizer
from stages.common.modelling.persistence import load_model

if TYPE_CHECKING:  # pragma: no cover
    import keras


@dataclass(frozen=True)
class TextModel:
    """A model as users see it: the featurizer and a features → P(positive) function."""

    featurizer: Featurizer
    predict: Callable[[Any], np.ndarray]
    network: keras.Model | None = None  # the Keras model behind ``predict``, for gradients

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → P(positive), through the one featurizer."""
        return np.asarray(self.predict(self.featurizer.transform(list(texts))), dtype=np.float64).reshape(-1)


def load_text_model(model_file: Path, featurizer: Path | Featurizer, *, fast: bool = False) -> TextModel:
    """The saved Keras model with its featurizer (a features directory, its ``featurizer.json`` or one loaded).

    ``fast``: the predictor for many small batches (LIME, single texts); otherwise Keras' ``predict``.
    """
    if not isinstance(featurizer, Featurizer):
        path = Path(featurizer)
        featurizer = load_featurizer(path) if path.is_dir() else Featurizer.from_json(path.read_text(encoding="utf-8"))
    model = load_model(model_file)
    return TextModel(featurizer, fast_predictor(model) if fast else partial(predict_proba, model), model)


def predict_proba(model: keras.Model, features: Any, batch_size: int = 1024, batches: int = 10) -> Any:
    """Positive-class probabilities as a 1-D float64 array (works on sparse or dense input).

    ``batches`` batches at a time, so a shard of any size needs the memory of one piece; the
    batches are those of one ``predict`` over all the rows (the same probabilities).
    """
    import numpy as np

    step = batch_size * batches
    out = [
        model.predict(features[start : start + step], batch_size=batch_size, verbose=0)
        for start in range(0, features.shape[0], step)
    ]
    return np.concatenate(out, dtype=np.float64).reshape(-1) if out else np.zeros(0)


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
