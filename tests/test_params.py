"""Params are validated before any work, with the key path in every message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stages.common.config import DatasetConfig, ModelConfig
from stages.common.errors import ParamsError
from stages.common.features import FeaturizerConfig
from stages.common.params import flatten, load_params, parse, section, seed_from

ROOT = Path(__file__).resolve().parents[1]


def test_flatten_uses_dotted_names() -> None:
    assert flatten({"mlp": {"units": 16, "opt": {"lr": 0.1}}, "models": ["a"]}) == {
        "mlp.units": 16,
        "mlp.opt.lr": 0.1,
        "models": ["a"],
    }


def test_project_params_parse() -> None:
    params = load_params(ROOT / "params.yaml")
    assert seed_from(params) == params["base"]["seed"]
    for model in params["models"]:
        parse(FeaturizerConfig, section(params, f"vectorize.{model}"), f"vectorize.{model}")
        parse(ModelConfig, section(params, model), model)
    for name, data in params["datasets"].items():
        parse(DatasetConfig, data, f"datasets.{name}")


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (ModelConfig, {"architecture": "lstm", "epochs": -1}, "lstm.epochs: must be >= 1"),
        (ModelConfig, {"architecture": "lstm", "unitz": 3}, "lstm.unitz: unknown key"),
        (ModelConfig, {"architecture": "lstm", "units": "many"}, "lstm.units: expected an integer"),
        (ModelConfig, {"architecture": "lstm", "units": 2.5}, "lstm.units: expected an integer"),
        (ModelConfig, {"architecture": "gru"}, "lstm.architecture: 'gru' is not one of"),
        (ModelConfig, {"architecture": "mlp", "hidden_units": []}, "lstm.hidden_units: an MLP needs"),
        (ModelConfig, {"architecture": "lstm", "dropout": 1.5}, "lstm.dropout: must be in [0, 1)"),
        (ModelConfig, {"units": 3}, "lstm.architecture: required key is missing"),
        (ModelConfig, {"architecture": "lstm", "pooling": "max"}, "lstm.pooling: 'max' is not one of"),
        (FeaturizerConfig, {"kind": "seq", "max_tokens": 10, "maxlen": 0}, "lstm.maxlen: must be > 0"),
        (FeaturizerConfig, {"kind": "bow", "max_tokens": 10, "skip_top": 10}, "lstm.skip_top: must be smaller"),
        (FeaturizerConfig, {"kind": "bow", "max_tokens": 10, "ngram_range": [2, 1]}, "lstm.ngram_range"),
        (FeaturizerConfig, {"kind": "bow", "max_tokens": 10, "ngram_range": [1]}, "lstm.ngram_range: expected 2"),
        (DatasetConfig, {"format": "reviews", "source": "x", "label_column": "y", "test_size": 1.0}, "test_size"),
        (DatasetConfig, {"format": "reviews", "source": "x"}, "lstm.label_column: give exactly one"),
    ],
)
def test_bad_values_name_the_key(cls: type, data: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse(cls, data, "lstm")
    assert message in str(err.value)


def test_seed_must_be_a_non_negative_integer() -> None:
    with pytest.raises(ParamsError, match=r"base\.seed"):
        seed_from({"base": {"seed": "42"}})
    with pytest.raises(ParamsError, match=r"missing key 'base\.seed'"):
        seed_from({"base": {}})


def test_unreadable_params_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("base: [unclosed\n")
    with pytest.raises(ParamsError, match=str(bad)):
        load_params(bad)
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "base: {seed: 1}\ndatasets: {d: {}}\nmodels: [m]\nm: {}\nvectorize: {m: {}}\nmlpp: {}\n",
            "mlpp: unknown section",
        ),
        ("datasets: {d: {}}\nmodels: [m]\nvectorize: {m: {}}\n", "m: model 'm' is listed in models but has no section"),
        ("datasets: {d: {}}\nmodels: [m]\nm: {}\n", "vectorize.m: model 'm' is listed"),
        ("datasets: {d: {}}\nmodels: m\n", "models: expected a list"),
        ("datasets: {}\nmodels: []\n", "datasets: expected at least one dataset"),
    ],
)
def test_layout_is_checked_on_load(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert message in str(err.value)


def test_each_dataset_learns_one_way() -> None:
    from stages.common.errors import ParamsError
    from stages.common.params import check_layout

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    for change, fragment in (
        ({"from_scratch": ["imdb", "yelp"]}, "exactly one"),
        ({"from_scratch": ["imdb", "amazon"]}, "'amazon' is not in datasets"),
        ({"finetune": {**base["finetune"], "source": "yelp"}}, "finetune.source"),
        ({"from_scratch": []}, "exactly one"),
        ({"finetune": {**base["finetune"], "learning_rate": {"mlp": 0.001}}}, r"finetune\.learning_rate\.lstm: model"),
        ({"finetune": {**base["finetune"], "learning_rate": 0.001}}, r"finetune\.learning_rate: expected one rate"),
        (
            {"finetune": {**base["finetune"], "learning_rate": {"mlp": 0.001, "lstm": 0.001, "cnn": 0.1}}},
            r"finetune\.learning_rate\.cnn: not a model",
        ),
        (
            {"finetune": {**base["finetune"], "new_words_min_count": {"mlp": 0}}},
            r"finetune\.new_words_min_count\.lstm: model 'lstm' is listed in models but has no threshold",
        ),
        ({"finetune": {**base["finetune"], "new_words_min_count": 5}}, r"finetune\.new_words_min_count: expected one"),
    ):
        with pytest.raises(ParamsError, match=fragment):
            check_layout({**base, **change})
    check_layout({**base, "from_scratch": ["imdb", "yelp"], "finetune": {**base["finetune"], "targets": []}})
