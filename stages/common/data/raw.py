"""Reading raw review sources: the aclImdb archive and reviews tables, safely and in chunks.

An archive is read member by member without extracting anything; a table ``CHUNK_ROWS`` rows at a
time, each chunk keeping the table's row numbers so that an error names the row in the file.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from stages.common.errors import DataError
from stages.common.params.schema import PrepareConfig

SPLITS = ("train", "test")
_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
MAX_REVIEW_BYTES = PrepareConfig().max_review_bytes  # the default, declared once in the config
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
CHUNK_ROWS = 50_000  # reviews read, checked and written at a time: memory bounded by a chunk, not the table


def open_parquet(path: Path) -> pq.ParquetFile:
    """A Parquet file to read a row group at a time, in bounded memory.

    Without ``pre_buffer=False``, pyarrow keeps every row group it has read buffered until the
    file is done: reading a 1 M-review table batch by batch held ~0.8 GiB more at its end.
    """
    return pq.ParquetFile(path, pre_buffer=False)


def clean_text(text: str) -> str:
    """Normalise markup the sources carry (IMDB's ``<br />``) to newlines."""
    return _BREAK.sub("\n", text)


def read_aclimdb(
    path: Path, encoding_errors: str = "replace", max_review_bytes: int = MAX_REVIEW_BYTES
) -> pd.DataFrame:
    """Read labeled reviews straight from an aclImdb tar archive (never extracts).

    Only regular-file members named ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``
    are read; a link with such a name is an error, everything else is ignored. A member larger
    than ``max_review_bytes`` is refused from its header, before it is read, so memory stays
    bounded by the reviews, not by one member.
    """
    rows: list[tuple[str, str, int, str, int, int]] = []
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                match = _MEMBER.match(member.name)
                if match is None:
                    continue
                if not member.isfile():
                    raise DataError(f"{path}: member {member.name!r} is a link or special file; refusing it")
                split, polarity, num, rating = match.groups()
                check_size(member.size, f"{split}/{polarity}/{num}_{rating}", max_review_bytes, f"{path}")
                fh = tar.extractfile(member)
                assert fh is not None
                raw = fh.read()
                try:
                    text = raw.decode("utf-8", errors=encoding_errors)
                except UnicodeDecodeError as exc:
                    raise DataError(
                        f"{path}: member {member.name!r} is not valid UTF-8 ({exc}); "
                        "set prepare.encoding_errors: replace to substitute bad bytes"
                    ) from None
                rows.append(
                    (f"{split}/{polarity}/{num}_{rating}", text, int(polarity == "pos"), split, int(rating), int(num))
                )
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated archive ({exc})") from None
    if not rows:
        raise DataError(f"{path}: no aclImdb/{{train,test}}/{{pos,neg}}/<id>_<rating>.txt members found")
    df = pd.DataFrame(rows, columns=["id", "text", "label", "split", "rating", "_num"])
    df["_split_order"] = df["split"].map({s: i for i, s in enumerate(SPLITS)})
    df = df.sort_values(["_split_order", "label", "_num"], kind="stable").drop(columns=["_num", "_split_order"])
    return df.reset_index(drop=True)


def check_size(size: int, review_id: str, limit: int, where: str) -> None:
    """Refuse a review of more than ``limit`` bytes (``prepare.max_review_bytes``), naming it."""
    if size > limit:
        raise DataError(
            f"{where}: review {review_id!r} is {size:,} bytes, over prepare.max_review_bytes ({limit:,}); "
            "remove it from the source or raise the limit"
        )


def read_reviews_chunks(
    path: Path, encoding_errors: str = "replace", text_column: str | None = None, rows: int = CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """A reviews CSV (any compression pandas infers from the name) or Parquet file, ``rows`` at a time.

    Each chunk keeps the table's row numbers as its index, so an error names the row in the file.
    A table with a header and no rows gives one empty chunk.
    """
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            table = open_parquet(path)
            start = 0
            for batch in table.iter_batches(batch_size=rows):
                chunk = batch.to_pandas()
                chunk.index = pd.RangeIndex(start, start + len(chunk))
                start += len(chunk)
                yield chunk
            if start == 0:
                yield table.schema_arrow.empty_table().to_pandas()
            return
        dtype = {text_column: str} if text_column else None  # a review "5" is text, not a number
        with pd.read_csv(
            path, keep_default_na=False, na_values=[], encoding="utf-8", encoding_errors=encoding_errors,
            dtype=dtype, chunksize=rows,
        ) as reader:  # fmt: skip
            yield from reader
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not valid UTF-8 ({exc}); set prepare.encoding_errors: replace to substitute bad bytes"
        ) from None
    except (ValueError, OSError, EOFError, zlib.error, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read reviews table ({exc})") from None
