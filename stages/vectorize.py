"""vectorize: fit one model's featurizer on the training split and write its features.

Per dataset × model: ``vectorize.<model>`` says how that model sees text (bag-of-words
for the MLP, padded integer sequences for the LSTM). The vocabulary is fitted on the
training split only, counted in one pass over the table's chunks; both splits are then
transformed by the same :meth:`~stages.common.features.featurizer.Featurizer.transform` that
evaluation, LIME and prediction use, a shard at a time. Output directory: ``featurizer.json``
(vocabulary and settings) and ``<split>-00000.npz``, ... (features ``X`` — sparse CSR for
bag-of-words — labels ``y`` and review ``id``; ``SHARD_ROWS`` reviews each). Memory holds a
chunk and the counts, never the table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from stages.common import cli
from stages.common.data.store import FeatureWriter, iter_table, shard_arrays, split_shards
from stages.common.features.featurizer import Featurizer, FeaturizerConfig, featurizer_from_counts, term_counter
from stages.common.params import load_params

log = logging.getLogger(__name__)


def fit(chunks: Iterable[pd.DataFrame], cfg: FeaturizerConfig) -> Featurizer:
    """The featurizer of the ``split == "train"`` rows of a table's chunks (``text``, ``split``). Pure."""
    counter = term_counter(cfg)
    for chunk in chunks:
        counter.add(chunk.loc[chunk["split"] == "train", "text"].tolist())
    return featurizer_from_counts(counter, cfg)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.vectorize --model mlp --table ... --out <dir>``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name: its featurizer is vectorize.<model>")
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="features directory")
    args = p.parse_args(argv)
    key = f"vectorize.{args.model}"
    cfg = load_params(args.params).featurizer(args.model)
    featurizer = fit(iter_table(args.table, ["text", "split"]), cfg)
    log.info("%s: %d terms from %d training reviews", key, len(featurizer.vocabulary), featurizer.n_train_docs)
    rows = dict.fromkeys(("train", "test"), 0)
    with FeatureWriter(args.out, featurizer) as writer:
        for split, part in split_shards(iter_table(args.table, ["id", "text", "label", "split", "group"])):
            writer.write(split, shard_arrays(part, featurizer, split))
            rows[split] += len(part)
    log.info("%s: train %d, test %d reviews", key, rows["train"], rows["test"])


if __name__ == "__main__":
    cli.run("vectorize", main)
