"""track: record one dataset's pipeline state in MLflow, from the files DVC tracks.

Why a final stage rather than logging inside each stage: DVC skips stages whose inputs
did not change, so a tracker inside them would log nothing for cached models. This stage
depends on every output of its dataset and on ``params.yaml``; whenever any of them
changes it logs the *whole* state — all params, every model's metrics, per-epoch curves
(from the saved history), plots, vocabularies, models, ``params.yaml`` and ``dvc.lock`` —
as a parent run with a child per model. A no-op ``dvc repro`` skips it: nothing new is
recorded. It can be re-run by hand to log an existing state (``make track``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from stages.common import cli
from stages.common.data import layout
from stages.common.data.io import read_json, write_json
from stages.common.errors import DataError, TrackingError
from stages.common.params import load_params
from stages.common.params.parsing import flatten
from stages.common.tracking.tracker import (
    SWEEP_ENV,
    DatasetRef,
    MlflowTracker,
    ModelArtifact,
    RunPlan,
    Tracker,
    as_params,
    default_tracking_uri,
    git_state,
    project_root,
    redact,
)

log = logging.getLogger(__name__)

SCORECARD_TABLE = "scorecard.json"  # the MLflow table artifact on the parent run (compare runs on it)


@dataclass
class ModelState:
    """One trained and evaluated model, as the earlier stages left it on disk."""

    name: str
    summary: dict[str, Any]
    metrics: dict[str, Any]
    explain: dict[str, Any]
    history: pd.DataFrame
    behaviour: dict[str, Any]  # behave's metrics (failure rates and cases per test)
    cross_domain: dict[str, Any]  # crossdomain's metrics per other dataset
    contrast: dict[str, Any]  # contrast's metrics (minimal-edit pairs)
    artifacts: list[tuple[Path, str]]  # (file, MLflow artifact directory)
    model_file: Path
    featurizer_file: Path


def lock_checksums(lock: Mapping[str, Any], dataset: str) -> dict[str, str]:
    """``{path: md5}`` for every output of this dataset's stages recorded in ``dvc.lock``."""
    out: dict[str, str] = {}
    for stage, entry in (lock.get("stages") or {}).items():
        item_name = stage.split("@", 1)[1] if "@" in stage else ""
        if item_name != dataset and not item_name.startswith(f"{dataset}-"):
            continue
        for item in entry.get("outs") or []:
            if "md5" in item:
                out[item["path"]] = item["md5"]
    return dict(sorted(out.items()))


def plan_runs(
    dataset: str,
    params: Mapping[str, Any],
    card: Mapping[str, Any],
    models: Sequence[ModelState],
    *,
    correlate: Mapping[str, Any] | None = None,
    lock: Mapping[str, Any],
    git: Mapping[str, str],
    env: Mapping[str, str],
    run_artifacts: Sequence[tuple[Path, str]] = (),
    threshold: float = 0.5,
) -> RunPlan:
    """Build the parent/child run tree for one dataset. Pure: no MLflow, no file access."""
    flat = as_params(flatten(params))
    tags = {
        "dataset": dataset,
        "mlflow.source.git.commit": git.get("commit", "unknown"),
        "git.commit": git.get("commit", "unknown"),
        "git.dirty": git.get("dirty", "unknown"),
        "dvc.exp_name": env.get("DVC_EXP_NAME", ""),
        "dvc.baseline_rev": env.get("DVC_EXP_BASELINE_REV", ""),
        "DVC_EXP_NAME": env.get("DVC_EXP_NAME", ""),  # as DVC names them, for filters that use those
        "DVC_EXP_BASELINE_REV": env.get("DVC_EXP_BASELINE_REV", ""),
        "data.source_sha256": str((card.get("source") or {}).get("sha256", "")),
        **{tag: env.get(var, "") for tag, var in SWEEP_ENV.items()},  # a sweep's trial: its study run is the parent
    }
    tags.update({f"dvc.md5.{path}": md5 for path, md5 in lock_checksums(lock, dataset).items()})
    tags = {k: v for k, v in tags.items() if v != ""}
    commit = tags["git.commit"][:8]
    used = _datasets(dataset, card, lock)
    parent = RunPlan(
        name=f"{dataset} @ {tags.get('dvc.exp_name') or commit + ('+dirty' if tags['git.dirty'] == 'true' else '')}",
        params=flat,
        tags={**tags, "run.kind": "pipeline"},
        artifacts=list(run_artifacts),
        datasets=used,
    )
    parent.metrics.update({f"data.{split}_rows": float(v["rows"]) for split, v in (card.get("splits") or {}).items()})
    dups = card.get("duplicates") or {}
    parent.metrics.update(
        {f"data.duplicates.{k}": float(v) for k, v in flatten(dups).items() if _number(v) and "examples" not in k}
    )
    for m in models:
        test = {f"test_{k}": float(v) for k, v in flatten(m.metrics).items() if isinstance(v, int | float)}
        train = {f"train_{k}": float(v) for k, v in m.summary.items() if isinstance(v, int | float)}
        trust = {f"explain.{k}": float(v) for k, v in flatten(m.explain).items() if _number(v)}
        trust.update(
            {f"correlate_{k}": float(v) for k, v in ((correlate or {}).get(m.name) or {}).items() if _number(v)}
        )
        trust.update({f"behaviour.{k}": float(v) for k, v in flatten(m.behaviour).items() if _number(v)})
        trust.update({f"cross_domain.{k}": float(v) for k, v in flatten(m.cross_domain).items() if _number(v)})
        trust.update({f"contrast.{k}": float(v) for k, v in m.contrast.items() if _number(v)})
        parent.metrics.update({f"{m.name}.{k}": v for k, v in test.items() if "confusion" not in k})
        parent.metrics.update({f"{m.name}.{k}": v for k, v in trust.items()})
        child = RunPlan(
            name=f"{dataset}/{m.name}",
            params=flat,
            metrics={**test, **train, **trust},
            step_metrics={c: m.history[c].astype(float).tolist() for c in m.history.columns if c != "epoch"},
            tags={**tags, "run.kind": "model", "model": m.name},
            artifacts=list(m.artifacts),
            model=ModelArtifact(keras_file=m.model_file, featurizer_file=m.featurizer_file, threshold=threshold),
            datasets=used,
        )
        parent.children.append(child)
    return parent


def _datasets(dataset: str, card: Mapping[str, Any], lock: Mapping[str, Any]) -> list[DatasetRef]:
    """The prepared table the runs trained and were tested on: its DVC md5 and the raw data's location."""
    source = card.get("source") or {}
    prepared = next(
        (md5 for path, md5 in lock_checksums(lock, dataset).items() if path.endswith(f"/{dataset}.parquet")),
        None,
    )
    digest = prepared or str(source.get("sha256", ""))[:32]
    if not digest or not source.get("location"):
        return []
    return [DatasetRef(name=dataset, digest=digest, source=str(source["location"]), context="train and test")]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # not NaN


def track(dataset: str, plan: RunPlan, tracker: Tracker, experiment: str) -> dict[str, str]:
    """Log a plan with the injected tracker; returns run ids by run name."""
    return tracker.record(experiment, plan)


def _files(directory: Path, artifact_dir: str) -> list[tuple[Path, str]]:
    """Every file under ``directory`` with its artifact folder (sub-folders kept: explain's methods)."""
    if not directory.is_dir():
        return []
    return [
        (f, str(Path(artifact_dir) / f.parent.relative_to(directory)).removeprefix("."))
        for f in sorted(directory.rglob("*"))
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(directory).parts)
    ]


def load_model_state(
    name: str,
    reports: Path,
    models_dir: Path,
    features_dir: Path,
    plot_dirs: Sequence[Path],
    html_dir: Path | None = None,
) -> ModelState:
    """Collect what train, evaluate and explain wrote for one model.

    ``reports/<model>/`` holds its metrics, ``reports/explain/<model>/`` its explanations,
    and each plot directory ``<model>.*`` (the training history is read for step metrics).
    """
    model_reports = reports / name
    plot_files = [f for d in plot_dirs for f in sorted(Path(d).glob(f"{name}.*")) if f.is_file()]
    history = next((f for f in plot_files if f.suffix == ".csv" and f.read_text().startswith("epoch,")), None)
    if history is None:
        raise DataError(f"no training history for model {name!r} in {', '.join(map(str, plot_dirs))}")
    explain_files = [model_reports / layout.EXPLAIN_METRICS, model_reports / layout.EXPLAIN_TIMING]
    behaviour, cross = model_reports / layout.BEHAVIOUR, model_reports / layout.CROSS_DOMAIN
    contrast = model_reports / layout.CONTRAST
    return ModelState(
        name=name,
        summary=read_json(model_reports / layout.TRAIN_SUMMARY),
        metrics=read_json(model_reports / layout.METRICS),
        explain={k: v for f in explain_files if f.is_file() for k, v in read_json(f).items()},
        history=pd.read_csv(history),
        behaviour=read_json(behaviour) if behaviour.is_file() else {},
        cross_domain=read_json(cross) if cross.is_file() else {},
        contrast=read_json(contrast) if contrast.is_file() else {},
        artifacts=_files(model_reports, "")
        + [(f, f"plots/{f.parent.parent.name}") for f in plot_files]
        + _files(reports / "explain" / name, "explain")
        + ([(f, "explain") for f in sorted(html_dir.glob(f"{name}_*.html"))] if html_dir else [])
        + [(features_dir / name / layout.FEATURIZER, "")],
        model_file=models_dir / f"{name}.keras",
        featurizer_file=features_dir / name / layout.FEATURIZER,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.track --dataset imdb --reports ... --models ... --features ... --out ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--reports", type=Path, required=True, help="the dataset's reports directory")
    p.add_argument("--models", type=Path, required=True, help="the dataset's trained models directory")
    p.add_argument("--features", type=Path, required=True, help="the dataset's features directory")
    p.add_argument("--plots", type=Path, nargs="+", default=[], help="directories holding <model>.* plot files")
    p.add_argument("--html", type=Path, help="the dataset's HTML pages (report.html, <model>_*.html)")
    p.add_argument("--scorecard", type=Path, help="the report's scorecard (.json): a table on the parent run")
    p.add_argument("--lock", type=Path, default=Path("dvc.lock"))
    p.add_argument("--out", type=Path, required=True, help="where to write the MLflow run ids (.json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    cfg = params.track
    card_path = args.reports / layout.DATA_CARD
    card = read_json(card_path)
    lock = yaml.safe_load(args.lock.read_text(encoding="utf-8")) if args.lock.is_file() else {}
    states = [
        load_model_state(m, args.reports, args.models, args.features, args.plots, args.html) for m in params.models
    ]
    correlate_file = args.reports / layout.CORRELATE_METRICS
    report = args.html / layout.REPORT if args.html else None
    run_files = [args.params, args.lock, card_path, Path("dvc.yaml"), correlate_file, report]
    run_artifacts = [(f, "") for f in run_files if f is not None and f.is_file()]
    run_artifacts += _files(args.reports / "correlate", "correlate")
    plan = plan_runs(
        args.dataset,
        params.raw,
        card,
        states,
        correlate=read_json(correlate_file) if correlate_file.is_file() else None,
        lock=lock,
        git=git_state(ignore=[str(args.lock), layout.dvc_paths()["reports"]]),
        env=os.environ,
        run_artifacts=run_artifacts,
        threshold=params.evaluate.threshold,
    )
    if args.scorecard is not None and args.scorecard.is_file():
        plan.tables[SCORECARD_TABLE] = read_json(args.scorecard)["table"]
    uri = default_tracking_uri()
    experiment = params.experiment(args.dataset)
    tracker = MlflowTracker(uri, artifact_root=project_root() / "mlartifacts")
    try:
        ids = track(args.dataset, plan, tracker, experiment)
    except Exception as exc:
        raise TrackingError(
            f"could not record the run in MLflow at {redact(uri)} ({type(exc).__name__}: {exc}). "
            "The DVC outputs are kept; once the tracking server is reachable, record this state with "
            f"`dvc repro --force --single-item track@{args.dataset}` (or `make track`)."
        ) from exc
    champion = None
    if cfg.register is not None:
        try:
            champion = tracker.register_best(
                experiment, experiment, f"test_{cfg.register.metric}", cfg.register.direction
            )
        except Exception as exc:
            raise TrackingError(
                f"the runs are recorded, but registering the best model in {redact(uri)} failed "
                f"({type(exc).__name__}: {exc}); re-run `dvc repro --force --single-item track@{args.dataset}`."
            ) from exc
        log.info("Model Registry: %s", champion)
    log.info("MLflow experiment %r: %s", experiment, ids)
    write_json(args.out, {"experiment": experiment, "parent_run": plan.name, "runs": ids, "champion": champion})


if __name__ == "__main__":
    cli.run("track", main)
