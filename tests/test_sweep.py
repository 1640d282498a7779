"""tools.sweep: the spec check, the worker loop on a SQLite study, --show and --apply-best."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from stages.common.errors import ParamsError
from stages.common.params.loading import parse_params
from tools import sweep

ROOT = Path(__file__).resolve().parents[1]
STAGES = {
    "evaluate@imdb-mlp": ["reports/imdb/mlp/metrics.json"],
    "track@imdb": [],
    "train@imdb-mlp": ["reports/imdb/mlp/train.json"],
}
METRICS = {
    "reports/imdb/mlp/metrics.json:accuracy": 0.9,
    "reports/imdb/mlp/metrics.json:deduplicated.accuracy": 0.9,
    "reports/imdb/mlp/train.json:best_val_accuracy": 0.9,
}


def _params(**sweep_section: Any) -> dict[str, Any]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sweep"] = {**params["sweep"], **sweep_section}
    return params


def test_the_default_spec_searches_two_mlp_params_and_runs_up_to_track() -> None:
    spec = sweep.check_spec(parse_params(_params()), STAGES, METRICS)
    assert spec.metric == "reports/imdb/mlp/train.json:best_val_accuracy"  # validation rows, not the test split
    assert spec.targets == ["track@imdb"] and spec.experiment == "sentiment-imdb"
    assert set(spec.config.params) == {"mlp.dropout", "mlp.learning_rate"} and spec.seed == 42


@pytest.mark.parametrize(
    ("sweep_section", "message"),
    [
        ({"params": {"mlp.dropuot": {"low": 0.1, "high": 0.5}}}, "sweep.params.mlp.dropuot: no such param"),
        ({"params": {"mlp.dropout": {"low": 0.5, "high": 0.5}}}, "sweep.params.mlp.dropout.high: empty range"),
        ({"params": {"mlp.dropout": {"choices": []}}}, "sweep.params.mlp.dropout.choices: empty"),
        ({"params": {"mlp.dropout": {"low": 0.1, "high": 1.5}}}, "sweep.params.mlp.dropout.high: 1.5 is not a valid"),
        ({"params": {"mlp.hidden_units": {"choices": [8, 16]}}}, "mlp.hidden_units: mlp.hidden_units is a list"),
        ({"params": {"mlp.learning_rate": {"low": 0, "high": 1, "log": True}}}, "a log range needs low > 0"),
        ({"params": {"mlp": {"low": 1, "high": 2}}}, "sweep.params.mlp: mlp is a section"),
        ({"params": {}}, "sweep.params: empty"),
        ({"metric": "evaluate@imdb-mlp:acuracy"}, "sweep.metric: 'acuracy' is not a metric of evaluate@imdb-mlp"),
        ({"metric": "evaluate@imdb-cnn:accuracy"}, "sweep.metric: no stage 'evaluate@imdb-cnn'"),
        ({"metric": "accuracy"}, "sweep.metric: expected <stage>:<metric>"),
        ({"study": "my study"}, "sweep.study: letters, digits"),
        ({"n_trials": 0}, "sweep.n_trials: must be >= 1"),
        ({"direction": "up"}, "sweep.direction: 'up' is not one of"),
    ],
)
def test_a_bad_spec_fails_naming_the_key(sweep_section: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(".", r"\.").replace("[", r"\[")):
        sweep.check_spec(parse_params(_params(**sweep_section)), STAGES, METRICS)


def test_a_bad_spec_fails_on_the_command_line_before_any_trial(tmp_path: Path, caplog) -> None:
    params = _params(params={"mlp.dropout": {"low": 0.4, "high": 0.2}})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exc:
        sweep.main(["--params", str(path), "--storage", f"sqlite:///{tmp_path / 'o.db'}"])
    assert exc.value.code == 1
    assert "sweep.params.mlp.dropout.high: empty range" in caplog.text
    assert not (tmp_path / "o.db").exists()


def _spec(n_trials: int = 4, **space: Any) -> sweep.Spec:
    params = space or {"mlp.dropout": {"low": 0.1, "high": 0.6}, "mlp.batch_size": {"low": 16, "high": 128}}
    return sweep.check_spec(parse_params(_params(n_trials=n_trials, params=params)), STAGES, METRICS)


def _study(tmp_path: Path, spec: sweep.Spec) -> optuna.Study:
    return sweep.open_study(spec, f"sqlite:///{tmp_path / 'optuna.db'}", create=True)


def test_trials_run_until_n_are_done_and_a_failed_pipeline_is_recorded(tmp_path: Path) -> None:
    spec = _spec(n_trials=4)
    calls: list[tuple[int, dict[str, Any]]] = []

    def run(number: int, values: dict[str, Any]) -> float:
        calls.append((number, values))
        if number == 1:
            raise sweep.TrialError("ERROR: failed to reproduce 'train@imdb-mlp': mlp.dropout: must be < 1")
        return 1.0 - values["mlp.dropout"]

    study = _study(tmp_path, spec)
    sweep.work(study, 4, sweep.make_objective(spec, run, "w1"), poll_s=0.1)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert "train@imdb-mlp" in trials[1].user_attrs["error"]
    assert all(t.user_attrs["worker"] == "w1" and t.user_attrs["experiment"] == f"imdb-mlp-{t.number}" for t in trials)
    assert isinstance(trials[0].params["mlp.batch_size"], int)
    table = sweep.trials_table(study)
    assert list(table["state"]) == ["complete", "fail", "complete", "complete"]
    assert table["error"][1].endswith("must be < 1")
    # a study that is done runs nothing more
    sweep.work(study, 4, sweep.make_objective(spec, run, "w2"), poll_s=0.1)
    assert len(calls) == 4


def test_trial_values_depend_on_the_seed_and_trial_number_only(tmp_path: Path) -> None:
    spec = _spec(n_trials=3)
    drawn = []
    for i in range(2):
        (tmp_path / str(i)).mkdir()
        study = _study(tmp_path / str(i), spec)
        sweep.work(study, 3, sweep.make_objective(spec, lambda n, v: v["mlp.dropout"], "w"), poll_s=0.1)
        drawn.append([t.params for t in study.get_trials()])
    assert drawn[0] == drawn[1]
    assert len({t["mlp.dropout"] for t in drawn[0]}) == 3  # two workers starting together draw different values


def test_a_dead_workers_trial_is_failed_and_run_again_by_another(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sweep, "HEARTBEAT_S", 1)
    monkeypatch.setattr(sweep, "GRACE_S", 2)
    spec = _spec(n_trials=2)
    study = _study(tmp_path, spec)
    # a worker that dies mid-trial: its trial is RUNNING, its heartbeat stops
    dead = study.ask()
    dropout = dead.suggest_float("mlp.dropout", 0.1, 0.6)
    dead.suggest_int("mlp.batch_size", 16, 128)
    dead.set_user_attr("worker", "w-dead")
    study._storage.record_heartbeat(dead._trial_id)
    seen: list[float] = []

    def run(number: int, values: dict[str, Any]) -> float:
        seen.append(values["mlp.dropout"])
        return values["mlp.dropout"]

    started = time.monotonic()
    sweep.work(study, 2, sweep.make_objective(spec, run, "w-live"), poll_s=0.2)
    trials = study.get_trials()
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 2 and states.count("FAIL") == 1 and len(trials) == 3
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.state.name == "COMPLETE" and retry.params["mlp.dropout"] == dropout
    assert retry.user_attrs["worker"] == "w-live" and dropout in seen
    assert time.monotonic() - started >= 2  # it waited for the grace period, then took the trial over


def test_a_worker_waits_for_the_last_trials_running_elsewhere(tmp_path: Path) -> None:
    spec = _spec(n_trials=1)
    study = _study(tmp_path, spec)
    other = study.ask()  # another (live) worker's trial
    other.suggest_float("mlp.dropout", 0.1, 0.6)
    other.suggest_int("mlp.batch_size", 16, 128)
    timer = threading.Timer(1.0, lambda: study.tell(other, 0.5))
    timer.start()
    started = time.monotonic()
    sweep.work(study, 1, sweep.make_objective(spec, lambda n, v: 0.0, "w"), poll_s=0.2)
    assert time.monotonic() - started >= 0.9 and len(study.get_trials()) == 1


def test_a_study_searching_something_else_is_refused(tmp_path: Path) -> None:
    _study(tmp_path, _spec())
    other = _spec(**{"mlp.dropout": {"low": 0.2, "high": 0.6}})
    with pytest.raises(ParamsError, match=r"sweep\.study: study 'imdb-mlp' .* name a new study"):
        _study(tmp_path, other)
    sweep.open_study(_spec(n_trials=9), f"sqlite:///{tmp_path / 'optuna.db'}", create=True)  # more trials: fine


def test_apply_best_writes_the_values_and_keeps_the_comments(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    sweep.apply_best(path, {"mlp.dropout": 0.3125, "mlp.learning_rate": 0.0021})
    text = path.read_text()
    params = yaml.safe_load(text)
    assert params["mlp"]["dropout"] == 0.3125 and params["mlp"]["learning_rate"] == 0.0021
    assert "# after each hidden layer" in text and "# the one seed" in text
    before = (ROOT / "params.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, text.splitlines(), strict=True) if a != b]
    assert [b.split("#")[0].strip() for _, b in changed] == ["dropout: 0.3125", "learning_rate: 0.0021"]
    sweep.apply_best(path, {"mlp.learning_rate": 1e-05})
    assert yaml.safe_load(path.read_text())["mlp"]["learning_rate"] == 1e-05  # a number to PyYAML too


def test_show_prints_every_trial_and_the_best(tmp_path: Path, capsys) -> None:
    spec = _spec(n_trials=2)
    study = _study(tmp_path, spec)
    sweep.work(study, 2, sweep.make_objective(spec, lambda n, v: float(n), "host:1"), poll_s=0.1)
    sweep.show(study, spec)
    out = capsys.readouterr().out
    assert "mlp.dropout" in out and "host:1" in out and "imdb-mlp-1" in out
    assert "best: trial 1 (imdb-mlp-1) reports/imdb/mlp/train.json:best_val_accuracy = 1.0000" in out


@pytest.mark.parametrize("value", [1e-05, 2.5e-07, 0.0003, 1e20, 16, True])
def test_trial_values_reach_the_stages_as_the_same_numbers(value: Any) -> None:
    assert yaml.safe_load(sweep._yaml(value)) == value  # the stages read params.yaml with PyYAML


def test_the_study_run_is_shared_and_holds_the_best_trial(tmp_path: Path) -> None:
    import mlflow

    from stages.common.tracking.tracker import MlflowTracker

    spec = _spec(n_trials=2)
    study = _study(tmp_path, spec)
    tracker = MlflowTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "mlartifacts")
    first, second = (sweep.StudyRun(tracker, spec, "sqlite:///optuna.db") for _ in range(2))
    assert first.run_id == second.run_id  # a second worker joins the same run
    sweep.work(
        study, 2, sweep.make_objective(spec, lambda n, v: [0.7, 0.8][n], "w"), after_trial=lambda: first.update(study)
    )
    run = mlflow.MlflowClient(tracker.tracking_uri).get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["best.trial"] == "1"
    assert run.data.tags["best.experiment"] == "imdb-mlp-1" and "best.mlp.dropout" in run.data.tags
    assert run.data.metrics["best_val_accuracy"] == 0.8 and run.data.params["sweep.params.mlp.dropout.low"] == "0.1"
    history = mlflow.MlflowClient(tracker.tracking_uri).get_metric_history(first.run_id, "best_val_accuracy")
    assert [(m.step, m.value) for m in history] == [(1, 0.7), (2, 0.8)]


def test_a_trial_whose_dvc_run_fails_raises_its_error(tmp_path: Path) -> None:
    run = sweep.dvc_objective(tmp_path, _spec(), parent_run=None)  # not a DVC repository
    with pytest.raises(sweep.TrialError, match="ERROR: you are not inside of a DVC repository"):
        run(0, {"mlp.dropout": 0.3})
