"""Stages fail on bad input with one readable message, before any work, leaving no output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def stage(module: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SENTIMENT_DATA_MIRROR": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", f"stages.{module}", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def params_with(tmp_path: Path, **changes) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = params
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[part]
        node[last] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_a_bad_table_fails_prepare_with_one_message_and_no_output(tmp_path: Path) -> None:
    src = tmp_path / "reviews.csv"
    pd.DataFrame({"review": ["good"], "stars": [5]}).to_csv(src, index=False)
    params = params_with(tmp_path, datasets__yelp__source=str(src), datasets__yelp__checksum=None)
    out, card = tmp_path / "out" / "yelp.parquet", tmp_path / "out" / "card.json"
    proc = stage(
        "prepare",
        tmp_path,
        "--params",
        str(params),
        "--dataset",
        "yelp",
        "--out",
        str(out),
        "--card",
        str(card),
        "--download-dir",
        str(tmp_path / "raw"),
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"{src}: column 'text' not found" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not card.exists()
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == []


def test_params_are_validated_before_any_work(tmp_path: Path) -> None:
    params = params_with(tmp_path, lstm__epochs=-1)
    # the features directory does not even exist: the params error must come first
    proc = stage(
        "train",
        tmp_path,
        "--params",
        str(params),
        "--model",
        "lstm",
        "--features",
        "nowhere",
        "--out",
        "m.keras",
        "--history",
        "h.csv",
        "--summary",
        "s.json",
    )
    assert proc.returncode == 1
    assert "lstm.epochs: must be >= 1, got -1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [params]


def test_a_missing_source_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tar.gz"
    params = params_with(tmp_path, datasets__imdb__source=str(missing), datasets__imdb__checksum=None)
    proc = stage(
        "prepare",
        tmp_path,
        "--params",
        str(params),
        "--dataset",
        "imdb",
        "--out",
        "o.parquet",
        "--card",
        "c.json",
        "--download-dir",
        "raw",
    )
    assert proc.returncode == 1 and f"{missing}: source file not found" in proc.stderr


def test_a_bad_registry_param_fails_track_before_mlflow_is_touched(tmp_path: Path) -> None:
    params = params_with(tmp_path, track__register={"metric": "accuracy", "direction": "up"})
    proc = stage("track", tmp_path, "--params", str(params), "--dataset", "imdb", "--reports", "r", "--models", "m",
                 "--features", "f", "--out", "o.json")  # fmt: skip
    assert proc.returncode == 1
    assert "track.register.direction: 'up' is not one of 'max', 'min'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [params]  # no mlflow.db, no output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mlp__dropuot": 0.3}, "mlp.dropuot: unknown key"),
        ({"mlp__dropout": 1.5}, "mlp.dropout: must be in [0, 1), got 1.5"),
        ({"explain__num_samples": -5}, "explain.num_samples: must be >= 10, got -5"),
        ({"explain__methods": ["lime", "gradcam"]}, "explain.methods[1]: 'gradcam' is not one of 'lime', 'shap'"),
        ({"correlate__top_n": 0}, "correlate.top_n: must be >= 1, got 0"),
        ({"track__register": {"metric": "accuracy", "direction": "up"}}, "track.register.direction"),
    ],
)
def test_a_typo_anywhere_in_params_fails_the_first_stage_before_it_works(
    tmp_path: Path, change: dict, message: str
) -> None:
    """prepare runs first in `dvc repro`: a bad value in any other stage's section stops it, no output."""
    params = params_with(tmp_path, **change)
    proc = stage("prepare", tmp_path, "--params", str(params), "--dataset", "yelp", "--out", "o.parquet",
                 "--card", "c.json", "--download-dir", "raw")  # fmt: skip
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [params]


def test_a_typo_in_the_behaviour_suite_fails_behave_before_any_model_is_loaded(tmp_path: Path) -> None:
    suite = tmp_path / "behaviour.yaml"
    suite.write_text((ROOT / "behaviour.yaml").read_text().replace("was not {pos_adj}", "was not {pos_adjj}", 1))
    metrics, cases = tmp_path / "out" / "behaviour.json", tmp_path / "out" / "cases.json"
    proc = stage(
        "behave",
        tmp_path,
        "--params",
        str(ROOT / "params.yaml"),
        "--name",
        "imdb/mlp",
        "--suite",
        str(suite),
        "--table",
        str(tmp_path / "absent.parquet"),  # never read: the suite is checked first
        "--features",
        str(tmp_path / "absent"),
        "--model-file",
        str(tmp_path / "absent.keras"),
        "--metrics",
        str(metrics),
        "--cases",
        str(cases),
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, proc.stderr
    assert f"{suite}: tests[2] (negated positive).templates[0]" in errors[0]
    assert "unknown placeholder {pos_adjj}" in errors[0] and "Traceback" not in proc.stderr
    assert not metrics.exists() and not cases.exists()
