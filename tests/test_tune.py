"""bench.tune: the validation study scores candidates on carved-out training rows only."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from bench.tune import (
    STUDIES,
    finetune_candidate,
    main,
    markdown,
    score_candidate,
    split_overrides,
    with_overrides,
)
from stages.common.features import FeaturizerConfig, fit_featurizer
from stages.common.models import ModelConfig
from stages.common.params import ParamsError, load_params, parse, section
from stages.finetune import FinetuneConfig
from tests.synthetic import reviews_frame

ROOT = Path(__file__).resolve().parents[1]


def test_every_candidate_names_real_params() -> None:
    params = load_params(ROOT / "params.yaml")
    for name, study in STUDIES.items():
        assert study.dataset in params["datasets"], name
        assert study.model in params["models"], name
        base = parse(ModelConfig, section(params, study.model), study.model)
        assert study.finetune == (study.dataset in params["finetune"]["targets"]), name
        assert study.candidates.get("default") == {}, f"{name}: the default must be a candidate"
        for label, overrides in study.candidates.items():
            ft_over, model_over = split_overrides(overrides, study.finetune)
            cfg = with_overrides(base, model_over, study.model)
            cfg.validate(study.model)
            ft = finetune_candidate(
                parse(FinetuneConfig, section(params, "finetune"), "finetune"), ft_over, study.model
            )
            assert isinstance(ft.learning_rate, float) and ft.learning_rate > 0, f"{name}/{label}"
            if overrides:  # a candidate that changes nothing would compare the default with itself
                assert cfg != base or ft_over, f"{name}/{label}"


def test_unknown_override_fails_naming_it() -> None:
    cfg = ModelConfig(architecture="mlp", hidden_units=[4])
    with pytest.raises(ValueError, match=r"mlp\.hiden_units"):
        with_overrides(cfg, {"hiden_units": [8]}, "mlp")
    assert with_overrides(cfg, {"dropout": 0.3}, "mlp") == dataclasses.replace(cfg, dropout=0.3)
    # freeze_embedding is the finetune stage's own value in a finetune study, the model's otherwise
    both = {"freeze_embedding": True, "dropout": 0.1}
    assert split_overrides(both, finetune=True) == ({"freeze_embedding": True}, {"dropout": 0.1})
    assert split_overrides(both, finetune=False) == ({}, both)
    # a candidate's fine-tuning rate is its model's; the other model's stays; impossible values name their key
    ft = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate={"mlp": 0.002, "lstm": 0.001})
    assert finetune_candidate(ft, {"learning_rate": 0.004}, "mlp").learning_rate == 0.004
    assert finetune_candidate(ft, {"learning_rate": 0.004}, "lstm").learning_rate == 0.004
    assert finetune_candidate(ft, {"freeze_embedding": True}, "lstm").learning_rate == 0.001
    with pytest.raises(ParamsError, match=r"finetune\.learning_rate\.mlp: must be > 0"):
        finetune_candidate(ft, {"learning_rate": 0.0}, "mlp")
    with pytest.raises(ParamsError, match=r"finetune\.epochs: must be >= 1"):
        finetune_candidate(ft, {"epochs": 0}, "lstm")
    single = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate=0.001)  # not a valid base
    with pytest.raises(ParamsError, match=r"finetune\.learning_rate: expected one rate per model"):
        finetune_candidate(single, {"learning_rate": 0.004}, "mlp")


def test_score_candidate_is_seeded_and_scores_only_validation_rows() -> None:
    df = reviews_frame(240, seed=5)
    df = df[df.stars != 3]
    texts, y = df["text"].tolist(), (df["stars"].to_numpy() >= 4).astype(np.int64)
    f = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=100))
    X = f.transform(texts)
    cfg = ModelConfig(
        architecture="mlp", hidden_units=[8], epochs=3, batch_size=16, learning_rate=0.01, validation_split=0.25
    )
    first = score_candidate(cfg, X, y, input_dim=f.input_dim, seq_len=None, seed=1)
    again = score_candidate(cfg, X, y, input_dim=f.input_dim, seq_len=None, seed=1)
    assert first["validation_rows"] == math.ceil(0.25 * len(y))
    for key in ("accuracy", "balanced_accuracy", "roc_auc"):
        assert first[key] == again[key]
        assert 0.0 <= first[key] <= 1.0
    assert first["roc_auc"] > 0.7  # the generated reviews carry learnable cues
    text = markdown([{"study": "s", "candidate": "default", "overrides": {}, **first}], "test machine")
    assert "| s | default | params.yaml | " in text


def test_before_the_pipeline_has_run_it_names_the_missing_output(tmp_path: Path, monkeypatch) -> None:
    for name in ("params.yaml", "dvc.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r"data/features/imdb/lstm not found; run the pipeline first"):
        main(["--study", "imdb-lstm", "--out", str(tmp_path / "tuning.md")])
    assert not (tmp_path / "tuning.md").exists()
    # the directories are dvc.yaml's (vars.paths), not the study's own copy of them
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("features: data/features", "features: elsewhere/features"))
    with pytest.raises(SystemExit, match=r"elsewhere/features/imdb/lstm not found"):
        main(["--study", "imdb-lstm", "--out", str(tmp_path / "tuning.md")])
