"""behave: the suite file's checks, template expansion, and each kind of test on known and tiny models."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.behave import expand, load_suite, metrics, run_suite
from stages.common.errors import DataError
from stages.common.features.featurizer import fit_featurizer
from stages.common.modelling.prediction import predict_proba
from stages.common.modelling.training import train_model
from stages.common.params.schema import BehaveConfig, FeaturizerConfig
from tests.synthetic import NEGATIVE, POSITIVE, model_config, reviews_frame

ROOT = Path(__file__).resolve().parents[1]
CFG = BehaveConfig(max_cases=50, min_cases=3, typos=1, tolerance=0.0, examples=2)

SUITE = """
words:
  thing: [plot, food, cast]
  pos: [great, superb]
  neg: [awful, dull]
  person: [John, Mary, Anna]
tests:
  - {name: plain positive, kind: mft, label: positive, templates: ["The {thing} was {pos}."]}
  - {name: two things, kind: mft, label: negative, templates: ["The {thing} and the {thing} were {neg}."]}
  - {name: names, kind: inv, swap: person}
  - {name: numbers, kind: inv, swap: numbers}
  - {name: negative added, kind: dir, direction: down, append: ["It was {neg}."]}
  - {name: negative added expected to raise, kind: dir, direction: up, append: ["It was {neg}."]}
  - {name: typos, kind: typo}
"""


def keyword_model(texts: list[str]) -> np.ndarray:
    """P(positive) from cue words only: a known model whose behaviour each test can predict."""
    out = []
    for t in texts:
        words = re.findall(r"[a-z]+", t.lower())
        score = sum(w in ("great", "superb") for w in words) - sum(w in ("awful", "dull") for w in words)
        out.append(1 / (1 + np.exp(-(2 * score - 0.5))))  # no cue word: 0.38, negative
    return np.array(out)


REVIEWS = pd.DataFrame(
    {
        "id": ["a", "b", "c", "d", "e"],
        "text": [
            "John thought the plot was great.",
            "Mary and Anna found it dull.",
            "A great film, 10 out of 10 and 120 minutes well spent.",
            "Seen in 1999 with John.",
            "Superb acting throughout.",
        ],
    }
)


def test_the_project_suite_loads_and_every_test_has_cases() -> None:
    suite = load_suite((ROOT / "behaviour.yaml").read_text(encoding="utf-8"), "behaviour.yaml")
    assert {t.kind for t in suite.tests} == {"mft", "inv", "dir", "typo"}
    for test in suite.tests:
        for template in getattr(test, "templates", []) + getattr(test, "append", []):
            assert expand(template, suite.words), template


def test_expansion_fills_every_combination_and_draws_a_repeated_placeholder_twice() -> None:
    words = {"thing": ["plot", "food", "cast"], "pos": ["great", "superb"]}
    assert len(expand("The {thing} was {pos}.", words)) == 6
    two = expand("The {thing} and the {thing}", words)
    assert len(two) == 6 and "The plot and the plot" not in two and "The plot and the food" in two
    assert expand("no placeholders", words) == ["no placeholders"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"The {thing} was {pos}."', '"The {thing} was {pos."', "tests[0] (plain positive).templates[0]"),
        ('"The {thing} was {pos}."', '"The {thing} was {pso}."', "'The {thing} was {pso}.': unknown placeholder {pso}"),
        ('templates: ["The {thing} was {pos}."]', "templates: []", "tests[0] (plain positive).templates: List should"),
        ("person: [John, Mary, Anna]", "person: []", "words.person: empty word list"),
        ("swap: person}", "swap: persons}", "tests[2] (names).swap: 'persons' is neither a word list"),
        ("kind: typo}", "kind: typos}", "tests[6] (typos): Input tag 'typos'"),
        ("{name: names, kind: inv", "{name: names, kind: inv, label: positive", "tests[2] (names).label"),
        ("{name: typos, kind: typo}", "{name: Names, kind: typo}", "tests[6] (Names): another test has the same name"),
    ],
)
def test_a_bad_entry_names_the_file_and_the_entry(old: str, new: str, message: str) -> None:
    assert old in SUITE
    with pytest.raises(DataError, match="^" + re.escape("suite.yaml: ") + ".*" + re.escape(message)):
        load_suite(SUITE.replace(old, new, 1), "suite.yaml")


def _outcomes(predict=keyword_model, reviews=REVIEWS, cfg=CFG):
    return {o.name: o for o in run_suite(load_suite(SUITE, "s"), reviews, predict, cfg, 0.5, seed=1)}


def test_each_kind_of_test_on_a_known_model() -> None:
    out = _outcomes()
    assert out["plain positive"].n_cases == 6 and out["plain positive"].failed == 0
    assert out["two things"].n_cases == 12 and out["two things"].failed == 0
    # only names change: the keyword model never flips; reviews without a listed name are passed over
    assert (out["names"].n_cases, out["names"].failed) == (3, 0)
    assert out["numbers"].n_cases == 2  # "10" (twice) and "120"; "1999" too; review d and c
    # appending a negative sentence lowers p(positive) for every review: no failure going down ...
    assert (out["negative added"].n_cases, out["negative added"].failed) == (5, 0)
    # ... and a failure for each review where it was expected to rise (tolerance 0)
    wrong = out["negative added expected to raise"]
    assert wrong.failed == 5 and wrong.examples[0]["p_positive"] < wrong.examples[0]["p_positive_before"]
    assert len(wrong.examples) == CFG.examples and wrong.examples[0]["edit"].startswith("+ 'It was ")


def test_typos_swap_two_adjacent_letters_and_can_flip_a_keyword_model() -> None:
    out = _outcomes(cfg=BehaveConfig(max_cases=50, min_cases=1, typos=5, tolerance=0.0, examples=5))
    typos = out["typos"]
    assert typos.n_cases == 5
    # five typos in reviews of at most five long words hit every cue word: "great" no longer counts,
    # and the three positive reviews (a, c, e) turn negative; the negative ones stay negative
    assert typos.failed == 3
    for example in typos.examples:
        for edit in example["edit"].split(", "):
            before, after = edit.split(" → ")
            assert sorted(before) == sorted(after) and before != after
            diff = [i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
            assert len(diff) == 2 and diff[1] == diff[0] + 1


def test_a_failed_mft_case_is_reported_with_its_sentence() -> None:
    out = _outcomes(predict=lambda texts: np.full(len(texts), 0.9))  # says positive to everything
    assert out["two things"].failed == 12 and out["two things"].failure_rate == 1.0
    assert out["two things"].examples[0]["text"].startswith("The ")
    assert "review_id" not in out["two things"].examples[0]


def test_too_few_cases_is_a_skip_with_the_reason_not_a_crash() -> None:
    reviews = REVIEWS[~REVIEWS["text"].str.contains("John|Mary")]
    out = _outcomes(reviews=reviews, cfg=BehaveConfig(max_cases=50, min_cases=3, typos=1, examples=1))
    names = out["names"]
    assert names.skipped and names.failure_rate is None
    assert "0 of the 2 test reviews have a word from words.person" in names.skipped
    assert "behave.min_cases (3)" in names.skipped
    m = metrics(list(out.values()))
    assert m["tests"]["names"] == {"n_cases": 0} and "failure_rate" in m["tests"]["plain_positive"]
    assert out["numbers"].skipped  # one review with a number
    assert "inv" not in m and m["mft"]["n_cases"] == 6 + 12  # skipped tests are not pooled


def test_same_seed_same_cases() -> None:
    a, b = _outcomes(), _outcomes()
    assert [(o.n_cases, o.failed, o.examples) for o in a.values()] == [
        (o.n_cases, o.failed, o.examples) for o in b.values()
    ]


@pytest.fixture(scope="module")
def tiny_model():
    df = reviews_frame(240, seed=3)
    df = df[df.stars != 3]
    featurizer = fit_featurizer(df["text"].tolist(), FeaturizerConfig(kind="bow", max_tokens=100, min_count=1))

    cfg = model_config("mlp", hidden_units=[8], epochs=8, batch_size=16, learning_rate=0.02)
    y = (df["stars"] >= 4).to_numpy().astype(np.int64)
    result = train_model(cfg, featurizer.transform(df["text"].tolist()), y, input_dim=featurizer.input_dim, seed=0)
    return lambda texts: predict_proba(result.model, featurizer.transform(texts))


def test_every_kind_runs_on_a_tiny_trained_model(tiny_model) -> None:
    words = {"cue_pos": POSITIVE, "cue_neg": NEGATIVE, "person": ["John", "Mary", "Anna"]}
    suite_text = f"""
words: {words}
tests:
  - {{name: cues positive, kind: mft, label: positive, templates: ["the film was {{cue_pos}}"]}}
  - {{name: cues negative, kind: mft, label: negative, templates: ["the film was {{cue_neg}}"]}}
  - {{name: names, kind: inv, swap: person}}
  - {{name: negative added, kind: dir, direction: down, append: ["{{cue_neg}} {{cue_neg}} {{cue_neg}}"]}}
  - {{name: typos, kind: typo}}
"""
    frame = reviews_frame(40, seed=9)
    reviews = pd.DataFrame({"id": [f"r{i}" for i in range(40)], "text": "John said: " + frame["text"]})
    cfg = BehaveConfig(max_cases=30, min_cases=5, typos=2, tolerance=0.0, examples=2)
    out = {o.name: o for o in run_suite(load_suite(suite_text, "s"), reviews, tiny_model, cfg, 0.5, seed=0)}
    assert out["cues positive"].failure_rate <= 0.25 and out["cues negative"].failure_rate <= 0.25
    assert out["names"].n_cases == 30 and out["names"].failure_rate <= 0.1  # names are not among its words
    assert out["negative added"].n_cases == 30 and out["negative added"].failure_rate == 0.0
    assert out["typos"].n_cases == 30 and out["typos"].skipped is None
    # the failure count is what the model says on the cases, re-scored here
    sentences = expand("the film was {cue_pos}", words)
    assert out["cues positive"].failed == int((tiny_model(sentences) < 0.5).sum())
