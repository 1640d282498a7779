"""bench.tune: the validation study scores candidates on carved-out training rows only."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import stages.finetune as finetune_stage
from bench.tune import (
    STUDIES,
    PipelineDirs,
    Study,
    cross_validate,
    finetune_candidate,
    fold_tables,
    main,
    markdown,
    run_study,
    score_candidate,
    select,
    split_overrides,
    with_overrides,
)
from stages.common.config import FinetuneConfig, ModelConfig
from stages.common.errors import ParamsError
from stages.common.features import FeaturizerConfig, fit_featurizer
from stages.common.io import features_from_npz
from stages.common.params import load_params, parse, section
from stages.common.store import transform_splits, write_features
from stages.common.training import train_model
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
    # soup is the finetune stage's own value in a finetune study, the model's otherwise
    both = {"soup": 3, "dropout": 0.1}
    assert split_overrides(both, finetune=True) == ({"soup": 3}, {"dropout": 0.1})
    assert split_overrides(both, finetune=False) == ({}, both)
    # a candidate's fine-tuning rate is its model's; the other model's stays; impossible values name their key
    ft = FinetuneConfig(source="imdb", targets=["yelp"], learning_rate={"mlp": 0.002, "lstm": 0.001})
    assert finetune_candidate(ft, {"learning_rate": 0.004}, "mlp").learning_rate == 0.004
    assert finetune_candidate(ft, {"learning_rate": 0.004}, "lstm").learning_rate == 0.004
    assert finetune_candidate(ft, {"soup": 2}, "lstm").learning_rate == 0.001
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
    first = score_candidate(cfg, X, y, input_dim=f.input_dim, seed=1)
    again = score_candidate(cfg, X, y, input_dim=f.input_dim, seed=1)
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
    with pytest.raises(SystemExit, match=r"--folds: study 'imdb-lstm' trains from scratch"):
        main(["--study", "imdb-lstm", "--folds", "5"])


def test_the_table_names_the_command_line_that_made_it(tmp_path: Path, monkeypatch) -> None:
    """A table made for a few candidates says which command made it, not the Makefile's whole study."""
    monkeypatch.chdir(ROOT)  # the repository's params.yaml and dvc.yaml; only --out is written
    monkeypatch.setattr("bench.tune.study_inputs", lambda *args: [])
    row = {"study": "yelp-lstm", "candidate": "one fine-tune, no weight soup", "overrides": {"soup": 1}}
    row |= {"validation_rows": 9, "accuracy": 0.9, "balanced_accuracy": 0.8, "roc_auc": 0.95}
    row |= {"epochs_run": "1/1/1", "seconds": 2.0}
    seen: list[tuple[str, list[str], int, int | None]] = []

    def fake_cross_validate(name, study, params, dirs, folds, train_seed):
        seen.append((name, list(study.candidates), folds, train_seed))
        return [row]

    monkeypatch.setattr("bench.tune.cross_validate", fake_cross_validate)
    out = tmp_path / "cv.md"
    main(["--folds", "3", "--study", "yelp-lstm", "--candidate", "one fine-tune, no weight soup", "--out", str(out)])
    assert seen == [("yelp-lstm", ["one fine-tune, no weight soup"], 3, None)]
    text = out.read_text()
    command = "python -m bench.tune --folds 3 --study yelp-lstm --candidate 'one fine-tune, no weight soup'"
    assert f"Produced by `{command} --out {out}` (" in text
    assert "| yelp-lstm | one fine-tune, no weight soup | `soup: 1` | 9 | 0.9000 | 0.8000 | 0.9500 |" in text


def test_select_keeps_the_named_candidates_and_names_an_unknown_one() -> None:
    assert select(["yelp-mlp"]) == {"yelp-mlp": STUDIES["yelp-mlp"]}
    picked = select(["yelp-mlp", "yelp-lstm"], ["default"])
    assert {name: list(s.candidates) for name, s in picked.items()} == {
        "yelp-mlp": ["default"],
        "yelp-lstm": ["default"],
    }
    assert picked["yelp-lstm"].dataset == "yelp" and picked["yelp-lstm"].finetune
    assert len(STUDIES["yelp-lstm"].candidates) > 1  # the registry itself is untouched
    lstm_only = "one fine-tune, Yelp words in >= 10 training reviews added"
    assert list(select(["yelp-mlp", "yelp-lstm"], [lstm_only])["yelp-mlp"].candidates) == []
    with pytest.raises(ValueError, match=r"--candidate 'defualt': not a candidate of imdb-mlp \(they are: default; "):
        select(["imdb-mlp"], ["defualt"])


def _prepared(n: int, seed: int) -> pd.DataFrame:
    """A prepared table (the prepare stage's columns): three quarters train, the rest test."""
    df = reviews_frame(n, seed=seed)
    df = df[df.stars != 3].reset_index(drop=True)
    return pd.DataFrame(
        {
            "id": [f"r{seed}-{i}" for i in range(len(df))],
            "text": df["text"],
            "label": (df["stars"] >= 4).astype(np.int64),
            "split": np.where(np.arange(len(df)) < 3 * len(df) // 4, "train", "test"),
            "rating": df["stars"].astype(float),
        }
    )


def test_fold_tables_hold_out_each_training_review_once_and_drop_the_test_split() -> None:
    table = _prepared(120, seed=2)
    train_ids = set(table.loc[table.split == "train", "id"])
    parts = fold_tables(table, 4, seed=0)
    held_out = [set(p.loc[p.split == "test", "id"]) for p in parts]
    assert all(set(p["id"]) == train_ids for p in parts)  # the table's test rows are gone
    assert set().union(*held_out) == train_ids and sum(map(len, held_out)) == len(train_ids)
    share = table.loc[table.split == "train", "label"].mean()
    for p in parts:  # stratified: each held-out fold has about the training split's share of positives
        assert abs(p.loc[p.split == "test", "label"].mean() - share) < 0.1
    assert [set(p.loc[p.split == "test", "id"]) for p in fold_tables(table, 4, seed=0)] == held_out
    with pytest.raises(ValueError, match=r"--folds: must be >= 2"):
        fold_tables(table, 1, seed=0)


def _pipeline(tmp_path: Path) -> tuple[PipelineDirs, dict, pd.DataFrame]:
    """What a Yelp study reads after ``make run``, tiny: IMDB features and MLP, the prepared Yelp table."""
    dirs = PipelineDirs(tmp_path / "prepared", tmp_path / "features", tmp_path / "models")
    dirs.prepared.mkdir()
    (dirs.models / "imdb").mkdir(parents=True)
    source = _prepared(160, seed=7)
    texts = source.loc[source.split == "train", "text"].tolist()
    featurizer = fit_featurizer(texts, FeaturizerConfig(kind="bow", max_tokens=200))
    splits = transform_splits(source, featurizer)
    write_features(dirs.features / "imdb" / "mlp", featurizer, splits)
    cfg = ModelConfig(architecture="mlp", hidden_units=[8], epochs=2, batch_size=16, learning_rate=0.01)
    X, y = features_from_npz(splits["train"]), splits["train"]["y"].astype(np.int64)
    trained = train_model(cfg, X, y, input_dim=featurizer.input_dim, seed=0)
    trained.model.save(dirs.models / "imdb" / "mlp.keras")
    target = _prepared(200, seed=8)
    target.to_parquet(dirs.prepared / "yelp.parquet", index=False)
    params = load_params(ROOT / "params.yaml")
    params["mlp"] = {**params["mlp"], **dataclasses.asdict(cfg)}
    params["finetune"] = {**params["finetune"], "epochs": 1}
    return dirs, params, target


def test_run_study_scores_a_fine_tune_study_as_one_fine_tune(tmp_path: Path, monkeypatch) -> None:
    """A soup's members train on each other's validation rows: ``make tune`` scores its first member."""
    dirs, params, _ = _pipeline(tmp_path)
    study = Study("yelp", "mlp", True, {"default": {}, "one fine-tune": {"soup": 1}, "faster": {"learning_rate": 0.05}})
    params["finetune"] = {**params["finetune"], "soup": {"mlp": 2, "lstm": 2}}
    used: list[FinetuneConfig] = []

    def spy(table, featurizer, source, cfg, ft, seed):
        used.append(ft)
        return finetune_stage.finetune(table, featurizer, source, cfg, ft, seed)

    monkeypatch.setattr("bench.tune.finetune", spy)
    rows = run_study("yelp-mlp", study, params, dirs)
    assert [r["candidate"] for r in rows] == ["default", "faster"]  # the soup-only candidate is --folds's
    assert [(ft.soup, ft.learning_rate) for ft in used] == [(1, params["finetune"]["learning_rate"]["mlp"]), (1, 0.05)]
    assert all(0.0 <= r["roc_auc"] <= 1.0 and r["validation_rows"] > 0 for r in rows)


def test_cross_validate_scores_out_of_fold_predictions_of_the_finetune_stage(tmp_path: Path) -> None:
    dirs, params, target = _pipeline(tmp_path)
    study = Study("yelp", "mlp", True, {"default": {}, "faster": {"learning_rate": 0.01}})

    rows = cross_validate("yelp-mlp", study, params, dirs, folds=3)
    n_train = int((target.split == "train").sum())
    assert [r["candidate"] for r in rows][1:] == ["default", "faster"]
    assert rows[0]["candidate"].startswith("TF-IDF + logistic regression")
    for r in rows:
        assert r["validation_rows"] == n_train
        assert 0.0 <= r["balanced_accuracy"] <= 1.0 and 0.0 <= r["accuracy"] <= 1.0
    assert rows[0]["roc_auc"] > 0.7  # the generated reviews carry learnable cues
    assert all(len(r["epochs_run"].split("/")) == 3 for r in rows[1:])
    # the target's test split is never read: scrambling it changes nothing
    scrambled = target.copy()
    test = scrambled.split == "test"
    scrambled.loc[test, "label"] = 1 - scrambled.loc[test, "label"]
    scrambled.loc[test, "text"] = "scrambled words"
    scrambled.to_parquet(dirs.prepared / "yelp.parquet", index=False)
    again = cross_validate("yelp-mlp", study, params, dirs, folds=3)
    key = ("accuracy", "balanced_accuracy", "roc_auc", "epochs_run")
    assert [[r[k] for k in key] for r in again] == [[r[k] for k in key] for r in rows]
    with pytest.raises(ValueError, match=r"study 'imdb-mlp' trains from scratch"):
        cross_validate("imdb-mlp", STUDIES["imdb-mlp"], params, dirs, folds=3)
    text = markdown(rows, "test machine", folds=3)
    assert "3-fold cross-validation" in text and "| out-of-fold rows |" in text
    assert "Produced by `make tune-cv` (test machine)" in text  # no command given: the Makefile target's
    assert "| yelp-mlp | TF-IDF + logistic regression (the benchmark's baseline) | — | " in text
    assert "| yelp-mlp | default | params.yaml | " in text
