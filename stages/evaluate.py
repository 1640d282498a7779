"""evaluate: test-split metrics, curves and a confusion matrix for one dataset × model.

Metrics (a DVC metrics file): accuracy, balanced accuracy (Yelp is ~80% positive),
precision, recall, F1, ROC AUC, log loss and the confusion matrix as counts and as the
percentages of each true class the original report shows, and the same review's scores with
its words shuffled (``shuffled_words``: how much the model relies on word order), and the headline
metrics without the test reviews that also occur in the training split (``deduplicated``, from
prepare's ``in_train``). Plots: ROC and
precision–recall curves (CSV, rendered by ``dvc plots show``) and a confusion-matrix
image. Per-review predictions go to a table the later stages and MLflow reuse.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from stages.common import cli
from stages.common.data.io import atomic_path, write_bytes, write_json
from stages.common.data.store import iter_split, load_featurizer, read_table
from stages.common.errors import DataError
from stages.common.features.featurizer import TRANSFORM_ROWS, Featurizer, TokenBatch, in_pieces
from stages.common.modelling.persistence import load_model
from stages.common.modelling.prediction import predict_proba
from stages.common.modelling.scoring import headline
from stages.common.params import load_params
from stages.common.params.schema import EvaluateConfig
from stages.common.report import render

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Everything evaluate writes, computed from labels and probabilities."""

    metrics: dict[str, Any]
    roc: pd.DataFrame
    pr: pd.DataFrame


def _thin(df: pd.DataFrame, points: int) -> pd.DataFrame:
    """Keep at most ``points`` rows, evenly spaced, always keeping the first and last."""
    if len(df) <= points:
        return df.reset_index(drop=True)
    idx = np.unique(np.linspace(0, len(df) - 1, points).round().astype(int))
    return df.iloc[idx].reset_index(drop=True)


def evaluate_predictions(y_true: np.ndarray, proba: np.ndarray, cfg: EvaluateConfig) -> Evaluation:
    """Compute metrics and curves from true labels and positive-class probabilities. Pure."""
    y_true = np.asarray(y_true).astype(int)
    proba = np.asarray(proba, dtype=np.float64)
    if len(y_true) != len(proba):
        raise DataError(f"{len(y_true)} labels but {len(proba)} predictions")
    if len(np.unique(y_true)) < 2:
        raise DataError("the test split has one class only: ROC AUC and balanced accuracy are undefined")
    y_pred = (proba >= cfg.threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel())
    neg, pos = tn + fp, fn + tp
    r = lambda v: round(float(v), 6)  # noqa: E731
    metrics = {
        "n_test": len(y_true),
        "positive_rate": r(y_true.mean()),
        "accuracy": r(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": r(skm.balanced_accuracy_score(y_true, y_pred)),
        "precision": r(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": r(skm.recall_score(y_true, y_pred, zero_division=0)),
        "f1": r(skm.f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": r(skm.roc_auc_score(y_true, proba)),
        "log_loss": r(skm.log_loss(y_true, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "confusion": {
            "tn": tn,
            "fp": fp,
            "fn": fn,
            "tp": tp,
            # share of each true class, as in the original report's confusion table
            "tn_pct": r(100 * tn / neg),
            "fp_pct": r(100 * fp / neg),
            "fn_pct": r(100 * fn / pos),
            "tp_pct": r(100 * tp / pos),
        },
    }
    fpr, tpr, roc_thr = skm.roc_curve(y_true, proba, drop_intermediate=True)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_thr, 1.0)})
    precision, recall, pr_thr = skm.precision_recall_curve(y_true, proba)
    pr = pd.DataFrame({"recall": recall[:-1], "precision": precision[:-1], "threshold": pr_thr})
    return Evaluation(metrics=metrics, roc=_thin(roc, cfg.curve_points), pr=_thin(pr, cfg.curve_points))


def order_sensitivity(y_true: np.ndarray, proba: np.ndarray, shuffled: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, balanced accuracy and ROC AUC on the shuffled reviews, and how many predictions flip. Pure.

    ``proba``: P(positive) of the test reviews as written; ``shuffled``: of the same reviews with
    their words shuffled. A model that reads order loses accuracy; a bag of words barely moves.
    """
    scores = headline(y_true, shuffled, threshold)
    del scores["n_test"]
    # share of reviews whose predicted class changes
    scores["flipped"] = round(float(np.mean((proba >= threshold) != (shuffled >= threshold))), 6)
    return scores


def deduplicated(y_true: np.ndarray, proba: np.ndarray, in_train: np.ndarray, threshold: float) -> dict[str, Any]:
    """The headline metrics on the test reviews that have no (near-)twin in the training split. Pure."""
    keep = ~np.asarray(in_train, dtype=bool)
    return {"removed": int((~keep).sum()), **headline(np.asarray(y_true)[keep], np.asarray(proba)[keep], threshold)}


def shuffled_features(featurizer: Featurizer, texts: Sequence[str], seed: int, rows: int = TRANSFORM_ROWS) -> Any:
    """The features of ``texts`` with each one's words shuffled (seeded), by the one text → features
    path; ``rows`` texts at a time from one random stream (the same features as all at once)."""
    rng = np.random.default_rng(seed)
    return in_pieces(
        texts, lambda piece: featurizer.encode(featurizer.shuffle_words(TokenBatch.from_texts(piece), rng)), rows
    )


def confusion_png(metrics: dict[str, Any], title: str) -> bytes:
    """A confusion-matrix picture (prediction rows × truth columns, counts and % of truth)."""
    plt = render.pyplot()

    c = metrics["confusion"]
    counts = np.array([[c["tn"], c["fn"]], [c["fp"], c["tp"]]])
    pct = np.array([[c["tn_pct"], c["fn_pct"]], [c["fp_pct"], c["tp_pct"]]])
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
    ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    for i in range(2):
        for j in range(2):
            ax.text(
                j,
                i,
                f"{counts[i, j]}\n({pct[i, j]:.2f}%)",
                ha="center",
                va="center",
                color="white" if pct[i, j] > 60 else "black",
            )
    ax.set_xticks([0, 1], ["Negative", "Positive"])
    ax.set_yticks([0, 1], ["Negative", "Positive"])
    ax.set_xlabel("Truth")
    ax.set_ylabel("Prediction")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return render.png_bytes(fig)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.evaluate --model-file ... --features <dir> --metrics ... [...]``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="dataset/model, for titles and logs")
    cli.add_model_inputs(p)
    p.add_argument("--table", type=Path, required=True, help="the prepared table (test texts, to shuffle)")
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--roc", type=Path, required=True)
    p.add_argument("--pr", type=Path, required=True)
    p.add_argument("--confusion", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    args = p.parse_args(argv)
    params = load_params(args.params)
    cfg = params.evaluate
    texts = read_table(args.table, ["id", "text", "in_train"], split="test").set_index("id")
    model, featurizer = load_model(args.model_file), load_featurizer(args.features)
    ids, y, proba, shuffled_proba = [], [], [], []
    for k, shard in enumerate(iter_split(args.features, "test")):  # one shard's features in memory at a time
        shard_texts = texts["text"].reindex(shard.ids)
        if shard_texts.isna().any():
            missing = shard_texts.index[shard_texts.isna()][0]
            raise DataError(f"{args.table}: test review {missing!r} of {args.features} is missing")
        ids.append(shard.ids)
        y.append(shard.y)
        proba.append(predict_proba(model, shard.X))
        shuffled = shuffled_features(featurizer, shard_texts.tolist(), params.seed + k)
        shuffled_proba.append(predict_proba(model, shuffled))
    ids, y, proba = np.concatenate(ids), np.concatenate(y), np.concatenate(proba)
    result = evaluate_predictions(y, proba, cfg)
    result.metrics["shuffled_words"] = order_sensitivity(y, proba, np.concatenate(shuffled_proba), cfg.threshold)
    in_train = texts["in_train"].reindex(ids).to_numpy(dtype=bool)
    result.metrics["deduplicated"] = deduplicated(y, proba, in_train, cfg.threshold)
    log.info("%s: %s", args.name, {k: v for k, v in result.metrics.items() if k != "confusion"})
    with atomic_path(args.predictions) as tmp:
        pd.DataFrame(
            {
                "id": ids,
                "label": y.astype(np.int8),
                "proba": proba,
                "predicted": (proba >= cfg.threshold).astype(np.int8),
            }
        ).to_parquet(tmp, index=False)
    for path, df in ((args.roc, result.roc), (args.pr, result.pr)):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6f")
    write_bytes(args.confusion, confusion_png(result.metrics, f"{args.name}: test split"))
    write_json(args.metrics, result.metrics)


if __name__ == "__main__":
    cli.run("evaluate", main)
