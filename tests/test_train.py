"""train: tiny models on generated data; seeded and deterministic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from stages.common.errors import ParamsError
from stages.common.features.featurizer import fit_featurizer
from stages.common.modelling.persistence import load_model
from stages.common.modelling.prediction import predict_proba
from stages.common.modelling.training import finetune, train_model, validation_indices
from stages.common.params.parsing import parse
from stages.common.params.schema import FeaturizerConfig, FinetuneConfig, FinetuneModelConfig, ModelConfig
from tests.synthetic import model_config, reviews_frame

MLP = model_config(
    "mlp",
    hidden_units=[8],
    kernel_initializer="uniform",
    dropout=0.1,
    epochs=2,
    validation_split=0.25,
    learning_rate=0.01,
)
LSTM = model_config("lstm", embedding_dim=8, units=4, epochs=1, validation_split=0.25, dropout=0.1)
# trained until it fits the generated cues (no early stopping)
MLP_FIT = model_config(
    "mlp",
    hidden_units=[8],
    epochs=15,
    batch_size=16,
    learning_rate=0.01,
    validation_split=0.25,
    early_stopping_patience=None,
)


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], np.ndarray]:
    df = reviews_frame(240, seed=3)
    df = df[df.stars != 3]
    return df["text"].tolist(), (df["stars"].to_numpy() >= 4).astype(np.int64)


def _fit(cfg: ModelConfig, kind: str, corpus, seed: int):
    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind=kind, max_tokens=100, maxlen=24, min_count=1))
    X = f.transform(texts)
    result = train_model(cfg, X, y, input_dim=f.input_dim, seed=seed)
    return result, predict_proba(result.model, X)


@pytest.mark.parametrize(("cfg", "kind"), [(MLP, "bow"), (LSTM, "seq")], ids=["mlp", "lstm"])
def test_same_seed_same_model_other_seed_other_model(cfg: ModelConfig, kind: str, corpus) -> None:
    first, p1 = _fit(cfg, kind, corpus, seed=1)
    _, p2 = _fit(cfg, kind, corpus, seed=1)
    _, p3 = _fit(cfg, kind, corpus, seed=2)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)
    assert list(first.history.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(first.history) == cfg.epochs
    assert first.summary["train_rows"] + first.summary["validation_rows"] == len(corpus[1])


@pytest.mark.parametrize(("cfg", "kind"), [(MLP, "bow"), (LSTM, "seq")], ids=["mlp", "lstm"])
def test_predictions_in_pieces_are_those_of_one_predict(cfg: ModelConfig, kind: str, corpus) -> None:
    result, proba = _fit(cfg, kind, corpus, seed=1)
    X = fit_featurizer(corpus[0], FeaturizerConfig(kind=kind, max_tokens=100, maxlen=24, min_count=1)).transform(
        corpus[0]
    )
    whole = np.asarray(result.model.predict(X, batch_size=16, verbose=0), dtype=np.float64).reshape(-1)
    np.testing.assert_array_equal(predict_proba(result.model, X, batch_size=16, batches=3), whole)
    np.testing.assert_array_equal(proba, predict_proba(result.model, X, batches=1))
    assert predict_proba(result.model, X[:0]).shape == (0,)


def test_mlp_learns_the_generated_cues(corpus) -> None:
    cfg = MLP_FIT
    result, proba = _fit(cfg, "bow", corpus, seed=0)
    accuracy = float(((proba >= 0.5) == corpus[1]).mean())
    assert accuracy > 0.9, result.history


def test_early_stopping_restores_the_best_epoch(corpus) -> None:
    cfg = model_config(
        "mlp",
        hidden_units=[32],
        epochs=40,
        batch_size=8,
        learning_rate=0.05,
        validation_split=0.3,
        early_stopping_patience=1,
    )
    result, _ = _fit(cfg, "bow", corpus, seed=0)
    hist = result.history
    assert len(hist) < 40
    assert result.summary["best_epoch"] == int(hist.loc[hist["val_loss"].idxmin(), "epoch"])
    assert result.summary["best_epoch"] == len(hist) - 1  # patience 1: stopped one epoch after the best


def test_validation_split_is_stratified_and_seeded() -> None:
    y = np.array([0] * 80 + [1] * 20)
    fit, val = validation_indices(y, 0.25, seed=5)
    assert len(val) == 25 and y[val].sum() == 5
    assert np.array_equal(val, validation_indices(y, 0.25, seed=5)[1])
    assert set(fit).isdisjoint(val)


def test_validation_carve_keeps_each_pair_whole_and_leaves_ungrouped_rows_as_without_pairs() -> None:
    y = np.array([0] * 80 + [1] * 20 + [0, 1] * 20)
    group = np.array([""] * 100 + [f"p{i // 2}" for i in range(40)])
    fit, val = validation_indices(y, 0.25, seed=5, group=group)
    assert set(fit).isdisjoint(val) and len(fit) + len(val) == len(y)
    for i in range(20):
        members = np.flatnonzero(group == f"p{i}")
        assert set(members) <= set(val) or set(members) <= set(fit)
    assert len(set(val) & set(range(100, 140))) == 10  # 5 of 20 pairs
    plain_fit, plain_val = validation_indices(y[:100], 0.25, seed=5)
    assert np.array_equal(val[val < 100], plain_val) and np.array_equal(fit[fit < 100], plain_fit)


def test_shuffled_copies_keep_each_reviews_words_take_label_one_half_and_only_fitting_rows() -> None:
    from stages.common.modelling.training import _shuffled_copies

    X = np.array([[0, 0, 5, 6, 7, 8], [0, 9, 10, 11, 12, 13], [3, 4, 5, 6, 7, 8], [0, 0, 0, 2, 3, 4]])
    y = np.array([1, 0, 1, 0], dtype=np.float32)
    fit_idx = np.array([0, 1, 2])
    X2, y2, w2, fit2 = _shuffled_copies(X, y, None, fit_idx, 2 / 3, seed=1)
    assert len(X2) == 6 and np.array_equal(X2[:4], X) and w2 is None
    assert np.array_equal(y2[4:], [0.5, 0.5]) and np.array_equal(fit2, [0, 1, 2, 4, 5])
    for copy in X2[4:]:
        source = next(row for row in X[:3] if sorted(row) == sorted(copy))  # the same words, padding in place
        assert np.array_equal(copy == 0, source == 0)
    again = _shuffled_copies(X, y, None, fit_idx, 2 / 3, seed=1)[0]
    assert np.array_equal(again, X2)


def test_saved_model_reloads_in_safe_mode(tmp_path: Path, corpus) -> None:
    result, proba = _fit(MLP, "bow", corpus, seed=1)
    path = tmp_path / "m.keras"
    result.model.save(path)
    texts, _ = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100, min_count=1))
    np.testing.assert_allclose(predict_proba(load_model(path), f.transform(texts)), proba, rtol=1e-6)


def test_saved_model_bytes_depend_on_the_model_alone(tmp_path: Path, corpus) -> None:
    """Keras stamps the save time and object addresses into a .keras file; save_model does not."""
    import json
    import time
    import zipfile

    from stages.common.modelling.persistence import save_model

    # the same training twice: the same weights in new Python objects (other addresses)
    (first, proba), (second, _) = _fit(MLP, "bow", corpus, seed=1), _fit(MLP, "bow", corpus, seed=1)
    first.model.save(tmp_path / "plain1.keras")
    save_model(first.model, tmp_path / "a.keras")
    time.sleep(2.1)  # the zip format's times have a resolution of 2 s
    second.model.save(tmp_path / "plain2.keras")
    save_model(second.model, tmp_path / "b.keras")
    assert (tmp_path / "plain1.keras").read_bytes() != (tmp_path / "plain2.keras").read_bytes()  # Keras's own
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras", "b.keras", "plain1.keras", "plain2.keras"]
    with zipfile.ZipFile(tmp_path / "a.keras") as z, zipfile.ZipFile(tmp_path / "plain1.keras") as k:
        assert [i.filename for i in z.infolist()] == [i.filename for i in k.infolist()]
        assert z.read("model.weights.h5") == k.read("model.weights.h5")
        config = z.read("config.json").decode()
        assert '"shared_object_id": 0' in config  # the MLP's layers share an initializer
        meta = json.loads(z.read("metadata.json"))
        assert meta["date_saved"] == "1980-01-01@00:00:00" and meta["keras_version"]
    texts, _ = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100, min_count=1))
    np.testing.assert_allclose(predict_proba(load_model(tmp_path / "b.keras"), f.transform(texts)), proba, rtol=1e-6)


def _finetune_cfg(
    learning_rate: float, *, early_stopping_patience: int | None = 1, new_words_min_count: int = 0
) -> tuple[FinetuneConfig, FinetuneModelConfig]:
    """One epoch of fine-tuning at ``learning_rate``: the shared config and the model's block."""
    one = FinetuneModelConfig(learning_rate=learning_rate, new_words_min_count=new_words_min_count, soup=1)
    cfg = FinetuneConfig(source="imdb", targets=["yelp"], per_model={"mlp": one}, epochs=1,
                         early_stopping_patience=early_stopping_patience)  # fmt: skip
    return cfg, one


def _target_table(texts: list[str], y: np.ndarray) -> pd.DataFrame:
    """A prepared-table stand-in for a fine-tuning target: alternate train/test rows."""
    n = len(texts)
    split = ["train", "test"] * (n // 2) + ["train"] * (n % 2)
    return pd.DataFrame({"id": [f"t{i}" for i in range(n)], "text": texts, "label": y, "split": split})


def test_finetune_starts_from_the_source_model_and_vocabulary(corpus) -> None:
    texts, y = corpus
    f = fit_featurizer(texts[:100], FeaturizerConfig(kind="seq", max_tokens=100, maxlen=24, min_count=1))
    source = train_model(LSTM, f.transform(texts[:100]), y[:100], input_dim=f.input_dim, seed=1).model
    target = _target_table(texts, y)
    cfg, tuning = _finetune_cfg(0.01, early_stopping_patience=None)
    _, splits, result = finetune(target, f, source, LSTM, cfg, tuning, seed=1)
    assert result.summary["initialised_from"] == "imdb"
    np.testing.assert_array_equal(splits["test"]["X"], f.transform(target[target.split == "test"]["text"].tolist()))
    # a copy was refined: the source model itself is untouched, the copy moved away from it
    X = f.transform(texts)
    assert not np.allclose(predict_proba(result.model, X), predict_proba(source, X))
    assert result.model is not source and result.summary["train_rows"] > 0


def test_a_distribution_strategy_is_a_param(corpus) -> None:
    import dataclasses

    result, proba = _fit(dataclasses.replace(LSTM, distribution="mirrored"), "seq", corpus, seed=1)
    assert result.summary["epochs_run"] == 1 and proba.shape == (len(corpus[1]),)
    with pytest.raises(Exception, match=r"lstm\.distribution"):
        from stages.common.params.parsing import parse

        lstm = {"architecture": "lstm", "dropout": 0.1, "epochs": 1, "validation_split": 0.2}
        parse(ModelConfig, {**lstm, "early_stopping_patience": 1, "distribution": "tpu_pod"}, "lstm")


def test_a_finetuned_bag_of_words_model_keeps_its_sparse_input(corpus) -> None:
    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100, min_count=1))
    source = train_model(MLP, f.transform(texts), y, input_dim=f.input_dim, seed=1).model
    target = _target_table(texts, y)
    _, _, result = finetune(target, f, source, MLP, *_finetune_cfg(0.0005), seed=1)
    assert result.model.inputs[0].sparse  # LIME's fast path and memory use rely on it


def test_each_model_finetunes_at_its_own_learning_rate(corpus) -> None:
    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100, min_count=1))
    source = train_model(MLP, f.transform(texts), y, input_dim=f.input_dim, seed=1).model
    target = _target_table(texts, y)
    mlp, lstm = {"learning_rate": 0.002, "new_words_min_count": 0, "soup": 1}, {"learning_rate": 0.0005}
    no_soup = {"learning_rate": 0.0005, "new_words_min_count": 0}
    raw = {"source": "imdb", "targets": ["yelp"], "epochs": 1, "per_model": {"mlp": mlp, "lstm": {**mlp, **lstm}}}
    cfg = parse(FinetuneConfig, raw, "finetune")
    _, _, result = finetune(target, f, source, MLP, cfg, cfg.model("mlp"), seed=1)
    assert float(result.model.optimizer.learning_rate) == pytest.approx(0.002)
    assert cfg.model("lstm").learning_rate == 0.0005
    with pytest.raises(ParamsError, match=r"finetune\.per_model: expected a mapping"):
        parse(FinetuneConfig, {**raw, "per_model": 0.001}, "finetune")  # dvc.yaml needs the per-model blocks
    with pytest.raises(ParamsError, match=r"finetune\.per_model\.cnn: missing"):
        cfg.model("cnn")
    with pytest.raises(ParamsError, match=r"finetune\.per_model\.lstm\.learning_rate: must be > 0"):
        parse(FinetuneConfig, {**raw, "per_model": {"mlp": mlp, "lstm": {**mlp, "learning_rate": 0}}}, "finetune")
    counts = {**raw, "per_model": {"mlp": mlp, "lstm": {**mlp, "new_words_min_count": 10}}}
    assert parse(FinetuneConfig, counts, "finetune").model("lstm").new_words_min_count == 10
    assert parse(FinetuneConfig, counts, "finetune").model("mlp").new_words_min_count == 0
    with pytest.raises(ParamsError, match=r"finetune\.per_model\.lstm\.new_words_min_count: must be >= 0"):
        parse(
            FinetuneConfig, {**raw, "per_model": {"mlp": mlp, "lstm": {**mlp, "new_words_min_count": -1}}}, "finetune"
        )
    with pytest.raises(ParamsError, match=r"finetune\.per_model\.lstm\.soup: required key is missing"):
        parse(FinetuneConfig, {**raw, "per_model": {"mlp": mlp, "lstm": no_soup}}, "finetune")


def test_finetune_soup_is_the_weight_mean_of_seeded_fine_tunes(corpus) -> None:
    """``soup: 2`` keeps one model whose weights are the mean of the fine-tunes at seeds s and s + 1,
    each of which is exactly what ``soup: 1`` gives at that seed; a size below 1 fails naming its key."""
    from stages.common.data.io import features_from_npz

    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100, min_count=1))
    source = train_model(MLP, f.transform(texts), y, input_dim=f.input_dim, seed=1).model
    start = source.get_weights()
    target = _target_table(texts, y)
    ft, tuning = _finetune_cfg(0.01)
    members = [finetune(target, f, source, MLP, ft, tuning, seed=s).result for s in (3, 4)]
    _, splits, soup = finetune(target, f, source, MLP, ft, dataclasses.replace(tuning, soup=2), seed=3)
    weights = [m.model.get_weights() for m in members]
    assert any(not np.array_equal(a, b) for a, b in zip(*weights, strict=True))  # the seeds differ
    for got, *parts in zip(soup.model.get_weights(), *weights, strict=True):
        np.testing.assert_array_equal(got, np.mean(parts, axis=0))
    for kept, before in zip(source.get_weights(), start, strict=True):  # the source model is left as it was
        np.testing.assert_array_equal(kept, before)
    assert soup.summary["soup"] == 2 and len(soup.summary["soup_best_epochs"]) == 2
    assert "soup" not in members[0].summary
    X = features_from_npz(splits["test"])
    p = predict_proba(soup.model, X)
    assert p.shape == (X.shape[0],) and np.all((p >= 0) & (p <= 1))
    one = {"learning_rate": 0.002, "new_words_min_count": 0, "soup": 1}
    raw = {"source": "imdb", "targets": ["yelp"], "per_model": {"mlp": one, "lstm": {**one, "soup": 3}}}
    assert parse(FinetuneConfig, raw, "finetune").model("lstm").soup == 3
    with pytest.raises(ParamsError, match=r"finetune\.per_model\.lstm\.soup: must be >= 1"):
        parse(FinetuneConfig, {**raw, "per_model": {"mlp": one, "lstm": {**one, "soup": 0}}}, "finetune")


def test_weight_soup_is_the_exact_mean_and_holds_two_models_at_most() -> None:
    """Members are consumed one at a time (peak memory: the first and the one being made)."""
    import weakref

    from stages.common.modelling.training import weight_soup

    alive: weakref.WeakSet = weakref.WeakSet()
    most_alive = []

    class Member:
        def __init__(self, weights: list[np.ndarray]) -> None:
            self.weights = weights
            alive.add(self)
            most_alive.append(len(alive))

        def get_weights(self) -> list[np.ndarray]:
            return [w.copy() for w in self.weights]

        def set_weights(self, weights: list[np.ndarray]) -> None:
            self.weights = weights

    rng = np.random.default_rng(0)
    parts = [
        [rng.standard_normal((50, 7)).astype(np.float32), rng.standard_normal(7).astype(np.float32)] for _ in range(5)
    ]
    soup = weight_soup(Member(p) for p in parts)
    for got, *ws in zip(soup.weights, *parts, strict=True):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, np.mean(ws, axis=0))  # the same bits as the mean of them all
    assert max(most_alive) == 2
    one = Member([np.ones(3, np.float32)])
    assert weight_soup([one]) is one and np.array_equal(one.weights[0], np.ones(3))


def test_finetune_gives_frequent_target_words_their_own_word_vectors(corpus) -> None:
    import dataclasses

    import keras

    from stages.common.modelling.models import grow_inputs

    texts, y = corpus
    f = fit_featurizer(texts[:100], FeaturizerConfig(kind="seq", max_tokens=10, maxlen=24, min_count=1))  # no cue words
    cfg = LSTM
    source = train_model(cfg, f.transform(texts[:100]), y[:100], input_dim=f.input_dim, seed=1).model
    rows = keras.ops.convert_to_numpy(source.get_layer("embedding").embeddings)

    # the grown copy: the source's rows and weights, zero rows after them, the same predictions on old ids
    grown = grow_inputs(source, cfg, f.input_dim + 3)
    table = keras.ops.convert_to_numpy(grown.get_layer("embedding").embeddings)
    np.testing.assert_array_equal(table[: len(rows)], rows)
    assert table.shape == (len(rows) + 3, rows.shape[1]) and not table[len(rows) :].any()
    X = f.transform(texts)
    np.testing.assert_array_equal(predict_proba(grown, X), predict_proba(source, X))

    target = _target_table(texts, y)
    ft, tuning = _finetune_cfg(0.05, new_words_min_count=2)
    featurizer, splits, result = finetune(target, f, source, cfg, ft, tuning, seed=1)
    added = featurizer.vocabulary[len(f.vocabulary) :]
    assert featurizer.vocabulary[: len(f.vocabulary)] == f.vocabulary
    assert {"great", "awful"} <= set(added) and result.summary["new_words"] == len(added)
    np.testing.assert_array_equal(splits["test"]["X"], featurizer.transform(target[target.split == "test"]["text"]))
    assert splits["train"]["X"].max() >= f.input_dim  # the target's features use the new ids
    tuned = keras.ops.convert_to_numpy(result.model.get_layer("embedding").embeddings)
    assert tuned.shape[0] == featurizer.input_dim and np.abs(tuned[len(rows) :]).sum(axis=1).min() > 0  # all learnt
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(source.get_layer("embedding").embeddings), rows)

    # the default (0) keeps the source vocabulary
    same, _, kept = finetune(target, f, source, cfg, ft, dataclasses.replace(tuning, new_words_min_count=0), seed=1)
    assert same is f and kept.summary["new_words"] == 0

    # a bag-of-words model gains n-grams: its first layer gains zero rows, so old predictions stay
    bow = fit_featurizer(
        texts[:100], FeaturizerConfig(kind="bow", max_tokens=10, ngram_range=(1, 2), mode="tfidf", min_count=1)
    )
    mlp = train_model(MLP, bow.transform(texts[:100]), y[:100], input_dim=bow.input_dim, seed=1).model
    wide = grow_inputs(mlp, MLP, bow.input_dim + 3)
    kernel = wide.get_layer("dense_1").get_weights()[0]
    assert kernel.shape[0] == bow.input_dim + 3 and not kernel[bow.input_dim :].any()
    Xb = bow.transform(texts)
    padded = sp.hstack([Xb, sp.csr_matrix((Xb.shape[0], 3), dtype=Xb.dtype)]).tocsr()
    np.testing.assert_allclose(predict_proba(wide, padded), predict_proba(mlp, Xb), rtol=1e-6)
    grown_bow, _, tuned_mlp = finetune(target, bow, mlp, MLP, ft, tuning, seed=1)
    added = len(grown_bow.vocabulary) - len(bow.vocabulary)
    assert grown_bow.vocabulary[: len(bow.vocabulary)] == bow.vocabulary and tuned_mlp.summary["new_words"] == added > 0
    first = tuned_mlp.model.get_layer("dense_1").get_weights()[0]
    assert first.shape[0] == grown_bow.input_dim and np.abs(first[bow.input_dim :]).sum() > 0  # learnt
    with pytest.raises(ParamsError, match=r"input_dim: cannot shrink dense_1 from"):
        grow_inputs(mlp, MLP, bow.input_dim - 1)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_every_path_from_the_words_to_the_output_runs_through_the_lstm(pooling: str) -> None:
    """The default LSTM model's graph: tokens → embedding → (Bi)LSTM → pooling → sigmoid, nothing beside.

    Walks the functional graph backwards from the output: each layer between the recurrent
    layer and the output has exactly one input, and the recurrent layer's only input is the
    embedding of the tokens, so no branch reaches the words without passing the LSTM.
    """
    import keras

    from stages.common.modelling.models import build_model
    from stages.common.params import load_params

    cfg = dataclasses.replace(load_params(Path(__file__).parents[1] / "params.yaml").model("lstm"), pooling=pooling)
    model = build_model(cfg, input_dim=50)
    tokens = model.inputs[0]._keras_history.operation
    chain, layer = [], model.get_layer("proba")
    while True:
        chain.append(layer)
        parents = {t._keras_history.operation for node in layer._inbound_nodes for t in node.input_tensors}
        # the padding mask (token id != 0) says where the words are, never which: allowed beside
        masks = {op for op in parents if not isinstance(op, keras.layers.Layer)}
        for op in masks:
            assert op.name.startswith("not_equal"), f"{layer.name} reads {op.name}"
            assert {t._keras_history.operation for n in op._inbound_nodes for t in n.input_tensors} == {tokens}
        assert len(parents - masks) == 1, f"{layer.name} has {len(parents - masks)} inputs"
        (layer,) = parents - masks
        if layer is tokens:
            break
    kinds = [type(x).__name__ for x in reversed(chain)]
    recurrent = "Bidirectional" if cfg.bidirectional else "LSTM"
    expected = ["Embedding", recurrent, *(["GlobalAveragePooling1D"] if pooling == "mean" else []), "Dense"]
    assert kinds == expected
    assert len([x for x in model.layers if not isinstance(x, keras.layers.InputLayer)]) == len(expected)
    assert model.get_layer("proba").activation.__name__ == "sigmoid"


@pytest.mark.parametrize(
    ("cfg", "kind"),
    [(MLP_FIT, "bow"), (dataclasses.replace(LSTM, epochs=2, shuffled_share=0.3), "seq")],
    ids=["mlp", "lstm"],
)
def test_a_training_split_in_several_shards_streams_through_tf_data(
    cfg: ModelConfig, kind: str, corpus, tmp_path: Path, monkeypatch
) -> None:
    from stages.common.data import store
    from stages.common.modelling.training import train_on_shards

    texts, y = corpus
    n = len(texts)
    group = np.array([""] * n, dtype=object)
    group[:8] = np.repeat([f"p{i}" for i in range(4)], 2)  # four minimal-edit pairs
    table = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "text": texts, "label": y, "group": group,
                          "split": np.where(np.arange(n) < n - 20, "train", "test")})  # fmt: skip
    f = fit_featurizer(texts, FeaturizerConfig(kind=kind, max_tokens=100, maxlen=24, min_count=1))
    monkeypatch.setattr(store, "SHARD_ROWS", 60)
    store.write_features(tmp_path / "f", f, store.transform_splits(table, f))
    assert len(store.shard_paths(tmp_path / "f", "train")) == 4
    result = train_on_shards(cfg, tmp_path / "f", input_dim=f.input_dim, seed=1)
    again = train_on_shards(cfg, tmp_path / "f", input_dim=f.input_dim, seed=1)
    for w, v in zip(result.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(w, v)  # seeded: the same shards, orders and copies
    train_y = y[: n - 20]
    fit_idx, val_idx = validation_indices(train_y, cfg.validation_split, 1, group[: n - 20])
    per_shard = np.bincount(fit_idx // 60)  # each shard's fitting rows, and its share of shuffled copies
    assert result.summary["validation_rows"] == len(val_idx)
    assert result.summary["train_rows"] == len(fit_idx) + sum(round(cfg.shuffled_share * m) for m in per_shard)
    assert len(result.history) == result.summary["epochs_run"] == cfg.epochs
    assert 0 <= result.summary["validation_pair_consistency"] <= 1
    if kind == "bow":  # it learns the generated cues from the streamed batches
        X = f.transform(texts)
        assert ((predict_proba(result.model, X) >= 0.5) == y).mean() > 0.9
