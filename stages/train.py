"""train: fit one Keras model on one dataset's training features.

Per dataset × model, params from the model's own section (``mlp:``, ``lstm:``) and
``base.seed``; :func:`stages.common.modelling.training.train_model` does the work (validation
carve, early stopping) on a training split of one features shard, ``train_on_shards`` (the same
carve, the shards streamed through ``tf.data``) on a larger one. Writes the model (``.keras``),
the per-epoch history (a DVC plot) and a JSON summary (a DVC metric).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from stages.common import cli
from stages.common.data.store import load_featurizer, load_split, shard_paths
from stages.common.modelling.training import train_model, train_on_shards, write_result
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
    cfg, input_dim = params.model(args.model), load_featurizer(args.features).input_dim
    if len(shard_paths(args.features, "train")) > 1:  # a large training split: a shard at a time
        result = train_on_shards(cfg, args.features, input_dim=input_dim, seed=params.seed)
    else:
        train = load_split(args.features, "train")
        result = train_model(cfg, train.X, train.y, input_dim=input_dim, seed=params.seed, group=train.group)
    log.info("%s: %s", args.model, result.summary)
    write_result(result, args.out, args.history, args.summary)


if __name__ == "__main__":
    cli.run("train", main)
