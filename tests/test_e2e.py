"""End to end: real `dvc repro` in a temporary git repository on tiny generated data.

Checks every output, that a no-op repro runs nothing and logs nothing, that changing one
param re-runs exactly the stages that depend on it, and what MLflow (sqlite in the
temporary project) holds. The IMDB-layout archive is downloaded from a local HTTP server.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    S3_CLIENT,
    S3_ENV,
    free_port,
    require_postgres,
    s3_endpoint,
    team_server,
    wait_for_http,
)
from tests.synthetic import aclimdb_members, write_pairs_tsv, write_tar, write_yelp_csv

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e

TINY = {
    "vectorize": {
        "mlp": {"kind": "bow", "max_tokens": 200, "ngram_range": [1, 2], "mode": "tfidf", "sublinear_tf": True},
        "lstm": {"kind": "seq", "max_tokens": 200, "maxlen": 24},
    },
    "mlp": {"architecture": "mlp", "hidden_units": [8], "epochs": 2, "batch_size": 32, "validation_split": 0.25},
    "lstm": {
        "architecture": "lstm",
        "embedding_dim": 8,
        "units": 4,
        "epochs": 1,
        "batch_size": 32,
        "validation_split": 0.25,
    },
    "finetune": {"epochs": 1},
    "behave": {"max_cases": 12, "min_cases": 4},
    "select": {"n_reviews": 3},
    "explain": {"num_samples": 60, "faithfulness_k": [1, 2], "methods": ["lime", "shap", "integrated_gradients"]},
    "correlate": {"max_tokens": 100, "skip_top": 2, "top_n": 10},
}


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("www")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, http_root: tuple[Path, str]) -> Path:
    www, base = http_root
    archive = write_tar(www / "aclImdb_v1.tar.gz", aclimdb_members(per_class=40, seed=3))
    proj = tmp_path_factory.mktemp("proj")
    yelp = write_yelp_csv(proj.parent / "reviews.csv.gz", n=200, seed=4)
    pairs = write_pairs_tsv(proj.parent / "pairs.tsv.gz", n_pairs=20, seed=5)
    train_pairs = write_pairs_tsv(proj.parent / "train_pairs.tsv.gz", n_pairs=20, seed=6)
    shutil.copytree(ROOT / "stages", proj / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    shutil.copy(ROOT / "behaviour.yaml", proj / "behaviour.yaml")
    shutil.copy(ROOT / ".dvcignore", proj / ".dvcignore")  # __pycache__ (bytecode, numba's cache) is not a dependency
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"]["imdb"].update(
        source=f"{base}/aclImdb_v1.tar.gz",
        checksum="sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest(),
    )
    params["datasets"]["yelp"].update(source=str(yelp), checksum=None)
    params["contrast"]["pairs"].update(source=str(pairs), mirror_file=None, mirror_checksum=None)
    params["datasets"]["imdb"]["augment"]["pairs"].update(source=str(train_pairs), mirror_file=None,
                                                          mirror_checksum=None)  # fmt: skip
    for key, value in TINY.items():
        params[key] = (
            {**params[key], **value}
            if key != "vectorize"
            else {**params["vectorize"], **{m: {**params["vectorize"][m], **v} for m, v in value.items()}}
        )
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (proj / ".gitignore").write_text("/mlflow.db\n/mlartifacts/\n/data/raw/\n__pycache__/\n")
    run(proj, "git", "init", "-q")
    run(proj, sys.executable, "-m", "dvc", "init", "-q")
    run(proj, sys.executable, "-m", "dvc", "config", "core.autostage", "true")
    run(proj, "git", "add", "-A")
    run(proj, "git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "init")
    return proj


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e.pop("MLFLOW_TRACKING_URI", None)
    e["SENTIMENT_DATA_MIRROR"] = ""
    e["DVC_NO_ANALYTICS"] = "1"
    e["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return e


def run(
    cwd: Path, *cmd: str, extra_env: dict[str, str] | None = None, ok: bool | None = True, log: Path | None = None
) -> str:
    """Run ``cmd``; its output, read from pipes or, with ``log``, from that file.

    ``log`` is for commands that leave children behind (``dvc queue start``): they inherit the
    output, so reading pipes would wait until the last child exits.
    """
    kwargs = {"cwd": cwd, "env": {**env(), **(extra_env or {})}, "timeout": 900}
    if log is None:
        proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
        out = proc.stdout + proc.stderr
    else:
        with log.open("w") as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kwargs)
        out = log.read_text()
    assert ok is None or (proc.returncode == 0) == ok, f"{' '.join(cmd)}: exit {proc.returncode}\n{out[-8000:]}"
    return out


def dvc(cwd: Path, *args: str, **kwargs) -> str:
    return run(cwd, sys.executable, "-m", "dvc", *args, **kwargs)


# outputs that legitimately differ between identical runs: timings; the report (it shows the
# timings); MLflow run ids. (The models do not: save_model fixes what Keras stamps per run.)
NOT_BIT_IDENTICAL = ("explain_timing.json", "report.html", "reports/mlflow/")


def out_hashes(proj: Path) -> dict[str, str]:
    """md5 of every stage output as dvc.lock records it, less the ones listed above."""
    lock = yaml.safe_load((proj / "dvc.lock").read_text())
    return {
        o["path"]: o["md5"]
        for stage in lock["stages"].values()
        for o in stage.get("outs", [])
        if not any(x in o["path"] for x in NOT_BIT_IDENTICAL)
    }


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def mlflow_runs(proj: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    exps = [e.experiment_id for e in client.search_experiments() if e.name.startswith("sentiment-")]
    return client.search_runs(exps, max_results=1000) if exps else []


PER_MODEL = ("evaluate", "behave", "crossdomain", "contrast", "explain")
PER_DATASET = ("prepare", "select", "correlate", "report", "track")
# imdb learns from scratch; yelp is fine-tuned from imdb (params.yaml: from_scratch, finetune)
ALL_STAGES = (
    {f"{k}@{d}-{m}" for k in PER_MODEL for d in ("imdb", "yelp") for m in ("mlp", "lstm")}
    | {f"{k}@imdb-{m}" for k in ("vectorize", "train") for m in ("mlp", "lstm")}
    | {f"finetune@yelp-{m}" for m in ("mlp", "lstm")}
    | {f"{k}@{d}" for k in PER_DATASET for d in ("imdb", "yelp")}
)


def test_full_pipeline_then_noop_then_one_param(project: Path) -> None:
    proj = project
    first = dvc(proj, "repro")
    assert ran(first) == ALL_STAGES

    # every output is there
    for d in ("imdb", "yelp"):
        card = json.loads((proj / f"reports/{d}/data_card.json").read_text())
        assert card["splits"]["train"]["rows"] > 0 and card["splits"]["test"]["rows"] > 0
        assert card["source"]["via"] == ("download" if d == "imdb" else "path")
        assert {"exact", "near", "test_in_train"} <= set(card["duplicates"])
        for m in ("mlp", "lstm"):
            metrics = json.loads((proj / f"reports/{d}/{m}/metrics.json").read_text())
            assert {"accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss", "confusion"} <= set(metrics)
            assert {"accuracy", "balanced_accuracy", "roc_auc", "flipped"} == set(metrics["shuffled_words"])
            assert metrics["deduplicated"]["n_test"] + metrics["deduplicated"]["removed"] == metrics["n_test"]
            behaviour = json.loads((proj / f"reports/{d}/{m}/behaviour.json").read_text())
            assert {"mft", "dir", "typo"} <= set(behaviour) and 0 <= behaviour["mft"]["failure_rate"] <= 1
            # the generated reviews have no person names: reported as skipped, with the reason
            cases = json.loads((proj / f"reports/{d}/{m}/behaviour_cases.json").read_text())
            names = next(c for c in cases if c["name"] == "person names swapped")
            assert (
                names["skipped"].startswith("0 of the ")
                and "failure_rate" not in behaviour["tests"]["person_names_swapped"]
            )
            other = "yelp" if d == "imdb" else "imdb"
            cross = json.loads((proj / f"reports/{d}/{m}/cross_domain.json").read_text())
            assert list(cross) == [other] and 0 <= cross[other]["accuracy"] <= 1
            pairs = json.loads((proj / f"reports/{d}/{m}/contrast.json").read_text())
            assert pairs["pairs"] == 20 and 0 <= pairs["pair_consistency_low"] <= pairs["pair_consistency"] <= 1
            if d == "imdb":  # the training pairs: on the data card, and scored in the validation carve
                card = json.loads((proj / "reports/imdb/data_card.json").read_text())
                assert card["augment"]["pairs"] + card["augment"]["dropped_pairs_in_test"] == 20
                summary = json.loads((proj / f"reports/imdb/{m}/train.json").read_text())
                assert 0 <= summary["validation_pair_consistency"] <= 1
            assert (proj / f"data/models/{d}/{m}.keras").is_file()
            assert (proj / f"data/features/{d}/{m}/featurizer.json").is_file()
            for kind, ext in (("history", "csv"), ("roc", "csv"), ("pr", "csv"), ("confusion", "png")):
                assert (proj / f"reports/plots/{kind}/{d}/{m}.{ext}").is_file()
            ranked = json.loads((proj / f"reports/{d}/explain/{m}/ranking.json").read_text())
            assert sorted(r["method"] for r in ranked) == ["integrated_gradients", "lime", "shap"]
            for method in ("lime", "shap", "integrated_gradients"):
                explained = json.loads((proj / f"reports/{d}/explain/{m}/{method}/explanations.json").read_text())
                assert len(explained) == 3 and all(len(e["words"]) > 0 for e in explained)
            trust = json.loads((proj / f"reports/{d}/{m}/explain.json").read_text())
            assert {"aopc_comprehensiveness", "stability_top10_jaccard"} <= set(trust["lime"])
            assert {"random", "shap", "integrated_gradients", "agreement"} <= set(trust)
        ids = {
            (m, x): [
                e["review_id"]
                for e in json.loads((proj / f"reports/{d}/explain/{m}/{x}/explanations.json").read_text())
            ]
            for m in ("mlp", "lstm")
            for x in ("lime", "shap")
        }
        assert len({tuple(v) for v in ids.values()}) == 1  # both models, every method: the same reviews
        assert (proj / f"reports/{d}/correlate/correlations.csv").is_file()
        page = (proj / f"reports/html/{d}/report.html").read_text()
        assert "which explanation to believe" in page and "words shuffled" in page and "<script" not in page
        assert "Behavioural tests" in page and "Real-world check" in page and "Duplicates and leakage" in page
        assert "Minimal edits that flip the sentiment" in page
        scorecard = json.loads((proj / f"reports/scorecard/{d}.json").read_text())
        assert scorecard["paragraph"].startswith("The evidence favours") and len(scorecard["table"]) == 18
        # pages that quote review text are DVC-cached, never committed to git
        for html_page in (f"reports/html/{d}/report.html", f"reports/html/{d}/lstm_explanations.html"):
            run(proj, "git", "check-ignore", "-q", html_page)
    shown = json.loads(dvc(proj, "metrics", "show", "--json"))
    files = next(iter(shown.values()))["data"]
    assert {f"reports/{d}/{m}/metrics.json" for d in ("imdb", "yelp") for m in ("mlp", "lstm")} <= set(files)
    assert "accuracy" in files["reports/imdb/lstm/metrics.json"]["data"]["shuffled_words"]
    assert "failure_rate" in files["reports/imdb/lstm/behaviour.json"]["data"]["mft"]
    assert "accuracy" in files["reports/yelp/mlp/cross_domain.json"]["data"]["imdb"]
    assert "pair_consistency" in files["reports/imdb/lstm/contrast.json"]["data"]

    # MLflow: per dataset one parent run and a child per model, with params, metrics, curves, models
    runs = mlflow_runs(proj)
    assert len(runs) == 6
    children = [r for r in runs if r.data.tags.get("run.kind") == "model"]
    assert len(children) == 4
    lstm = next(r for r in children if r.data.tags["model"] == "lstm" and r.data.tags["dataset"] == "imdb")
    assert lstm.data.params["lstm.units"] == "4"
    assert lstm.data.params["base.seed"] == str(yaml.safe_load((proj / "params.yaml").read_text())["base"]["seed"])
    assert 0.0 <= lstm.data.metrics["test_accuracy"] <= 1.0
    assert 0.0 <= lstm.data.metrics["test_shuffled_words.accuracy"] <= 1.0
    assert lstm.data.tags["dvc.md5.data/prepared/imdb.parquet"]
    assert lstm.data.tags["mlflow.source.git.commit"] == run(proj, "git", "rev-parse", "HEAD").strip()

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{proj / 'mlflow.db'}")
    history = mlflow.MlflowClient().get_metric_history(lstm.info.run_id, "val_loss")
    assert [h.step for h in history] == [1]
    parent_id = lstm.data.tags["mlflow.parentRunId"]
    parent_artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent_id)}
    assert {
        "params.yaml",
        "dvc.lock",
        "data_card.json",
        "report.html",
        "correlate",
        "scorecard.json",
    } <= parent_artifacts
    assert [d.dataset.name for d in lstm.inputs.dataset_inputs] == ["imdb"]
    assert mlflow.MlflowClient().get_run(parent_id).data.tags["git.dirty"] == "false"  # dvc.lock rewrites don't count
    experiment = mlflow.MlflowClient().get_experiment(lstm.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    child_artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(lstm.info.run_id)}
    assert {"explain", "plots", "featurizer.json", "metrics.json"} <= child_artifacts
    assert {"explain.lime.aopc_comprehensiveness", "explain.shap.aopc_comprehensiveness"} <= set(lstm.data.metrics)
    assert {"behaviour.mft.failure_rate", "cross_domain.yelp.accuracy", "contrast.pair_consistency"} <= set(
        lstm.data.metrics
    )
    model = mlflow.pyfunc.load_model(f"runs:/{lstm.info.run_id}/model")
    scored = model.predict(__import__("pandas").DataFrame({"text": ["great fun", "awful mess"]}))
    assert list(scored.columns) == ["proba", "label"] and len(scored) == 2
    assert model.metadata.signature is not None

    run(proj, "git", "add", "-A")
    run(proj, "git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "run 1")

    # a no-op repro runs nothing and records nothing
    noop = dvc(proj, "repro")
    assert ran(noop) == set()
    assert len(mlflow_runs(proj)) == 6

    # an edit to the train stage re-runs training; the models come out the same bytes
    # (save_model), so nothing downstream of them re-runs (the fine-tunes included: they start
    # from those models and share no code with the train stage outside stages/common)
    with (proj / "stages/train.py").open("a") as f:
        f.write("# an edit that changes no model\n")
    retrained = dvc(proj, "repro")
    assert ran(retrained) == {"train@imdb-mlp", "train@imdb-lstm"}
    assert len(mlflow_runs(proj)) == 6

    # one model's fine-tuning rate: only that model's fine-tune is out of date
    original = (proj / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["finetune"]["per_model"]["lstm"]["learning_rate"] *= 2
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = dvc(proj, "status")
    assert "finetune@yelp-lstm" in status and "finetune@yelp-mlp" not in status
    (proj / "params.yaml").write_text(original)

    # one param: only what depends on it re-runs
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["lstm"]["units"] = 6
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "lstm.units" in dvc(proj, "params", "diff")
    second = dvc(proj, "repro")
    # select re-runs (the LSTM's predictions changed) but picks the same reviews, so the
    # MLP's explanations are not redone
    lstm_stages = {f"{k}@{d}-lstm" for k in PER_MODEL for d in ("imdb", "yelp")}
    lstm_stages |= {"train@imdb-lstm", "finetune@yelp-lstm"}  # the fine-tuned LSTM starts from the new one
    dataset_stages = {f"{k}@{d}" for k in ("select", "correlate", "report", "track") for d in ("imdb", "yelp")}
    assert ran(second) == lstm_stages | dataset_stages
    runs = mlflow_runs(proj)
    assert len(runs) == 12
    newest = max((r for r in runs if r.data.tags.get("model") == "lstm"), key=lambda r: r.info.start_time)
    assert newest.data.params["lstm.units"] == "6"
    assert "reports/imdb/lstm/metrics.json" in dvc(proj, "metrics", "diff", "--all")


def test_rerun_from_scratch_is_identical_and_an_mlflow_outage_loses_nothing(project: Path) -> None:
    """Runs after the test above, on the same project."""
    proj = project
    before = out_hashes(proj)
    assert any(p.startswith("data/features/") for p in before) and any(p.endswith(".parquet") for p in before)
    runs_before = len(mlflow_runs(proj))
    # everything again, with the tracking server unreachable
    down = {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    out = dvc(proj, "repro", "--force", "--keep-going", extra_env=down, ok=False)
    assert "could not record the run in MLflow" in out and "make track" in out
    assert ran(out) == ALL_STAGES
    # every DVC output was kept, and each is byte-identical to the previous run's
    assert out_hashes(proj) == before
    # once MLflow is back, recording the existing state is one command
    later = dvc(proj, "repro")
    assert ran(later) == {"track@imdb", "track@yelp"}
    assert len(mlflow_runs(proj)) == runs_before + 6


def test_a_stage_killed_mid_run_leaves_no_output_and_simply_runs_again(project: Path) -> None:
    """Runs after the tests above, on the same project."""
    import signal
    import time

    proj = project
    model = proj / "data/models/yelp/mlp.keras"
    assert model.is_file()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "finetune@yelp-mlp"],
        cwd=proj,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Running stage 'finetune@yelp-mlp'" in line:
            break
    time.sleep(1.0)  # the stage is importing TensorFlow / training
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not model.exists()  # nothing half-written in its place
    assert "finetune@yelp-mlp" in dvc(proj, "status")
    again = dvc(proj, "repro")
    assert "finetune@yelp-mlp" in ran(again)
    assert model.is_file()
    assert "up to date" in dvc(proj, "status")


def _queue_settled(proj: Path) -> bool:
    status = dvc(proj, "queue", "status")
    return not re.search(r"\b(Queued|Running)\b", status)


def _stop_lingering_workers(proj: Path, grace_s: float = 60.0) -> list[int]:
    """Kill queue workers still alive `grace_s` after the queue settled; return their pids.

    A dvc-task worker exits about 10 s after it finds the queue empty, but one whose idle
    monitor fired while its task was still running can stay up after the task succeeds
    (seen once in CI: the experiment succeeded, the worker never logged `done`). That is
    DVC's worker lifecycle, not this pipeline's; left alive it would hold locks in the
    project the next tests use.
    """
    import signal
    import time

    def alive() -> list[int]:
        pids = []
        for info in (proj / ".dvc/tmp/exps/celery").glob("dvc-exp-worker-*.json"):
            worker = json.loads(info.read_text())
            if worker.get("returncode") is not None:  # dvc-task recorded its exit: the pid may be reused
                continue
            try:
                os.kill(worker["pid"], 0)
            except (ProcessLookupError, PermissionError):
                continue
            pids.append(worker["pid"])
        return pids

    deadline = time.monotonic() + grace_s
    while alive() and time.monotonic() < deadline:
        time.sleep(2)
    lingering = alive()
    for pid in lingering:
        os.kill(pid, signal.SIGKILL)
    return lingering


def test_a_queued_sweep_runs_two_workers_and_each_experiment_lands_in_mlflow(project: Path) -> None:
    """`dvc exp run --queue` twice, `dvc queue start -j 2`: two parallel workers, one SQLite file."""
    import time

    proj = project
    run(proj, "git", "add", "-A")
    run(proj, "git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "state", ok=None)
    before = {r.info.run_id for r in mlflow_runs(proj)}
    for dropout in ("0.1", "0.3"):
        dvc(proj, "exp", "run", "--queue", "-S", f"mlp.dropout={dropout}")
    dvc(proj, "queue", "start", "-j", "2", log=proj.parent / "queue-start.log")
    deadline = time.monotonic() + 900
    try:
        while not _queue_settled(proj):
            assert time.monotonic() < deadline, dvc(proj, "queue", "status")
            time.sleep(5)
    finally:
        lingering = _stop_lingering_workers(proj)
    if lingering:
        logging.getLogger(__name__).warning("killed queue workers that outlived the queue: %s", lingering)
    status = dvc(proj, "queue", "status")
    assert status.count("Success") == 2, status
    new = [r for r in mlflow_runs(proj) if r.info.run_id not in before]
    parents = [r for r in new if r.data.tags.get("run.kind") == "pipeline"]
    # per experiment one parent run per dataset, tagged with DVC's experiment name and baseline
    by_exp: dict[str, set[str]] = {}
    for r in parents:
        assert r.info.status == "FINISHED"
        assert r.data.tags["DVC_EXP_BASELINE_REV"] and r.data.tags["dvc.exp_name"] == r.data.tags["DVC_EXP_NAME"]
        by_exp.setdefault(r.data.tags["DVC_EXP_NAME"], set()).add(r.data.params["mlp.dropout"])
    assert len(by_exp) == 2 and sorted(v for vs in by_exp.values() for v in vs) == ["0.1", "0.3"]
    assert len(parents) == 4 and len(new) == 12
    # the LSTMs were cached in both experiments: their runs reference earlier artifacts
    lstm = [r for r in new if r.data.tags.get("model") == "lstm"]
    assert lstm and all(r.data.tags["artifacts.logged"] == "false" for r in lstm)
    assert all(r.data.tags["artifacts.logged"] == "true" for r in new if r.data.tags.get("model") == "mlp")
    listed = dvc(proj, "exp", "list", "--name-only").split()
    assert set(by_exp) <= set(listed)  # and `dvc exp apply <name>` brings one back
    # one model before and after: the committed state against an experiment, read through dvc.api
    exp = sorted(by_exp)[0]
    out = run(proj, sys.executable, "-m", "tools.compare", "--model", "imdb/mlp", "--before", "HEAD", "--after", exp,
              extra_env={"PYTHONPATH": str(ROOT)})  # fmt: skip
    header = next(line for line in out.splitlines() if line.startswith("| measure"))
    assert f"before (HEAD) | after ({exp}) | difference (95% interval) | ahead" in header
    accuracy = next(line for line in out.splitlines() if line.startswith("| accuracy | accuracy |"))
    assert f"HEAD - {exp}: " in accuracy or f"{exp} - HEAD: " in accuracy  # with its paired interval


def test_an_s3_remote_shares_every_output_and_the_run_cache(project: Path, tmp_path: Path) -> None:
    """``dvc push`` / ``dvc pull --run-cache`` through a real S3-compatible server (moto_server)."""
    import boto3

    proj = project
    with s3_endpoint("team-dvc") as url:
        add_s3_remote(proj, url, "team-dvc")
        dvc(proj, "push", "--run-cache", extra_env=S3_ENV)
        bucket = boto3.client("s3", endpoint_url=url, **S3_CLIENT).list_objects_v2(Bucket="team-dvc", MaxKeys=1000)
        keys = [o["Key"] for o in bucket.get("Contents", [])]
        assert any(k.startswith("sentiment/files/md5/") for k in keys)
        assert any(k.startswith("sentiment/runs/") for k in keys)  # the run-cache: stage runs by their inputs
        run(proj, "git", "add", "-A")
        run(proj, "git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "remote", ok=None)
        clone = tmp_path / "clone"
        run(tmp_path, "git", "clone", "-q", str(proj), str(clone))
        assert not (clone / "data/models/imdb/mlp.keras").exists()
        dvc(clone, "pull", "--run-cache", extra_env=S3_ENV)
    for d in ("imdb", "yelp"):
        for m in ("mlp", "lstm"):
            assert (clone / f"data/models/{d}/{m}.keras").read_bytes() == (
                proj / f"data/models/{d}/{m}.keras"
            ).read_bytes()
    assert (clone / "reports/html/imdb/report.html").is_file()
    assert any((clone / ".dvc/cache/runs").rglob("*"))
    assert "up to date" in dvc(clone, "status")


def add_s3_remote(proj: Path, url: str, bucket: str) -> None:
    """The project's default DVC remote: ``s3://<bucket>/sentiment`` at the endpoint ``url``."""
    dvc(proj, "remote", "add", "--force", "--default", "team", f"s3://{bucket}/sentiment")
    dvc(proj, "remote", "modify", "team", "endpointurl", url)


def test_team_server_postgres_backend_runs_registry_and_serving(project: Path) -> None:
    """A real PostgreSQL (Debian package) and `mlflow server` on loopback; the pipeline logs there."""
    import urllib.request

    import mlflow

    proj, serve_port = project, free_port()
    serving = None
    with team_server() as (uri, _, srv):
        try:
            out = dvc(proj, "repro", "--force", extra_env={"MLFLOW_TRACKING_URI": uri})
            assert {"track@imdb", "track@yelp"} <= ran(out)
            client = mlflow.MlflowClient(uri)
            exp = client.get_experiment_by_name("sentiment-imdb")
            runs = client.search_runs([exp.experiment_id])
            assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
            child = next(r for r in runs if r.data.tags.get("model") == "mlp")
            assert child.data.params["mlp.dropout"] and "test_accuracy" in child.data.metrics
            # artifacts went through the server into its artifact store, not into the project
            assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"metrics.json", "featurizer.json"}
            assert any((srv / "artifacts").rglob("metrics.json"))
            champion = client.get_model_version_by_alias("sentiment-imdb", "champion")
            assert champion.version is not None
            # `mlflow models serve` on the registered model, scoring raw text over HTTP
            serving = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/sentiment-imdb@champion",
                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(serve_port)],
                env={**env(), "MLFLOW_TRACKING_URI": uri}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            wait_for_http(f"http://127.0.0.1:{serve_port}/ping", serving, 180, "mlflow models serve")
            body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [["great fun"], ["awful, dull"]]}})
            request = urllib.request.Request(
                f"http://127.0.0.1:{serve_port}/invocations", body.encode(), {"Content-Type": "application/json"}
            )
            predictions = json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"]
            assert len(predictions) == 2 and all(0 <= p["proba"] <= 1 and p["label"] in (0, 1) for p in predictions)
        finally:
            if serving is not None:
                import signal

                os.killpg(serving.pid, signal.SIGTERM)
                serving.wait(timeout=30)


def test_a_sweep_shared_through_postgres_splits_its_trials_and_survives_a_killed_worker(
    project: Path, tmp_path: Path
) -> None:
    """Two clones, as two machines, join one Optuna study in PostgreSQL; one is killed mid-trial."""
    import contextlib
    import signal
    import socket
    import time

    import mlflow
    import optuna
    import sqlalchemy.exc

    require_postgres()
    proj, n_trials = project, 4
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["sweep"] = {
        "study": "e2e",
        "metric": "evaluate@imdb-mlp:accuracy",
        "n_trials": n_trials,
        "params": {"mlp.dropout": {"low": 0.1, "high": 0.6}, "mlp.learning_rate": {"low": 1e-3, "high": 1e-2}},
    }
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(ROOT / "tools", proj / "tools", ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    # the team's DVC remote (S3) holds the data and the run-cache; each machine clones the repository
    dvc(proj, "repro")  # track re-runs: params.yaml changed
    clones = [tmp_path / "a", tmp_path / "b"]
    with s3_endpoint("sweep-dvc") as url:
        add_s3_remote(proj, url, "sweep-dvc")
        dvc(proj, "push", "--run-cache", extra_env=S3_ENV)
        run(proj, "git", "add", "-A")
        run(proj, "git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "sweep", ok=None)
        for clone in clones:
            run(tmp_path, "git", "clone", "-q", str(proj), str(clone))
            dvc(clone, "pull", "--run-cache", extra_env=S3_ENV)
    workers: list[subprocess.Popen] = []
    with team_server() as (uri, storage, _), contextlib.ExitStack() as stop:
        stop.callback(lambda: [os.killpg(w.pid, signal.SIGKILL) for w in workers if w.poll() is None])
        for clone in clones:
            with (clone.parent / f"{clone.name}.log").open("w") as out:
                worker = subprocess.Popen(
                    [sys.executable, "-m", "tools.sweep", "--storage", storage],
                    cwd=clone, env={**env(), "MLFLOW_TRACKING_URI": uri},
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            workers.append(worker)
        killer, survivor = workers
        name = {w: f"{socket.gethostname()}:{w.pid}" for w in workers}  # as tools.sweep names its worker
        # kill worker a ten seconds into its second trial (its first one complete)
        deadline = time.monotonic() + 600
        killed = None
        while killed is None:
            assert time.monotonic() < deadline and killer.poll() is None, (tmp_path / "a.log").read_text()[-4000:]
            time.sleep(2)
            try:
                trials = optuna.load_study(study_name="e2e", storage=storage).get_trials()
            except (KeyError, sqlalchemy.exc.SQLAlchemyError):  # no study yet; the workers are creating its tables
                continue
            mine = [t for t in trials if t.user_attrs.get("worker") == name[killer]]
            running = [t for t in mine if t.state.name == "RUNNING"]
            if any(t.state.name == "COMPLETE" for t in mine) and running:
                time.sleep(10)
                os.killpg(killer.pid, signal.SIGKILL)
                killed = running[0].number
        killer.wait(timeout=60)
        assert survivor.wait(timeout=900) == 0, (tmp_path / "b.log").read_text()[-4000:]

        study = optuna.load_study(study_name="e2e", storage=storage)
        trials = study.get_trials()
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        failed = [t for t in trials if t.state.name == "FAIL"]
        assert len(complete) == n_trials and [t.number for t in failed] == [killed], [t.state for t in trials]
        retry = next(t for t in complete if t.system_attrs.get("failed_trial") == killed)
        assert retry.params == failed[0].params and retry.user_attrs["worker"] == name[survivor]
        by_worker = {w: {t.number for t in complete if t.user_attrs["worker"] == name[w]} for w in workers}
        assert all(by_worker.values()) and set.union(*by_worker.values()) == {t.number for t in complete}
        # each complete trial is a DVC experiment in the clone that ran it, and one pipeline run in MLflow
        for worker, clone in zip(workers, clones, strict=True):
            listed = set(dvc(clone, "exp", "list", "--name-only").split())
            assert {f"e2e-{n}" for n in by_worker[worker]} <= listed
        client = mlflow.MlflowClient(uri)
        exp = client.get_experiment_by_name("sentiment-imdb")
        runs = client.search_runs([exp.experiment_id], filter_string="tags.`sweep.study` = 'e2e'", max_results=500)
        (parent,) = [r for r in runs if r.data.tags["run.kind"] == "study"]
        pipelines = [r for r in runs if r.data.tags["run.kind"] == "pipeline"]
        assert sorted(int(r.data.tags["sweep.trial"]) for r in pipelines) == sorted(t.number for t in complete)
        assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in pipelines)
        assert parent.info.status == "FINISHED" and parent.data.tags["best.trial"] == str(study.best_trial.number)
        assert parent.data.metrics["accuracy"] == pytest.approx(study.best_value)
