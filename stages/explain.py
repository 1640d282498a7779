"""explain: LIME explanations of one model on the same test reviews as every other model.

Per dataset × model, on the reviews the select stage chose for every model of the dataset,
so the MLP and LSTM are compared side by side (with ``select.method: submodular`` each
model's SP-LIME pick from the same pool). Each explanation is seeded from ``random_state`` and the
review id. Outputs: the explanations (JSON), a feature-importance chart per review, a
words × reviews heatmap, an HTML view with words highlighted by weight (review text
escaped), the SP-LIME pick and a global word-importance table; metrics: faithfulness
(ERASER comprehensiveness/sufficiency as AOPC, next to random words), stability (top-10
Jaccard across two seeds), mean surrogate fit; and, in a separate timing file, seconds per explanation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stages.common import cli
from stages.common.data import layout
from stages.common.data.io import atomic_path, dumps_json, read_json, write_json, write_text
from stages.common.data.store import read_table
from stages.common.errors import DataError
from stages.common.explanation.explaining import Explanation, explain_text, review_seed, warm_up
from stages.common.explanation.trust import aopc, deletion_curves, jaccard, submodular_pick, vocabulary_of
from stages.common.modelling.prediction import TextModel, load_text_model
from stages.common.params import load_params
from stages.common.params.schema import ExplainConfig
from stages.common.report import render

log = logging.getLogger(__name__)


def explain_reviews(
    reviews: pd.DataFrame,
    model: TextModel,
    cfg: ExplainConfig,
    random_state: int,
    submodular_n: int | None = None,
) -> tuple[list[Explanation], dict[str, Any]]:
    """Explain ``reviews`` (columns ``id``, ``text``, ``label``) and measure the explanations. Pure.

    With ``submodular_n``, the reviews are a pool: all are explained and SP-LIME keeps
    ``submodular_n`` of them.
    """
    kw = {
        "num_features": cfg.num_features,
        "num_samples": cfg.num_samples,
        "kernel_width": cfg.kernel_width,
    }
    warm_up(model)
    explanations = [
        explain_text(r.text, r.id, int(r.label), model, random_state=random_state, **kw) for r in reviews.itertuples()
    ]
    if submodular_n is not None:
        keep = sorted(submodular_pick(explanations, submodular_n))
        explanations = [explanations[i] for i in keep]
        reviews = reviews.iloc[keep]
    # stability: the same reviews with another seed
    again = [
        explain_text(r.text, r.id, int(r.label), model, random_state=random_state + 1, **kw)
        for r in reviews.itertuples()
    ]
    stability = [jaccard(a.top_words(10), b.top_words(10)) for a, b in zip(explanations, again, strict=True)]
    # faithfulness: remove (or keep only) the top-k supporting words vs k random words
    texts = reviews["text"].tolist()
    predicted = [e.predicted for e in explanations]
    ranked = [e.supporting(max(cfg.faithfulness_k)) for e in explanations]
    random_words = []
    for e, text in zip(explanations, texts, strict=True):
        words = vocabulary_of(text)
        rng = np.random.default_rng(review_seed(random_state, e.review_id))
        random_words.append([words[i] for i in rng.permutation(len(words))[: max(cfg.faithfulness_k)]])
    lime_curves = deletion_curves(texts, ranked, predicted, model.proba, cfg.faithfulness_k)
    rand_curves = deletion_curves(texts, random_words, predicted, model.proba, cfg.faithfulness_k)
    for i, e in enumerate(explanations):
        e.extra["stability_jaccard"] = round(stability[i], 6)
        e.extra["comprehensiveness"] = [round(v, 6) for v in lime_curves["comprehensiveness"][i]]
        e.extra["sufficiency"] = [round(v, 6) for v in lime_curves["sufficiency"][i]]
    metrics = {
        "n_explained": len(explanations),
        "mean_fit_r2": round(float(np.mean([e.score for e in explanations])), 6),
        "stability_top10_jaccard": round(float(np.mean(stability)), 6),
        "aopc_comprehensiveness": round(aopc(lime_curves["comprehensiveness"]), 6),
        "aopc_comprehensiveness_random": round(aopc(rand_curves["comprehensiveness"]), 6),
        "aopc_sufficiency": round(aopc(lime_curves["sufficiency"]), 6),
        "aopc_sufficiency_random": round(aopc(rand_curves["sufficiency"]), 6),
        "faithfulness_k": list(cfg.faithfulness_k),
    }
    return explanations, metrics


def global_importance(explanations: Sequence[Explanation]) -> pd.DataFrame:
    """Word importance aggregated over explanations: mean |weight|, mean weight, count."""
    rows: dict[str, list[float]] = {}
    for e in explanations:
        for w, v in e.words:
            rows.setdefault(w, []).append(v)
    n = max(len(explanations), 1)
    df = pd.DataFrame(
        [
            {
                "word": w,
                "importance": sum(abs(v) for v in vs) / n,
                "mean_weight": float(np.mean(vs)),
                "reviews": len(vs),
            }
            for w, vs in rows.items()
        ],
        columns=["word", "importance", "mean_weight", "reviews"],
    )
    return df.sort_values(["importance", "word"], ascending=[False, True]).reset_index(drop=True)


# ---------------------------------------------------------------- pictures and HTML


SUPPORT, CONTRADICT = "#2e7d32", "#c62828"
LABELLED_COLUMNS = 24  # a wider heatmap names no review under its columns


def features_png(explanations: Sequence[Explanation], title: str) -> bytes:
    """Feature-importance bars per review (supports vs contradicts the predicted label)."""
    plt = render.pyplot()
    n = len(explanations)
    cols = 2 if n > 1 else 1
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.6 * rows), squeeze=False)
    for ax, e in zip(axes.ravel(), explanations, strict=False):
        words = sorted(e.words, key=lambda wv: abs(wv[1]))
        sign = 1 if e.predicted == 1 else -1
        toward = [sign * v for _, v in words]
        ax.barh([w for w, _ in words], toward, color=[SUPPORT if t > 0 else CONTRADICT for t in toward])
        label = "positive" if e.predicted else "negative"
        truth = "positive" if e.label else "negative"
        ax.set_title(
            f"{e.review_id}\npred {label} (p={e.proba if e.predicted else 1 - e.proba:.2f}), true {truth}, "
            f"fit R²={e.score:.2f}",
            fontsize=8,
        )
        ax.axvline(0, color="#555", lw=0.6)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("weight toward the predicted label", fontsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"{title}\ngreen: supports the prediction, red: contradicts it", fontsize=10)
    fig.tight_layout()
    return render.png_bytes(fig)


def heatmap_png(explanations: Sequence[Explanation], title: str, max_words: int = 40) -> bytes:
    """Words × reviews heatmap of LIME weights (toward positive)."""
    plt = render.pyplot()
    imp = global_importance(explanations).head(max_words)
    words = imp["word"].tolist()
    grid = np.full((len(words), len(explanations)), np.nan)
    for j, e in enumerate(explanations):
        for w, v in e.words:
            if w in words:
                grid[words.index(w), j] = v
    lim = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    fig, ax = plt.subplots(figsize=(min(1.2 + 0.55 * len(explanations), 14.0), 1.2 + 0.22 * len(words)))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_yticks(range(len(words)), words, fontsize=7)
    if len(explanations) <= LABELLED_COLUMNS:
        ax.set_xticks(
            range(len(explanations)), [e.review_id for e in explanations], rotation=60, ha="right", fontsize=6
        )
    else:
        ax.set_xlabel(f"{len(explanations)} explained reviews", fontsize=8)
    fig.colorbar(im, ax=ax, label="weight toward positive", shrink=0.6)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return render.png_bytes(fig)


def highlight_html(reviews: pd.DataFrame, explanations: Sequence[Explanation], title: str) -> str:
    """A page with each review's explained words highlighted; review text is escaped."""
    texts = dict(zip(reviews["id"], reviews["text"], strict=True))
    return render.page(
        title, [f"<h1>{render.esc(title)}</h1>", render.highlighted_reviews(texts, [e.to_dict() for e in explanations])]
    )


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.explain --name imdb/mlp --table ... --features ... --model-file ... --out <dir>``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="dataset/model, for titles and logs")
    p.add_argument("--table", type=Path, required=True)
    cli.add_model_inputs(p)
    p.add_argument("--selection", type=Path, required=True, help="the select stage's review ids (.json)")
    p.add_argument("--out", type=Path, required=True, help="explanations directory")
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--timing", type=Path, required=True, help="seconds per explanation (.json)")
    p.add_argument("--highlight", type=Path, required=True, help="reviews with highlighted words (.html)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    cfg = params.explain
    table = read_table(args.table)
    test = table[table["split"] == "test"].reset_index(drop=True)
    selection = read_json(args.selection)
    missing = sorted(set(selection["review_ids"]) - set(test["id"]))
    if missing:
        raise DataError(f"{args.selection}: review {missing[0]!r} is not in the test split; re-run select")
    reviews = test.set_index("id").loc[selection["review_ids"]].reset_index()
    submodular_n = selection["n_reviews"] if selection["method"] == "submodular" else None
    model = load_text_model(args.model_file, args.features, fast=True)
    explanations, metrics = explain_reviews(reviews, model, cfg, params.seed, submodular_n)
    # wall time varies run to run, so it lives apart from the (reproducible) metrics
    timing = {
        "seconds_per_explanation": round(float(np.mean([e.seconds for e in explanations])), 4),
        "num_samples": cfg.num_samples,
    }
    picked = submodular_pick(explanations, cfg.sp_budget)
    log.info("%s: %s", args.name, metrics)
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        (tmp / layout.EXPLANATIONS).write_text(dumps_json([e.to_dict() for e in explanations]), encoding="utf-8")
        (tmp / layout.SP_PICK).write_text(
            dumps_json({"budget": cfg.sp_budget, "review_ids": [explanations[i].review_id for i in picked]}),
            encoding="utf-8",
        )
        global_importance(explanations).to_csv(tmp / layout.GLOBAL_WORDS, index=False, float_format="%.6f")
        shown = [explanations[i] for i in picked]  # one chart per SP-LIME pick; the heatmap shows all
        (tmp / layout.FEATURES_PNG).write_bytes(features_png(shown, f"{args.name}: LIME, the SP-LIME pick"))
        (tmp / layout.HEATMAP_PNG).write_bytes(heatmap_png(explanations, f"{args.name}: LIME weights, words × reviews"))
    write_text(args.highlight, highlight_html(reviews, explanations, f"{args.name}: LIME explanations"))
    write_json(args.metrics, metrics)
    write_json(args.timing, timing)


if __name__ == "__main__":
    cli.run("explain", main)
