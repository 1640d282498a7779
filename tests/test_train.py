"""train: tiny models on generated data; seeded and deterministic."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from stages.common.features import FeaturizerConfig, fit_featurizer
from stages.common.models import ModelConfig, load_model, predict_proba
from stages.common.params import ParamsError, parse
from stages.train import train_model, validation_indices
from tests.synthetic import reviews_frame

MLP = ModelConfig(
    architecture="mlp",
    hidden_units=[8],
    kernel_initializer="uniform",
    dropout=0.1,
    epochs=2,
    batch_size=32,
    validation_split=0.25,
    learning_rate=0.01,
)
LSTM = ModelConfig(
    architecture="lstm", embedding_dim=8, units=4, epochs=1, batch_size=32, validation_split=0.25, dropout=0.1
)
# trained until it fits the generated cues (no early stopping)
MLP_FIT = ModelConfig(
    architecture="mlp",
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
    f = fit_featurizer(texts, FeaturizerConfig(kind=kind, max_tokens=100, maxlen=24))
    X = f.transform(texts)
    result = train_model(cfg, X, y, input_dim=f.input_dim, seq_len=24 if kind == "seq" else None, seed=seed)
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


def test_mlp_learns_the_generated_cues(corpus) -> None:
    cfg = MLP_FIT
    result, proba = _fit(cfg, "bow", corpus, seed=0)
    accuracy = float(((proba >= 0.5) == corpus[1]).mean())
    assert accuracy > 0.9, result.history


def test_label_smoothing_and_balanced_class_weights_change_what_is_learned(corpus) -> None:
    cfg = MLP_FIT
    _, plain = _fit(cfg, "bow", corpus, seed=0)
    _, smoothed = _fit(dataclasses.replace(cfg, label_smoothing=0.2), "bow", corpus, seed=0)
    # the targets become 0.1 and 0.9: the smoothed model's predictions stop short of 0 and 1
    confidence, smoothed_confidence = np.median(np.abs(plain - 0.5)), np.median(np.abs(smoothed - 0.5))
    assert smoothed_confidence < 0.43 < confidence, (smoothed_confidence, confidence)
    assert smoothed.max() < 0.95 < plain.max()
    # one negative review in five kept: balanced weights count the few negatives as much as the positives
    texts, y = corpus
    keep = np.flatnonzero((y == 1) | (np.arange(len(y)) % 5 == 0))
    skewed = ([texts[i] for i in keep], y[keep])
    short = dataclasses.replace(cfg, epochs=2)
    _, unweighted = _fit(short, "bow", skewed, seed=0)
    _, balanced = _fit(dataclasses.replace(short, class_weight="balanced"), "bow", skewed, seed=0)
    assert balanced.mean() < unweighted.mean() - 0.02, (balanced.mean(), unweighted.mean())
    for key, value, error in (("label_smoothing", 1.0, r"must be in \[0, 1\)"), ("class_weight", "x", "balanced")):
        with pytest.raises(ParamsError, match=rf"mlp\.{key}.*{error}"):
            parse(ModelConfig, {**dataclasses.asdict(cfg), key: value}, "mlp")


def test_class_weight_reaches_the_embedding_warmup_too(corpus, monkeypatch) -> None:
    import stages.train as train_stage

    weights: list[str] = []
    real_fit = train_stage._fit

    def spy(*args, **kwargs):
        weights.append(kwargs["class_weight"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(train_stage, "_fit", spy)
    cfg = dataclasses.replace(LSTM, embedding_warmup_epochs=1, class_weight="balanced")
    _fit(cfg, "seq", corpus, seed=1)
    assert weights == ["balanced", "balanced"]  # the warm-up, then the LSTM


def test_early_stopping_restores_the_best_epoch(corpus) -> None:
    cfg = ModelConfig(
        architecture="mlp",
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


def test_saved_model_reloads_in_safe_mode(tmp_path: Path, corpus) -> None:
    result, proba = _fit(MLP, "bow", corpus, seed=1)
    path = tmp_path / "m.keras"
    result.model.save(path)
    texts, _ = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100))
    np.testing.assert_allclose(predict_proba(load_model(path), f.transform(texts)), proba, rtol=1e-6)


def test_saved_model_bytes_depend_on_the_model_alone(tmp_path: Path, corpus) -> None:
    """Keras stamps the save time and object addresses into a .keras file; save_model does not."""
    import json
    import time
    import zipfile

    from stages.common.models import save_model

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
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100))
    np.testing.assert_allclose(predict_proba(load_model(tmp_path / "b.keras"), f.transform(texts)), proba, rtol=1e-6)


def _target_table(texts: list[str], y: np.ndarray) -> pd.DataFrame:
    """A prepared-table stand-in for a fine-tuning target: alternate train/test rows."""
    n = len(texts)
    split = ["train", "test"] * (n // 2) + ["train"] * (n % 2)
    return pd.DataFrame({"id": [f"t{i}" for i in range(n)], "text": texts, "label": y, "split": split})


def test_finetune_starts_from_the_source_model_and_vocabulary(corpus) -> None:
    from stages.finetune import FinetuneConfig, finetune

    texts, y = corpus
    f = fit_featurizer(texts[:100], FeaturizerConfig(kind="seq", max_tokens=100, maxlen=24))
    source = train_model(LSTM, f.transform(texts[:100]), y[:100], input_dim=f.input_dim, seq_len=24, seed=1).model
    target = _target_table(texts, y)
    cfg = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate=0.01, epochs=1, early_stopping_patience=None)
    _, splits, result = finetune(target, f, source, LSTM, cfg, seed=1)
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
        from stages.common.params import parse

        parse(ModelConfig, {"architecture": "lstm", "distribution": "tpu_pod"}, "lstm")


def test_a_finetuned_bag_of_words_model_keeps_its_sparse_input(corpus) -> None:
    from stages.finetune import FinetuneConfig, finetune

    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100))
    source = train_model(MLP, f.transform(texts), y, input_dim=f.input_dim, seq_len=None, seed=1).model
    target = _target_table(texts, y)
    cfg = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate=0.0005, epochs=1)
    _, _, result = finetune(target, f, source, MLP, cfg, seed=1)
    assert result.model.inputs[0].sparse  # LIME's fast path and memory use rely on it


def test_each_model_finetunes_at_its_own_learning_rate(corpus) -> None:
    from stages.common.params import ParamsError, parse
    from stages.finetune import FinetuneConfig, finetune

    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100))
    source = train_model(MLP, f.transform(texts), y, input_dim=f.input_dim, seq_len=None, seed=1).model
    target = _target_table(texts, y)
    raw = {"source": "imdb", "targets": ["yelp"], "learning_rate": {"mlp": 0.002, "lstm": 0.0005}, "epochs": 1}
    cfg = parse(FinetuneConfig, raw, "finetune")
    with pytest.raises(TypeError, match="for_model"):
        finetune(target, f, source, MLP, cfg, seed=1)
    _, _, result = finetune(target, f, source, MLP, cfg.for_model("mlp"), seed=1)
    assert float(result.model.optimizer.learning_rate) == pytest.approx(0.002)
    assert cfg.for_model("lstm").learning_rate == 0.0005
    with pytest.raises(ParamsError, match=r"finetune\.learning_rate: expected one rate per model"):
        parse(FinetuneConfig, {**raw, "learning_rate": 0.001}, "finetune")  # dvc.yaml needs the per-model keys
    with pytest.raises(ParamsError, match=r"finetune\.learning_rate\.cnn: missing"):
        cfg.for_model("cnn")
    with pytest.raises(ParamsError, match=r"finetune\.learning_rate\.lstm: must be > 0"):
        parse(FinetuneConfig, {**raw, "learning_rate": {"mlp": 0.002, "lstm": 0}}, "finetune")
    counts = {**raw, "new_words_min_count": {"mlp": 0, "lstm": 10}}
    assert parse(FinetuneConfig, counts, "finetune").for_model("lstm").new_words_min_count == 10
    assert parse(FinetuneConfig, counts, "finetune").for_model("mlp").new_words_min_count == 0
    with pytest.raises(ParamsError, match=r"finetune\.new_words_min_count\.lstm: must be >= 0"):
        parse(FinetuneConfig, {**raw, "new_words_min_count": {"mlp": 0, "lstm": -1}}, "finetune")
    with pytest.raises(ParamsError, match=r"finetune\.new_words_min_count\.cnn: missing"):
        three_rates = {"mlp": 0.002, "lstm": 0.0005, "cnn": 0.1}
        parse(FinetuneConfig, {**counts, "learning_rate": three_rates}, "finetune").for_model("cnn")


def test_finetune_soup_is_the_weight_mean_of_seeded_fine_tunes(corpus) -> None:
    """``soup: 2`` keeps one model whose weights are the mean of the fine-tunes at seeds s and s + 1,
    each of which is exactly what ``soup: 1`` gives at that seed; a size below 1 fails naming its key."""
    from stages.common.io import features_from_npz
    from stages.common.params import ParamsError, parse
    from stages.finetune import FinetuneConfig, finetune

    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100))
    source = train_model(MLP, f.transform(texts), y, input_dim=f.input_dim, seq_len=None, seed=1).model
    start = source.get_weights()
    target = _target_table(texts, y)
    ft = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate=0.01, epochs=1)
    members = [finetune(target, f, source, MLP, ft, seed=s).result for s in (3, 4)]
    _, splits, soup = finetune(target, f, source, MLP, dataclasses.replace(ft, soup=2), seed=3)
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
    raw = {"source": "imdb", "targets": ["yelp"], "learning_rate": {"mlp": 0.002, "lstm": 0.002}}
    assert parse(FinetuneConfig, {**raw, "soup": {"mlp": 1, "lstm": 3}}, "finetune").for_model("lstm").soup == 3
    with pytest.raises(ParamsError, match=r"finetune\.soup\.lstm: must be >= 1"):
        parse(FinetuneConfig, {**raw, "soup": {"mlp": 1, "lstm": 0}}, "finetune")


def test_weight_soup_is_the_exact_mean_and_holds_two_models_at_most() -> None:
    """Members are consumed one at a time (peak memory: the first and the one being made)."""
    import weakref

    from stages.finetune import weight_soup

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


def test_embedding_warmup_then_frozen_embedding(corpus, tmp_path: Path) -> None:
    """The bag-of-embeddings warm-up learns the word vectors; a frozen embedding keeps them while the LSTM trains."""
    import dataclasses

    import keras

    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="seq", max_tokens=100, maxlen=24))
    X = f.transform(texts)
    cfg = dataclasses.replace(LSTM, embedding_warmup_epochs=2, freeze_embedding=True, epochs=2)
    result = train_model(cfg, X, y, input_dim=f.input_dim, seq_len=24, seed=4)
    assert 0.0 <= result.summary["embedding_warmup_val_accuracy"] <= 1.0
    embedding = result.model.get_layer("embedding")
    assert not embedding.trainable

    # frozen: without a warm-up the embedding stays at its seeded random start; the warm-up moved it
    from stages.common.models import build_model, configure_determinism

    cold = train_model(
        dataclasses.replace(cfg, embedding_warmup_epochs=0), X, y, input_dim=f.input_dim, seq_len=24, seed=4
    )
    configure_determinism(4)
    start = build_model(dataclasses.replace(cfg, embedding_warmup_epochs=0), input_dim=f.input_dim)
    random_start = keras.ops.convert_to_numpy(start.get_layer("embedding").embeddings)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(cold.model.get_layer("embedding").embeddings), random_start
    )
    final = keras.ops.convert_to_numpy(embedding.embeddings)
    assert not np.allclose(final, random_start, atol=1e-3)
    assert not np.array_equal(predict_proba(cold.model, X), predict_proba(result.model, X))

    # saved and loaded in safe mode, still frozen; a fine-tune from it starts from the same weights
    path = tmp_path / "lstm.keras"
    result.model.save(path)
    loaded = load_model(path)
    assert not loaded.get_layer("embedding").trainable
    np.testing.assert_allclose(predict_proba(loaded, X), predict_proba(result.model, X), rtol=1e-6)
    tuned = train_model(
        dataclasses.replace(cfg, epochs=1), X, y, input_dim=f.input_dim, seq_len=24, seed=4, initial=loaded
    )
    assert "embedding_warmup_val_accuracy" not in tuned.summary  # no warm-up when starting from a model
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tuned.model.get_layer("embedding").embeddings), final)


@pytest.mark.parametrize("freeze", [True, False])
def test_finetune_refines_a_frozen_source_embedding_unless_told_not_to(corpus, freeze: bool) -> None:
    import dataclasses

    import keras

    from stages.finetune import FinetuneConfig, finetune

    texts, y = corpus
    f = fit_featurizer(texts[:100], FeaturizerConfig(kind="seq", max_tokens=100, maxlen=24))
    frozen = dataclasses.replace(
        LSTM, freeze_embedding=True, bag_of_embeddings=True, embedding_warmup_epochs=1, bag_bigram_buckets=32
    )
    source = train_model(frozen, f.transform(texts[:100]), y[:100], input_dim=f.input_dim, seq_len=24, seed=1).model
    cfg = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate=0.05, epochs=1, freeze_embedding=freeze)
    _, _, result = finetune(_target_table(texts, y), f, source, frozen, cfg, seed=1)
    before = keras.ops.convert_to_numpy(source.get_layer("embedding").embeddings)
    after = keras.ops.convert_to_numpy(result.model.get_layer("embedding").embeddings)
    assert result.model.get_layer("embedding").trainable is not freeze
    assert np.array_equal(before, after) is freeze
    pairs_before = keras.ops.convert_to_numpy(source.get_layer("word_pairs").table)
    pairs_after = keras.ops.convert_to_numpy(result.model.get_layer("word_pairs").table)
    assert result.model.get_layer("word_pairs").trainable is not freeze  # the word-pair vectors follow
    assert np.array_equal(pairs_before, pairs_after) is freeze


@pytest.mark.parametrize(("pooling", "buckets"), [("mean", 0), ("sqrt_n", 0), ("sqrt_n", 64)])
def test_bag_of_embeddings_path_starts_as_the_warmup_and_the_lstm_adds_to_it(
    corpus, tmp_path: Path, pooling: str, buckets: int
) -> None:
    """``bag_of_embeddings``: handed the warm-up (word-pair vectors included), the LSTM model predicts
    exactly what the warm-up did (the LSTM's share of the output starts at zero); training then moves
    that share."""
    import dataclasses

    import keras

    from stages.common.models import build_embedding_warmup, build_model, configure_determinism, fast_predictor
    from stages.train import hand_over_warmup

    texts, y = corpus
    f = fit_featurizer(texts, FeaturizerConfig(kind="seq", max_tokens=100, maxlen=24))
    X = f.transform(texts)
    cfg = dataclasses.replace(
        LSTM,
        bidirectional=True,
        pooling="mean",
        bag_of_embeddings=True,
        embedding_warmup_epochs=1,
        epochs=2,
        bag_pooling=pooling,
        bag_bigram_buckets=buckets,
    )
    configure_determinism(5)
    warmup = build_embedding_warmup(cfg, input_dim=f.input_dim)
    warmup.fit(X, y.astype(np.float32), epochs=1, batch_size=32, verbose=0)
    model = build_model(cfg, input_dim=f.input_dim)
    assert not np.allclose(predict_proba(model, X), predict_proba(warmup, X), atol=1e-4)
    hand_over_warmup(warmup, model)
    np.testing.assert_allclose(predict_proba(model, X), predict_proba(warmup, X), rtol=1e-5, atol=1e-6)
    lstm_share = model.get_layer("proba").get_weights()[0][: 2 * cfg.units]
    assert not lstm_share.any()

    result = train_model(cfg, X, y, input_dim=f.input_dim, seq_len=24, seed=5)
    trained_share = result.model.get_layer("proba").get_weights()[0][: 2 * cfg.units]
    assert np.abs(trained_share).max() > 0  # the LSTM now contributes
    path = tmp_path / "hybrid.keras"
    result.model.save(path)
    loaded = load_model(path)  # safe mode: standard layers and the registered stages.common.layers
    expected = predict_proba(result.model, X)
    np.testing.assert_allclose(predict_proba(loaded, X), expected, rtol=1e-5, atol=1e-6)
    # LIME's fast path drops all-padding columns: the masked bag and LSTM paths agree with predict
    np.testing.assert_allclose(fast_predictor(loaded)(X), expected, rtol=1e-4, atol=1e-5)
    assert keras.ops.convert_to_numpy(loaded.get_layer("embedding").embeddings).shape[1] == cfg.embedding_dim
    layers = {layer.name for layer in loaded.layers}
    assert ("word_pairs" in layers) is (buckets > 0)
    if buckets:  # the pair table learns (or stays fixed) with the word vectors
        assert loaded.get_layer("word_pairs").trainable is loaded.get_layer("embedding").trainable
        assert keras.ops.convert_to_numpy(loaded.get_layer("word_pairs").table).shape == (buckets, cfg.embedding_dim)


@pytest.mark.parametrize("keep_start", [True, False])
def test_early_stopping_from_the_start_keeps_it_unless_an_epoch_beats_it(keep_start: bool) -> None:
    """Handed a start (the warm-up's predictions), training that only makes validation worse
    gives back the start; without one, Keras' rule: the best epoch's weights."""
    import keras

    from stages.common.models import configure_determinism
    from stages.train import early_stopping_from

    configure_determinism(0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    model.fit(X[:150], y[:150], epochs=30, verbose=0)
    start_weights = [w.copy() for w in model.get_weights()]
    start_loss = float(model.evaluate(X[150:], y[150:], verbose=0))
    model.compile(optimizer=keras.optimizers.SGD(50.0), loss="binary_crossentropy")  # every step makes it worse
    callback = early_stopping_from(start_loss if keep_start else None, patience=1)
    fit = model.fit(X[:150], 1 - y[:150], validation_data=(X[150:], y[150:]), epochs=4, callbacks=[callback], verbose=0)
    assert min(fit.history["val_loss"]) > start_loss
    kept = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), start_weights, strict=True))
    assert kept is keep_start
    if not keep_start:  # the best epoch's weights were restored
        best = int(np.argmin(fit.history["val_loss"]))
        assert callback.best_epoch == best


def test_finetune_gives_frequent_target_words_their_own_word_vectors(corpus) -> None:
    import dataclasses

    import keras

    from stages.common.models import grow_inputs
    from stages.common.params import ParamsError
    from stages.finetune import FinetuneConfig, finetune

    texts, y = corpus
    f = fit_featurizer(texts[:100], FeaturizerConfig(kind="seq", max_tokens=10, maxlen=24))  # no cue words
    cfg = dataclasses.replace(LSTM, bag_of_embeddings=True, embedding_warmup_epochs=1, bag_bigram_buckets=32)
    source = train_model(cfg, f.transform(texts[:100]), y[:100], input_dim=f.input_dim, seq_len=24, seed=1).model
    rows = keras.ops.convert_to_numpy(source.get_layer("embedding").embeddings)

    # the grown copy: the source's rows and weights, zero rows after them, the same predictions on old ids
    grown = grow_inputs(source, cfg, f.input_dim + 3)
    table = keras.ops.convert_to_numpy(grown.get_layer("embedding").embeddings)
    np.testing.assert_array_equal(table[: len(rows)], rows)
    assert table.shape == (len(rows) + 3, rows.shape[1]) and not table[len(rows) :].any()
    X = f.transform(texts)
    np.testing.assert_array_equal(predict_proba(grown, X), predict_proba(source, X))

    target = _target_table(texts, y)
    ft = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate=0.05, epochs=1, new_words_min_count=2)
    featurizer, splits, result = finetune(target, f, source, cfg, ft, seed=1)
    added = featurizer.vocabulary[len(f.vocabulary) :]
    assert featurizer.vocabulary[: len(f.vocabulary)] == f.vocabulary
    assert {"great", "awful"} <= set(added) and result.summary["new_words"] == len(added)
    np.testing.assert_array_equal(splits["test"]["X"], featurizer.transform(target[target.split == "test"]["text"]))
    assert splits["train"]["X"].max() >= f.input_dim  # the target's features use the new ids
    tuned = keras.ops.convert_to_numpy(result.model.get_layer("embedding").embeddings)
    assert tuned.shape[0] == featurizer.input_dim and np.abs(tuned[len(rows) :]).sum(axis=1).min() > 0  # all learnt
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(source.get_layer("embedding").embeddings), rows)

    # the default (0) keeps the source vocabulary
    same, _, kept = finetune(target, f, source, cfg, dataclasses.replace(ft, new_words_min_count=0), seed=1)
    assert same is f and kept.summary["new_words"] == 0

    # a bag-of-words model gains n-grams: its first layer gains zero rows, so old predictions stay
    bow = fit_featurizer(texts[:100], FeaturizerConfig(kind="bow", max_tokens=10, ngram_range=(1, 2), mode="tfidf"))
    mlp = train_model(MLP, bow.transform(texts[:100]), y[:100], input_dim=bow.input_dim, seq_len=None, seed=1).model
    wide = grow_inputs(mlp, MLP, bow.input_dim + 3)
    kernel = wide.get_layer("dense_1").get_weights()[0]
    assert kernel.shape[0] == bow.input_dim + 3 and not kernel[bow.input_dim :].any()
    Xb = bow.transform(texts)
    padded = sp.hstack([Xb, sp.csr_matrix((Xb.shape[0], 3), dtype=Xb.dtype)]).tocsr()
    np.testing.assert_allclose(predict_proba(wide, padded), predict_proba(mlp, Xb), rtol=1e-6)
    grown_bow, _, tuned_mlp = finetune(target, bow, mlp, MLP, ft, seed=1)
    added = len(grown_bow.vocabulary) - len(bow.vocabulary)
    assert grown_bow.vocabulary[: len(bow.vocabulary)] == bow.vocabulary and tuned_mlp.summary["new_words"] == added > 0
    first = tuned_mlp.model.get_layer("dense_1").get_weights()[0]
    assert first.shape[0] == grown_bow.input_dim and np.abs(first[bow.input_dim :]).sum() > 0  # learnt
    with pytest.raises(ParamsError, match=r"input_dim: cannot shrink dense_1 from"):
        grow_inputs(mlp, MLP, bow.input_dim - 1)


def test_source_reviews_join_the_fitting_rows_never_the_validation_rows(corpus, monkeypatch) -> None:
    """finetune's ``source_reviews``: a seeded sample of the source's training rows is appended to the
    rows the model fits; the validation rows (early stopping) stay the target's own, the same as without."""
    import stages.train as train_stage
    from stages.finetune import FinetuneConfig, finetune

    texts, y = corpus
    seen: list[tuple[int, np.ndarray, np.ndarray]] = []
    real_fit = train_stage._fit

    def spy(model, X, y_, fit_idx, val_idx, **kwargs):
        seen.append((X.shape[0], fit_idx, val_idx))
        return real_fit(model, X, y_, fit_idx, val_idx, **kwargs)

    monkeypatch.setattr(train_stage, "_fit", spy)
    # the source: a bag-of-words model on the first 100 reviews; the target grows 1-2-grams, so its
    # inputs are wider than the source's rows, which get zero columns for the new terms
    bow = fit_featurizer(texts[:100], FeaturizerConfig(kind="bow", max_tokens=10, ngram_range=(1, 2), mode="tfidf"))
    X_source = bow.transform(texts[:100])
    mlp = train_model(MLP, X_source, y[:100], input_dim=bow.input_dim, seq_len=None, seed=1).model
    target = _target_table(texts[100:], y[100:])
    ft = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate=0.01, epochs=1, new_words_min_count=2)
    seen.clear()
    grown, _, alone = finetune(target, bow, mlp, MLP, ft, seed=1, source_train=(X_source, y[:100]))
    assert grown.input_dim > bow.input_dim and alone.summary["source_reviews"] == 0
    (n_alone, fit_alone, val_alone), *_ = seen
    seen.clear()
    _, _, mixed = finetune(
        target, bow, mlp, MLP, dataclasses.replace(ft, source_reviews=30), seed=1, source_train=(X_source, y[:100])
    )
    (n_mixed, fit_mixed, val_mixed), *_ = seen
    assert n_mixed == n_alone + 30 and mixed.summary["source_reviews"] == 30
    np.testing.assert_array_equal(val_mixed, val_alone)  # the target's own validation rows, unchanged
    np.testing.assert_array_equal(fit_mixed, np.concatenate([fit_alone, n_alone + np.arange(30)]))
    assert mixed.summary["train_rows"] == alone.summary["train_rows"] + 30
    assert mixed.summary["validation_rows"] == alone.summary["validation_rows"]
    weights = zip(mixed.model.get_weights(), alone.model.get_weights(), strict=True)
    assert any(not np.allclose(a, b) for a, b in weights)  # the source rows were learnt from

    # the sample is seeded: the same seed, the same model
    again = finetune(
        target, bow, mlp, MLP, dataclasses.replace(ft, source_reviews=30), seed=1, source_train=(X_source, y[:100])
    )
    for a, b in zip(again.result.model.get_weights(), mixed.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    with pytest.raises(ParamsError, match=r"finetune\.source_reviews: asks for 101 .* the source has 100"):
        finetune(target, bow, mlp, MLP, dataclasses.replace(ft, source_reviews=101), 1, (X_source, y[:100]))
    with pytest.raises(ValueError, match="source_train"):
        finetune(target, bow, mlp, MLP, dataclasses.replace(ft, source_reviews=5), seed=1)
    with pytest.raises(ParamsError, match=r"finetune\.source_reviews\.lstm: must be >= 0"):
        raw = {"source": "imdb", "targets": ["yelp"], "learning_rate": {"mlp": 0.002, "lstm": 0.002}}
        parse(FinetuneConfig, {**raw, "source_reviews": {"mlp": 0, "lstm": -1}}, "finetune")
