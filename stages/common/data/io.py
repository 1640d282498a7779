"""Atomic, deterministic file writers.

Every stage output goes through these helpers: the content is written to a hidden
temporary sibling and renamed into place only when complete, so a failed or killed
stage never leaves a half-written output for DVC (or a person) to trust. Writers are
byte-deterministic (sorted JSON keys, fixed zip timestamps) so that identical inputs
give identical files and DVC hashes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: every member's time


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    Works for files and directories. The temporary keeps the suffix (Keras and pandas
    look at it) and has a fixed name, so a stage killed mid-write leaves at most one
    hidden file that its next run removes. On any exception the temporary is removed and
    the previous ``path`` (if any) is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {path}")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, Path):
        return value.as_posix()
    return value


def dumps_json(data: Any) -> str:
    """Serialise to stable JSON text (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(_jsonable(data), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: Path | str, data: Any) -> None:
    """Atomically write ``data`` as stable JSON."""
    write_text(path, dumps_json(data))


def write_text(path: Path | str, text: str) -> None:
    """Atomically write UTF-8 text."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: Path | str, data: bytes) -> None:
    """Atomically write bytes."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_json(path: Path | str) -> Any:
    """Read a JSON file, naming the file in the error if it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Build an ``.npz`` archive in memory with fixed timestamps (byte-deterministic).

    ``numpy.savez`` stamps each member with the current time, which would make equal
    features hash differently; this writes the same format with a constant date.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def restamp_zip(path: Path, rewrite: Mapping[str, Callable[[bytes], bytes]] | None = None) -> None:
    """Rewrite the zip archive at ``path`` in place with every member's time set to :data:`ZIP_EPOCH`.

    For archives another library writes with the current time in them (Keras's ``.keras``
    files): members keep their order, compression and bytes, except the ones named in
    ``rewrite``, whose bytes go through its function first. Large members are streamed.
    """
    rewrite = rewrite or {}
    restamped = path.with_name(f"{path.name}.restamped")
    try:
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(restamped, "w") as dst:
            for info in src.infolist():
                entry = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
                entry.compress_type, entry.external_attr = info.compress_type, info.external_attr
                if info.filename in rewrite:
                    dst.writestr(entry, rewrite[info.filename](src.read(info)))
                    continue
                with src.open(info) as r, dst.open(entry, "w", force_zip64=info.file_size > 1 << 31) as w:
                    shutil.copyfileobj(r, w, 1 << 20)
        os.replace(restamped, path)
    finally:
        restamped.unlink(missing_ok=True)


def sparse_arrays(matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """The arrays ``scipy.sparse.load_npz`` expects for a CSR matrix."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    return {
        "format": np.array("csr"),
        "shape": np.array(matrix.shape, dtype=np.int64),
        "data": matrix.data,
        "indices": matrix.indices,
        "indptr": matrix.indptr,
    }


def load_npz(path: Path | str, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Load the arrays of an ``.npz`` file (no pickles): all, or those of ``names`` present, reading no others."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files if names is None or k in names}


def features_from_npz(arrays: Mapping[str, np.ndarray], prefix: str = "X") -> Any:
    """Rebuild features stored by :func:`features_to_npz` (sparse CSR or dense)."""
    if f"{prefix}_indptr" in arrays:
        shape = tuple(int(v) for v in arrays[f"{prefix}_shape"])
        return sp.csr_matrix(
            (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
            shape=shape,
        )
    return arrays[prefix]


def features_to_npz(features: Any, prefix: str = "X") -> dict[str, np.ndarray]:
    """Flatten features (sparse CSR or dense array) into named npz arrays."""
    if sp.issparse(features):
        return {f"{prefix}_{k}": v for k, v in sparse_arrays(features).items() if k != "format"}
    return {prefix: np.asarray(features)}
