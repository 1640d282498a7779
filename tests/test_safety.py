"""Loading never runs code from a file: Keras safe mode, no pickles."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stages.common.data.io import load_npz
from stages.common.modelling.persistence import load_model


def test_models_load_in_keras_safe_mode(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((2,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)  # arbitrary Python in the file
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        load_model(path)


def test_arrays_never_unpickle(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.npy", buf.getvalue())
    with pytest.raises(ValueError, match="allow_pickle"):
        load_npz(path)
