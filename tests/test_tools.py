"""tools: compare runs from MLflow, predict from a local or logged model."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.common.features.featurizer import Featurizer
from stages.common.modelling.prediction import TextModel
from stages.common.params.schema import ExplainConfig, FeaturizerConfig
from tests.synthetic import model_config
from tools.compare import compare_table, fix_table
from tools.compare import main as compare_main
from tools.predict import main as predict_main
from tools.predict import model_files, predict_texts

ROOT = Path(__file__).resolve().parents[1]


def _run(run_id: str, params: dict, metrics: dict, tags: dict, start: int) -> SimpleNamespace:
    return SimpleNamespace(
        info=SimpleNamespace(run_id=run_id, start_time=start),
        data=SimpleNamespace(params=params, metrics=metrics, tags=tags),
    )


def test_compare_table_shows_the_params_that_differ_and_headline_metrics() -> None:
    runs = [
        _run(
            "a" * 32,
            {"mlp.dropout": "0.3", "base.seed": "42"},
            {"mlp.test_accuracy": 0.91, "mlp.test_log_loss": 0.2},
            {"DVC_EXP_NAME": "exp-b", "git.commit": "abcdef123456", "git.dirty": "true"},
            2_000_000,
        ),
        _run("b" * 32, {"mlp.dropout": "0.5", "base.seed": "42"}, {"mlp.test_accuracy": 0.9}, {}, 1_000_000),
    ]
    table = compare_table(runs)
    assert list(table.columns) == ["aaaaaaaa", "bbbbbbbb"]
    assert table.loc["param mlp.dropout"].tolist() == ["0.3", "0.5"]
    assert "param base.seed" not in table.index  # the same everywhere: not shown
    assert table.loc["mlp.test_accuracy"].tolist() == ["0.9100", "0.9000"]
    assert "mlp.test_log_loss" not in table.index
    assert table.loc["dvc experiment"].tolist() == ["exp-b", "-"]
    assert table.loc["commit"].tolist() == ["abcdef12+dirty", "?"]
    assert "mlp.test_log_loss" in compare_table(runs, ["*.test_log_loss"]).index


def test_compare_cli_reads_the_newest_runs_from_mlflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stages.common.tracking.tracker import MlflowTracker, RunPlan

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, artifact_root=tmp_path / "artifacts")
    for dropout, acc in (("0.5", 0.90), ("0.3", 0.91), ("0.1", 0.89)):
        plan = RunPlan(
            name=f"imdb @ {dropout}",
            params={"mlp.dropout": dropout, "base.seed": "42"},
            metrics={"mlp.test_accuracy": acc},
            tags={"run.kind": "pipeline"},
        )
        tracker.record("sentiment-imdb", plan)
    compare_main(["--tracking-uri", uri, "--dataset", "imdb", "-n", "2", "--params", str(ROOT / "params.yaml")])
    out = capsys.readouterr().out
    assert "sentiment-imdb: 2 newest run(s)" in out
    assert "param mlp.dropout" in out and "0.1" in out and "0.3" in out and "0.5" not in out
    assert "0.8900" in out and "base.seed" not in out


def _known(tmp_path: Path) -> tuple[Featurizer, TextModel]:
    words = ["great", "awful", "fun"]
    f = Featurizer(FeaturizerConfig(kind="bow", max_tokens=10, mode="multi_hot", min_count=1), vocabulary=words)
    w = np.array([3.0, -3.0, 1.0])
    return f, TextModel(f, lambda X: 1 / (1 + np.exp(-(X @ w))))


def test_predict_gives_label_probability_and_top_words(tmp_path: Path) -> None:
    _, model = _known(tmp_path)
    [good, bad] = predict_texts(
        ["a great and fun film", "an awful film"], model, ExplainConfig(num_samples=200), 1, top=2
    )
    assert good["label"] == "positive" and good["proba_positive"] > 0.9
    assert [w for w, _ in good["top_words"]] == ["great", "fun"]
    assert bad["label"] == "negative" and bad["top_words"][0][0] == "awful" and bad["top_words"][0][1] < 0


def test_predict_cli_on_a_local_pipeline_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stages.common.modelling.models import build_model

    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"vars": [{"paths": {"models": "m", "features": "f"}}]}))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["explain"]["num_samples"] = 100
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    f, _ = _known(tmp_path)
    (tmp_path / "f/imdb/mlp").mkdir(parents=True)
    (tmp_path / "f/imdb/mlp/featurizer.json").write_text(f.to_json())
    (tmp_path / "m/imdb").mkdir(parents=True)
    build_model(
        model_config("mlp", hidden_units=[2]),
        f.input_dim,
    ).save(tmp_path / "m/imdb/mlp.keras")
    monkeypatch.chdir(tmp_path)
    assert model_files("imdb/mlp") == (Path("m/imdb/mlp.keras"), Path("f/imdb/mlp/featurizer.json"))
    with pytest.raises(FileNotFoundError, match="dvc repro"):
        model_files("yelp/mlp")
    predict_main(["--model", "imdb/mlp", "--json", "great fun"])
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["text"] == "great fun" and first["label"] in {"positive", "negative"}
    assert 0 <= first["proba_positive"] <= 1 and {w for w, _ in first["top_words"]} <= {"great", "fun"}
    (tmp_path / "reviews.txt").write_text("great\n\nawful fun\n")
    predict_main(["--model", "imdb/mlp", "--file", "reviews.txt", "--json"])
    assert len(capsys.readouterr().out.splitlines()) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("awful\n"))
    predict_main(["--model", "imdb/mlp"])
    assert "top words: awful" in capsys.readouterr().out


def test_batch_scoring_writes_csv_and_jsonl_and_matches_mlflow_models_predict(tmp_path: Path) -> None:
    """`--no-explain` on a registered model gives what `mlflow models predict` gives for it."""
    import subprocess

    import pandas as pd

    from stages.common.tracking.tracker import MlflowTracker, ModelArtifact, RunPlan
    from tests.synthetic import tiny_text_model

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    keras_file, feat = tiny_text_model(tmp_path, 3)
    child = RunPlan(
        name="imdb/mlp",
        metrics={"test_accuracy": 0.9},
        tags={"run.kind": "model", "model": "mlp"},
        model=ModelArtifact(keras_file=keras_file, featurizer_file=feat),
    )
    tracker = MlflowTracker(uri, artifact_root=tmp_path / "artifacts")
    tracker.record("sentiment-imdb", RunPlan(name="imdb @ x", children=[child]))
    tracker.register_best("sentiment-imdb", "sentiment-imdb", "test_accuracy", "max")
    reviews = tmp_path / "reviews.csv"
    pd.DataFrame({"id": [1, 2, 3], "text": ["good film", "bad film, great fun", "bad"]}).to_csv(reviews, index=False)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    model = "models:/sentiment-imdb@champion"
    predict = [sys.executable, "-m", "tools.predict", "--model", model, "--no-explain"]
    for out in ("scores.csv", "scores.jsonl"):
        subprocess.run(
            [*predict, "--file", str(reviews), "--out", str(tmp_path / out), "--params", str(ROOT / "params.yaml")],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
    ours = pd.read_csv(tmp_path / "scores.csv")
    assert list(ours.columns) == ["row", "proba", "label"] and len(ours) == 3
    assert pd.read_json(tmp_path / "scores.jsonl", lines=True)["proba"].round(6).tolist() == ours["proba"].tolist()
    mlflow_predict = [sys.executable, "-m", "mlflow", "models", "predict", "-m", model]
    served = subprocess.run(
        [
            *mlflow_predict,
            "-i",
            str(reviews),
            "-t",
            "csv",
            "--env-manager",
            "local",
            "-o",
            str(tmp_path / "mlflow.json"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    theirs = pd.DataFrame(json.loads((tmp_path / "mlflow.json").read_text())["predictions"])
    np.testing.assert_allclose(ours["proba"], theirs["proba"], atol=1e-6)
    assert ours["label"].tolist() == theirs["label"].tolist()


def test_one_model_before_and_after_a_fix_with_paired_intervals() -> None:
    rng = np.random.default_rng(0)
    label = np.arange(2000) % 2
    files: dict[tuple[str, str], object] = {}
    for rev, accuracy in (("main", 0.85), ("fix", 0.92)):
        predicted = np.where(rng.random(2000) < accuracy, label, 1 - label)
        frame = pd.DataFrame({"id": [f"r{i}" for i in range(2000)], "label": label,
                              "proba": np.where(predicted == 1, 0.8, 0.2), "predicted": predicted})  # fmt: skip
        buf = io.BytesIO()
        frame.to_parquet(buf)
        files[("data/predictions/imdb/mlp.parquet", rev)] = buf.getvalue()
        correct = float((predicted == label).mean())
        explained = [{"review_id": f"r{i}", "comprehensiveness": [c], "sufficiency": [0.0]} for i, c in enumerate(
            rng.random(50) * (0.2 if rev == "main" else 0.4))]  # fmt: skip
        comp = float(np.mean([e["comprehensiveness"][0] for e in explained]))
        if rev == "main":  # a revision from before explain.methods: LIME's files one level up, flat metrics
            explain = {"aopc_comprehensiveness": comp, "aopc_comprehensiveness_random": 0.0, "aopc_sufficiency": 0.0,
                       "aopc_sufficiency_random": 0.1, "n_explained": 50}  # fmt: skip
            files[("reports/imdb/explain/mlp/explanations.json", rev)] = json.dumps(explained)
        else:
            explain = {"random": {"aopc_comprehensiveness": 0.0, "aopc_sufficiency": 0.1},
                       "lime": {"aopc_comprehensiveness": comp, "aopc_sufficiency": 0.0}}  # fmt: skip
            files[("reports/imdb/explain/mlp/ranking.json", rev)] = json.dumps([{"method": "lime"}])
            files[("reports/imdb/explain/mlp/lime/explanations.json", rev)] = json.dumps(explained)
        for name, content in {
            "metrics.json": {"accuracy": correct, "balanced_accuracy": correct, "roc_auc": correct},
            "cross_domain.json": {}, "contrast.json": {}, "explain.json": explain, "behaviour.json": {},
        }.items():  # fmt: skip
            files[(f"reports/imdb/mlp/{name}", rev)] = json.dumps(content)
        files[("reports/imdb/correlate.json", rev)] = "{}"

    def read(path: str, rev: str, binary: bool) -> object:
        if (path, rev) not in files:
            raise FileNotFoundError(path)
        return files[(path, rev)]

    card = fix_table(read, "imdb", "mlp", "main", "fix", {"reports": "reports", "predictions": "data/predictions"},
                     resamples=200, seed=0).set_index("measure")  # fmt: skip
    assert list(card.columns[:3]) == ["group", "better", "before (main)"] and "after (fix)" in card.columns
    assert card.loc["accuracy", "ahead"] == "fix"
    assert card.loc["accuracy", "difference (95% interval)"].startswith("fix - main: +0.0")
    assert card.loc["pair consistency on minimal edits (both right)", "ahead"] == ""  # no figures: nobody
    # LIME's faithfulness across the change of layout: read from both, compared review by review
    assert card.loc["comprehensiveness over random words (LIME)", "ahead"] == "fix"
