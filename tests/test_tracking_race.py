"""Concurrent MLflow writers: several processes hit one fresh PostgreSQL-backed server at once.

Two sweep workers, or two ``track`` stages of a parallel queue, create and tag the same
experiment, tag the same run and register the same model at the same moment. Every one of
them must succeed and leave the state one writer alone would have left.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from tests.conftest import team_server

pytestmark = pytest.mark.server

WORKERS, ROUNDS = 4, 6
FINGERPRINT = "f" * 64


def _contend(uri: str, run_id: str, barrier: Any, results: Any, me: int) -> None:
    """One worker: each round, the same writes as every other worker, started together."""
    try:
        from stages.common.tracking.tracker import MlflowTracker

        tracker = MlflowTracker(uri)
        done = []
        for r in range(ROUNDS):
            barrier.wait(timeout=120)
            exp_id = tracker.experiment_id(f"race-{r}")
            barrier.wait(timeout=120)
            tracker.client.set_tag(run_id, f"round.{r}", "reached")
            barrier.wait(timeout=120)
            champion = tracker.register_best("models", f"race-{r}", "accuracy", "max")
            done.append((exp_id, champion["version"] if champion else None))
        results.put((me, "ok", done))
    except BaseException as exc:  # report, and release the others from the barrier
        results.put((me, "error", f"{type(exc).__name__}: {exc}"))
        barrier.abort()


def test_concurrent_trackers_on_a_fresh_server_all_succeed_with_one_outcome() -> None:
    import mlflow

    with team_server() as (uri, _, _):
        client = mlflow.MlflowClient(uri)
        models = client.create_experiment("models")
        shared = client.create_run(models, tags={"run.kind": "model", "artifacts.fingerprint": FINGERPRINT})
        run_id = shared.info.run_id
        client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
        client.log_metric(run_id, "accuracy", 0.9)
        client.set_terminated(run_id, "FINISHED")

        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
        procs = [ctx.Process(target=_contend, args=(uri, run_id, barrier, results, i)) for i in range(WORKERS)]
        for p in procs:
            p.start()
        outcomes = sorted(results.get(timeout=600) for _ in procs)
        for p in procs:
            p.join(timeout=60)

        errors = [o for o in outcomes if o[1] != "ok"]
        assert not errors, errors
        tags = client.get_run(run_id).data.tags
        for r in range(ROUNDS):
            exp = client.get_experiment_by_name(f"race-{r}")
            assert {o[2][r][0] for o in outcomes} == {exp.experiment_id}
            assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
            assert tags[f"round.{r}"] == "reached"
            versions = client.search_model_versions(f"name = 'race-{r}'")
            assert [v.version for v in versions] == [versions[0].version]  # one version for the same files
            assert {o[2][r][1] for o in outcomes} == {str(versions[0].version)}
            assert client.get_model_version_by_alias(f"race-{r}", "champion").version == versions[0].version
