"""crossdomain: one dataset's model scored on every other dataset's test split (the real-world check).

A model trained on movie reviews meets restaurant reviews and the other way round: the headline
metrics on reviews it was not made for say how far what it learned carries beyond its own
source. The reviews go through the model's own featurizer, as at prediction time.
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
from stages.common.data.store import read_table
from stages.common.errors import DataError
from stages.common.modelling.prediction import load_text_model
from stages.common.modelling.scoring import headline
from stages.common.params import load_params

log = logging.getLogger(__name__)


def cross_domain(tests: dict[str, pd.DataFrame], predict: Any, threshold: float) -> dict[str, dict[str, Any]]:
    """``{other dataset: headline metrics}`` of ``predict`` (texts → P(positive)) on each test split. Pure."""
    out = {}
    for name, test in tests.items():
        out[name] = headline(test["label"].to_numpy(), np.asarray(predict(test["text"].tolist())), threshold)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.crossdomain --dataset imdb --model-file ... --features ... --tables <dir> --out ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="the dataset the model was trained for (not scored here)")
    cli.add_model_inputs(p)
    p.add_argument("--tables", type=Path, required=True, help="the prepared tables, <dataset>.parquet")
    p.add_argument("--out", type=Path, required=True, help="metrics file (.json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    others = [d for d in params.datasets if d != args.dataset]
    paths = {d: args.tables / f"{d}.parquet" for d in others}
    missing = [str(f) for f in paths.values() if not f.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: prepared table not found; run the prepare stage")
    model = load_text_model(args.model_file, args.features)
    tests = {d: read_table(f, ["text", "label"], split="test") for d, f in paths.items()}
    scores = cross_domain(tests, model.proba, params.evaluate.threshold)
    log.info("%s: %s", args.dataset, scores)
    write_json(args.out, scores)


if __name__ == "__main__":
    cli.run("crossdomain", main)
