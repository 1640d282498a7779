"""MLflow tracking, kept behind a small interface so stages receive it by injection.

Run design: one MLflow experiment per dataset (``<prefix>-<dataset>``); each pipeline
execution that changes anything creates one parent run there (all params, data card,
``params.yaml``, ``dvc.lock``, headline metrics of every model) with one child run per
model (params, test metrics, per-epoch curves as step metrics, plots, vocabulary and the
model as an MLflow pyfunc model with signature and input example).

A model whose files did not change since an earlier run (its DVC stages were cached) still
gets its child run with params and metrics, so runs compare side by side, but its artifacts
are not uploaded again: the child is tagged ``artifacts.run_id`` (the run holding them) and
``model.uri`` (``runs:/<that run>/model``), found by a fingerprint of the files.

The tracking URI is ``MLFLOW_TRACKING_URI`` when set; otherwise the sqlite database
``mlflow.db`` in the project root, as an absolute path that also resolves from DVC's
temporary experiment copies (``.dvc/tmp/exps/...``) to the real project root.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000


@dataclass
class ModelArtifact:
    """A model to log as an MLflow pyfunc model."""

    keras_file: Path
    featurizer_file: Path
    threshold: float = 0.5


@dataclass(frozen=True)
class DatasetRef:
    """A dataset a run used, for ``mlflow.log_input``: metadata only, never the reviews."""

    name: str
    digest: str
    source: str  # URL or path of the raw data
    context: str  # what the run did with it (MLflow's ``mlflow.data.context`` tag)


# set by tools.sweep for the track stage of each trial: MLflow tag -> environment variable
SWEEP_ENV = {"sweep.study": "SWEEP_STUDY", "sweep.trial": "SWEEP_TRIAL", "mlflow.parentRunId": "SWEEP_PARENT_RUN"}
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")  # MLflow UI: the model-training view


@dataclass
class RunPlan:
    """Everything one MLflow run will hold; built by a pure function, logged by a tracker."""

    name: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    step_metrics: dict[str, list[float]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifacts: list[tuple[Path, str]] = field(default_factory=list)  # (local file, artifact dir)
    model: ModelArtifact | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # artifact file -> rows (MLflow tables)
    datasets: list[DatasetRef] = field(default_factory=list)
    children: list[RunPlan] = field(default_factory=list)


class Tracker(Protocol):
    """What the track stage needs from a tracking backend."""

    def record(self, experiment: str, plan: RunPlan) -> dict[str, str]:
        """Log ``plan`` (and its children) and return ``{run name: run id}``."""
        ...


def project_root(cwd: Path | None = None) -> Path:
    """The project root, also from inside DVC's temporary experiment copies."""
    path = (cwd or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return path


def redact(uri: str) -> str:
    """Hide credentials in a tracking or storage URI before printing it."""
    import re

    return re.sub(r"//[^/@]+@", "//***@", uri)


def default_tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` or ``sqlite:///<abs project root>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def git_state(cwd: Path | None = None, ignore: list[str] | None = None) -> dict[str, str]:
    """Current commit and whether the work tree has uncommitted changes.

    ``ignore``: paths whose changes do not count, such as ``dvc.lock`` and the committed metrics
    that ``dvc repro`` itself rewrites while it runs: a run from a clean checkout is clean.
    """

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", *[f":(exclude){p}" for p in ignore or []])
    return {
        "commit": commit or "unknown",
        "dirty": "unknown" if status is None else str(bool(status)).lower(),
    }


def _param_value(value: Any) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def as_params(flat: dict[str, Any]) -> dict[str, str]:
    """MLflow param strings (``None`` → ``null``, lists as Python text, length-capped)."""
    return {k: _param_value(v) for k, v in sorted(flat.items())}


CONFLICT_MARKERS = ("unique constraint", "uniqueviolation", "duplicate key", "integrityerror", "already exists")


def is_conflict(exc: Exception) -> bool:
    """Whether an MLflow error says a competitor wrote the same row a moment earlier."""
    code = getattr(exc, "error_code", "")
    text = str(exc).lower()
    return code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS") or any(m in text for m in CONFLICT_MARKERS)


class SharedClient:
    """An ``MlflowClient`` whose writes that concurrent workers repeat are idempotent.

    Two sweep workers, or two ``track`` stages of a parallel queue, write the same rows on a
    server backend at the same moment (the experiment, its tags, a run tag, a registered model's
    alias; ``mlflow.register_model`` itself joins a registered model a competitor created).
    MLflow's SQL store inserts such a row when it does not see it, so the slower writer gets a
    unique-key error. Here a create that lost the race returns what the
    competitor created, and a set that lost it is repeated (now an update of that row): the
    outcome is the one either order of the two writes would give. Every other call passes through.
    """

    ATTEMPTS = 5

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def _repeat(self, write: Any, *args: Any) -> None:
        from mlflow.exceptions import MlflowException

        for attempt in range(self.ATTEMPTS):
            try:
                write(*args)
                return
            except MlflowException as exc:
                if not is_conflict(exc) or attempt == self.ATTEMPTS - 1:
                    raise
                log.debug("%s%s: lost a race to another writer, writing again", write.__name__, args)

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self._repeat(self._client.set_tag, run_id, key, value)

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        self._repeat(self._client.set_experiment_tag, experiment_id, key, value)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._repeat(self._client.set_registered_model_alias, name, alias, version)

    def create_experiment(self, name: str, artifact_location: str | None = None) -> str:
        """The new experiment's id, or that of the one a competitor created under ``name``."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException as exc:
            exp = self._client.get_experiment_by_name(name) if is_conflict(exc) else None
            if exp is None:
                raise
            return exp.experiment_id


class MlflowTracker:
    """Logs :class:`RunPlan` trees to MLflow."""

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        import mlflow

        self.mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        mlflow.set_tracking_uri(tracking_uri)

    @property
    def client(self) -> SharedClient:
        """A client for this tracking URI whose repeated writes are safe under concurrency."""
        return SharedClient(self.mlflow.MlflowClient(self.tracking_uri))

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (and tagged for the training view) if new."""
        client = self.client
        exp = client.get_experiment_by_name(name)
        if exp is None:
            location = None
            if self.artifact_root is not None and self.tracking_uri.startswith("sqlite:"):
                location = (self.artifact_root / name).as_uri()
            exp_id = client.create_experiment(name, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        if exp is None or exp.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
            client.set_experiment_tag(exp_id, *EXPERIMENT_KIND)
        return exp_id

    def record(self, experiment: str, plan: RunPlan) -> dict[str, str]:
        """Log the parent run and its children; returns run ids by run name."""
        with self.exclusive():
            exp_id = self.experiment_id(experiment)
            ids: dict[str, str] = {}
            self._log(exp_id, plan, None, ids)
            return ids

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One writer at a time on a SQLite backend (``dvc queue start -j 2`` runs tracks in parallel).

        SQLite allows one writer; two processes writing at once can fail with "database is
        locked". A lock file next to the database serialises the track stages of parallel
        queue workers (a server backend needs none).
        """
        if not self.tracking_uri.startswith("sqlite:///"):
            yield
            return
        db = Path(self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
        with open(db.with_name(db.name + ".lock"), "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _earlier_artifacts(self, exp_id: str, fingerprint: str) -> str | None:
        """The run that already holds artifacts with this fingerprint, if any."""
        runs = self.client.search_runs(
            [exp_id],
            filter_string=f"tags.`artifacts.fingerprint` = '{fingerprint}' and tags.`artifacts.logged` = 'true' "
            "and attributes.status = 'FINISHED'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        return runs[0].info.run_id if runs else None

    def register_best(self, experiment: str, name: str, metric: str, direction: str) -> dict[str, str] | None:
        """Point the registered model ``name``'s ``champion`` alias at the experiment's best model.

        Best: the finished model run with the highest (``direction: max``) or lowest ``metric``.
        A new version is registered only when no version holds the same model files (compared by
        their fingerprint), from the run that holds the model's artifacts. Two workers registering
        the same files at once keep the lower of the two versions and delete the other.
        """
        client = self.client
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return None
        order = "DESC" if direction == "max" else "ASC"
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string="tags.`run.kind` = 'model' and attributes.status = 'FINISHED'",
            order_by=[f"metrics.`{metric}` {order}", "attributes.start_time DESC"],
            max_results=1,
        )
        if not runs or metric not in runs[0].data.metrics:
            return None
        best = runs[0]
        fingerprint = best.data.tags.get("artifacts.fingerprint", best.info.run_id)
        source = best.data.tags.get("model.uri", f"runs:/{best.info.run_id}/model")
        with self.exclusive():
            version = self._version_of(client, name, fingerprint)
            if version is None:  # register_model creates the registered model, or joins a competitor's
                mine = self.mlflow.register_model(
                    source,
                    name,
                    tags={
                        "artifacts.fingerprint": fingerprint,
                        "best_run_id": best.info.run_id,
                        "metric": f"{metric}={best.data.metrics[metric]:.6f} ({direction})",
                    },
                ).version
                version = self._version_of(client, name, fingerprint) or str(mine)
                if version != str(mine):  # a competitor registered the same files first
                    client.delete_model_version(name, mine)
            client.set_registered_model_alias(name, "champion", version)
        return {
            "name": name,
            "version": str(version),
            "run_id": best.info.run_id,
            "model": best.data.tags.get("model", ""),
            metric: f"{best.data.metrics[metric]:.6f}",
        }

    @staticmethod
    def _version_of(client: SharedClient, name: str, fingerprint: str) -> str | None:
        """The lowest version of registered model ``name`` holding the files ``fingerprint``."""
        found = client.search_model_versions(f"name = '{name}' and tags.`artifacts.fingerprint` = '{fingerprint}'")
        return str(min(int(v.version) for v in found)) if found else None

    def _log(self, exp_id: str, plan: RunPlan, parent_id: str | None, ids: dict[str, str]) -> None:
        from mlflow.entities import Metric, Param

        client = self.client
        tags = dict(plan.tags)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        earlier = None
        if plan.model is not None:
            fingerprint = artifacts_fingerprint(plan)
            tags["artifacts.fingerprint"] = fingerprint
            earlier = self._earlier_artifacts(exp_id, fingerprint)
        run = client.create_run(exp_id, run_name=plan.name, tags=tags)
        run_id = run.info.run_id
        ids[plan.name] = run_id
        if plan.model is not None:
            holder = earlier or run_id
            client.set_tag(run_id, "artifacts.run_id", holder)
            client.set_tag(run_id, "model.uri", f"runs:/{holder}/model")
            client.set_tag(run_id, "artifacts.logged", "false" if earlier else "true")
        try:
            params = [Param(k, v) for k, v in plan.params.items()]
            for i in range(0, len(params), 100):
                client.log_batch(run_id, params=params[i : i + 100])
            ts = 0
            metrics = [Metric(k, float(v), ts, 0) for k, v in sorted(plan.metrics.items())]
            for key, values in sorted(plan.step_metrics.items()):
                metrics += [Metric(key, float(v), ts, step) for step, v in enumerate(values, start=1)]
            for i in range(0, len(metrics), 1000):
                client.log_batch(run_id, metrics=metrics[i : i + 1000])
            if plan.datasets:
                self._log_inputs(run_id, plan.datasets)
            for artifact_file, records in plan.tables.items():
                import pandas as pd

                client.log_table(run_id, pd.DataFrame.from_records(records), artifact_file)
            if earlier is None:
                for path, artifact_dir in plan.artifacts:
                    client.log_artifact(run_id, str(path), artifact_dir or None)
                if plan.model is not None:
                    self._log_model(run_id, plan.model)
            else:
                log.info("%s: files unchanged since run %s; referencing its artifacts", plan.name, earlier)
            for child in plan.children:
                self._log(exp_id, child, run_id, ids)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")

    def _log_inputs(self, run_id: str, datasets: list[DatasetRef]) -> None:
        """``mlflow.log_input`` for each dataset: name, digest and source (metadata, not the data)."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        with self.mlflow.start_run(run_id=run_id):
            for d in datasets:
                dataset = MetaDataset(resolve_dataset_source(d.source), name=d.name, digest=d.digest)
                self.mlflow.log_input(dataset, context=d.context)

    def _log_model(self, run_id: str, model: ModelArtifact) -> None:
        from importlib.metadata import version

        import pandas as pd
        from mlflow.models import infer_signature

        from stages.common.modelling.pyfunc import SentimentModel

        mlflow = self.mlflow
        example = pd.DataFrame({"text": ["a warm, funny and moving film", "dull plot and wooden acting"]})
        output = pd.DataFrame({"proba": [0.5, 0.5], "label": [1, 0]})
        requirements = [
            f"{pkg}=={version(pkg)}"
            for pkg in ("tensorflow-cpu", "keras", "scikit-learn", "scipy", "numpy", "pandas", "mlflow")
            if _installed(pkg)
        ]
        with mlflow.start_run(run_id=run_id):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=SentimentModel(),
                artifacts={"keras_model": str(model.keras_file), "featurizer": str(model.featurizer_file)},
                code_paths=[str(Path(__file__).resolve().parents[1])],
                signature=infer_signature(example, output),
                input_example=example,
                pip_requirements=requirements,
                model_config={"threshold": model.threshold},
            )


def artifacts_fingerprint(plan: RunPlan) -> str:
    """sha256 over every artifact file of a run (name, place and content) and its model files."""
    digest = hashlib.sha256()
    files = [(str(path), artifact_dir) for path, artifact_dir in plan.artifacts]
    if plan.model is not None:
        files += [(str(plan.model.keras_file), "model"), (str(plan.model.featurizer_file), "model")]
        digest.update(f"threshold={plan.model.threshold}".encode())
    for path, artifact_dir in sorted(files):
        digest.update(f"{artifact_dir}/{Path(path).name}\0".encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _installed(pkg: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(pkg)
    except PackageNotFoundError:
        return False
    return True
