"""Keras layers of the LSTM model's bag path (``lstm.bag_pooling``, ``lstm.bag_bigram_buckets``).

Imported by :mod:`stages.common.models` when it builds or loads a model: importing this
module registers the layers with Keras, so a saved model loads in safe mode.

Both layers read the padded word-id sequences (0 = padding) and ignore padding wherever it
is, so a review gives the same output however much padding surrounds it.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

PACKAGE = "sentiment_pipeline"
# odd multiplier of the pair hash: (a * PAIR_PRIME + b) mod buckets spreads word pairs over the buckets
PAIR_PRIME = 1_000_003


def _checked(pooling: str) -> str:
    """``pooling`` if it is one the layers know (``ModelConfig.bag_pooling``'s values)."""
    if pooling not in ("mean", "sqrt_n"):
        raise ValueError(f"pooling must be 'mean' or 'sqrt_n', got {pooling!r}")
    return pooling


def _pooled(vectors: Any, weights: Any, pooling: str) -> Any:
    """Sum of ``vectors`` (batch, words, dim) weighted 0/1 by ``weights`` (batch, words), ÷ n or √n."""
    total = ops.sum(vectors * ops.expand_dims(weights, -1), axis=1)
    n = ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)
    return total / (ops.sqrt(n) if pooling == "sqrt_n" else n)


@keras.saving.register_keras_serializable(PACKAGE)
class BagPooling(keras.layers.Layer):
    """The review's word vectors summed, ÷ the number of words (``mean``) or its square root (``sqrt_n``).

    ``mean`` is ``GlobalAveragePooling1D`` with the padding mask. ``sqrt_n`` lets a longer review
    carry more evidence (a review with twice the words has a vector √2 longer when they agree), as
    an L2-normalised bag of words does, instead of averaging one strong word away among many.
    """

    def __init__(self, pooling: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pooling = _checked(pooling)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        """``inputs``: (batch, words, dim) word vectors; ``mask``: the embedding's padding mask."""
        weights = ops.ones(ops.shape(inputs)[:2], dtype=inputs.dtype) if mask is None else ops.cast(mask, inputs.dtype)
        return _pooled(inputs, weights, self.pooling)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        """The output is one vector per review: nothing left to mask."""
        return None

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        """(batch, dim)."""
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict[str, Any]:
        """Serialisable config (``pooling``)."""
        return {**super().get_config(), "pooling": self.pooling}


@keras.saving.register_keras_serializable(PACKAGE)
class HashedBigramBag(keras.layers.Layer):
    """A vector per pair of consecutive words, hashed into ``buckets`` rows, pooled over the review.

    fastText's bigram features: "not good" and "good" get different vectors although the
    vocabulary holds words only. Pairs are formed from the word ids the featurizer writes (so a
    word LIME removes also removes its pairs, and its neighbours pair up, as in the re-tokenized
    text); a pair that touches padding is left out. Pooling as :class:`BagPooling`.
    """

    def __init__(self, buckets: int, dim: int, pooling: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if buckets < 1 or dim < 1:
            raise ValueError(f"buckets and dim must be >= 1, got {buckets} and {dim}")
        self.buckets, self.dim, self.pooling = int(buckets), int(dim), _checked(pooling)

    def build(self, input_shape: tuple[Any, ...]) -> None:
        """The (buckets, dim) table of pair vectors, initialised as ``keras.layers.Embedding`` does."""
        self.table = self.add_weight(shape=(self.buckets, self.dim), initializer="uniform", name="table")

    def pair_ids(self, tokens: Any) -> tuple[Any, Any]:
        """(bucket of each consecutive pair, 1.0 where both words are real words and 0.0 where one is padding)."""
        first = ops.cast(tokens[:, :-1], "int64")
        second = ops.cast(tokens[:, 1:], "int64")
        bucket = ops.mod(first * PAIR_PRIME + second, self.buckets)
        return bucket, ops.cast(ops.logical_and(first > 0, second > 0), self.table.dtype)

    def call(self, tokens: Any) -> Any:
        """``tokens``: (batch, words) padded word ids → (batch, dim)."""
        bucket, real = self.pair_ids(tokens)
        return _pooled(ops.take(self.table, bucket, axis=0), real, self.pooling)

    def compute_output_shape(self, input_shape: tuple[Any, ...]) -> tuple[Any, ...]:
        """(batch, dim)."""
        return (input_shape[0], self.dim)

    def get_config(self) -> dict[str, Any]:
        """Serialisable config (``buckets``, ``dim``, ``pooling``)."""
        return {**super().get_config(), "buckets": self.buckets, "dim": self.dim, "pooling": self.pooling}
