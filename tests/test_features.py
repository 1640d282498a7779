"""The one text → features transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from stages.common.features.featurizer import (
    OOV_ID,
    Featurizer,
    FeaturizerConfig,
    extend_vocabulary,
    fit_featurizer,
    pad_flat,
)
from stages.common.features.tokens import tokenize
from tests.synthetic import reviews_frame

TRAIN = ["good good movie", "bad movie", "good plot, bad acting", "movie movie movie"]


def test_tokenize_lowercases_and_drops_markup() -> None:
    assert tokenize("Don't<br />STOP: 10/10!") == ["don't", "stop", "10", "10"]


def test_vocabulary_is_fitted_on_training_texts_only_and_ranked_by_count() -> None:
    f = fit_featurizer(TRAIN, FeaturizerConfig(kind="bow", max_tokens=10, min_count=1))
    assert f.vocabulary == ["movie", "good", "bad", "acting", "plot"]  # count desc, then alphabetical
    X = f.transform(["excellent movie"])  # 'excellent' never seen in training: no column
    assert X.shape == (1, 5) and X.nnz == 1


def test_skip_top_min_count_and_ngrams() -> None:
    cfg = FeaturizerConfig(kind="bow", max_tokens=2, skip_top=1, min_count=1)
    assert fit_featurizer(TRAIN, cfg).vocabulary == ["good", "bad"]
    cfg = FeaturizerConfig(kind="bow", max_tokens=10, min_count=2)
    assert fit_featurizer(TRAIN, cfg).vocabulary == ["movie", "good", "bad"]
    cfg = FeaturizerConfig(kind="bow", max_tokens=50, ngram_range=(1, 2), min_count=2)
    assert "good movie" not in fit_featurizer(TRAIN, cfg).vocabulary
    assert (
        "movie movie"
        in fit_featurizer(
            TRAIN, FeaturizerConfig(kind="bow", max_tokens=50, ngram_range=(1, 2), min_count=1)
        ).vocabulary
    )


def test_multi_hot_and_tfidf_weights() -> None:
    hot = fit_featurizer(TRAIN, FeaturizerConfig(kind="bow", max_tokens=10, mode="multi_hot", min_count=1))
    assert set(hot.transform(TRAIN).data.tolist()) == {1.0}
    tf = fit_featurizer(
        TRAIN, FeaturizerConfig(kind="bow", max_tokens=10, mode="tfidf", sublinear_tf=True, min_count=1)
    )
    ref = TfidfVectorizer(
        tokenizer=tokenize, token_pattern=None, lowercase=False, sublinear_tf=True, vocabulary=tf.vocabulary
    ).fit(TRAIN)
    texts = ["good movie, good plot", "bad bad acting"]
    np.testing.assert_allclose(tf.transform(texts).toarray(), ref.transform(texts).toarray(), rtol=1e-5)


def test_sequences_pad_like_keras() -> None:
    import keras

    rows = [[5, 6, 7, 8], [9], []]
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            flat = np.array([v for row in rows for v in row])
            row_of = np.array([i for i, row in enumerate(rows) for _ in row])
            ours = pad_flat(flat, row_of, len(rows), 3, padding, truncating)
            theirs = keras.utils.pad_sequences(rows, maxlen=3, padding=padding, truncating=truncating)
            np.testing.assert_array_equal(ours, theirs)


def test_sequences_use_reserved_ids() -> None:
    f = fit_featurizer(TRAIN, FeaturizerConfig(kind="seq", max_tokens=2, maxlen=4, min_count=1))
    assert f.vocabulary == ["movie", "good"]
    assert f.input_dim == 4  # padding + OOV + 2 words
    seq = f.transform(["good unknown movie"])
    assert seq.tolist() == [[0, 3, OOV_ID, 2]]
    # no words at all (LIME can remove every word): one unknown word, never an all-padding row
    assert f.transform(["", "!!"]).tolist() == [[0, 0, 0, OOV_ID]] * 2
    post = fit_featurizer(TRAIN, FeaturizerConfig(kind="seq", max_tokens=2, maxlen=3, padding="post", min_count=1))
    assert post.transform([""]).tolist() == [[OOV_ID, 0, 0]]


def test_a_sequence_vocabulary_gains_frequent_new_words_after_its_own() -> None:
    from stages.common.errors import ParamsError

    f = fit_featurizer(TRAIN, FeaturizerConfig(kind="seq", max_tokens=2, maxlen=4, min_count=1))  # movie, good
    target = ["tasty food, good", "food was tasty", "rude food", "rude staff, bad food", "bad"]
    grown = extend_vocabulary(f, target, min_count=2)
    # existing words keep their ids; new ones by number of texts (food 4, bad/rude/tasty 2), then alphabetically
    assert grown.vocabulary == ["movie", "good", "food", "bad", "rude", "tasty"]
    assert grown.input_dim == f.input_dim + 4 and grown.config.max_tokens == 6
    assert f.transform(["good movie"]).tolist() == grown.transform(["good movie"]).tolist()
    assert f.transform(["tasty staff"]).tolist() == [[0, 0, OOV_ID, OOV_ID]]
    assert grown.transform(["tasty staff"]).tolist() == [[0, 0, 7, OOV_ID]]  # 'staff': in 1 text only
    assert Featurizer.from_json(grown.to_json()).transform(target).tolist() == grown.transform(target).tolist()
    assert extend_vocabulary(f, target, min_count=5).vocabulary == f.vocabulary
    with pytest.raises(ParamsError, match=r"min_count: must be >= 1"):
        extend_vocabulary(f, target, 0)


def test_a_bag_of_words_vocabulary_gains_frequent_new_ngrams_with_their_own_idf() -> None:
    f = fit_featurizer(
        TRAIN, FeaturizerConfig(kind="bow", max_tokens=50, ngram_range=(1, 2), mode="tfidf", min_count=1)
    )
    target = ["tasty food, good", "tasty food was good", "rude food", "rude staff, bad food", "bad"]
    grown = extend_vocabulary(f, target, min_count=2)
    # existing columns keep their place and idf; new 1-2-grams by number of texts (food 4; rude, tasty,
    # "tasty food" 2; good and bad are known), then alphabetically
    assert grown.vocabulary == [*f.vocabulary, "food", "rude", "tasty", "tasty food"]
    assert grown.idf[: len(f.vocabulary)] == f.idf and grown.input_dim == f.input_dim + 4
    # a new term's idf is the target's, as sklearn's TfidfVectorizer computes it
    sk = TfidfVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False, ngram_range=(1, 2), min_df=2)
    sk.fit(target)
    expected = [sk.idf_[sk.vocabulary_[t]] for t in grown.vocabulary[len(f.vocabulary) :]]
    np.testing.assert_allclose(grown.idf[len(f.vocabulary) :], expected, rtol=1e-6)
    # a text of known terms only: the same features; new terms get columns the source has not
    old = grown.transform(["good movie, bad plot"])
    np.testing.assert_array_equal(
        old[:, : len(f.vocabulary)].toarray(), f.transform(["good movie, bad plot"]).toarray()
    )
    assert old[:, len(f.vocabulary) :].nnz == 0
    assert f.transform(["tasty food"]).nnz == 0 and grown.transform(["tasty food"]).nnz == 3
    again = Featurizer.from_json(grown.to_json()).transform(target)
    np.testing.assert_array_equal(again.toarray(), grown.transform(target).toarray())
    assert extend_vocabulary(f, target, min_count=5) is f  # no term in 5 texts


def test_json_round_trip_gives_the_same_transform() -> None:
    for cfg in (
        FeaturizerConfig(kind="bow", max_tokens=20, ngram_range=(1, 2), mode="tfidf", min_count=1),
        FeaturizerConfig(kind="seq", max_tokens=20, maxlen=5, padding="post", min_count=1),
    ):
        f = fit_featurizer(TRAIN, cfg)
        back = Featurizer.from_json(f.to_json())
        assert back.to_json() == f.to_json()
        a, b = f.transform(TRAIN), back.transform(TRAIN)
        a = a.toarray() if hasattr(a, "toarray") else a
        b = b.toarray() if hasattr(b, "toarray") else b
        np.testing.assert_array_equal(a, b)


def test_transform_rejects_a_bare_string() -> None:
    f = fit_featurizer(TRAIN, FeaturizerConfig(kind="seq", max_tokens=5, min_count=1, maxlen=200))
    with pytest.raises(TypeError):
        f.transform("good movie")


@pytest.mark.parametrize("kind", ["bow", "seq"])
def test_excluded_terms_are_never_seen_in_fitting_or_encoding(kind: str) -> None:
    texts = ["Hong Kong was great fun", "a dull mess in Kong", "great great film", "dull film"]
    ngrams = (1, 2) if kind == "bow" else (1, 1)
    plain = fit_featurizer(texts, FeaturizerConfig(kind=kind, max_tokens=50, ngram_range=ngrams, min_count=1))
    fixed = fit_featurizer(
        texts,
        FeaturizerConfig(kind=kind, max_tokens=50, ngram_range=ngrams, exclude_terms=("hong", "kong"), min_count=1),
    )
    assert "kong" in plain.vocabulary and not any("kong" in t or "hong" in t for t in fixed.vocabulary)
    with_words, without = fixed.transform(["Hong Kong was great fun"]), fixed.transform(["was great fun"])
    as_array = (lambda X: X.toarray()) if kind == "bow" else np.asarray
    np.testing.assert_array_equal(as_array(with_words), as_array(without))
    if kind == "bow":
        assert "was great" in fixed.vocabulary and "kong was" in plain.vocabulary
    again = Featurizer.from_json(fixed.to_json())
    assert again.config.exclude_terms == ("hong", "kong") and again == fixed
    assert '"exclude_terms"' not in plain.to_json()  # no exclusions: the file is as it always was


def test_exclude_terms_is_one_list_for_every_model_and_checked() -> None:
    from pathlib import Path

    import yaml

    from stages.common.errors import ParamsError
    from stages.common.params.loading import parse_params

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["vectorize"]["exclude_terms"] = ["Hong", "kong"]
    assert parse_params(params).featurizer("mlp").exclude_terms == ("hong", "kong")
    assert parse_params(params).featurizer("lstm").exclude_terms == ("hong", "kong")
    params["vectorize"]["exclude_terms"] = ["hong kong"]
    with pytest.raises(ParamsError, match=r"vectorize\.exclude_terms\[0\]: 'hong kong' is not one word"):
        parse_params(params)
    params["vectorize"]["exclude_terms"] = []
    params["vectorize"]["mlp"]["exclude_terms"] = ["x"]
    with pytest.raises(ParamsError, match=r"vectorize\.mlp\.exclude_terms: set vectorize\.exclude_terms"):
        parse_params(params)


def test_a_table_vectorized_in_chunks_and_shards_matches_the_whole(tmp_path: Path, monkeypatch) -> None:
    from stages.common.data import store
    from stages.vectorize import fit

    table = reviews_frame(230, seed=4).assign(
        id=[f"r{i}" for i in range(230)],
        label=lambda d: (d["stars"] >= 4).astype("int8"),
        rating=lambda d: d["stars"].astype(float),
        split=np.where(np.arange(230) % 3 == 0, "test", "train"),
        group=["", "p1", "p1"] + [""] * 227,
    )
    table.to_parquet(tmp_path / "t.parquet", row_group_size=40)
    cfg = FeaturizerConfig(kind="bow", max_tokens=300, min_count=2, ngram_range=(1, 2), mode="tfidf")
    whole = fit_featurizer(table.loc[table["split"] == "train", "text"].tolist(), cfg)
    chunks = list(store.iter_table(tmp_path / "t.parquet", ["id", "text", "label", "split", "group"], rows=33))
    assert len(chunks) == 7 and fit(chunks, cfg).to_json() == whole.to_json()
    test_only = pd.concat(store.iter_table(tmp_path / "t.parquet", ["id", "label"], rows=33, split="test"))
    assert test_only.columns.tolist() == ["id", "label"]
    assert test_only["id"].tolist() == table.loc[table["split"] == "test", "id"].tolist()
    some = store.read_table(tmp_path / "t.parquet", ["text", "label"], split="test", ids=["r3", "r4", "r6", "r299"])
    expected = table.loc[table["id"].isin(["r3", "r6"]), ["text", "label"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(some, expected)  # r4 is a training review, r299 none
    pd.testing.assert_frame_equal(store.read_table(tmp_path / "t.parquet"), pd.read_parquet(tmp_path / "t.parquet"))
    shards = list(store.split_shards(chunks, rows=50))
    sizes = {split: [len(p) for s, p in shards if s == split] for split in ("train", "test")}
    assert sizes == {"train": [50, 50, 50, 3], "test": [50, 27]}
    with store.FeatureWriter(tmp_path / "f", whole) as writer:
        for split, part in shards:
            writer.write(split, store.shard_arrays(part, whole, split))
    monkeypatch.setattr(store, "SHARD_ROWS", 64)
    store.write_features(tmp_path / "g", whole, store.transform_splits(table, whole))
    assert [p.name for p in store.shard_paths(tmp_path / "g", "train")] == ["train-00000.npz", "train-00001.npz",
                                                                            "train-00002.npz"]  # fmt: skip
    for features in (tmp_path / "f", tmp_path / "g"):
        for split in ("train", "test"):
            got, part = store.load_split(features, split), table[table["split"] == split]
            assert (whole.transform(part["text"].tolist()) != got.X).nnz == 0
            assert got.ids.tolist() == part["id"].tolist() and got.y.tolist() == part["label"].tolist()
        assert store.load_split(features, "train").group.tolist()[:2] == ["p1", "p1"]
