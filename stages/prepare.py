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
  ``test_size`` is drawn. The Yelp data is this format.
"""

from __future__ import annotations

import logging
import re
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from stages.common import cli
from stages.common.data.duplicates import find_duplicates
from stages.common.data.io import atomic_path, write_json
from stages.common.data.pairs import add_pairs, read_pairs
from stages.common.data.sources import Fetched, fetch_source
from stages.common.errors import DataError
from stages.common.params import load_params
from stages.common.params.schema import DatasetConfig, PrepareConfig

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
MAX_REVIEW_BYTES = PrepareConfig().max_review_bytes  # the default, declared once in the config
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


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
                _check_size(member.size, f"{split}/{polarity}/{num}_{rating}", max_review_bytes, f"{path}")
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


def _check_size(size: int, review_id: str, limit: int, where: str) -> None:
    """Refuse a review of more than ``limit`` bytes (``prepare.max_review_bytes``), naming it."""
    if size > limit:
        raise DataError(
            f"{where}: review {review_id!r} is {size:,} bytes, over prepare.max_review_bytes ({limit:,}); "
            "remove it from the source or raise the limit"
        )


def read_reviews_file(path: Path, encoding_errors: str = "replace") -> pd.DataFrame:
    """Read a reviews CSV (any compression pandas infers from the name) or Parquet file."""
    suffixes = [s.lower() for s in path.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=False, na_values=[], encoding="utf-8", encoding_errors=encoding_errors)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not valid UTF-8 ({exc}); set prepare.encoding_errors: replace to substitute bad bytes"
        ) from None
    except (ValueError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read reviews table ({exc})") from None


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


def prepare_reviews(
    raw: pd.DataFrame, cfg: DatasetConfig, seed: int, where: str = "source", max_review_bytes: int = MAX_REVIEW_BYTES
) -> pd.DataFrame:
    """Normalise a raw review table: labels, ids, split, checks. Pure; ``where`` names the input."""
    if cfg.format == "aclimdb":
        df = raw[["id", "text", "label", "split", "rating"]].copy()
        df["rating"] = df["rating"].astype(float)
        df["text"] = _check_texts(df["text"], "text", where)
    else:
        wanted = [cfg.text_column]
        wanted += [c for c in (cfg.label_column, cfg.rating_column, cfg.split_column) if c]
        _require_columns(raw, wanted, where)
        if raw.empty:
            raise DataError(f"{where}: no reviews (the table has a header and no rows)")
        df = pd.DataFrame(index=raw.index)
        df["id"] = raw.index.astype(str)
        df["text"] = _check_texts(raw[cfg.text_column], cfg.text_column, where)
        sizes = df["text"].str.len()  # characters: a cheap bound, then the exact bytes of the longest
        longest = sizes.idxmax()
        if sizes[longest] * 4 > max_review_bytes:
            nbytes = df["text"].map(lambda t: len(t.encode("utf-8")))
            longest = nbytes.idxmax()
            _check_size(int(nbytes[longest]), str(df.at[longest, "id"]), max_review_bytes, f"{where} row {longest}")
        if cfg.label_column:
            df["label"] = _labels_from_column(raw[cfg.label_column], cfg.label_column, where)
            df["rating"] = np.nan
        else:
            df["label"], df["rating"] = _labels_from_rating(raw[cfg.rating_column], cfg, where)
            dropped = int((df["label"] < 0).sum())
            log.info(
                "%s: %d reviews with %s between %s and %s dropped (neither positive nor negative)",
                where,
                dropped,
                cfg.rating_column,
                cfg.negative_max,
                cfg.positive_min,
            )
            df = df[df["label"] >= 0]
        if cfg.split_column:
            df["split"] = raw.loc[df.index, cfg.split_column].astype(str).str.strip().str.lower()
        else:
            df["split"] = _stratified_split(df["label"].to_numpy(), cfg.test_size, seed, where)
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        row = df.index[bad_split.to_numpy()][0]
        raise DataError(
            f"{where}: column {cfg.split_column!r} row {row}: split {df.loc[row, 'split']!r} is not train/test"
        )
    if df["id"].duplicated().any():
        dup = df.loc[df["id"].duplicated(), "id"].iloc[0]
        raise DataError(f"{where}: review id {dup!r} occurs more than once")
    for split in SPLITS:
        labels = set(df.loc[df["split"] == split, "label"].tolist())
        if not labels:
            raise DataError(f"{where}: the {split} split is empty")
        if len(labels) < 2:
            raise DataError(f"{where}: the {split} split has one class only (label {labels.pop()})")
    df["label"] = df["label"].astype(np.int8)
    return df[["id", "text", "label", "split", "rating"]].reset_index(drop=True)


def _stratified_split(labels: np.ndarray, test_size: float, seed: int, where: str) -> np.ndarray:
    idx = np.arange(len(labels))
    try:
        _, test_idx = train_test_split(idx, test_size=test_size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"{where}: cannot make a stratified {test_size} test split ({exc})") from None
    split = np.full(len(labels), "train", dtype=object)
    split[test_idx] = "test"
    return split


def data_card(df: pd.DataFrame, name: str, fetched: Fetched | None = None) -> dict[str, Any]:
    """Counts per split and label, text length statistics and the source checksum."""
    lengths = df["text"].str.len()
    words = df["text"].str.split().str.len()
    card: dict[str, Any] = {
        "dataset": name,
        "rows": len(df),
        "positive_fraction": round(float(df["label"].mean()), 6),
        "splits": {},
        "text_chars": _stats(lengths),
        "text_words": _stats(words),
    }
    for split in SPLITS:
        part = df[df["split"] == split]
        card["splits"][split] = {
            "rows": len(part),
            "negative": int((part["label"] == 0).sum()),
            "positive": int((part["label"] == 1).sum()),
        }
    if fetched is not None:
        card["source"] = {
            "location": fetched.location,
            "via": fetched.via,
            "sha256": fetched.sha256,
            "bytes": fetched.size,
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
    if cfg.format == "aclimdb":
        raw = read_aclimdb(fetched.path, pcfg.encoding_errors, pcfg.max_review_bytes)
    else:
        raw = read_reviews_file(fetched.path, pcfg.encoding_errors)
    df = prepare_reviews(raw, cfg, seed, where=str(fetched.path), max_review_bytes=pcfg.max_review_bytes)
    df = df.assign(group="")
    augment: dict[str, Any] | None = None
    if cfg.augment is not None:
        pairs_fetched = fetch_source(cfg.augment.pairs, args.download_dir, pcfg)
        pairs = read_pairs(pairs_fetched.path, cfg.augment.pairs)
        df, augment = add_pairs(df, pairs, pcfg.near_duplicate_jaccard, seed)
        augment["source"] = {"location": pairs_fetched.location, "via": pairs_fetched.via,
                             "sha256": pairs_fetched.sha256}  # fmt: skip
        log.info("%s: training split + %s", args.dataset, augment)
    dups = find_duplicates(df["id"], df["text"], df["split"], pcfg.near_duplicate_jaccard, seed)
    df["in_train"] = dups.in_train
    card = data_card(df, args.dataset, fetched)
    card["duplicates"] = dups.card
    if augment is not None:
        card["augment"] = augment
    log.info("%s: %s", args.dataset, {s: card["splits"][s] for s in SPLITS})
    log.info("%s: %d test reviews have a twin in the training split", args.dataset, dups.card["test_in_train"])
    with atomic_path(args.out) as tmp:
        df.to_parquet(tmp, index=False)
    write_json(args.card, card)


if __name__ == "__main__":
    cli.run("prepare", main)
