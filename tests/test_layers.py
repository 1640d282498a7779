"""The bag path's layers: pooling and hashed word pairs, padding ignored."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from stages.common.layers import PAIR_PRIME, BagPooling, HashedBigramBag


def _vectors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 5, 4)).astype(np.float32), np.array(
        [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]], bool
    )


@pytest.mark.parametrize("pooling", ["mean", "sqrt_n"])
def test_bag_pooling_sums_the_unmasked_words(pooling: str) -> None:
    x, mask = _vectors()
    out = keras.ops.convert_to_numpy(BagPooling(pooling)(x, mask=mask))
    n = mask.sum(axis=1, keepdims=True)
    expected = (x * mask[..., None]).sum(axis=1) / (n if pooling == "mean" else np.sqrt(n))
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    if pooling == "mean":  # the same as Keras's masked average
        gap = keras.layers.GlobalAveragePooling1D()(x, mask=mask)
        np.testing.assert_allclose(out, keras.ops.convert_to_numpy(gap), rtol=1e-6)


def test_bag_pooling_rejects_an_unknown_pooling() -> None:
    with pytest.raises(ValueError, match="pooling"):
        BagPooling("max")


def _pairs(tokens: list[list[int]], buckets: int = 1 << 12, pooling: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    layer = HashedBigramBag(buckets, 3, pooling)
    out = keras.ops.convert_to_numpy(layer(np.array(tokens, np.int32)))
    return out, keras.ops.convert_to_numpy(layer.table)


def test_word_pairs_are_hashed_in_order_and_padding_is_left_out() -> None:
    (padded, swapped, alone, empty), table = _pairs([[0, 0, 5, 7], [0, 0, 7, 5], [0, 0, 0, 5], [0, 0, 0, 0]])
    np.testing.assert_allclose(padded, table[(5 * PAIR_PRIME + 7) % (1 << 12)], rtol=1e-6)  # one pair: (5, 7)
    assert not np.allclose(padded, swapped)  # "not good" is not "good not"
    assert not alone.any() and not empty.any()  # no pair without two real words


@pytest.mark.parametrize("pooling", ["mean", "sqrt_n"])
def test_word_pairs_ignore_how_much_padding_there_is(pooling: str) -> None:
    layer = HashedBigramBag(64, 3, pooling)
    short = keras.ops.convert_to_numpy(layer(np.array([[3, 9, 4, 9, 3]], np.int32)))
    long = keras.ops.convert_to_numpy(layer(np.array([[0, 0, 0, 3, 9, 4, 9, 3]], np.int32)))
    np.testing.assert_allclose(short, long, rtol=1e-6)
    table = keras.ops.convert_to_numpy(layer.table)
    rows = table[[(a * PAIR_PRIME + b) % 64 for a, b in [(3, 9), (9, 4), (4, 9), (9, 3)]]]
    np.testing.assert_allclose(short[0], rows.sum(axis=0) / (4 if pooling == "mean" else 2), rtol=1e-5)


def test_word_pair_layer_round_trips_its_config() -> None:
    layer = HashedBigramBag(128, 5, "sqrt_n", name="word_pairs")
    clone = HashedBigramBag.from_config(layer.get_config())
    assert (clone.buckets, clone.dim, clone.pooling, clone.name) == (128, 5, "sqrt_n", "word_pairs")
    with pytest.raises(ValueError, match="buckets"):
        HashedBigramBag(0, 5)
