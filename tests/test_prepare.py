"""prepare: reading the aclImdb archive and reviews tables, labels, splits, data card."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.common.data.raw import read_aclimdb, read_reviews_chunks
from stages.common.errors import DataError
from stages.common.params.schema import DatasetConfig, PrepareConfig
from stages.prepare import normalise_reviews, prepare_table
from tests.synthetic import aclimdb_members, write_tar

IMDB = DatasetConfig(format="aclimdb", source="unused")
YELP = DatasetConfig(
    format="reviews", source="unused", text_column="text", rating_column="stars", negative_max=2, positive_min=4
)


def prepare_reviews(
    raw: pd.DataFrame | list[pd.DataFrame], cfg: DatasetConfig, seed: int, where: str = "source", **prepare: object
) -> pd.DataFrame:
    """The prepared table of ``raw`` (one chunk or several), through a temporary file."""
    return _prepare(raw, cfg, seed, where, **prepare)[0]


def _prepare(
    raw: pd.DataFrame | list[pd.DataFrame], cfg: DatasetConfig, seed: int, where: str = "source", **prepare: object
) -> tuple[pd.DataFrame, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "table.parquet"
        chunks = raw if isinstance(raw, list) else [raw]
        card = prepare_table(chunks, cfg, PrepareConfig(**prepare), seed, out, where)
        return pd.read_parquet(out), card


def read_reviews_file(path: Path, encoding_errors: str = "replace") -> pd.DataFrame:
    return pd.concat(list(read_reviews_chunks(path, encoding_errors)))


def test_aclimdb_is_read_from_the_archive(imdb_archive: Path) -> None:
    raw = read_aclimdb(imdb_archive)
    df = prepare_reviews(raw, IMDB, seed=0)
    assert len(df) == 120
    assert df.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): 30,
        ("test", 1): 30,
        ("train", 0): 30,
        ("train", 1): 30,
    }
    first = df.iloc[0]
    assert first["id"].startswith("train/neg/0_")
    assert first["rating"] == float(first["id"].rsplit("_", 1)[1])
    assert (df.loc[df.label == 1, "rating"] >= 7).all() and (df.loc[df.label == 0, "rating"] <= 4).all()
    assert not df["text"].str.contains("<br").any()  # markup normalised to newlines
    assert df["text"].str.contains("\n").all()


def test_aclimdb_refuses_links_and_ignores_unsafe_names(tmp_path: Path) -> None:
    members = aclimdb_members(per_class=2)
    members["../../evil.txt"] = b"x"
    members["/etc/evil_1.txt"] = b"x"
    ok = write_tar(tmp_path / "ok.tar.gz", members)
    assert len(read_aclimdb(ok)) == 8  # odd names are never read, let alone extracted
    assert not (tmp_path.parent / "evil.txt").exists()
    linked = write_tar(tmp_path / "l.tar.gz", members, links={"aclImdb/train/pos/99_9.txt": "/etc/passwd"})
    with pytest.raises(DataError, match="link or special file"):
        read_aclimdb(linked)


def test_truncated_archive_names_the_file(imdb_archive: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(imdb_archive.read_bytes()[: imdb_archive.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.tar\.gz: corrupt or truncated archive"):
        read_aclimdb(cut)
    with pytest.raises(DataError, match="no aclImdb"):
        read_aclimdb(write_tar(tmp_path / "empty.tar.gz", {"other/file.txt": b"x"}))


def test_strict_decoding_names_the_member(tmp_path: Path) -> None:
    members = aclimdb_members(per_class=2)
    members["aclImdb/train/pos/0_9.txt"] = b"caf\xe9 great"
    archive = write_tar(tmp_path / "latin1.tar.gz", members)
    with pytest.raises(DataError, match=r"0_9\.txt.*not valid UTF-8"):
        read_aclimdb(archive, encoding_errors="strict")
    df = read_aclimdb(archive, encoding_errors="replace")
    assert "caf\ufffd great" in df["text"].tolist()


def test_ratings_become_polarity_and_a_seeded_stratified_split(yelp_csv: Path) -> None:
    raw = read_reviews_file(yelp_csv)
    df = prepare_reviews(raw, YELP, seed=7)
    kept = raw[raw["stars"] != 3]
    assert len(df) == len(kept)
    assert (df["label"] == (kept["stars"].to_numpy() >= 4)).all()
    test = df[df.split == "test"]
    assert abs(len(test) / len(df) - 0.2) < 0.02
    assert abs(test["label"].mean() - df["label"].mean()) < 0.05  # stratified
    again = prepare_reviews(raw, YELP, seed=7)
    other = prepare_reviews(raw, YELP, seed=8)
    assert again.equals(df)
    assert not other["split"].equals(df["split"])


def test_label_column_and_split_column_are_used(tmp_path: Path) -> None:
    raw = pd.DataFrame(
        {"body": ["good", "bad", "fine", "awful"], "y": [1, 0, "1", "0"], "part": ["train", "train", "test", "test"]}
    )
    cfg = DatasetConfig(format="reviews", source="x", text_column="body", label_column="y", split_column="part")
    df = prepare_reviews(raw, cfg, seed=0)
    assert df["label"].tolist() == [1, 0, 1, 0]
    assert df["split"].tolist() == ["train", "train", "test", "test"]


@pytest.mark.parametrize(
    ("raw", "cfg_kwargs", "message"),
    [
        (pd.DataFrame({"review": ["a"]}), {"label_column": "y"}, "column 'text' not found"),
        (
            pd.DataFrame({"text": ["a", "b"], "y": [1, 2]}),
            {"label_column": "y"},
            "column 'y' row 1: label 2 is not 0 or 1",
        ),
        (pd.DataFrame({"text": ["a", "  ", "c", "d"], "y": [1, 0, 1, 0]}), {"label_column": "y"}, "row 1: empty text"),
        (
            pd.DataFrame({"text": list("abcd"), "y": [1, 1, 1, 0], "s": ["train", "train", "test", "test"]}),
            {"label_column": "y", "split_column": "s"},
            "train split has one class only",
        ),
        (
            pd.DataFrame({"text": list("abcd"), "y": [1, 0, 1, 0], "s": ["train"] * 4}),
            {"label_column": "y", "split_column": "s"},
            "test split is empty",
        ),
        (
            pd.DataFrame({"text": list("ab"), "y": [1, 0], "s": ["train", "dev"]}),
            {"label_column": "y", "split_column": "s"},
            "split 'dev' is not train/test",
        ),
        (
            pd.DataFrame({"text": list("ab"), "stars": ["5", "n/a"]}),
            {"rating_column": "stars", "negative_max": 2, "positive_min": 4},
            "rating 'n/a' is not a number",
        ),
    ],
)
def test_bad_tables_name_file_row_and_column(raw: pd.DataFrame, cfg_kwargs: dict, message: str) -> None:
    cfg = DatasetConfig(format="reviews", source="x", **cfg_kwargs)
    with pytest.raises(DataError, match=r"reviews\.csv") as err:
        prepare_reviews(raw, cfg, seed=0, where="reviews.csv")
    assert message in str(err.value)


def test_a_header_without_rows_is_named_as_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("text,stars\n")
    cfg = DatasetConfig(format="reviews", source="x", rating_column="stars", negative_max=2, positive_min=4)
    with pytest.raises(DataError, match=r"reviews\.csv: no reviews \(the table has a header and no rows\)"):
        prepare_reviews(read_reviews_file(path), cfg, seed=0, where=str(path))


def test_non_utf8_csv_follows_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "r.csv.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b'text,stars\n"caf\xe9 fine",5\n')
    with pytest.raises(DataError, match=r"r\.csv\.gz: not valid UTF-8"):
        read_reviews_file(path, "strict")
    assert read_reviews_file(path, "replace")["text"].tolist() == ["caf\ufffd fine"]


def test_data_card_counts(yelp_csv: Path) -> None:
    df, card = _prepare(read_reviews_file(yelp_csv), YELP, seed=0)
    assert card["rows"] == len(df)
    assert sum(s["rows"] for s in card["splits"].values()) == len(df)
    assert card["splits"]["train"]["positive"] == int(((df.split == "train") & (df.label == 1)).sum())
    assert card["text_chars"]["max"] == int(df["text"].str.len().max())
    assert card["positive_fraction"] == pytest.approx(float(np.mean(df["label"])), abs=1e-6)


def test_an_outsized_review_is_refused_by_its_header_before_it_is_read(tmp_path: Path, monkeypatch) -> None:
    import tarfile

    members = aclimdb_members(per_class=2)
    members["aclImdb/train/pos/7_9.txt"] = b"great " * 1000
    archive = write_tar(tmp_path / "big.tar.gz", members)
    read: list[str] = []
    real = tarfile.TarFile.extractfile

    def spy(self, member):
        read.append(member.name)
        return real(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", spy)
    with pytest.raises(DataError, match=r"big\.tar\.gz: review 'train/pos/7_9' is 6,000 bytes, over prepare\.max"):
        read_aclimdb(archive, max_review_bytes=5000)
    assert "aclImdb/train/pos/7_9.txt" not in read  # refused from its size, never read into memory
    assert len(read_aclimdb(archive, max_review_bytes=6000)) == 9


def test_an_outsized_review_in_a_table_names_its_row(yelp_csv: Path) -> None:
    raw = read_reviews_file(yelp_csv)
    raw.loc[3, "text"] = "é" * 600  # 1,200 bytes of UTF-8
    with pytest.raises(DataError, match=r"row 3: review '3' is 1,200 bytes, over prepare\.max_review_bytes \(1,000\)"):
        prepare_reviews(raw, YELP, seed=0, max_review_bytes=1000)


def test_a_table_read_in_chunks_is_prepared_as_one(yelp_csv: Path) -> None:
    raw = read_reviews_file(yelp_csv)
    whole, card = _prepare(raw, YELP, seed=3)
    parts, parts_card = _prepare([raw.iloc[:50], raw.iloc[50:51], raw.iloc[51:]], YELP, seed=3)
    assert parts.equals(whole) and parts_card == card  # the split is drawn over the whole table
    chunks = list(read_reviews_chunks(yelp_csv, rows=64))
    assert [len(c) for c in chunks] == [64, 64, len(raw) - 128]
    assert chunks[2].index[0] == 128  # rows keep their number in the file


def test_a_parquet_table_is_read_a_batch_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "reviews.parquet"
    pd.DataFrame({"text": [f"review {i}" for i in range(10)], "stars": [1, 5] * 5}).to_parquet(path, row_group_size=4)
    chunks = list(read_reviews_chunks(path, rows=3))
    assert [c.index[0] for c in chunks] == [0, 3, 6, 9] and sum(map(len, chunks)) == 10


def test_a_malformed_row_far_into_a_large_table_is_named(tmp_path: Path) -> None:
    path = tmp_path / "big.csv.gz"
    rows = 900_001
    stars = np.where(np.arange(rows) % 2 == 0, "5", "1").astype(object)
    stars[900_000] = "five"
    with gzip.open(path, "wt", compresslevel=1) as fh:
        fh.write("text,stars\n")
        fh.writelines(f"ok {i},{s}\n" for i, s in enumerate(stars))
    chunks = read_reviews_chunks(path, text_column="text")
    with pytest.raises(DataError, match=r"big\.csv\.gz: column 'stars' row 900000: rating 'five' is not a number"):
        for raw in chunks:
            normalise_reviews(raw, YELP, where=str(path))


def _pairs_table() -> pd.DataFrame:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    texts = [" ".join(words[i:] + words[:i]) + f" review {i}" for i in range(10)]
    return pd.DataFrame({"id": [f"r{i}" for i in range(10)], "text": texts, "label": [0, 1] * 5,
                         "split": ["train"] * 5 + ["test"] * 5, "rating": np.nan})  # fmt: skip


def test_minimal_edit_pairs_join_the_training_split_whole_and_a_pair_seen_in_the_test_split_is_dropped() -> None:
    table = _pairs_table()
    pairs = pd.DataFrame({
        "pair": ["1", "1", "2", "2"],
        # pair 2's first member is test review r7 with one word changed: a near twin of a test review
        "text": ["a fine film indeed", "a dull film indeed", table.at[7, "text"].replace("review", "Review!"),
                 "something else entirely here"],
        "label": np.array([1, 0, 0, 1], dtype=np.int8),
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        card = prepare_table([table], IMDB, PrepareConfig(), 0, Path(tmp) / "t.parquet", pairs=pairs)
        out = pd.read_parquet(Path(tmp) / "t.parquet")
    added = out[out["group"] != ""]
    assert added["id"].tolist() == ["pairs/1/pos", "pairs/1/neg"]
    assert set(added["split"]) == {"train"} and len(out) == len(table) + 2
    assert card["augment"] == {"pairs": 1, "rows": 2, "dropped_pairs_in_test": 1}
    assert card["rows"] == len(out) and not out["in_train"].any()
