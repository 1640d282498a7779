"""select + explain: the LIME contract, SHAP and integrated gradients on models whose word weights are
known, the deletion metrics, rank agreement, escaping."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from stages.common.explanation.explaining import Explanation, explain_text, review_seed
from stages.common.explanation.trust import deletion_curves, jaccard, remove_words, submodular_pick
from stages.common.features.featurizer import Featurizer
from stages.common.modelling.prediction import TextModel, fast_predictor
from stages.common.params.parsing import parse
from stages.common.params.schema import ExplainConfig, FeaturizerConfig, SelectConfig
from stages.common.report import render
from stages.explain import (
    explain_one,
    explain_reviews,
    features_png,
    global_importance,
    heatmap_png,
    highlight_html,
    ranking,
)
from stages.select import select_reviews

WEIGHTS = {"great": 3.0, "awful": -3.0, "fun": 1.0}


def _known_model() -> TextModel:
    """A known Keras model: logistic of the summed weights of the (distinct) words present."""
    import keras

    words = list(WEIGHTS)
    featurizer = Featurizer(
        FeaturizerConfig(kind="bow", max_tokens=10, mode="multi_hot", min_count=1), vocabulary=words
    )
    inputs = keras.Input(shape=(len(words),), sparse=True)
    dense = keras.layers.Dense(1, activation="sigmoid", name="dense_1")
    net = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.array([[WEIGHTS[t]] for t in words], np.float32), np.zeros(1, np.float32)])
    return TextModel(featurizer, fast_predictor(net), net)


def _known_sequence_model() -> TextModel:
    """The same weights read as a sequence: each word's vector is its weight, the mean over the words
    goes through a sigmoid (so a word's effect is its weight over the review's length)."""
    import keras

    words = list(WEIGHTS)
    featurizer = Featurizer(FeaturizerConfig(kind="seq", max_tokens=10, min_count=1, maxlen=40), vocabulary=words)
    inputs = keras.Input(shape=(None,), dtype="int32")
    embedding = keras.layers.Embedding(featurizer.input_dim, 1, mask_zero=True, name="embedding")
    x = keras.layers.GlobalAveragePooling1D()(embedding(inputs))
    out = keras.layers.Dense(1, activation="sigmoid", name="proba")
    net = keras.Model(inputs, out(x))
    embedding.set_weights([np.array([[0.0], [0.0]] + [[WEIGHTS[t]] for t in words], np.float32)])
    out.set_weights([np.array([[12.0]], np.float32), np.zeros(1, np.float32)])
    return TextModel(featurizer, fast_predictor(net), net)


known = _known_model()
known_sequence = _known_sequence_model()
linear_model = known.proba


TEXT = "the plot was great and the cast was fun but the ending was long"


def test_same_random_state_same_explanation_different_state_different() -> None:
    a = explain_text(TEXT, "r1", 1, known, random_state=7, num_samples=300)
    b = explain_text(TEXT, "r1", 1, known, random_state=7, num_samples=300)
    c = explain_text(TEXT, "r1", 1, known, random_state=8, num_samples=300)
    assert a.words == b.words and a.score == b.score
    assert a.words != c.words
    assert a.top_words(1) == ["great"] and a.words[0][1] > 0
    assert a.proba == pytest.approx(float(linear_model([TEXT])[0]))


def test_an_explanation_does_not_depend_on_what_was_explained_before() -> None:
    alone = explain_text(TEXT, "r2", 1, known, random_state=3, num_samples=200)
    explain_text("awful awful film", "r1", 0, known, random_state=3, num_samples=200)
    after = explain_text(TEXT, "r2", 1, known, random_state=3, num_samples=200)
    assert alone.words == after.words
    assert review_seed(3, "r1") != review_seed(3, "r2") and review_seed(3, "r1") == review_seed(3, "r1")


def test_deletion_metrics_on_a_known_model() -> None:
    p_full = float(linear_model([TEXT])[0])
    p_without_great = float(linear_model([remove_words(TEXT, ["great"])])[0])
    p_only_great = float(linear_model(["great"])[0])
    curves = deletion_curves([TEXT], [["great", "fun"]], [1], linear_model, ks=[1, 2])
    assert curves["comprehensiveness"][0, 0] == pytest.approx(p_full - p_without_great)
    assert curves["sufficiency"][0, 0] == pytest.approx(p_full - p_only_great)
    # with both words removed only the neutral words are left: p = 0.5
    assert curves["comprehensiveness"][0, 1] == pytest.approx(p_full - 0.5)
    # a negative prediction: the predicted class is negative, so removing "awful" lowers p(negative)
    neg = deletion_curves(["awful plot"], [["awful"]], [0], linear_model, ks=[1])
    assert neg["comprehensiveness"][0, 0] == pytest.approx((1 - linear_model(["awful plot"])[0]) - 0.5)


@pytest.mark.parametrize("method", ["lime", "shap", "integrated_gradients"])
@pytest.mark.parametrize("model", [known, known_sequence], ids=["bag of words", "sequence"])
def test_each_method_ranks_the_known_words_first(method: str, model: TextModel) -> None:
    text = "the plot was great and the cast was fun but the ending was awful and long"
    cfg = ExplainConfig(num_samples=500, faithfulness_k=(1,))
    e = explain_one(method, text, "r1", 1, model, cfg, random_state=0)
    weights = dict(e.words)
    assert set(e.top_words(3)) == {"great", "awful", "fun"}
    assert weights["great"] > weights["fun"] > 0 > weights["awful"]
    assert e.proba == pytest.approx(float(model.proba([text])[0]), abs=1e-6)
    if method != "lime":  # SHAP's and the gradients' weights add up to p(review) - p(no words)
        assert e.local_pred == pytest.approx(e.proba, abs=0.01)
    if method != "lime" and model is known:  # a word a bag of words gives no weight gets none
        assert abs(weights.get("the", 0.0)) < 1e-6


def test_shap_is_reproducible_and_its_masks_score_as_the_masked_texts() -> None:
    from stages.common.explanation import shapley

    text = "Great cast. The plot was awful, and the ending... fun!<br />The end"
    a = explain_one("shap", text, "r1", 1, known_sequence, ExplainConfig(), random_state=4)
    assert a.words == explain_one("shap", text, "r1", 1, known_sequence, ExplainConfig(), random_state=4).words
    offsets = shapley._masker_class()().pieces(text)
    assert [text[a:b] for a, b in offsets][-4:] == ["fun", "br", "The", "end"]  # LIME's words, in order
    tree = shapley.sentence_tree(["Great ", "cast. ", "The ", "plot ", "was ", "awful"])
    assert tree[:, :2].tolist() == [[0, 1], [2, 3], [4, 5], [7, 8], [6, 9]]  # each sentence first, then both
    assert tree[-1, 3] == 6  # one root over every piece
    masks = np.random.default_rng(0).random((40, len(offsets))) < 0.5
    texts = [shapley.masked_text(text, offsets, row) for row in masks]
    assert texts[0] != text and all(t.count("<br />") == 1 or "br" not in t for t in texts)
    for model in (known, known_sequence):
        predict = shapley.mask_predictor(text, offsets, model)
        assert predict(masks) == pytest.approx(model.proba(texts), abs=1e-6)


def test_integrated_gradients_credit_a_word_with_its_unigram_and_half_of_each_pair() -> None:
    import keras

    vocabulary = ["great", "not", "not great"]
    featurizer = Featurizer(
        FeaturizerConfig(kind="bow", max_tokens=10, mode="count", ngram_range=(1, 2), min_count=1), vocabulary
    )
    inputs = keras.Input(shape=(3,), sparse=True)
    dense = keras.layers.Dense(1, name="dense_1")  # linear: the attribution of a column is value × weight
    net = keras.Model(inputs, dense(inputs))
    dense.set_weights([np.array([[1.0], [0.5], [-4.0]], np.float32), np.zeros(1, np.float32)])
    model = TextModel(featurizer, fast_predictor(net), net)
    e = explain_one("integrated_gradients", "not great", "r", 0, model, ExplainConfig(), random_state=0)
    assert dict(e.words) == pytest.approx({"great": 1.0 - 2.0, "not": 0.5 - 2.0}, abs=1e-5)


def test_explain_reviews_measures_each_method_and_their_agreement() -> None:
    rng = np.random.default_rng(0)
    filler = ["the", "a", "plot", "cast", "film", "story", "was", "and", "it", "of"]
    texts = [" ".join([*rng.choice(filler, 12), w]) for w in ("great", "awful", "fun", "great")]
    reviews = pd.DataFrame({"id": [f"r{i}" for i in range(4)], "text": texts, "label": [1, 0, 1, 1]})
    cfg = ExplainConfig(num_samples=200, faithfulness_k=(1, 2), methods=("lime", "shap", "integrated_gradients"))
    explanations, metrics = explain_reviews(reviews, known, cfg, random_state=1)
    assert list(explanations) == ["lime", "shap", "integrated_gradients"]
    for method, exps in explanations.items():
        assert [e.review_id for e in exps] == ["r0", "r1", "r2", "r3"]
        assert metrics[method]["aopc_comprehensiveness"] > metrics["random"]["aopc_comprehensiveness"]
        assert metrics[method]["aopc_sufficiency"] < metrics["random"]["aopc_sufficiency"]
    assert 0 <= metrics["lime"]["stability_top10_jaccard"] <= 1
    assert "stability_top10_jaccard" not in metrics["shap"]  # SHAP and the gradients are not random
    assert metrics["integrated_gradients"]["additivity_gap"] < 0.01
    assert set(metrics["agreement"]) == {"lime_vs_shap", "lime_vs_integrated_gradients", "shap_vs_integrated_gradients"}
    # the one known word of each review leads every method: top words agree
    assert metrics["agreement"]["shap_vs_integrated_gradients"]["spearman"] > 0.5
    order = ranking(metrics, list(explanations))
    assert [r["comprehensiveness"] for r in order] == sorted((r["comprehensiveness"] for r in order), reverse=True)
    picked, _ = explain_reviews(reviews, known, ExplainConfig(num_samples=200, methods=("shap", "lime")), 1, 2)
    assert list(picked) == ["shap", "lime"] and len(picked["shap"]) == len(picked["lime"]) == 2
    assert [e.review_id for e in picked["lime"]] == [e.review_id for e in picked["shap"]]
    imp = global_importance(explanations["lime"])
    assert imp.iloc[0]["word"] in {"great", "awful"}
    assert features_png(explanations["shap"], "t").startswith(b"\x89PNG")
    assert heatmap_png(explanations["shap"], "t").startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("methods", "fault"),
    [(["lime", "gradcam"], "explain.methods[1]"), ([], "explain.methods"), (["shap", "shap"], "explain.methods[1]")],
)
def test_bad_explain_methods_fail_naming_the_key(methods: list[str], fault: str) -> None:
    from stages.common.errors import ParamsError

    with pytest.raises(ParamsError, match=re.escape(fault)):
        parse(ExplainConfig, {"methods": methods}, "explain")


def test_submodular_pick_covers_different_words() -> None:
    def ex(i: int, words: dict[str, float]) -> Explanation:
        return Explanation(f"r{i}", 1, 0.9, 1, 0.9, 0.0, 1.0, list(words.items()))

    exps = [ex(0, {"great": 1.0, "fun": 0.5}), ex(1, {"great": 0.9, "fun": 0.4}), ex(2, {"awful": -0.8})]
    assert submodular_pick(exps, 2) == [0, 2]
    assert jaccard(["a", "b"], ["b", "c"]) == pytest.approx(1 / 3)


def test_selection_is_model_independent_and_seeded() -> None:
    ids = [f"t{i}" for i in range(50)]
    cfg = SelectConfig(method="random", n_reviews=5)
    first = select_reviews(ids, set(), cfg, seed=1)
    assert first == select_reviews(ids, set(), cfg, seed=1) != select_reviews(ids, set(), cfg, seed=2)
    assert first == sorted(first, key=ids.index)
    assert select_reviews(ids, set(), SelectConfig(method="first", n_reviews=3), 0) == ["t0", "t1", "t2"]
    wrong = {"t3", "t7", "t9"}
    assert set(select_reviews(ids, wrong, SelectConfig(method="misclassified", n_reviews=2), 0)) <= wrong
    assert len(select_reviews(ids, set(), SelectConfig(method="submodular", n_reviews=2, pool_size=9), 0)) == 9


def test_review_text_is_escaped_in_html() -> None:
    evil = "great <script>alert('x')</script> <img src=x onerror=alert(1)> fun"
    reviews = pd.DataFrame({"id": ["<b>id</b>"], "text": [evil], "label": [1]})
    e = explain_text(evil, "<b>id</b>", 1, known, random_state=0, num_samples=100)
    for page in (
        highlight_html(reviews, {"lime": [e], "integrated_gradients": [e]}, "t <script>"),
        render.page("x", [render.highlighted_reviews({"<b>id</b>": evil}, [e.to_dict()])]),
        render.table(pd.DataFrame({"word": ["<script>alert(1)</script>"], "v": [1.0]})),
    ):
        assert "<script" not in page and "<img" not in page and "<b>id" not in page
        assert "&lt;" in page  # shown as text, not markup
