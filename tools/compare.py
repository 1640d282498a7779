"""compare: the last N pipeline runs of a dataset side by side, from MLflow; or one model before and after a fix.

``make compare`` (or ``python -m tools.compare --dataset imdb -n 5``) prints, for each
dataset, one column per run (newest first): its DVC experiment name and commit, the params
that differ between those runs, and the headline metrics of every model. Reads the parent
runs the track stage logs (``run.kind = pipeline``) from ``MLFLOW_TRACKING_URI`` or the
project's ``mlflow.db``.

``python -m tools.compare --model imdb/mlp --before main --after <exp>`` prints the scorecard of
one model against itself: each measure at two revisions (git commits, branches, tags or DVC
experiment names; files read through ``dvc.api``, DVC-cached outputs included), the difference
with its 95% interval (paired over the same test and explained reviews) and which side is ahead.
"""

from __future__ import annotations

import argparse
import fnmatch
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stages.common.data import layout
from stages.common.params import DEFAULT_PARAMS, load_params
from stages.common.report import scorecard
from stages.common.tracking.tracker import default_tracking_uri

DEFAULT_METRICS = (
    "*.test_accuracy",
    "*.test_balanced_accuracy",
    "*.test_roc_auc",
    "*.explain.lime.aopc_comprehensiveness",
)


def compare_table(runs: Sequence[Any], metric_patterns: Sequence[str] = DEFAULT_METRICS) -> pd.DataFrame:
    """Runs (MLflow ``Run`` objects, newest first) → a table: rows are fields, one column per run.

    Rows: the DVC experiment, commit, then every param whose value is not the same in all
    runs, then the metrics matching ``metric_patterns``. Pure: no MLflow calls.
    """
    columns = [f"{r.info.run_id[:8]}" for r in runs]
    rows: dict[str, list[Any]] = {
        "started": [pd.Timestamp(r.info.start_time, unit="ms").strftime("%Y-%m-%d %H:%M") for r in runs],
        "dvc experiment": [r.data.tags.get("DVC_EXP_NAME") or r.data.tags.get("dvc.exp_name") or "-" for r in runs],
        "commit": [
            r.data.tags.get("git.commit", "?")[:8] + ("+dirty" if r.data.tags.get("git.dirty") == "true" else "")
            for r in runs
        ],
    }
    keys = sorted({k for r in runs for k in r.data.params})
    for key in keys:
        values = [r.data.params.get(key, "-") for r in runs]
        if len(set(values)) > 1:
            rows[f"param {key}"] = values
    names = sorted({k for r in runs for k in r.data.metrics if any(fnmatch.fnmatch(k, p) for p in metric_patterns)})
    for name in names:
        rows[name] = [_fmt(r.data.metrics.get(name)) for r in runs]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


Reader = Any  # (path, rev, binary) -> the file's bytes or text at that revision


def model_figures(read: Reader, rev: str, dataset: str, model: str, paths: dict[str, str]) -> dict[str, Any]:
    """Everything the scorecard reads about one model, at one revision."""
    import io
    import json

    reports = f"{paths['reports']}/{dataset}"

    def js(path: str) -> Any:
        return json.loads(read(path, rev, False))

    explain, correlate = js(f"{reports}/{model}/{layout.EXPLAIN_METRICS}"), js(f"{reports}/{layout.CORRELATE_METRICS}")
    try:
        methods = [r["method"] for r in js(f"{reports}/explain/{model}/{layout.RANKING}")]
        explanations = {m: js(f"{reports}/explain/{model}/{m}/{layout.EXPLANATIONS}") for m in methods}
    except FileNotFoundError:  # a revision from before explain.methods: LIME only, its files one level up
        explanations = {"lime": js(f"{reports}/explain/{model}/{layout.EXPLANATIONS}")}
        explain, correlate = _lime_only(explain, correlate)
    return {
        "metrics": js(f"{reports}/{model}/{layout.METRICS}"),
        "cross_domain": js(f"{reports}/{model}/{layout.CROSS_DOMAIN}"),
        "contrast": js(f"{reports}/{model}/{layout.CONTRAST}"),
        "explain": explain,
        "correlate": correlate.get(model),
        "behaviour": js(f"{reports}/{model}/{layout.BEHAVIOUR}"),
        "explanations": explanations,
        "predictions": pd.read_parquet(io.BytesIO(read(f"{paths['predictions']}/{dataset}/{model}.parquet", rev, 1))),
    }


def _lime_only(explain: dict[str, Any], correlate: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A LIME-only revision's explain and correlate metrics under today's names."""
    lime = {
        k: v for k, v in explain.items() if not k.endswith("_random") and k not in ("n_explained", "faithfulness_k")
    }
    random = {k.removesuffix("_random"): v for k, v in explain.items() if k.endswith("_random")}
    renamed = {
        m: {("spearman_vs_correlation" if k == "spearman_lime_vs_correlation" else k): v for k, v in c.items()}
        for m, c in correlate.items()
    }
    return {"lime": lime, "random": random}, renamed


def fix_table(
    read: Reader, dataset: str, model: str, before: str, after: str, paths: dict[str, str], resamples: int, seed: int
) -> pd.DataFrame:
    """One model's scorecard at two revisions: columns ``before``/``after`` values, the difference and who is ahead."""
    figures = {rev: model_figures(read, rev, dataset, model, paths) for rev in (before, after)}
    card = scorecard.table(figures, resamples, seed)
    return card.rename(columns={before: f"before ({before})", after: f"after ({after})"})


def markdown(card: pd.DataFrame) -> str:
    """A scorecard as a Markdown table, figures to four places."""
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in card.itertuples(index=False)]
    lines = ["| " + " | ".join(card.columns) + " |", "|" + "---|" * len(card.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


WORKSPACE = "workspace"  # --after's default: the files as they are now


def dvc_read(path: str, rev: str, binary: bool) -> Any:
    """A file at a revision (git commit, branch, tag or DVC experiment), git- or DVC-tracked; or in the workspace."""
    if rev == WORKSPACE:
        return Path(path).read_bytes() if binary else Path(path).read_text(encoding="utf-8")
    import dvc.api
    from dvc.exceptions import PathMissingError

    try:
        return dvc.api.read(path, rev=rev, mode="rb" if binary else "r")
    except PathMissingError as exc:
        raise FileNotFoundError(f"{path} at {rev}") from exc


def latest_runs(client: Any, experiment: str, n: int) -> list[Any]:
    """The ``n`` newest finished pipeline (parent) runs of an experiment."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs(
        [exp.experiment_id],
        filter_string="tags.`run.kind` = 'pipeline' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=n,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m tools.compare [--dataset imdb] [-n 5] [--metric '*.test_f1']``, or
    ``python -m tools.compare --model imdb/mlp --before REV --after REV``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="dataset/model to compare with itself across --before and --after")
    p.add_argument("--before", help="git revision or DVC experiment name (with --model)")
    p.add_argument("--after", help="git revision or DVC experiment name (with --model; default: the workspace)")
    p.add_argument("--dataset", action="append", help="dataset(s) to show (default: all in params.yaml)")
    p.add_argument("-n", type=int, default=5, help="how many of the newest runs (default 5)")
    p.add_argument("--metric", action="append", help="metric name pattern(s), e.g. '*.test_f1' (default: headline)")
    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    p.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI or ./mlflow.db")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import mlflow

    params = load_params(args.params)
    if args.model:
        if not args.before or "/" not in args.model:
            p.error("--model DATASET/MODEL needs --before REV")
        dataset, model = args.model.split("/", 1)
        after = args.after or WORKSPACE
        card = fix_table(dvc_read, dataset, model, args.before, after, layout.dvc_paths(),
                         params.report.resamples, params.seed)  # fmt: skip
        sys.stdout.write(markdown(card) + "\n")
        return
    client = mlflow.MlflowClient(args.tracking_uri or default_tracking_uri())
    with pd.option_context("display.width", 250, "display.max_columns", 50, "display.max_colwidth", 40):
        for dataset in args.dataset or list(params.datasets):
            experiment = params.experiment(dataset)
            runs = latest_runs(client, experiment, args.n)
            sys.stdout.write(f"\n== {experiment}: {len(runs)} newest run(s), newest first ==\n")
            if runs:
                table = compare_table(runs, args.metric or DEFAULT_METRICS)
                sys.stdout.write(table.to_string() + "\n")


if __name__ == "__main__":
    main()
