"""prepare: raw source → one normalized review table and a data card (per dataset).

Output table columns: ``id`` (stable string), ``text``, ``label`` (0 negative / 1 positive),
``split`` (``train``/``test``), ``rating`` (the source's star or 1–10 rating, NaN when
it has none), ``group`` (a minimal-edit pair added with ``datasets.<name>.augment``: the pair, kept
whole by the validation carve and weighted by each model's ``pair_weight``; ``""`` for a review of
the source) and ``in_train`` (a test review whose text, or a near-duplicate of it, is in the
training split: evaluate also scores the test split without them). The data card counts
duplicates and near-duplicates within and across the splits. Sources:

* ``aclimdb``: the official ``aclImdb_v1.tar.gz`` layout, read straight from the archive
  (nothing is extracted, links and unexpected members are never followed); the rating is in
  each file name, the official train/test split is kept.
* ``reviews``: any CSV/Parquet with a text column and either a 0/1 label column or a rating
  column (binarised: ``rating <= negative_max`` → 0, ``>= positive_min`` → 1, in between
  dropped), with an optional split column. Without one, a seeded stratified test split of
  ``test_size`` is drawn. The Yelp data is this format. Read ``CHUNK_ROWS`` rows at a time:
  memory does not grow with the table (``make scale``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split

from stages.common import cli
from stages.common.data.duplicates import DuplicateIndex
from stages.common.data.io import atomic_path, write_json
from stages.common.data.pairs import pair_rows, read_pairs
from stages.common.data.raw import (
    CHUNK_ROWS,
    MAX_REVIEW_BYTES,
    SPLITS,
    check_size,
    clean_text,
    open_parquet,
    read_aclimdb,
    read_reviews_chunks,
)
from stages.common.data.sources import Fetched, fetch_source
from stages.common.errors import DataError
from stages.common.params import load_params
from stages.common.params.schema import DatasetConfig, PrepareConfig

log = logging.getLogger(__name__)


def _require_columns(raw: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DataError(f"{where}: column {missing[0]!r} not found (columns: {', '.join(map(str, raw.columns))})")


def _show(value: Any) -> Any:
    """Plain Python value for messages (``2``, not ``np.int64(2)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_texts(texts: pd.Series, column: str, where: str) -> pd.Series:
    """Texts must be non-empty strings; returns them with markup normalised."""
    non_str = texts.map(lambda t: not isinstance(t, str))
    if non_str.any():
        row = texts.index[non_str.to_numpy()][0]
        raise DataError(f"{where}: column {column!r} row {row}: text is missing")
    texts = texts.map(clean_text)
    empty = texts.str.strip() == ""
    if empty.any():
        row = texts.index[empty.to_numpy()][0]
        raise DataError(f"{where}: column {column!r} row {row}: empty text ({int(empty.sum())} empty row(s))")
    return texts


def _labels_from_column(values: pd.Series, column: str, where: str) -> pd.Series:
    mapping = {0: 0, 1: 1, "0": 0, "1": 1}  # also matches False/True and 0.0/1.0
    labels = values.map(lambda v: mapping.get(v.strip() if isinstance(v, str) else v, -1))
    bad = labels[labels < 0]
    if len(bad):
        row = bad.index[0]
        raise DataError(
            f"{where}: column {column!r} row {row}: label {_show(values[row])!r} is not 0 or 1 ({len(bad)} bad row(s))"
        )
    return labels.astype(np.int8)


def _labels_from_rating(values: pd.Series, cfg: DatasetConfig, where: str) -> tuple[pd.Series, pd.Series]:
    rating = pd.to_numeric(values, errors="coerce")
    bad = rating[rating.isna()]
    if len(bad):
        row = bad.index[0]
        raise DataError(
            f"{where}: column {cfg.rating_column!r} row {row}: rating {_show(values[row])!r} is not a number"
        )
    label = pd.Series(np.full(len(rating), -1, dtype=np.int8), index=rating.index)
    label[rating <= cfg.negative_max] = 0
    label[rating >= cfg.positive_min] = 1
    return label, rating.astype(float)


def normalise_reviews(
    raw: pd.DataFrame, cfg: DatasetConfig, where: str = "source", max_review_bytes: int = MAX_REVIEW_BYTES
) -> pd.DataFrame:
    """One chunk of a raw review table as ``id, text, label, split, rating``, checked. Pure.

    ``split`` is ``""`` when the source has no split column (one is drawn over the whole table);
    ``where`` names the input in errors, with the row (the chunk's index: the row in the file).
    """
    if cfg.format == "aclimdb":
        df = raw[["id", "text", "label", "split", "rating"]].copy()
        df["rating"] = df["rating"].astype(float)
        df["text"] = _check_texts(df["text"], "text", where)
    else:
        wanted = [cfg.text_column]
        wanted += [c for c in (cfg.label_column, cfg.rating_column, cfg.split_column) if c]
        _require_columns(raw, wanted, where)
        df = pd.DataFrame(index=raw.index)
        df["id"] = raw.index.astype(str)
        df["text"] = _check_texts(raw[cfg.text_column], cfg.text_column, where)
        sizes = df["text"].str.len()  # characters: a cheap bound, then the exact bytes of the longest
        if len(df) and sizes.max() * 4 > max_review_bytes:
            nbytes = df["text"].map(lambda t: len(t.encode("utf-8")))
            longest = nbytes.idxmax()
            check_size(int(nbytes[longest]), str(df.at[longest, "id"]), max_review_bytes, f"{where} row {longest}")
        if cfg.label_column:
            df["label"] = _labels_from_column(raw[cfg.label_column], cfg.label_column, where)
            df["rating"] = np.nan
        else:
            df["label"], df["rating"] = _labels_from_rating(raw[cfg.rating_column], cfg, where)
            df = df[df["label"] >= 0]
        if cfg.split_column:
            df["split"] = raw.loc[df.index, cfg.split_column].astype(str).str.strip().str.lower()
        else:
            df["split"] = ""
    if cfg.format == "aclimdb" or cfg.split_column:
        bad_split = ~df["split"].isin(SPLITS)
        if bad_split.any():
            row = df.index[bad_split.to_numpy()][0]
            raise DataError(
                f"{where}: column {cfg.split_column!r} row {row}: split {df.loc[row, 'split']!r} is not train/test"
            )
    if df["id"].duplicated().any():  # a table's ids are its row numbers: only an archive can repeat one
        dup = df.loc[df["id"].duplicated(), "id"].iloc[0]
        raise DataError(f"{where}: review id {dup!r} occurs more than once")
    df["label"] = df["label"].astype(np.int8)
    return df[["id", "text", "label", "split", "rating"]]


def draw_split(labels: np.ndarray, test_size: float, seed: int, where: str) -> np.ndarray:
    """A seeded stratified train/test split for a source without one. Pure."""
    idx = np.arange(len(labels))
    try:
        _, test_idx = train_test_split(idx, test_size=test_size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"{where}: cannot make a stratified {test_size} test split ({exc})") from None
    split = np.full(len(labels), "train", dtype=object)
    split[test_idx] = "test"
    return split


def check_splits(labels: np.ndarray, splits: np.ndarray, where: str) -> None:
    """Both splits must hold both classes."""
    for split in SPLITS:
        present = set(np.unique(labels[splits == split]).tolist())
        if not present:
            raise DataError(f"{where}: the {split} split is empty")
        if len(present) < 2:
            raise DataError(f"{where}: the {split} split has one class only (label {present.pop()})")


@dataclass
class _Columns:
    """The small per-review columns prepare keeps in memory (the text streams through a file)."""

    ids: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    splits: list[np.ndarray] = field(default_factory=list)
    chars: list[np.ndarray] = field(default_factory=list)
    words: list[np.ndarray] = field(default_factory=list)

    def add(self, part: pd.DataFrame) -> None:
        self.ids.append(part["id"].to_numpy(dtype=str))
        self.labels.append(part["label"].to_numpy(dtype=np.int8))
        self.splits.append(part["split"].to_numpy(dtype=object))
        texts = part["text"]
        self.chars.append(texts.str.len().to_numpy(dtype=np.int64))
        # one review's words at a time: ``str.split()`` on the column would hold every review's list at once
        self.words.append(np.fromiter((len(t.split()) for t in texts), dtype=np.int64, count=len(texts)))

    def stacked(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name)) if getattr(self, name) else np.zeros(0)


def prepare_table(
    chunks: Iterable[pd.DataFrame],
    cfg: DatasetConfig,
    pcfg: PrepareConfig,
    seed: int,
    out: Path,
    where: str = "source",
    pairs: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Stream a raw table's chunks into the prepared table at ``out``; return the data card's body.

    Two passes, memory bounded by a chunk: the first checks each chunk, stages its rows in a
    temporary Parquet file and keeps only small per-review columns (label, split, lengths,
    duplicate keys); the split is drawn, ``pairs`` (``read_pairs``) join the training split, a pair
    whose member is (or is nearly) a test review dropped whole so the test split stays unseen, and
    the second pass writes ``out`` atomically in row groups of ``CHUNK_ROWS`` reviews.
    """
    cols = _Columns()
    out.parent.mkdir(parents=True, exist_ok=True)
    with DuplicateIndex(pcfg.near_duplicate_jaccard, seed) as index, tempfile.TemporaryDirectory(
        prefix=f".{out.stem}.", dir=out.parent
    ) as scratch:  # fmt: skip
        staged = Path(scratch) / "rows.parquet"
        read = 0
        with _ParquetSink(staged) as sink:
            for raw in chunks:
                part = normalise_reviews(raw, cfg, where, pcfg.max_review_bytes)
                read += len(raw)
                cols.add(part)
                index.add(part["text"].tolist())
                sink.write(part.drop(columns="split").assign(group=""))
            if read == 0:
                raise DataError(f"{where}: no reviews (the table has a header and no rows)")
            n = index.size
            if cfg.rating_column:
                log.info("%s: %d reviews with %s between %s and %s dropped (neither positive nor negative)",
                         where, read - n, cfg.rating_column, cfg.negative_max, cfg.positive_min)  # fmt: skip
            labels, splits = cols.stacked("labels"), cols.stacked("splits")
            if cfg.format == "reviews" and not cfg.split_column:
                splits = draw_split(labels, cfg.test_size, seed, where)
            check_splits(labels, splits, where)
            ids = cols.stacked("ids")
            keep = np.ones(n, dtype=bool)
            augment: dict[str, Any] | None = None
            if pairs is not None:
                rows = pair_rows(pairs)
                index.add(rows["text"].tolist())
                sink.write(rows.drop(columns="split"))
                test = np.flatnonzero(splits == "test")
                probe = index.find(
                    np.r_[test, n + np.arange(len(rows))],
                    # "test" here: the pair rows, looked up in the test split
                    ["train"] * len(test) + ["test"] * len(rows),
                    [*ids[test], *rows["id"]],
                )
                leaked = set(rows.loc[probe.in_train[len(test) :], "group"])
                kept = ~rows["group"].isin(leaked).to_numpy()
                keep = np.r_[keep, kept]
                ids = np.r_[ids, rows["id"].to_numpy(dtype=str)[kept]]
                cols.add(rows[kept])
                labels = np.r_[labels, rows["label"].to_numpy()[kept]]
                splits = np.r_[splits, rows["split"].to_numpy()[kept]]
                augment = {"pairs": int(rows.loc[kept, "group"].nunique()), "rows": int(kept.sum()),
                           "dropped_pairs_in_test": len(leaked)}  # fmt: skip
        dups = index.find(np.flatnonzero(keep), splits, ids)
        _write_prepared(staged, out, keep, splits, dups.in_train)
    card = data_card(labels, splits, cols.stacked("chars"), cols.stacked("words"))
    card["duplicates"] = dups.card
    if augment is not None:
        card["augment"] = augment
    return card


class _ParquetSink:
    """Appends tables of one schema to a Parquet file, one row group each."""

    def __init__(self, path: Path, schema: pa.Schema | None = None) -> None:
        self.path, self._schema = path, schema
        self._writer = None if schema is None else pq.ParquetWriter(path, schema, compression="snappy")

    def __enter__(self) -> _ParquetSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()

    def write(self, rows: pd.DataFrame | pa.Table) -> None:
        if isinstance(rows, pd.DataFrame):
            rows = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
        if self._writer is None:
            self._schema = rows.schema
            self._writer = pq.ParquetWriter(self.path, rows.schema, compression="snappy")
        self._writer.write_table(rows.cast(self._schema))


# the prepared table's columns, with the pandas metadata pandas itself would write
PREPARED_SCHEMA = pa.Schema.from_pandas(
    pd.DataFrame({
        "id": pd.Series([], dtype=str), "text": pd.Series([], dtype=str), "label": pd.Series([], dtype=np.int8),
        "split": pd.Series([], dtype=str), "rating": pd.Series([], dtype=float), "group": pd.Series([], dtype=str),
        "in_train": pd.Series([], dtype=bool),
    }),
    preserve_index=False,
)  # fmt: skip


def _write_prepared(staged: Path, out: Path, keep: np.ndarray, splits: np.ndarray, in_train: np.ndarray) -> None:
    """Second pass: the staged rows that are kept, with their split and training twin, into ``out``.

    In Arrow throughout (no pandas copy of the text), a chunk at a time.
    """
    start = written = 0
    with atomic_path(out) as tmp, _ParquetSink(tmp, PREPARED_SCHEMA) as sink:
        for batch in open_parquet(staged).iter_batches(batch_size=CHUNK_ROWS):
            part = pa.Table.from_batches([batch]).filter(pa.array(keep[start : start + batch.num_rows]))
            start += batch.num_rows
            rows = slice(written, written + part.num_rows)
            part = part.add_column(3, "split", pa.array(splits[rows].astype(str), pa.large_string()))
            part = part.append_column("in_train", pa.array(in_train[rows]))
            written += part.num_rows
            sink.write(part)


def data_card(labels: np.ndarray, splits: np.ndarray, chars: np.ndarray, words: np.ndarray) -> dict[str, Any]:
    """Counts per split and label and text length statistics (characters, words). Pure."""
    card: dict[str, Any] = {
        "rows": len(labels),
        "positive_fraction": round(float(np.mean(labels)), 6),
        "splits": {},
        "text_chars": _stats(pd.Series(chars)),
        "text_words": _stats(pd.Series(words)),
    }
    for split in SPLITS:
        part = labels[splits == split]
        card["splits"][split] = {
            "rows": len(part),
            "negative": int((part == 0).sum()),
            "positive": int((part == 1).sum()),
        }
    return card


def _stats(values: pd.Series) -> dict[str, float]:
    return {
        "min": int(values.min()),
        "median": float(values.median()),
        "mean": round(float(values.mean()), 3),
        "p95": float(values.quantile(0.95)),
        "max": int(values.max()),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.prepare --dataset imdb --out ... --card ... --download-dir ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", type=Path, required=True, help="normalized table (.parquet)")
    p.add_argument("--card", type=Path, required=True, help="data card (.json)")
    p.add_argument("--download-dir", type=Path, required=True, help="cache for downloaded sources")
    args = p.parse_args(argv)
    params = load_params(args.params)
    seed, cfg, pcfg = params.seed, params.dataset(args.dataset), params.prepare

    fetched = fetch_source(cfg, args.download_dir, pcfg)
    where = str(fetched.path)
    if cfg.format == "aclimdb":
        chunks: Iterable[pd.DataFrame] = [read_aclimdb(fetched.path, pcfg.encoding_errors, pcfg.max_review_bytes)]
    else:
        chunks = read_reviews_chunks(fetched.path, pcfg.encoding_errors, cfg.text_column)
    pairs, pairs_fetched = None, None
    if cfg.augment is not None:
        pairs_fetched = fetch_source(cfg.augment.pairs, args.download_dir, pcfg)
        pairs = read_pairs(pairs_fetched.path, cfg.augment.pairs)
    body = prepare_table(chunks, cfg, pcfg, seed, args.out, where, pairs)
    card = {"dataset": args.dataset, **body, "source": _source(fetched)}
    if pairs_fetched is not None:
        card["augment"]["source"] = {k: v for k, v in _source(pairs_fetched).items() if k != "bytes"}
        log.info("%s: training split + %s", args.dataset, card["augment"])
    log.info("%s: %s", args.dataset, {s: card["splits"][s] for s in SPLITS})
    log.info("%s: %d test reviews have a twin in the training split", args.dataset, card["duplicates"]["test_in_train"])
    write_json(args.card, card)


def _source(fetched: Fetched) -> dict[str, Any]:
    return {"location": fetched.location, "via": fetched.via, "sha256": fetched.sha256, "bytes": fetched.size}


if __name__ == "__main__":
    cli.run("prepare", main)
