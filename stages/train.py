"""train: fit one Keras model on one dataset's training features.

Per dataset × model, params from the model's own section (``mlp:``, ``lstm:``) and
``base.seed``; :func:`stages.common.training.train_model` does the work (validation carve,
early stopping). Writes the model (``.keras``), the per-epoch history (a DVC plot) and a JSON
summary (a DVC metric).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from stages.common import cli
from stages.common.config import ModelConfig
from stages.common.errors import DataError
from stages.common.params import load_params, parse, section, seed_from
from stages.common.store import load_featurizer, load_split
from stages.common.training import train_model, write_result

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.train --model mlp --features <dir> --out ... --history ... --summary ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name: its params section")
    p.add_argument("--features", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="trained model (.keras)")
    p.add_argument("--history", type=Path, required=True, help="per-epoch history (.csv)")
    p.add_argument("--summary", type=Path, required=True, help="training summary (.json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    seed = seed_from(params)
    cfg = parse(ModelConfig, section(params, args.model), args.model)
    featurizer = load_featurizer(args.features)
    expected = "bow" if cfg.architecture == "mlp" else "seq"
    if featurizer.config.kind != expected:
        raise DataError(
            f"vectorize.{args.model}.kind: an {cfg.architecture} needs '{expected}' features, "
            f"got '{featurizer.config.kind}'"
        )
    train = load_split(args.features, "train")
    result = train_model(
        cfg,
        train.X,
        train.y,
        input_dim=featurizer.input_dim,
        seed=seed,
    )
    log.info("%s: %s", args.model, result.summary)
    write_result(result, args.out, args.history, args.summary)


if __name__ == "__main__":
    cli.run("train", main)
