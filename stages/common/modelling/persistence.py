"""Saving and loading Keras models: safe mode, atomic writes, bytes that depend on the model alone."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import keras


def load_model(path: str | os.PathLike[str]) -> keras.Model:
    """Load a saved ``.keras`` model in Keras safe mode (no arbitrary code from the file)."""
    import keras

    return keras.models.load_model(path, safe_mode=True, compile=False)


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Save ``model`` to ``path`` (``.keras``) atomically, its bytes a function of the model alone.

    Keras stamps every file with the time it was saved (``metadata.json``'s ``date_saved``, the
    zip entries' times) and numbers the objects that layers share (an initializer, say) in
    ``config.json`` by their memory addresses, so the same weights made a different file on
    every run: DVC recorded a new model each time and re-ran everything downstream of it, and a
    re-run could not be checked byte for byte. The times become :data:`stages.common.data.io.ZIP_EPOCH`
    (as in the pipeline's ``.npz`` files), the shared objects are numbered 0, 1, ... in the order
    the config names them; the weights and the rest are Keras's own, unchanged.
    """
    import datetime
    import json

    from stages.common.data.io import ZIP_EPOCH, atomic_path, restamp_zip

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
