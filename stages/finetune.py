"""finetune: start a dataset's model from what it learned on the source dataset.

Per target dataset × model (``finetune.targets``): the source's featurizer (vocabulary)
turns the target's reviews into features, and the source's trained model is the starting
point that training on the target's own training split refines (early stopping on a
validation split carved from it, as in train). For datasets with few reviews: the Yelp
LSTM sees ~6,800 training reviews, the IMDB one 25,000. Params: ``finetune`` and the model's
own block ``finetune.per_model.<model>``; :func:`stages.common.modelling.training.finetune`
does the work. Writes the same features directory as vectorize and the same model, history
and summary as train, so every later stage treats fine-tuned and from-scratch models alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from stages.common import cli
from stages.common.data.store import load_featurizer, read_table, write_features
from stages.common.errors import DataError, ParamsError
from stages.common.modelling.persistence import load_model
from stages.common.modelling.training import finetune, write_result
from stages.common.params import load_params

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.finetune --model lstm --table <target>.parquet --source-features <dir> ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name: its params section")
    p.add_argument("--table", type=Path, required=True, help="the target dataset's prepared table")
    p.add_argument("--source-features", type=Path, required=True, help="the source's features directory")
    p.add_argument("--source-model", type=Path, required=True, help="the source's trained model (.keras)")
    p.add_argument("--features", type=Path, required=True, help="features directory to write")
    cli.add_training_outputs(p)
    args = p.parse_args(argv)
    params = load_params(args.params)
    if params.finetune is None:
        raise ParamsError("finetune: section missing; the finetune stage needs it")
    cfg, tuning = params.finetune, params.finetune.model(args.model)
    featurizer = load_featurizer(args.source_features)
    if not args.source_model.is_file():
        raise DataError(f"{args.source_model}: source model not found; run train for finetune.source first")
    table, source = read_table(args.table), load_model(args.source_model)
    featurizer, splits, result = finetune(table, featurizer, source, params.model(args.model), cfg, tuning, params.seed)
    log.info("%s from %s: %s", args.model, cfg.source, result.summary)
    write_features(args.features, featurizer, splits)
    write_result(result, args.out, args.history, args.summary)


if __name__ == "__main__":
    cli.run("finetune", main)
