"""Integrated gradients (Sundararajan et al. 2017) of a review's words, with ``tf.GradientTape``.

attribution_i = (x_i − x'_i) · mean over the path of ∂f/∂x_i, on the straight path from a
baseline x' to the input x (``steps`` midpoints); the attributions add up to f(x) − f(x').

- Sequence model (embedding first): x is the review's word vectors, x' the padding id's vector in
  every slot (the review's mask kept, so the model reads as many steps); a slot's attribution is
  summed over the vector and handed to the word in it.
- Bag of words (a Dense layer first): x is the review's TF-IDF row, x' zeros; only the review's
  columns can be non-zero. A column's attribution is shared equally by its occurrences, and an
  n-gram occurrence's share equally by its words: each word is credited with its unigram and a
  half of each word pair it is in.

The words are LIME's (a word's weight sums its tokens), so the methods are compared word by word.
"""

from __future__ import annotations

import inspect
import time
from functools import cache
from typing import Any

import numpy as np

from stages.common.errors import DataError
from stages.common.explanation.explaining import Explanation, word_explanation
from stages.common.explanation.lime_samples import SPLIT_EXPRESSION, word_tokens
from stages.common.features.featurizer import PAD_ID
from stages.common.features.tokens import tokenize
from stages.common.modelling.prediction import TextModel

CHAIN_TOLERANCE = 1e-4  # |f(x) by the layer chain − the model's prediction| above this: not a chain


def _alphas(steps: int) -> Any:
    """The midpoints of ``steps`` equal parts of [0, 1], as a tensor."""
    import tensorflow as tf

    return tf.constant((np.arange(steps) + 0.5) / steps, dtype=tf.float32)


def _call(layer: Any, x: Any, mask: Any) -> tuple[Any, Any]:
    """One layer of a chain, the mask passed where the layer takes one; the output and its mask."""
    takes_mask = mask is not None and "mask" in inspect.signature(layer.call).parameters
    y = layer(x, mask=mask, training=False) if takes_mask else layer(x, training=False)
    return y, (layer.compute_mask(x, mask) if mask is not None else None)


def _layers(network: Any) -> list[Any]:
    """The network's layers, its input left out."""
    import keras

    return [layer for layer in network.layers if not isinstance(layer, keras.layers.InputLayer)]


def _tail(network: Any, first: type) -> tuple[Any, list[Any]]:
    """The network's first layer (which must be a ``first``) and the layers after it."""
    layers = _layers(network)
    if not layers or not isinstance(layers[0], first):
        raise DataError(f"integrated gradients: model {network.name!r} does not start with a {first.__name__} layer")
    return layers[0], layers[1:]


@cache
def _path_gradients(network: Any) -> Any:
    """A traced ``(path, mask) -> (gradients, outputs)`` for the layers after the network's first.

    Sequence models: ``path`` holds word vectors, ``mask`` the slots read. Bag of words: ``path``
    holds values of some columns, ``mask`` those columns' indices into the first layer's kernel.
    """
    import keras
    import tensorflow as tf

    first = next(iter(_layers(network)), None)
    if isinstance(first, keras.layers.Embedding):
        _, tail = _tail(network, keras.layers.Embedding)

        def f(v: Any, mask: Any) -> Any:
            m = tf.repeat(mask, tf.shape(v)[0], axis=0)
            for layer in tail:
                v, m = _call(layer, v, m)
            return tf.reshape(v, [-1])

        signature = [tf.TensorSpec([None, None, first.output_dim], tf.float32), tf.TensorSpec([1, None], tf.bool)]
    else:
        dense, tail = _tail(network, keras.layers.Dense)

        def f(v: Any, columns: Any) -> Any:
            h = tf.matmul(v, tf.gather(dense.kernel, columns))
            h = dense.activation(h + dense.bias if dense.use_bias else h)
            for layer in tail:
                h, _ = _call(layer, h, None)
            return tf.reshape(h, [-1])

        signature = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int64)]

    def gradients(path: Any, extra: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            tape.watch(path)
            out = f(path, extra)
        return tape.gradient(out, path), out  # of the sum over the path: one gradient per point

    return tf.function(gradients, input_signature=signature)


def _integrate(network: Any, x: Any, base: Any, extra: Any, steps: int) -> tuple[Any, float, float]:
    """(x − base) · the mean gradient over ``steps`` midpoints of the path, f(x) and f(base)."""
    import tensorflow as tf

    alphas = _alphas(steps)[(slice(None),) + (None,) * len(x.shape)]
    path = tf.concat([base[None] + alphas * (x - base)[None], tf.stack([x, base])], axis=0)
    grads, out = _path_gradients(network)(path, extra)
    attr = (x - base) * tf.reduce_mean(grads[:steps], axis=0)
    return attr, float(out[steps]), float(out[steps + 1])


def sequence_attributions(network: Any, ids: np.ndarray, steps: int) -> tuple[np.ndarray, float, float]:
    """Per-slot attributions of one padded id sequence, f(x) and f(baseline)."""
    import keras
    import tensorflow as tf

    embedding, _ = _tail(network, keras.layers.Embedding)
    used = np.flatnonzero(ids != PAD_ID)
    lo, hi = (used[0], used[-1] + 1) if len(used) else (0, 1)
    window = ids[lo:hi]  # padding is masked: the slots outside change nothing
    table = embedding.embeddings
    x = tf.gather(table, window)
    base = tf.broadcast_to(table[PAD_ID], x.shape)
    attr, fx, fb = _integrate(network, x, base, tf.constant(window != PAD_ID)[None, :], steps)
    slots = np.zeros(len(ids), dtype=np.float64)
    slots[lo:hi] = tf.reduce_sum(attr, axis=-1).numpy()
    return slots, fx, fb


def bow_attributions(
    network: Any, columns: np.ndarray, values: np.ndarray, steps: int
) -> tuple[np.ndarray, float, float]:
    """Attributions of one review's non-zero bag-of-words columns, f(x) and f(zeros)."""
    import tensorflow as tf

    x = tf.constant(values, dtype=tf.float32)
    attr, fx, fb = _integrate(network, x, tf.zeros_like(x), tf.constant(columns, dtype=tf.int64), steps)
    return attr.numpy().astype(np.float64), fx, fb


def token_attributions(text: str, model: TextModel, steps: int) -> tuple[list[str], np.ndarray, float, float]:
    """The review's tokens, an attribution per token, f(x) and f(baseline)."""
    if model.network is None:
        raise DataError("integrated gradients need the Keras model (load_text_model gives it)")
    featurizer = model.featurizer
    tokens = tokenize(text)
    features = featurizer.transform([text])
    predicted = float(model.predict(features)[0])
    per_token = np.zeros(len(tokens), dtype=np.float64)
    if featurizer.config.kind == "seq":
        slots, fx, fb = sequence_attributions(model.network, np.asarray(features)[0], steps)
        where = featurizer.sequence_slots(tokens)
        read = where >= 0
        np.add.at(per_token, where[read], slots[read])
    else:
        row = features.tocsr()
        if not row.nnz:  # none of the vocabulary's n-grams: the input is the baseline
            return tokens, per_token, predicted, predicted
        attr, fx, fb = bow_attributions(model.network, row.indices, row.data, steps)
        by_column = dict(zip(row.indices.tolist(), attr, strict=True))
        occurrences = featurizer.ngram_positions(tokens)
        count: dict[int, int] = {}
        for col, _ in occurrences:
            count[col] = count.get(col, 0) + 1
        for col, at in occurrences:
            share = by_column.get(col, 0.0) / count[col] / len(at)
            for p in at:
                per_token[p] += share
    if abs(fx - predicted) > CHAIN_TOLERANCE:
        raise DataError(
            f"integrated gradients: the layers of {model.network.name!r} read as a chain give {fx:.6f}, "
            f"the model {predicted:.6f}; only a chain of layers can be explained this way"
        )
    return tokens, per_token, predicted, fb


def explain_text(
    text: str, review_id: str, label: int, model: TextModel, *, num_features: int = 10, steps: int = 32
) -> Explanation:
    """One review's integrated-gradients explanation, a weight per LIME word for P(positive)."""
    from lime.lime_text import IndexedString

    start = time.perf_counter()
    tokens, per_token, proba, fb = token_attributions(text, model, steps)
    seconds = time.perf_counter() - start
    indexed = IndexedString(text, split_expression=SPLIT_EXPRESSION, bow=True)
    mapping = word_tokens(text, indexed)
    # where tokens cannot be matched to LIME's words exactly, a token is its own word
    names = [str(indexed.inverse_vocab[w]) for w in mapping[2]] if mapping is not None else tokens
    return word_explanation(review_id, label, proba, fb, zip(names, per_token, strict=True), num_features, seconds)
