"""train: fit one Keras model on one dataset's training features.

Per dataset × model, params from the model's own section (``mlp:``, ``lstm:``) and
``base.seed``; :func:`stages.common.modelling.training.train_model` does the work (validation
carve, early stopping). Writes the model (``.keras``), the per-epoch history (a DVC plot) and
a JSON summary (a DVC metric).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from stages.common import cli
from stages.common.data.store import load_featurizer, load_split
from stages.common.modelling.training import train_model, write_result
from stages.common.params import load_params

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.train --model mlp --features <dir> --out ... --history ... --summary ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name: its params section")
    p.add_argument("--features", type=Path, required=True, help="the dataset's features directory")
    cli.add_training_outputs(p)
    args = p.parse_args(argv)
    params = load_params(args.params)
    featurizer, train = load_featurizer(args.features), load_split(args.features, "train")
    result = train_model(
        params.model(args.model),
        train.X,
        train.y,
        input_dim=featurizer.input_dim,
        seed=params.seed,
        group=train.group,
    )
    log.info("%s: %s", args.model, result.summary)
    write_result(result, args.out, args.history, args.summary)


if __name__ == "__main__":
    cli.run("train", main)
