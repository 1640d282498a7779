"""sweep: an Optuna study over the ``sweep:`` section of params.yaml, each trial a DVC experiment.

``make sweep`` (``python -m tools.sweep``) joins the study named ``sweep.study`` in the
storage (``--storage URL``, else ``$OPTUNA_STORAGE``, else the SQLite file ``optuna.db`` in
the project) and runs trials until ``sweep.n_trials`` are done. A trial is
``dvc exp run --temp -n <study>-<trial> -S <param>=<value> ... track@<dataset>``: the
metric's stage and what the dataset's MLflow runs need, unchanged stages from the
run-cache; its metric is read back from the experiment. The same command on more machines
(clones sharing a DVC remote, ``MLFLOW_TRACKING_URI`` and a PostgreSQL storage) splits the
trials between them. A worker that dies mid-trial stops beating its heartbeat; another one
marks the trial failed and re-runs it. ``--show`` prints the trials, ``--apply-best``
writes the best trial's params into params.yaml.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from stages.common.data.io import write_text
from stages.common.errors import ParamsError
from stages.common.params import DEFAULT_PARAMS, Params, load_params
from stages.common.params.loading import parse_params
from stages.common.params.parsing import flatten, section
from stages.common.params.schema import SearchSpace, SweepConfig
from stages.common.tracking.tracker import SWEEP_ENV, MlflowTracker, default_tracking_uri, redact

log = logging.getLogger("tools.sweep")

STORAGE_ENV = "OPTUNA_STORAGE"  # Optuna's own name for it (its CLI reads it too)
DEFAULT_DB = "optuna.db"  # in the project root
HEARTBEAT_S = 10  # a running trial's worker writes a heartbeat this often...
GRACE_S = 30  # ...and a trial without one for this long is failed and re-queued
MAX_RETRY = 2  # a trial that kills its worker this many more times is given up
Objective = Callable[[int, dict[str, Any]], float]


class TrialError(RuntimeError):
    """The trial's pipeline failed: the message is the stage's error."""


@dataclass(frozen=True)
class Spec:
    """A checked ``sweep:`` section: what to search, what to run, where to read the metric."""

    config: SweepConfig
    seed: int
    metric: str  # its key as DVC names it: <metrics file>:<key>
    targets: list[str]  # what a trial runs (with everything upstream)
    experiment: str  # the MLflow experiment the trial runs land in


def check_spec(params: Params, stage_metrics: Mapping[str, list[str]], metrics: Mapping[str, Any]) -> Spec:
    """Check ``params["sweep"]`` against the params, the pipeline's stages and their metrics.

    ``stage_metrics``: each stage's metrics files (dvc.yaml); ``metrics``: the current values
    as ``dvc metrics show`` names them (``<file>:<key>``). Every error names the sweep key at
    fault, so a bad spec fails before any trial.
    """
    if params.sweep is None:
        raise ParamsError("sweep: no such section in params.yaml (README: sweeps across machines)")
    cfg = params.sweep
    for name, space in cfg.params.items():
        _check_param(params.raw, name, space)
    stage, _, key = cfg.metric.partition(":")
    if stage not in stage_metrics:
        with_metrics = ", ".join(s for s, files in stage_metrics.items() if files)
        raise ParamsError(f"sweep.metric: no stage {stage!r} in dvc.yaml (stages with metrics: {with_metrics})")
    files = stage_metrics[stage]
    found = [f"{f}:{key}" for f in files if f"{f}:{key}" in metrics]
    if not found:
        known = sorted(k.split(":", 1)[1] for k in metrics if k.split(":", 1)[0] in files)
        if not known:
            raise ParamsError(f"sweep.metric: stage {stage!r} has no metrics yet: run `dvc repro {stage}` once")
        raise ParamsError(f"sweep.metric: {key!r} is not a metric of {stage} (its metrics: {', '.join(known)})")
    datasets = list(params.datasets)
    suffix = stage.partition("@")[2]
    dataset = next((d for d in datasets if suffix == d or suffix.startswith(f"{d}-")), None)
    targets = [f"track@{dataset}"] if dataset and f"track@{dataset}" in stage_metrics else [stage]
    return Spec(cfg, params.seed, found[0], targets, params.experiment(dataset or "sweep"))


def _check_param(params: Mapping[str, Any], name: str, space: SearchSpace) -> None:
    """The param exists, is a single value, and every bound or choice is a value it accepts."""
    path = f"sweep.params.{name}"
    if name.split(".", 1)[0] == "sweep":
        raise ParamsError(f"{path}: the sweep cannot search its own section")
    try:
        current = section(params, name)
    except ParamsError:
        raise ParamsError(f"{path}: no such param in params.yaml") from None
    if isinstance(current, Mapping | list):
        what = "a section" if isinstance(current, Mapping) else "a list"
        raise ParamsError(f"{path}: {name} is {what}; search single values (numbers, strings, booleans)")
    tried = space.choices if space.choices is not None else [space.low, space.high]
    keys = [f"choices[{i}]" for i in range(len(tried))] if space.choices is not None else ["low", "high"]
    for key, value in zip(keys, tried, strict=True):
        try:
            parse_params(with_values(params, {name: value}))
        except ParamsError as exc:
            raise ParamsError(f"{path}.{key}: {value!r} is not a valid {name} ({exc})") from None


def with_values(params: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with dotted params set (``{"mlp.dropout": 0.3}``)."""
    import copy

    out = copy.deepcopy(dict(params))
    for name, value in values.items():
        _set(out, name, value)
    return out


def _set(params: Any, name: str, value: Any) -> None:
    """Set the dotted param ``name`` in a nested mapping."""
    *parents, leaf = name.split(".")
    for part in parents:
        params = params[part]
    params[leaf] = value


def suggest(trial: optuna.Trial, name: str, space: SearchSpace) -> Any:
    """One value for ``name`` from its search space (int bounds: an integer param)."""
    if space.choices is not None:
        return trial.suggest_categorical(name, space.choices)
    if isinstance(space.low, int) and isinstance(space.high, int):
        return trial.suggest_int(name, space.low, space.high, log=space.log)
    return trial.suggest_float(name, float(space.low), float(space.high), log=space.log)  # type: ignore[arg-type]


def experiment_name(study: str, number: int) -> str:
    """The DVC experiment of one trial: ``dvc exp show`` lists it under this name."""
    return f"{study}-{number}"


def make_objective(spec: Spec, run: Objective, worker: str) -> Callable[[optuna.Trial], float]:
    """Optuna's objective: suggest the params, run the trial, record who ran it and how it failed.

    The sampler is re-seeded from ``base.seed`` and the trial number, so trials are
    reproducible however they are split between workers, and two workers starting at once
    do not draw the same values.
    """

    def objective(trial: optuna.Trial) -> float:
        trial.study.sampler = optuna.samplers.TPESampler(seed=spec.seed + trial.number, constant_liar=True)
        values = {name: suggest(trial, name, space) for name, space in spec.config.params.items()}
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("experiment", experiment_name(spec.config.study, trial.number))
        try:
            return run(trial.number, values)
        except TrialError as exc:
            trial.set_user_attr("error", str(exc))
            raise

    return objective


@dataclass(frozen=True)
class Tally:
    done: int  # complete, or failed by its pipeline (their error recorded)
    pending: int  # running or waiting (a dead worker's trial re-queued)
    waiting: int


def tally(trials: Sequence[optuna.trial.FrozenTrial]) -> Tally:
    """Count the study's trials. A trial failed for lack of a heartbeat does not count: its retry does."""
    state = optuna.trial.TrialState
    done = sum(t.state == state.COMPLETE or (t.state == state.FAIL and "error" in t.user_attrs) for t in trials)
    waiting = sum(t.state == state.WAITING for t in trials)
    return Tally(done, waiting + sum(t.state == state.RUNNING for t in trials), waiting)


def work(
    study: optuna.Study,
    n_trials: int,
    objective: Callable[[optuna.Trial], float],
    *,
    poll_s: float = HEARTBEAT_S,
    after_trial: Callable[[], None] = lambda: None,
) -> None:
    """Run trials until ``n_trials`` are done in the whole study (every worker's together).

    When the last trials are running elsewhere this worker waits rather than leaves: if one
    of them dies, its trial is re-queued and picked up here.
    """
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        count = tally(study.get_trials(deepcopy=False))
        if count.done >= n_trials:
            return
        if count.waiting or count.done + count.pending < n_trials:
            study.optimize(objective, n_trials=1, catch=(TrialError,))
            after_trial()
        else:
            time.sleep(poll_s)


def storage(url: str) -> optuna.storages.RDBStorage:
    """The study's database, with heartbeats and re-queueing of a dead worker's trial."""
    with warnings.catch_warnings():  # Optuna marks heartbeats experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )


def open_study(spec: Spec, url: str, create: bool) -> optuna.Study:
    """Join (or, with ``create``, start) the study; a study searching something else is refused."""
    cfg = spec.config
    searched = {"metric": cfg.metric, "direction": cfg.direction, "params": _space(cfg)}
    if not create:
        try:
            return optuna.load_study(study_name=cfg.study, storage=storage(url))
        except KeyError:
            raise ParamsError(f"sweep.study: no study {cfg.study!r} in {redact(url)} yet") from None
    import sqlalchemy.exc

    for attempt in range(3):
        try:
            study = optuna.create_study(
                study_name=cfg.study, storage=storage(url), direction=cfg.direction, load_if_exists=True
            )
            break
        except sqlalchemy.exc.SQLAlchemyError:  # workers starting at once on a fresh database race on its tables
            if attempt == 2:
                raise
            time.sleep(2.0 * (attempt + 1))
    earlier = study.user_attrs.get("searched")
    if earlier is None:
        study.set_user_attr("searched", searched)
    elif earlier != searched:
        raise ParamsError(
            f"sweep.study: study {cfg.study!r} in {redact(url)} searches {earlier}, "
            f"params.yaml's sweep section {searched}: name a new study"
        )
    return study


def _space(cfg: SweepConfig) -> dict[str, dict[str, Any]]:
    return {
        name: {k: v for k, v in vars(space).items() if v is not None and (k != "log" or v)}
        for name, space in cfg.params.items()
    }


def dvc_objective(root: Path, spec: Spec, parent_run: str | None) -> Objective:
    """A trial as a DVC experiment in a temporary copy of the project; returns its metric."""

    def run(number: int, values: dict[str, Any]) -> float:
        import dvc.api

        name = experiment_name(spec.config.study, number)
        cmd = [sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", name]
        for key, value in values.items():
            cmd += ["-S", f"{key}={_yaml(value)}"]
        env = {
            **os.environ,
            SWEEP_ENV["sweep.study"]: spec.config.study,
            SWEEP_ENV["sweep.trial"]: str(number),
            **({SWEEP_ENV["mlflow.parentRunId"]: parent_run} if parent_run else {}),
        }
        log.info("trial %d: %s", number, " ".join([*cmd[2:], *spec.targets]))
        tail: collections.deque[str] = collections.deque(maxlen=40)
        with subprocess.Popen(
            [*cmd, *spec.targets], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip())
                sys.stderr.write(f"[{name}] {line}")
        if proc.returncode != 0:
            errors = [line for line in tail if "error" in line.lower()]
            raise TrialError("\n".join(errors[-3:] or list(tail)[-5:]))
        metrics = dvc.api.metrics_show(repo=str(root), rev=name)
        if spec.metric not in metrics:
            raise TrialError(f"experiment {name} has no metric {spec.metric}")
        return float(metrics[spec.metric])

    return run


def _yaml(value: Any) -> str:
    """A value as ``dvc exp run -S`` parses it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)  # 1e-05 is a string to PyYAML, which the stages read params.yaml with
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    return str(value)


def pipeline_stages(root: Path) -> dict[str, list[str]]:
    """Every stage in dvc.yaml with its metrics files."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {s.addressing: [o.def_path for o in s.outs if o.metric] for s in repo.index.stages}


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: its params, metric, state, worker, experiment and error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        retried = t.system_attrs.get("failed_trial")
        error = t.user_attrs.get("error") or ""
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                **t.params,
                "value": t.value,
                "seconds": t.duration.total_seconds() if t.duration else None,
                "worker": t.user_attrs.get("worker", ""),
                "experiment": t.user_attrs.get("experiment", ""),
                "retry of": "" if retried is None else retried,
                "error": error.splitlines()[-1] if error else "",
            }
        )
    return pd.DataFrame(rows)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best complete trial, or None before the first."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return study.best_trial if complete else None


def apply_best(params_file: Path, values: Mapping[str, Any]) -> None:
    """Write ``values`` (dotted param → value) into the params file, keeping its comments."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # no re-wrapped long values
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    data = yaml.load(params_file.read_text(encoding="utf-8"))
    for name, value in values.items():
        _set(data, name, yaml.load(_yaml(value)) if isinstance(value, float) else value)  # 1e-05 as 1.0e-05
    buf = io.StringIO()
    yaml.dump(data, buf)
    write_text(params_file, buf.getvalue())
    load_params(params_file)  # still a valid params file


class StudyRun:
    """The study's parent run in MLflow: the search space, the best trial so far, every trial."""

    def __init__(self, tracker: MlflowTracker, spec: Spec, storage_url: str) -> None:
        self.tracker = tracker
        self.spec = spec
        with tracker.exclusive():  # also creating a fresh mlflow.db: two workers starting at once race on it
            self.client = tracker.client
            self.experiment_id = tracker.experiment_id(spec.experiment)
            self.run_id = self._find_or_create(storage_url)

    def _search(self) -> list[Any]:
        study = self.spec.config.study
        return self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`sweep.study` = '{study}' and tags.`run.kind` = 'study'",
            order_by=["attributes.start_time ASC"],
        )

    def _find_or_create(self, storage_url: str) -> str:
        runs = self._search()
        if runs:
            return runs[0].info.run_id
        cfg = self.spec.config
        tags = {
            "run.kind": "study",
            "sweep.study": cfg.study,
            "sweep.metric": cfg.metric,
            "sweep.direction": cfg.direction,
            "sweep.storage": redact(storage_url),
        }
        mine = self.client.create_run(self.experiment_id, run_name=f"sweep {cfg.study}", tags=tags).info.run_id
        for name, value in flatten({"sweep.params": _space(cfg)}).items():
            self.client.log_param(mine, name, value)
        # two workers starting at once (on a server backend) may both create one: keep the oldest
        first = sorted(self._search(), key=lambda r: (r.info.start_time, r.info.run_id))[0].info.run_id
        if first != mine:
            self.client.delete_run(mine)
        return first

    def update(self, study: optuna.Study) -> None:
        """The best trial as tags and metric, every trial as a table; finished once the study is."""
        count = tally(study.get_trials(deepcopy=False))
        best = best_trial(study)
        with self.tracker.exclusive():
            client = self.client
            client.set_tag(self.run_id, "sweep.trials_done", str(count.done))
            if best is not None:
                client.set_tag(self.run_id, "best.trial", str(best.number))
                client.set_tag(self.run_id, "best.experiment", best.user_attrs.get("experiment", ""))
                for name, value in best.params.items():
                    client.set_tag(self.run_id, f"best.{name}", str(value))
                key = self.spec.config.metric.partition(":")[2]  # its history: the best so far, per trial done
                client.log_metric(self.run_id, key, float(best.value), step=count.done)
            table = trials_table(study).astype(str)
            client.log_dict(self.run_id, table.to_dict(orient="split", index=False), "sweep_trials.json")
            finished = count.done >= self.spec.config.n_trials
            client.update_run(self.run_id, status="FINISHED" if finished else "RUNNING")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    p.add_argument(
        "--storage",
        help=f"the study's database URL (default: ${STORAGE_ENV}, else sqlite:///{DEFAULT_DB} in the project)",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--show", action="store_true", help="print every trial and the best; run nothing")
    what.add_argument("--apply-best", action="store_true", help="write the best trial's params into params.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path.cwd()
    url = args.storage or os.environ.get(STORAGE_ENV) or f"sqlite:///{root / DEFAULT_DB}"
    try:
        params = load_params(args.params)
        import dvc.api

        spec = check_spec(params, pipeline_stages(root), dvc.api.metrics_show(repo=str(root)))
        study = open_study(spec, url, create=not (args.show or args.apply_best))
    except ParamsError as exc:
        log.error("%s: %s", args.params, exc)
        raise SystemExit(1) from None
    if args.show:
        show(study, spec)
        return
    if args.apply_best:
        best = best_trial(study)
        if best is None:
            log.error("study %r has no complete trial yet", spec.config.study)
            raise SystemExit(1)
        apply_best(args.params, best.params)
        log.info("%s: wrote trial %d's %s; `dvc repro` runs the pipeline with them", args.params, best.number,
                 best.params)  # fmt: skip
        return
    tracker = MlflowTracker(default_tracking_uri(root), artifact_root=root / "mlartifacts")
    parent = StudyRun(tracker, spec, url)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    log.info("worker %s joins study %r (%s): %d trials of %s", worker, spec.config.study, redact(url),
             spec.config.n_trials, spec.metric)  # fmt: skip
    objective = make_objective(spec, dvc_objective(root, spec, parent.run_id), worker)
    work(study, spec.config.n_trials, objective, after_trial=lambda: parent.update(study))
    parent.update(study)
    show(study, spec)


def show(study: optuna.Study, spec: Spec) -> None:
    """Print the trials and the best one."""
    table = trials_table(study)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        sys.stdout.write((table.to_string(index=False) if not table.empty else "no trials yet") + "\n")
    best = best_trial(study)
    if best is not None:
        sys.stdout.write(f"best: trial {best.number} ({best.user_attrs.get('experiment', '')}) "
                         f"{spec.metric} = {best.value:.4f} with {best.params}\n")  # fmt: skip


if __name__ == "__main__":
    main()
