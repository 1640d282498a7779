"""track: the run plan (pure) and the MLflow tracker on a local sqlite store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from stages.common.tracking.tracker import RunPlan, default_tracking_uri, project_root
from stages.track import ModelState, lock_checksums, plan_runs
from tests.synthetic import tiny_text_model

PARAMS = {"base": {"seed": 1}, "models": ["mlp"], "mlp": {"hidden_units": [16, 16], "dropout": 0.5}, "x": None}
CARD = {
    "splits": {"train": {"rows": 10}, "test": {"rows": 4}},
    "source": {"sha256": "abc"},
    "duplicates": {"exact": {"test_in_train": 1, "examples": [["t1", "r1"]]}, "test_in_train": 2},
}
LOCK = {
    "stages": {
        "prepare@imdb": {"outs": [{"path": "data/prepared/imdb.parquet", "md5": "m1"}]},
        "prepare@imdb2": {"outs": [{"path": "data/prepared/imdb2.parquet", "md5": "zz"}]},
        "vectorize@imdb-mlp": {"outs": [{"path": "data/features/imdb/mlp", "md5": "m2.dir"}]},
        "prepare@yelp": {"outs": [{"path": "data/prepared/yelp.parquet", "md5": "m3"}]},
    }
}


def _state(tmp_path: Path) -> ModelState:
    history = pd.DataFrame({"epoch": [1, 2], "loss": [0.6, 0.4], "val_loss": [0.65, 0.5]})
    art = tmp_path / "metrics.json"
    art.write_text("{}")
    return ModelState(
        name="mlp",
        summary={"best_epoch": 2, "note": "text is skipped"},
        metrics={"accuracy": 0.9, "confusion": {"tp": 3}},
        explain={"lime": {"mean_fit_r2": 0.5}, "faithfulness_k": [1, 2]},
        history=history,
        behaviour={"mft": {"failure_rate": 0.25, "n_cases": 8}, "tests": {"names": {"n_cases": 0}}},
        cross_domain={"yelp": {"accuracy": 0.8, "roc_auc": None}},
        contrast={"pairs": 245, "pair_consistency": 0.45},
        artifacts=[(art, "")],
        model_file=tmp_path / "mlp.keras",
        featurizer_file=tmp_path / "featurizer.json",
    )


def test_lock_checksums_select_the_dataset() -> None:
    assert lock_checksums(LOCK, "imdb") == {
        "data/features/imdb/mlp": "m2.dir",
        "data/prepared/imdb.parquet": "m1",
    }


def test_plan_holds_params_metrics_curves_and_tags(tmp_path: Path) -> None:
    plan = plan_runs(
        "imdb",
        PARAMS,
        CARD,
        [_state(tmp_path)],
        lock=LOCK,
        correlate={"mlp": {"spearman": 0.4, "x": None}},
        git={"commit": "0123456789abcdef", "dirty": "true"},
        env={"DVC_EXP_NAME": "exp-1"},
    )
    assert plan.name == "imdb @ exp-1"  # a DVC experiment's runs are named after it (a sweep's trials too)
    assert plan.params["mlp.hidden_units"] == "[16, 16]"
    assert plan.params["x"] == "null"
    assert plan.tags["dvc.exp_name"] == "exp-1"
    assert plan.tags["dvc.md5.data/prepared/imdb.parquet"] == "m1"
    assert plan.tags["mlflow.source.git.commit"] == "0123456789abcdef"
    assert plan.metrics["mlp.test_accuracy"] == 0.9
    assert plan.metrics["data.train_rows"] == 10
    (child,) = plan.children
    assert child.params == plan.params
    assert child.metrics == {
        "test_accuracy": 0.9,
        "test_confusion.tp": 3.0,
        "train_best_epoch": 2.0,
        "explain.lime.mean_fit_r2": 0.5,
        "correlate_spearman": 0.4,
        "behaviour.mft.failure_rate": 0.25,
        "behaviour.mft.n_cases": 8.0,
        "behaviour.tests.names.n_cases": 0.0,
        "cross_domain.yelp.accuracy": 0.8,
        "contrast.pairs": 245.0,
        "contrast.pair_consistency": 0.45,
    }
    assert plan.metrics["data.duplicates.test_in_train"] == 2.0
    assert plan.metrics["data.duplicates.exact.test_in_train"] == 1.0
    assert plan.metrics["mlp.behaviour.mft.failure_rate"] == 0.25
    assert plan.metrics["mlp.explain.lime.mean_fit_r2"] == 0.5
    assert child.step_metrics == {"loss": [0.6, 0.4], "val_loss": [0.65, 0.5]}
    assert child.tags["model"] == "mlp" and "dvc.baseline_rev" not in child.tags
    assert child.model is not None and child.model.keras_file.name == "mlp.keras"


def test_tracking_uri_defaults_to_sqlite_in_the_real_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp_dir = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpabc"
    exp_dir.mkdir(parents=True)
    assert project_root(exp_dir) == (tmp_path / "proj").resolve()
    assert default_tracking_uri(project_root(exp_dir)) == f"sqlite:///{(tmp_path / 'proj').resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert default_tracking_uri() == "http://127.0.0.1:5000"


def test_mlflow_tracker_logs_a_run_tree(tmp_path: Path) -> None:
    import mlflow

    from stages.common.tracking.tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    art = tmp_path / "card.json"
    art.write_text("{}")
    child = RunPlan(
        name="imdb/mlp",
        params={"a": "1"},
        metrics={"test_accuracy": 0.9},
        step_metrics={"loss": [0.5, 0.4, 0.3]},
        tags={"model": "mlp"},
    )
    parent = RunPlan(name="imdb @ x", params={"a": "1"}, artifacts=[(art, "")], children=[child])
    ids = MlflowTracker(uri, artifact_root=tmp_path / "artifacts").record("sentiment-imdb", parent)
    client = mlflow.MlflowClient(uri)
    run = client.get_run(ids["imdb/mlp"])
    assert run.data.tags["mlflow.parentRunId"] == ids["imdb @ x"]
    assert run.data.metrics["test_accuracy"] == 0.9
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.4, 0.3]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]
    assert [a.path for a in client.list_artifacts(ids["imdb @ x"])] == ["card.json"]
    assert (tmp_path / "artifacts").is_dir()


def test_unchanged_models_are_referenced_and_the_best_is_registered(tmp_path: Path) -> None:
    import mlflow

    from stages.common.tracking.tracker import MlflowTracker, ModelArtifact

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics_file = tmp_path / "metrics.json"
    metrics_file.write_text('{"accuracy": 0.8}')

    def plan(keras_file: Path, feat: Path, accuracy: float) -> RunPlan:
        child = RunPlan(
            name="imdb/mlp",
            metrics={"test_accuracy": accuracy},
            tags={"run.kind": "model", "model": "mlp"},
            artifacts=[(metrics_file, "")],
            model=ModelArtifact(keras_file=keras_file, featurizer_file=feat),
        )
        return RunPlan(name="imdb @ x", tags={"run.kind": "pipeline"}, children=[child])

    tracker = MlflowTracker(uri, artifact_root=tmp_path / "artifacts")
    client = mlflow.MlflowClient(uri)
    first_model = tiny_text_model(tmp_path, 1)
    first = tracker.record("sentiment-imdb", plan(*first_model, 0.8))["imdb/mlp"]
    second = tracker.record("sentiment-imdb", plan(*first_model, 0.8))["imdb/mlp"]  # cached stages: same files
    tags = client.get_run(second).data.tags
    assert client.get_run(first).data.tags["artifacts.logged"] == "true"
    assert [a.path for a in client.list_artifacts(first)] == ["metrics.json"]  # the model is an MLflow LoggedModel
    assert tags["artifacts.logged"] == "false" and tags["artifacts.run_id"] == first
    assert tags["model.uri"] == f"runs:/{first}/model" and client.list_artifacts(second) == []
    assert client.get_run(second).data.metrics["test_accuracy"] == 0.8  # still compares side by side

    champion = tracker.register_best("sentiment-imdb", "sentiment-imdb", "test_accuracy", "max")
    assert champion["version"] == "1"
    assert tracker.register_best("sentiment-imdb", "sentiment-imdb", "test_accuracy", "max")["version"] == "1"
    better = tracker.record("sentiment-imdb", plan(*tiny_text_model(tmp_path, 2), 0.9))["imdb/mlp"]
    champion = tracker.register_best("sentiment-imdb", "sentiment-imdb", "test_accuracy", "max")
    assert champion["version"] == "2" and champion["run_id"] == better
    assert str(client.get_model_version_by_alias("sentiment-imdb", "champion").version) == "2"
    mlflow.set_tracking_uri(uri)
    scored = mlflow.pyfunc.load_model("models:/sentiment-imdb@champion").predict(pd.DataFrame({"text": ["good"]}))
    assert list(scored.columns) == ["proba", "label"] and 0 <= scored["proba"][0] <= 1


def test_runs_record_their_dataset_and_open_in_the_training_view(tmp_path: Path) -> None:
    import mlflow

    from stages.common.tracking.tracker import DatasetRef, MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ref = DatasetRef(
        name="imdb", digest="m1", source="https://example.invalid/aclImdb.tar.gz", context="train and test"
    )
    plan = RunPlan(name="imdb @ x", datasets=[ref], tables={"scorecard.json": [{"measure": "accuracy", "mlp": 0.9}]})
    ids = MlflowTracker(uri, artifact_root=tmp_path / "artifacts").record("sentiment-imdb", plan)
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment_by_name("sentiment-imdb").tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.get_run(ids["imdb @ x"])
    (logged,) = run.inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest) == ("imdb", "m1")
    assert "example.invalid/aclImdb.tar.gz" in logged.dataset.source
    assert {t.key: t.value for t in logged.tags}["mlflow.data.context"] == "train and test"
    assert "scorecard.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_plan_names_the_prepared_table_as_the_runs_dataset(tmp_path: Path) -> None:
    card = {**CARD, "source": {"location": "https://example.invalid/a.tar.gz", "sha256": "abc"}}
    plan = plan_runs("imdb", PARAMS, card, [_state(tmp_path)], lock=LOCK, git={}, env={})
    assert [(d.name, d.digest) for d in plan.datasets] == [("imdb", "m1")]
    assert plan.children[0].datasets == plan.datasets


def test_dvc_lock_and_reports_rewritten_by_a_run_do_not_make_it_dirty(tmp_path: Path) -> None:
    import subprocess

    from stages.common.tracking.tracker import git_state

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "reports").mkdir()
    for name in ("dvc.lock", "reports/metrics.json", "params.yaml"):
        (tmp_path / name).write_text("a\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "x")
    (tmp_path / "dvc.lock").write_text("b\n")
    (tmp_path / "reports/metrics.json").write_text("b\n")
    ignore = ["dvc.lock", "reports"]
    assert git_state(tmp_path, ignore)["dirty"] == "false"
    assert git_state(tmp_path)["dirty"] == "true"
    (tmp_path / "params.yaml").write_text("b\n")
    assert git_state(tmp_path, ignore)["dirty"] == "true"


def test_a_sweep_trial_tags_its_runs_and_nests_under_the_study_run(tmp_path: Path) -> None:
    env = {"SWEEP_STUDY": "imdb-mlp", "SWEEP_TRIAL": "3", "SWEEP_PARENT_RUN": "abc123"}
    plan = plan_runs("imdb", PARAMS, CARD, [_state(tmp_path)], lock=LOCK, git={"commit": "0" * 40}, env=env)
    assert plan.tags["sweep.study"] == "imdb-mlp" and plan.tags["sweep.trial"] == "3"
    assert plan.tags["mlflow.parentRunId"] == "abc123"
    (child,) = plan.children
    assert child.tags["sweep.trial"] == "3"
    plain = plan_runs(
        "imdb", PARAMS, CARD, [_state(tmp_path)], lock=LOCK, git={"commit": "0" * 40, "dirty": "true"}, env={}
    )
    assert plain.name == "imdb @ 00000000+dirty"
    assert not any(k.startswith("sweep.") or k == "mlflow.parentRunId" for k in plain.tags)


def test_credentials_are_hidden_before_a_uri_is_printed() -> None:
    from stages.common.tracking.tracker import redact

    assert redact("postgresql+psycopg2://mlflow:secret@db:5433/optuna") == "postgresql+psycopg2://***@db:5433/optuna"
    assert redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_an_experiment_created_meanwhile_by_another_worker_is_joined(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    from stages.common.tracking.tracker import MlflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri)
    created = mlflow.MlflowClient(uri).create_experiment("sentiment-imdb")
    real = mlflow.MlflowClient.get_experiment_by_name
    calls: list[str] = []

    def not_yet_then_real(self, name):  # the other worker creates it between our lookup and create
        calls.append(name)
        return None if len(calls) == 1 else real(self, name)

    monkeypatch.setattr(mlflow.MlflowClient, "get_experiment_by_name", not_yet_then_real)
    assert tracker.experiment_id("sentiment-imdb") == created and len(calls) == 2
