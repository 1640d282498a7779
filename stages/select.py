"""select: which test reviews to explain, the same ones for every model of a dataset.

Per dataset. ``select.method``: the ``first`` N reviews of the test split, a seeded
``random`` sample, reviews ``misclassified`` by any model (seeded sample), or a seeded
``pool`` for the explain stage's ``submodular`` (SP-LIME) pick. The ids go to a small
JSON file: when another model's predictions change but the selection does not, the file
is byte-identical and DVC does not re-run the explanations that read it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stages.common import cli
from stages.common.data.io import write_json
from stages.common.data.store import read_table
from stages.common.errors import DataError
from stages.common.params import load_params
from stages.common.params.schema import SelectConfig

log = logging.getLogger(__name__)


def select_reviews(test_ids: Sequence[str], wrong_ids: set[str], cfg: SelectConfig, seed: int) -> list[str]:
    """Ids to explain, in test-split order. Pure and model-independent."""
    ids = list(test_ids)
    rng = np.random.default_rng(seed)
    if cfg.method == "first":
        return ids[: cfg.n_reviews]
    if cfg.method == "misclassified":
        pool = [i for i in ids if i in wrong_ids]
        if not pool:
            raise DataError("select.method is 'misclassified', but no model misclassifies any test review")
    else:
        pool = ids
    size = cfg.pool_size if cfg.method == "submodular" else cfg.n_reviews
    chosen = rng.choice(len(pool), size=min(size, len(pool)), replace=False)
    return [pool[i] for i in sorted(chosen)]


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.select --table ... --predictions <dir> --out <ids.json>``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True, help="directory of every model's test predictions")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    params = load_params(args.params)
    cfg = params.select
    test_ids = read_table(args.table, ["id"], split="test")["id"].tolist()
    wrong: set[str] = set()
    for f in sorted(Path(args.predictions).glob("*.parquet")):
        pred = pd.read_parquet(f)
        wrong |= set(pred.loc[pred["label"] != pred["predicted"], "id"])
    ids = select_reviews(test_ids, wrong, cfg, params.seed)
    log.info("selected %d reviews (%s)", len(ids), cfg.method)
    write_json(args.out, {"method": cfg.method, "n_reviews": cfg.n_reviews, "review_ids": ids})


if __name__ == "__main__":
    cli.run("select", main)
