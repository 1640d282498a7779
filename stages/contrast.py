"""contrast: every model on minimal edits that flip the sentiment (counterfactual pairs).

Each pair is a review and a copy edited as little as possible so that its label flips ("Long,
boring" → "Long, fascinating"). A model that reads what the review says gets both right; one
that leans on words the edit left alone gets one of them wrong. Metrics (a DVC metrics file):
accuracy on each side (the positive and the negative members), **pair consistency** (both members
right) with a 95% bootstrap interval over the pairs, and how often the positive member scores
higher than its negative twin. The pairs go through the model's own featurizer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.common import cli
from stages.common.data.io import write_json
from stages.common.data.pairs import read_pairs
from stages.common.data.sources import fetch_source
from stages.common.modelling.prediction import load_text_model
from stages.common.params import load_params

log = logging.getLogger(__name__)


def contrast(pairs: pd.DataFrame, proba: np.ndarray, threshold: float, resamples: int, seed: int) -> dict[str, Any]:
    """Metrics of P(positive) ``proba`` on ``pairs`` (``pair``, ``label``; two rows a pair). Pure.

    The interval resamples whole pairs (seeded): a pair's two members are one observation.
    """
    df = pairs.assign(proba=np.asarray(proba, dtype=np.float64))
    df["right"] = (df["proba"] >= threshold).astype(int) == df["label"]
    by_pair = df.pivot_table(index="pair", columns="label", values=["right", "proba"], aggfunc="first", sort=False)
    both = (by_pair["right"][0] & by_pair["right"][1]).to_numpy(dtype=bool)
    ordered = (by_pair["proba"][1] > by_pair["proba"][0]).to_numpy(dtype=bool)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(both), size=(resamples, len(both)))
    low, high = np.percentile(both[draws].mean(axis=1), [2.5, 97.5])
    r = lambda v: round(float(v), 6)  # noqa: E731
    return {
        "pairs": len(both),
        "accuracy": r(df["right"].mean()),
        "accuracy_positive": r(df.loc[df["label"] == 1, "right"].mean()),
        "accuracy_negative": r(df.loc[df["label"] == 0, "right"].mean()),
        "pair_consistency": r(both.mean()),
        "pair_consistency_low": r(low),
        "pair_consistency_high": r(high),
        "positive_scored_higher": r(ordered.mean()),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.contrast --name imdb/mlp --model-file ... --features ... --out ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="dataset/model, for logs")
    cli.add_model_inputs(p)
    p.add_argument("--download-dir", type=Path, required=True, help="cache for a downloaded pairs table")
    p.add_argument("--out", type=Path, required=True, help="metrics file (.json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    cfg = params.contrast
    pairs = read_pairs(fetch_source(cfg.pairs, args.download_dir, params.prepare).path, cfg.pairs)
    model = load_text_model(args.model_file, args.features)
    scores = contrast(pairs, model.proba(pairs["text"].tolist()), params.evaluate.threshold, cfg.resamples, params.seed)
    log.info("%s: %s", args.name, scores)
    write_json(args.out, scores)


if __name__ == "__main__":
    cli.run("contrast", main)
