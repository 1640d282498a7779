"""``make scale``: every stage of one from-scratch dataset at 50 k, 200 k and 1 M reviews.

For each size N, a ``reviews`` table (CSV, gzip) of N reviews is built from real IMDB sentences
(seeded: each review draws as many sentences as a real review has, from the reviews of its label;
stars 1–2 or 4–5), registered as the one dataset of a scratch copy of the project, and the whole
pipeline runs there with ``dvc repro`` (training: 1 epoch; LIME and the other explainers on the
usual 100 reviews). Each stage reports its wall time and peak memory (``stages.common.cli``);
``reports/scale.md`` holds them against N with the two targets (≤ 3 GiB at 1 M; time at 1 M ≤ 25×
that at 50 k), and ``reports/scale.png`` plots them log-log.

    python -m bench.scale [--sizes 50000 200000 1000000] [--targets vectorize] [--work data/scale]
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.benchmark import GIB, machine, stage_stats
from stages.common.data.io import atomic_path, write_text
from stages.common.data.raw import CHUNK_ROWS, clean_text, read_aclimdb
from stages.common.data.sources import fetch_source
from stages.common.params import load_params

log = logging.getLogger("bench.scale")
ROOT = Path(__file__).resolve().parents[1]
SIZES = (50_000, 200_000, 1_000_000)
PROJECT_FILES = ("stages", "dvc.yaml", "behaviour.yaml", ".dvcignore")
MAX_PEAK_GIB = 3.0
MAX_TIME_RATIO = 25.0
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentence_pools(texts: Sequence[str], labels: Sequence[int]) -> tuple[dict[int, list[str]], np.ndarray]:
    """Every review's sentences, pooled per label, and how many sentences each review has. Pure."""
    pools: dict[int, list[str]] = {0: [], 1: []}
    counts = np.zeros(len(texts), dtype=np.int64)
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        sentences = [s for s in _SENTENCE_END.split(clean_text(text).replace("\n", " ")) if s.strip()]
        pools[int(label)].extend(sentences)
        counts[i] = len(sentences)
    return pools, counts


def build_table(path: Path, n: int, pools: dict[int, list[str]], counts: np.ndarray, seed: int) -> None:
    """Write ``n`` reviews (``text``, ``stars``) to a gzip CSV, atomically; seeded, half positive."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    with atomic_path(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8", compresslevel=1) as fh:
        for start in range(0, n, CHUNK_ROWS):
            size = min(CHUNK_ROWS, n - start)
            labels = rng.integers(0, 2, size)
            lengths = np.maximum(rng.choice(counts, size), 2)  # a one-sentence review would repeat too often
            texts = []
            for label, length in zip(labels, lengths, strict=True):
                pool = pools[int(label)]
                texts.append(" ".join(pool[j] for j in rng.integers(0, len(pool), length)))
            stars = np.where(labels == 1, rng.integers(4, 6, size), rng.integers(1, 3, size))
            pd.DataFrame({"text": texts, "stars": stars}).to_csv(fh, header=start == 0, index=False)


def scale_params(params: dict[str, Any], table: Path) -> dict[str, Any]:
    """``params`` with ``table`` as the one from-scratch dataset and one training epoch per model."""
    out = {**params}
    out["datasets"] = {
        "scale": {
            "format": "reviews",
            "source": str(table),
            "text_column": "text",
            "rating_column": "stars",
            "negative_max": 2,
            "positive_min": 4,
            "test_size": 0.2,
        }
    }
    out["from_scratch"] = ["scale"]
    out["finetune"] = {**params["finetune"], "source": "scale", "targets": []}
    for model in params["models"]:
        out[model] = {**params[model], "epochs": 1}
    return out


def make_project(where: Path, params: dict[str, Any]) -> None:
    """A scratch copy of the pipeline (code, dvc.yaml, the suite) with ``params``, as a git + DVC repo."""
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, where / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, where / name)
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    (where / ".gitignore").write_text("/mlflow.db\n/mlartifacts/\n/data/raw/\n__pycache__/\n", encoding="utf-8")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=where, check=True)


def run_pipeline(project: Path, targets: Sequence[str], log_file: Path) -> tuple[float, list[dict[str, Any]]]:
    """``dvc repro [targets]`` in ``project``; its wall time and each stage's figures."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the scratch project's own MLflow store
    start = time.perf_counter()
    with log_file.open("w", encoding="utf-8") as fh:
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", *targets], cwd=project, env=env, stdout=fh, stderr=subprocess.STDOUT
        )
    seconds = time.perf_counter() - start
    output = log_file.read_text(encoding="utf-8")
    if done.returncode != 0:
        raise SystemExit(f"dvc repro failed in {project} (log: {log_file}):\n{output[-3000:]}")
    return seconds, stage_stats(output)


def stage_kind(name: str) -> str:
    """``vectorize@scale-mlp`` → ``vectorize mlp``: a stage's row, the same at every size."""
    stage, _, item = name.partition("@")
    model = item.partition("-")[2]
    return f"{stage} {model}".strip()


def markdown(
    results: dict[int, list[dict[str, Any]]], totals: dict[int, float], host: str, targets: Sequence[str] = ()
) -> str:
    """The report: each stage's wall time and peak memory per N, and the two targets."""
    sizes = sorted(results)
    rows: dict[str, dict[int, dict[str, Any]]] = {}
    for n in sizes:
        for s in results[n]:
            rows.setdefault(stage_kind(s["stage"]), {})[n] = s
    small, large = sizes[0], sizes[-1]
    scope = f"{', '.join(targets)} and the stages before" if targets else "every stage"
    head = " / ".join(f"{n:,}" for n in sizes)
    lines = [
        "# Scale",
        "",
        f"Produced by `{command(sizes, targets)}` on {date.today().isoformat()}. Machine: {host}.",
        "",
        "One from-scratch `reviews` dataset of N reviews built from real IMDB sentences, run with",
        f"`{' '.join(['dvc repro', *targets])}` ({scope}; training: 1 epoch; explanations: the usual",
        "100 reviews). Each stage's wall time and peak memory as it reports them.",
        "",
        f"Wall time: {', '.join(f'{totals[n] / 60:.1f} min at {n:,}' for n in sizes)} (DVC included).",
        "",
        f"| stage | wall time at {head} | peak memory at {head} | time at {large:,} ÷ at {small:,} "
        f"(≤ {MAX_TIME_RATIO:g}×) | ≤ {MAX_PEAK_GIB:g} GiB at {large:,} |",
        "|---|---|---|---|---|",
    ]
    for kind, by_n in rows.items():
        times = " / ".join(f"{by_n[n]['seconds']:.0f} s" if n in by_n else "–" for n in sizes)
        peaks = " / ".join(f"{by_n[n]['peak_mib'] / GIB:.2f}" if n in by_n else "–" for n in sizes)
        ratio = by_n[large]["seconds"] / max(by_n[small]["seconds"], 0.1) if {small, large} <= by_n.keys() else None
        ratio_cell = "–" if ratio is None else f"{ratio:.1f}×" + ("" if ratio <= MAX_TIME_RATIO else " **over**")
        peak_ok = large in by_n and by_n[large]["peak_mib"] <= MAX_PEAK_GIB * GIB
        lines.append(f"| {kind} | {times} | {peaks} GiB | {ratio_cell} | {'yes' if peak_ok else '**no**'} |")
    return "\n".join(lines) + "\n"


def command(sizes: Sequence[int], targets: Sequence[str]) -> str:
    """The command line that makes this report."""
    if list(sizes) == list(SIZES) and not targets:
        return "make scale"
    args = [] if list(sizes) == list(SIZES) else ["--sizes", *map(str, sizes)]
    return " ".join(["python -m bench.scale", *args, *(["--targets", *targets] if targets else [])])


def plot(results: dict[int, list[dict[str, Any]]], path: Path) -> None:
    """Wall time and peak memory per stage against N, log-log, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    kinds = sorted({stage_kind(s["stage"]) for stats in results.values() for s in stats})
    for kind in kinds:
        points = [(n, s) for n, stats in sorted(results.items()) for s in stats if stage_kind(s["stage"]) == kind]
        ns = [n for n, _ in points]
        left.plot(ns, [s["seconds"] for _, s in points], marker="o", label=kind)
        right.plot(ns, [s["peak_mib"] / GIB for _, s in points], marker="o", label=kind)
    right.axhline(MAX_PEAK_GIB, color="black", linestyle="--", linewidth=1)
    for ax, title, unit in ((left, "wall time", "s"), (right, "peak memory", "GiB")):
        ax.set(xscale="log", yscale="log", xlabel="reviews (N)", ylabel=unit, title=f"{title} per stage")
        ax.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: build the tables, run the pipeline at each size, write the report and the plot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="reviews per table")
    p.add_argument("--targets", nargs="*", default=[], help="dvc repro targets (default: every stage)")
    p.add_argument("--work", type=Path, default=ROOT / "data" / "scale", help="tables and scratch projects")
    p.add_argument("--out", type=Path, default=ROOT / "reports" / "scale.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = load_params(ROOT / "params.yaml")
    raw_params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    imdb = params.dataset("imdb")
    fetched = fetch_source(imdb, ROOT / "data" / "raw", params.prepare)
    reviews = read_aclimdb(fetched.path, params.prepare.encoding_errors, params.prepare.max_review_bytes)
    pools, counts = sentence_pools(reviews["text"].tolist(), reviews["label"].tolist())
    del reviews
    log.info("sentences: %d negative, %d positive", len(pools[0]), len(pools[1]))
    results: dict[int, list[dict[str, Any]]] = {}
    totals: dict[int, float] = {}
    for n in sorted(args.sizes):
        table = args.work / f"reviews-{n}.csv.gz"
        if not table.exists():
            log.info("building %s", table)
            build_table(table, n, pools, counts, params.seed + n)
        project = args.work / f"project-{n}"
        make_project(project, scale_params(raw_params, table.resolve()))
        log.info("N = %d: dvc repro %s", n, " ".join(args.targets))
        totals[n], results[n] = run_pipeline(project, args.targets, args.work / f"repro-{n}.log")
        for s in results[n]:
            log.info("N = %d: %s %.1f s, %.2f GiB", n, s["stage"], s["seconds"], s["peak_mib"] / GIB)
    write_text(args.out, markdown(results, totals, machine(), args.targets))
    plot(results, args.out.with_suffix(".png"))
    log.info("wrote %s and %s", args.out, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
