"""LIME's fast path: the same samples, features and explanations as the usual recipe."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from lime.lime_text import IndexedString
from sklearn.feature_extraction.text import CountVectorizer

from stages.common.explanation.explaining import explain_text
from stages.common.explanation.lime_fast import fast_lime_base_class, legacy_removals, weighted_r2, weighted_ridge
from stages.common.explanation.lime_samples import SPLIT_EXPRESSION, encode_masked, encode_samples, word_tokens
from stages.common.features.featurizer import TokenBatch, fit_featurizer
from stages.common.features.tokens import token_spans, tokenize
from stages.common.modelling.models import build_model
from stages.common.modelling.prediction import TextModel, fast_predictor, predict_proba
from stages.common.params.schema import FeaturizerConfig
from tests.synthetic import model_config, reviews_frame

# markup, case, apostrophes, underscores, digits, non-ASCII letters, repeats
AWKWARD = [
    "Great movie!<br /><br />The plot wasn't bad, the cast_list was GREAT; 10/10 great.",
    "awful... awful ACTING. Café naïve über-fun; 'quoted' it's rock'n'roll <i>really</i> dull",
    "Good good good <a href='x'>link</a> bad_good the end",
]
EXCLUDED = ("the", "great", "was")
STRAY = "I <3 this film so much: the actors, the music and the story are fun > boring"  # stray "<": strings


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return reviews_frame(60, seed=5)["text"].tolist() + AWKWARD


def _featurizers(texts: list[str]):
    return {
        "tfidf-1-2": fit_featurizer(
            texts,
            FeaturizerConfig(
                kind="bow", max_tokens=400, ngram_range=(1, 2), mode="tfidf", sublinear_tf=True, min_count=1
            ),
        ),
        "count-1-3": fit_featurizer(
            texts, FeaturizerConfig(kind="bow", max_tokens=600, ngram_range=(1, 3), mode="count", min_count=1)
        ),
        "seq-pre": fit_featurizer(texts, FeaturizerConfig(kind="seq", max_tokens=100, maxlen=12, min_count=1)),
        "tfidf-1-2-excluding": fit_featurizer(
            texts,
            FeaturizerConfig(
                kind="bow", max_tokens=400, ngram_range=(1, 2), mode="tfidf", exclude_terms=EXCLUDED, min_count=1
            ),
        ),
        "seq-excluding": fit_featurizer(
            texts, FeaturizerConfig(kind="seq", max_tokens=100, maxlen=12, exclude_terms=EXCLUDED, min_count=1)
        ),
        "seq-post": fit_featurizer(
            texts,
            FeaturizerConfig(kind="seq", max_tokens=100, maxlen=12, padding="post", truncating="post", min_count=1),
        ),
    }


def test_encode_matches_countvectorizer_counts(texts) -> None:
    f = fit_featurizer(
        texts, FeaturizerConfig(kind="bow", max_tokens=600, ngram_range=(1, 3), mode="count", min_count=1)
    )
    ref = CountVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False, ngram_range=(1, 3))
    ref.vocabulary_ = {t: i for i, t in enumerate(f.vocabulary)}
    ours, theirs = f.transform(texts), ref.transform(texts).astype(np.float32).tocsr()
    assert (ours != theirs).nnz == 0 and np.array_equal(ours.indices, theirs.indices)


def test_token_spans_are_the_tokens_with_offsets() -> None:
    for text in AWKWARD:
        spans = token_spans(text)
        assert [t for _, t in spans] == tokenize(text)
        assert all(text[s : s + len(t)].lower() == t for s, t in spans)
    assert token_spans(STRAY) is None
    assert token_spans("İstanbul") is None  # lower-casing changes the length


@pytest.mark.parametrize("name", ["tfidf-1-2", "count-1-3", "seq-pre", "seq-post", "tfidf-1-2-excluding"])
def test_masked_tokens_give_the_features_of_the_perturbed_strings(texts, name: str) -> None:
    f = _featurizers(texts)[name]
    rng = np.random.default_rng(0)
    for text in AWKWARD + texts[:5]:
        indexed = IndexedString(text, split_expression=SPLIT_EXPRESSION, bow=True)
        terms, term_ids, words = word_tokens(text, indexed)
        data = (rng.random((40, indexed.num_words())) < 0.5).astype(float)
        data[0] = 1
        rows, cols = np.nonzero(data[:, words] > 0)
        fast = f.encode(TokenBatch(terms=terms, ids=term_ids[cols], rows=rows.astype(np.int64), n_rows=len(data)))
        strings = [indexed.inverse_removing(np.flatnonzero(row == 0)) for row in data]
        slow = f.transform(strings)
        if sp.issparse(slow):
            assert fast.shape == slow.shape and (fast != slow).nnz == 0
        else:
            np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("name", ["tfidf-1-2", "seq-pre", "tfidf-1-2-excluding", "seq-excluding"])
def test_fast_explanations_equal_the_usual_recipe(texts, name: str) -> None:
    f = _featurizers(texts)[name]
    rng = np.random.default_rng(1)
    if f.config.kind == "bow":
        w = rng.normal(size=f.input_dim)
        model = TextModel(f, lambda X: 1 / (1 + np.exp(-(X @ w))))
    else:
        w = rng.normal(size=f.input_dim)
        model = TextModel(f, lambda X: 1 / (1 + np.exp(-w[X].sum(axis=1) / 4)))
    for i, text in enumerate([*AWKWARD, STRAY, texts[0]]):
        usual = explain_text(text, f"r{i}", 1, model, random_state=3, num_samples=300, fast=False)
        fast = explain_text(text, f"r{i}", 1, model, random_state=3, num_samples=300, fast=True)
        assert [w for w, _ in fast.words] == [w for w, _ in usual.words]
        np.testing.assert_allclose([v for _, v in fast.words], [v for _, v in usual.words], rtol=1e-9, atol=1e-12)
        assert fast.score == pytest.approx(usual.score) and fast.proba == pytest.approx(usual.proba)


def test_fast_predictor_matches_keras_predict(texts) -> None:
    fs = _featurizers(texts)
    mlp = build_model(
        model_config("mlp", hidden_units=[8, 4], dropout=0.5),
        fs["tfidf-1-2"].input_dim,
    )
    X = fs["tfidf-1-2"].transform(texts)
    np.testing.assert_allclose(fast_predictor(mlp)(X), predict_proba(mlp, X), rtol=1e-5, atol=1e-6)
    lstm = build_model(
        model_config("lstm", embedding_dim=6, units=5),
        fs["seq-pre"].input_dim,
    )
    seq = fs["seq-pre"].transform(texts)
    seq[::3, :8] = 0  # rows of many lengths: chunks drop their all-padding columns
    fast = fast_predictor(lstm, batch_size=16)(seq)
    np.testing.assert_allclose(fast, predict_proba(lstm, seq), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("d", [1, 2, 3, 31, 32, 33, 107, 700])
def test_legacy_removals_replay_lime_sampling_calls(d: int) -> None:
    """The compiled sampler removes what LIME's choice() calls remove and leaves the generator where they do."""
    ours, theirs = np.random.RandomState(11 + d), np.random.RandomState(11 + d)
    sizes = ours.randint(1, d + 1, 400)
    assert np.array_equal(sizes, theirs.randint(1, d + 1, 400))
    removed = legacy_removals(ours, d, sizes)
    expected = np.zeros((len(sizes), d), dtype=bool)
    for i, size in enumerate(sizes):  # lime_text.LimeTextExplainer.__data_labels_distances
        expected[i, theirs.choice(range(d), size, replace=False)] = True
    assert np.array_equal(removed, expected)
    assert np.array_equal(removed.sum(axis=1), sizes)
    assert ours.randint(0, 2**31 - 1, 5).tolist() == theirs.randint(0, 2**31 - 1, 5).tolist()


def test_weighted_ridge_and_r2_match_scikit_learn() -> None:
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(4)
    for d in (1, 9, 120):
        X = (rng.random((800, d)) < 0.6).astype(float)
        y, w = rng.random(800), rng.random(800)
        for alpha in (0.01, 1.0):
            ref = Ridge(alpha=alpha).fit(X, y, sample_weight=w)
            coef, intercept = weighted_ridge(X, y, w, alpha)
            np.testing.assert_allclose(coef, ref.coef_, rtol=1e-9, atol=1e-12)
            assert intercept == pytest.approx(ref.intercept_, rel=1e-9, abs=1e-12)
            pred = X @ coef + intercept
            assert weighted_r2(y, pred, w) == pytest.approx(r2_score(y, pred, sample_weight=w), rel=1e-9)
    assert weighted_r2(np.ones(5), np.ones(5), np.ones(5)) == 1.0  # constant target, as scikit-learn


@pytest.mark.parametrize("num_features", [3, 10])
def test_fast_lime_base_equals_lime_base(num_features: int) -> None:
    """Highest-weights selection is solved in NumPy; forward selection (<= 6 features) is LIME's own."""
    from lime.lime_base import LimeBase

    rng = np.random.default_rng(2)
    data = (rng.random((600, 25)) < 0.5).astype(float)
    data[0] = 1
    labels = np.column_stack([1 - (p := 1 / (1 + np.exp(-(data @ rng.normal(size=25))))), p])
    distances = (1 - np.sqrt(data.sum(axis=1) / 25)) * 100

    def kernel(d):
        return np.sqrt(np.exp(-(d**2) / 25**2))

    ours = fast_lime_base_class()(kernel, random_state=np.random.RandomState(0))
    stock = LimeBase(kernel, random_state=np.random.RandomState(0))
    a = ours.explain_instance_with_data(data, labels, distances, 1, num_features)
    b = stock.explain_instance_with_data(data, labels, distances, 1, num_features)
    assert [f for f, _ in a[1]] == [f for f, _ in b[1]]
    np.testing.assert_allclose([v for _, v in a[1]], [v for _, v in b[1]], rtol=1e-9, atol=1e-12)
    assert a[0] == pytest.approx(b[0]) and a[2] == pytest.approx(b[2]) and a[3] == pytest.approx(b[3])


@pytest.mark.parametrize("name", ["tfidf-1-2", "seq-pre"])
def test_encode_masked_in_threads_equals_one_encode(texts, name: str) -> None:
    """LIME's samples are encoded in chunks of rows, one per core: the same matrix as one encode."""
    f = _featurizers(texts)[name]
    text = texts[1] + " " + AWKWARD[0]
    indexed = IndexedString(text, split_expression=SPLIT_EXPRESSION, bow=True)
    terms, term_ids, words = word_tokens(text, indexed)
    kept = np.random.default_rng(3).random((1500, indexed.num_words())) < 0.5
    rows, cols = np.nonzero(kept[:, words])
    whole = f.encode(TokenBatch(terms=terms, ids=term_ids[cols], rows=rows, n_rows=len(kept)))
    chunked = encode_masked(f, terms, term_ids, kept[:, words])
    if sp.issparse(whole):
        assert chunked.shape == whole.shape and (chunked != whole).nnz == 0
    else:
        np.testing.assert_array_equal(chunked, whole)


@pytest.mark.parametrize("ngrams", [(1, 2), (1, 1), (2, 2)])
def test_compiled_ngram_counts_equal_encode(texts, ngrams) -> None:
    """Uni/bigram bags of LIME's samples are counted in compiled code: the very matrix encode() builds.

    Rows that keep every word, none of them, or a few (new bigrams across removed words), with
    repeated words; 1200 rows are encoded in blocks of rows, one per core.
    """
    cfg = FeaturizerConfig(kind="bow", max_tokens=500, ngram_range=ngrams, mode="tfidf", sublinear_tf=True, min_count=1)
    f = fit_featurizer(texts, cfg)
    text = texts[2] + " great great acting, the the plot " + AWKWARD[0]
    indexed = IndexedString(text, split_expression=SPLIT_EXPRESSION, bow=True)
    terms, term_ids, words = word_tokens(text, indexed)
    data = (np.random.default_rng(7).random((1200, indexed.num_words())) < 0.7).astype(float)
    data[0], data[1], data[2] = 1.0, 0.0, (np.arange(indexed.num_words()) % 3 == 0)
    rows, cols = np.nonzero(data[:, words] > 0)
    whole = f.encode(TokenBatch(terms=terms, ids=term_ids[cols], rows=rows, n_rows=len(data)))
    ours = encode_samples(f, terms, term_ids, words, data)
    assert ours.shape == whole.shape and (ours != whole).nnz == 0
    assert np.array_equal(ours.indptr, whole.indptr) and np.array_equal(ours.indices, whole.indices)
    assert np.array_equal(ours.data, whole.data)  # same order, same float32 values
    assert ours[1].nnz == 0 and ours[0].nnz > 0


@pytest.mark.parametrize("name", ["tfidf-1-2-excluding", "seq-excluding"])
def test_the_fast_samples_leave_out_the_excluded_terms_exactly(texts, name: str) -> None:
    """With vectorize.exclude_terms the compiled n-gram counts still equal the perturbed strings' features."""
    f = _featurizers(texts)[name]
    rng = np.random.default_rng(2)
    for text in [*AWKWARD, *texts[:5]]:
        indexed = IndexedString(text, split_expression=SPLIT_EXPRESSION, bow=True)
        terms, term_ids, words = word_tokens(text, indexed)
        data = (rng.random((30, indexed.num_words())) < 0.5).astype(float)
        data[0] = 1
        fast = encode_samples(f, terms, term_ids, words, data)
        slow = f.transform([indexed.inverse_removing(np.flatnonzero(row == 0)) for row in data])
        if sp.issparse(slow):
            assert fast.shape == slow.shape and abs(fast - slow).max() < 1e-6
        else:
            np.testing.assert_array_equal(fast, slow)
