"""vectorize: fit one model's featurizer on the training split and write its features.

Per dataset × model: ``vectorize.<model>`` says how that model sees text (bag-of-words
for the MLP, padded integer sequences for the LSTM). The vocabulary is fitted on the
training split only; both splits are transformed by the same
:meth:`~stages.common.features.featurizer.Featurizer.transform` that evaluation, LIME and
prediction use. Output directory: ``featurizer.json`` (vocabulary and settings),
``train.npz`` and ``test.npz`` (features ``X`` — sparse CSR for bag-of-words — labels
``y`` and review ``id``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stages.common import cli
from stages.common.data.store import read_table, transform_splits, write_features
from stages.common.features.featurizer import Featurizer, FeaturizerConfig, fit_featurizer
from stages.common.params import load_params

log = logging.getLogger(__name__)


def vectorize(table: pd.DataFrame, cfg: FeaturizerConfig) -> tuple[Featurizer, dict[str, dict[str, np.ndarray]]]:
    """Fit on ``split == "train"`` rows, transform both splits. Pure."""
    train = table[table["split"] == "train"]
    featurizer = fit_featurizer(train["text"].tolist(), cfg)
    return featurizer, transform_splits(table, featurizer)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.vectorize --model mlp --table ... --out <dir>``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name: its featurizer is vectorize.<model>")
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="features directory")
    args = p.parse_args(argv)
    key = f"vectorize.{args.model}"
    cfg = load_params(args.params).featurizer(args.model)
    featurizer, splits = vectorize(read_table(args.table), cfg)
    log.info(
        "%s: %d-term vocabulary; train %s, test %s",
        key,
        len(featurizer.vocabulary),
        len(splits["train"]["y"]),
        len(splits["test"]["y"]),
    )
    write_features(args.out, featurizer, splits)


if __name__ == "__main__":
    cli.run("vectorize", main)
