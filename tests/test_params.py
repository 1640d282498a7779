"""Params are validated before any work, with the key path in every message."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stages.common.errors import ParamsError
from stages.common.params import Params, load_params
from stages.common.params.loading import parse_params
from stages.common.params.parsing import flatten, parse
from stages.common.params.schema import DatasetConfig, FeaturizerConfig, ModelConfig, ReportConfig

ROOT = Path(__file__).resolve().parents[1]
LSTM = {"architecture": "lstm", "dropout": 0.2, "epochs": 2, "validation_split": 0.1, "early_stopping_patience": 1}
SEQ = {"kind": "seq", "max_tokens": 10, "min_count": 1}
BOW = {"kind": "bow", "max_tokens": 10, "min_count": 1}


def test_flatten_uses_dotted_names() -> None:
    assert flatten({"mlp": {"units": 16, "opt": {"lr": 0.1}}, "models": ["a"]}) == {
        "mlp.units": 16,
        "mlp.opt.lr": 0.1,
        "models": ["a"],
    }


def test_project_params_parse_into_one_typed_object() -> None:
    params = load_params(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert isinstance(params, Params) and params.seed == raw["base"]["seed"]
    for model in raw["models"]:
        assert params.featurizer(model).max_tokens == raw["vectorize"][model]["max_tokens"]
        assert params.model(model).architecture == raw[model]["architecture"]
        assert params.finetune.model(model).soup == raw["finetune"]["per_model"][model]["soup"]
    for name, data in raw["datasets"].items():
        assert params.dataset(name) == parse(DatasetConfig, data, f"datasets.{name}")
    assert params.explain.num_samples == raw["explain"]["num_samples"]
    assert params.experiment("imdb") == f"{raw['track']['experiment_prefix']}-imdb"
    with pytest.raises(ParamsError, match=r"^cnn: not a model in models"):
        params.model("cnn")
    with pytest.raises(AttributeError):  # frozen
        params.seed = 1  # type: ignore[misc]


def _defaults_against(value: object, cls: type, seen: dict) -> None:
    """Collect, per dataclass field, the values params.yaml gives it (recursing into sections)."""
    import dataclasses
    import typing

    if not isinstance(value, dict):
        return
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in value:
            seen.setdefault((cls, f.name), []).append(dataclasses.MISSING)
            continue
        seen.setdefault((cls, f.name), []).append(value[f.name])
        for arg in (*typing.get_args(hints[f.name]), hints[f.name]):
            if dataclasses.is_dataclass(arg):
                _defaults_against(value[f.name], arg, seen)
            elif typing.get_origin(arg) is dict and dataclasses.is_dataclass(typing.get_args(arg)[1]):
                for item in value[f.name].values():
                    _defaults_against(item, typing.get_args(arg)[1], seen)


def test_a_default_in_code_is_the_value_params_yaml_sets() -> None:
    """A field params.yaml sets in every instance of its section has no default, or that very value.

    (``None`` defaults stand for "not given", not for a value.) A reader of the code sees what the
    pipeline uses.
    """
    import dataclasses

    from stages.common.params import schema

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    seen: dict = {}
    sections = {
        "prepare": schema.PrepareConfig, "finetune": schema.FinetuneConfig, "evaluate": schema.EvaluateConfig,
        "behave": schema.BehaveConfig, "select": schema.SelectConfig, "explain": schema.ExplainConfig,
        "correlate": schema.CorrelateConfig, "track": schema.TrackConfig, "sweep": schema.SweepConfig,
    }  # fmt: skip
    for name, cls in sections.items():
        _defaults_against(raw[name], cls, seen)
    for data in raw["datasets"].values():
        _defaults_against(data, schema.DatasetConfig, seen)
    for model in raw["models"]:
        _defaults_against(raw[model], schema.ModelConfig, seen)
        _defaults_against(raw["vectorize"][model], schema.FeaturizerConfig, seen)
    assert len(seen) > 60
    wrong = []
    for (cls, name), values in seen.items():
        field = next(f for f in dataclasses.fields(cls) if f.name == name)
        default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
        if dataclasses.MISSING in values or default in (dataclasses.MISSING, None):
            continue
        coerced = [tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v for v in values]
        if any(v != default for v in coerced):
            wrong.append(f"{cls.__name__}.{name}: default {default!r}, params.yaml {values!r}")
    assert not wrong, wrong


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (ModelConfig, {**LSTM, "epochs": -1}, "lstm.epochs: must be >= 1"),
        (ModelConfig, {**LSTM, "unitz": 3}, "lstm.unitz: unknown key"),
        (ModelConfig, {**LSTM, "units": "many"}, "lstm.units: expected an integer"),
        (ModelConfig, {**LSTM, "units": 2.5}, "lstm.units: expected an integer"),
        (ModelConfig, {**LSTM, "architecture": "gru"}, "lstm.architecture: 'gru' is not one of"),
        (ModelConfig, {**LSTM, "architecture": "mlp", "hidden_units": []}, "lstm.hidden_units: an MLP needs"),
        (ModelConfig, {**LSTM, "dropout": 1.5}, "lstm.dropout: must be in [0, 1)"),
        (ModelConfig, {"units": 3}, "lstm.architecture: required key is missing"),
        (ModelConfig, {"architecture": "lstm"}, "lstm.dropout: required key is missing"),
        (ModelConfig, {**LSTM, "pooling": "max"}, "lstm.pooling: 'max' is not one of"),
        (FeaturizerConfig, {**SEQ, "maxlen": 0}, "lstm.maxlen: must be > 0"),
        (FeaturizerConfig, {**BOW, "skip_top": 10}, "lstm.skip_top: must be smaller"),
        (FeaturizerConfig, {**BOW, "ngram_range": [2, 1]}, "lstm.ngram_range"),
        (FeaturizerConfig, {**BOW, "ngram_range": [1]}, "lstm.ngram_range: expected 2"),
        (DatasetConfig, {"format": "reviews", "source": "x", "label_column": "y", "test_size": 1.0}, "test_size"),
        (DatasetConfig, {"format": "reviews", "source": "x"}, "lstm.label_column: give exactly one"),
        (ModelConfig, {**LSTM, "pair_weight": 0}, "lstm.pair_weight: must be > 0"),
        (ModelConfig, {**LSTM, "shuffled_share": 1.5}, "lstm.shuffled_share: must be in [0, 1]"),
        (ModelConfig, {**LSTM, "architecture": "mlp", "hidden_units": [4], "shuffled_share": 0.3},
         "lstm.shuffled_share: shuffled copies teach word order"),
        (DatasetConfig, {"format": "aclimdb", "source": "x", "augment": {"pairs": {"source": "p"}}},
         "lstm.augment.pairs.text_column: required key is missing"),
        (ReportConfig, {"priority": ["accuracy", "robustness"]}, "lstm.priority: must list each of accuracy"),
        (ReportConfig, {"priority": ["accuracy", "accuracy", "explanation"]}, "lstm.priority: must list each"),
        (ReportConfig, {"resamples": 10}, "lstm.resamples: must be >= 100"),
    ],
)  # fmt: skip
def test_bad_values_name_the_key(cls: type, data: dict, message: str) -> None:
    with pytest.raises(ParamsError) as err:
        parse(cls, data, "lstm")
    assert message in str(err.value)


def test_seed_must_be_a_non_negative_integer() -> None:
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    with pytest.raises(ParamsError, match=r"base\.seed: expected an integer"):
        parse_params({**base, "base": {"seed": "42"}})
    with pytest.raises(ParamsError, match=r"base\.seed: expected a non-negative integer"):
        parse_params({**base, "base": {"seed": -1}})
    with pytest.raises(ParamsError, match=r"base\.seed: required key is missing"):
        parse_params({**base, "base": {}})


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
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    blocks = base["finetune"]["per_model"]
    for change, fragment in (
        ({"from_scratch": ["imdb", "yelp"]}, "exactly one"),
        ({"from_scratch": ["imdb", "amazon"]}, "'amazon' is not in datasets"),
        ({"finetune": {**base["finetune"], "source": "yelp"}}, "finetune.source"),
        ({"from_scratch": []}, "exactly one"),
        ({"finetune": {**base["finetune"], "per_model": {"mlp": blocks["mlp"]}}}, r"finetune\.per_model\.lstm: model"),
        ({"finetune": {**base["finetune"], "per_model": 0.001}}, r"finetune\.per_model: expected a mapping"),
        (
            {"finetune": {**base["finetune"], "per_model": {**blocks, "cnn": blocks["mlp"]}}},
            r"finetune\.per_model\.cnn: not a model",
        ),
        (
            {"vectorize": {**base["vectorize"], "lstm": base["vectorize"]["mlp"]}},
            r"vectorize\.lstm\.kind: an lstm needs",
        ),
    ):
        with pytest.raises(ParamsError, match=fragment):
            parse_params({**base, **change})
    parse_params({**base, "from_scratch": ["imdb", "yelp"], "finetune": {**base["finetune"], "targets": []}})
    without = {k: v for k, v in base.items() if k != "evaluate"}
    with pytest.raises(ParamsError, match=r"^evaluate: section missing"):
        parse_params(without)
