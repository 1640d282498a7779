"""explain: explanations of one model by LIME, SHAP and integrated gradients, on the same test reviews.

Per dataset × model, on the reviews the select stage chose for every model of the dataset, so
the MLP and LSTM are compared side by side (with ``select.method: submodular`` each model's
submodular pick from the same pool, by the first of ``explain.methods``). Every method gives one
weight per word (LIME's words) for the positive class. LIME is seeded from ``random_state`` and
the review id. Outputs per method: the explanations (JSON), a feature-importance chart of its
submodular pick, a words × reviews heatmap and a global word-importance table; ``ranking.json``,
the methods most faithful first; an HTML view with each method's words highlighted side by side
(review text escaped). Metrics per method: faithfulness (ERASER comprehensiveness/sufficiency as
AOPC, next to random words), LIME's stability (top-10 Jaccard across two seeds) and surrogate fit,
the others' additivity gap; between methods: rank agreement and top-10 overlap; and, in a separate
timing file, seconds per explanation.
"""

from __future__ import annotations

import itertools
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
from stages.common.explanation import gradients, shapley
from stages.common.explanation.explaining import Explanation, explain_text, review_seed
from stages.common.explanation.trust import (
    aopc,
    deletion_curves,
    jaccard,
    most_faithful_first,
    rank_agreement,
    submodular_pick,
    vocabulary_of,
)
from stages.common.modelling.prediction import TextModel, load_text_model
from stages.common.params import load_params
from stages.common.params.schema import EXPLAIN_METHOD_NAMES as NAMES
from stages.common.params.schema import ExplainConfig
from stages.common.report import render

log = logging.getLogger(__name__)

WARM_UP = "A warm-up review: the plot was good, the acting bad, and the ending good."


def explain_one(
    method: str, text: str, review_id: str, label: int, model: TextModel, cfg: ExplainConfig, random_state: int
) -> Explanation:
    """One review's explanation by ``method`` (one weight per word, for the positive class)."""
    review, k = (text, review_id, label, model), cfg.num_features
    if method == "lime":
        lime = {"num_samples": cfg.num_samples, "kernel_width": cfg.kernel_width}
        return explain_text(*review, random_state=random_state, num_features=k, **lime)
    if method == "shap":
        return shapley.explain_text(*review, random_state=random_state, num_features=k, max_evals=cfg.shap_max_evals)
    return gradients.explain_text(*review, num_features=k, steps=cfg.gradient_steps)


def explain_all(
    method: str, reviews: pd.DataFrame, model: TextModel, cfg: ExplainConfig, random_state: int
) -> list[Explanation]:
    """``reviews`` explained by ``method``, after one untimed warm-up (tracing, compiling)."""
    explain_one(method, WARM_UP, "warm-up", 1, model, cfg, 0)
    return [explain_one(method, r.text, r.id, int(r.label), model, cfg, random_state) for r in reviews.itertuples()]


def explain_reviews(
    reviews: pd.DataFrame,
    model: TextModel,
    cfg: ExplainConfig,
    random_state: int,
    submodular_n: int | None = None,
) -> tuple[dict[str, list[Explanation]], dict[str, Any]]:
    """Explain ``reviews`` (columns ``id``, ``text``, ``label``) by each method and measure the
    explanations. Pure.

    With ``submodular_n``, the reviews are a pool: the first method explains them all and its
    submodular pick keeps ``submodular_n``, which the other methods explain.
    """
    first = cfg.methods[0]
    out = {first: explain_all(first, reviews, model, cfg, random_state)}
    if submodular_n is not None:
        keep = sorted(submodular_pick(out[first], submodular_n))
        out[first] = [out[first][i] for i in keep]
        reviews = reviews.iloc[keep]
    for method in cfg.methods[1:]:
        out[method] = explain_all(method, reviews, model, cfg, random_state)
    # faithfulness: remove (or keep only) the top-k supporting words vs k random words
    k = max(cfg.faithfulness_k)
    texts = reviews["text"].tolist()
    predicted = [e.predicted for e in out[first]]
    random_words = []
    for e, text in zip(out[first], texts, strict=True):
        words = vocabulary_of(text)
        rng = np.random.default_rng(review_seed(random_state, e.review_id))
        random_words.append([words[i] for i in rng.permutation(len(words))[:k]])
    rand_curves = deletion_curves(texts, random_words, predicted, model.proba, cfg.faithfulness_k)
    metrics: dict[str, Any] = {
        "n_explained": len(texts),
        "faithfulness_k": list(cfg.faithfulness_k),
        "random": {
            "aopc_comprehensiveness": round(aopc(rand_curves["comprehensiveness"]), 6),
            "aopc_sufficiency": round(aopc(rand_curves["sufficiency"]), 6),
        },
    }
    for method, explanations in out.items():
        ranked = [e.supporting(k) for e in explanations]
        curves = deletion_curves(texts, ranked, predicted, model.proba, cfg.faithfulness_k)
        for i, e in enumerate(explanations):
            e.extra["comprehensiveness"] = [round(v, 6) for v in curves["comprehensiveness"][i]]
            e.extra["sufficiency"] = [round(v, 6) for v in curves["sufficiency"][i]]
        metrics[method] = {
            "aopc_comprehensiveness": round(aopc(curves["comprehensiveness"]), 6),
            "aopc_sufficiency": round(aopc(curves["sufficiency"]), 6),
        }
        if method == "lime":  # the one random method: stability is the same reviews with another seed
            again = [
                explain_one(method, r.text, r.id, int(r.label), model, cfg, random_state + 1)
                for r in reviews.itertuples()
            ]
            stability = [jaccard(a.top_words(10), b.top_words(10)) for a, b in zip(explanations, again, strict=True)]
            for e, value in zip(explanations, stability, strict=True):
                e.extra["stability_jaccard"] = round(value, 6)
            metrics[method]["mean_fit_r2"] = round(float(np.mean([e.score for e in explanations])), 6)
            metrics[method]["stability_top10_jaccard"] = round(float(np.mean(stability)), 6)
        else:  # how far the weights fall short of adding up to p(review) - p(no words)
            gap = np.mean([abs(e.local_pred - e.proba) for e in explanations])
            metrics[method]["additivity_gap"] = round(float(gap), 6)
    agreement = {}
    for a, b in itertools.combinations(out, 2):
        pairs = [rank_agreement(x, y) for x, y in zip(out[a], out[b], strict=True)]
        rho = [r for r, _ in pairs if np.isfinite(r)]
        agreement[f"{a}_vs_{b}"] = {
            "spearman": round(float(np.mean(rho)), 6) if rho else None,
            "top10_overlap": round(float(np.mean([o for _, o in pairs])), 6),
        }
    if agreement:
        metrics["agreement"] = agreement
    return out, metrics


def ranking(metrics: dict[str, Any], methods: Sequence[str]) -> list[dict[str, Any]]:
    """Which explanation to believe: the methods, most faithful first, with the figures that rank them."""
    per = {m: metrics[m] for m in methods}
    rand = metrics["random"]
    return [
        {
            "method": m,
            "comprehensiveness": per[m]["aopc_comprehensiveness"],
            "comprehensiveness over random words": round(
                per[m]["aopc_comprehensiveness"] - rand["aopc_comprehensiveness"], 6
            ),
            "sufficiency": per[m]["aopc_sufficiency"],
            "sufficiency below random words": round(rand["aopc_sufficiency"] - per[m]["aopc_sufficiency"], 6),
        }
        for m in most_faithful_first(per)
    ]


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
        fit = "" if e.score is None else f", fit R²={e.score:.2f}"
        ax.set_title(
            f"{e.review_id}\npred {label} (p={e.proba if e.predicted else 1 - e.proba:.2f}), true {truth}{fit}",
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


def highlight_html(reviews: pd.DataFrame, explanations: dict[str, Sequence[Explanation]], title: str) -> str:
    """A page with each review's words highlighted by each method, side by side; review text is escaped."""
    texts = dict(zip(reviews["id"], reviews["text"], strict=True))
    by_method = {NAMES[m]: [e.to_dict() for e in exps] for m, exps in explanations.items()}
    return render.page(title, [f"<h1>{render.esc(title)}</h1>", render.side_by_side(texts, by_method)])


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
    selection = read_json(args.selection)
    test = read_table(args.table, split="test", ids=selection["review_ids"])
    missing = sorted(set(selection["review_ids"]) - set(test["id"]))
    if missing:
        raise DataError(f"{args.selection}: review {missing[0]!r} is not in the test split; re-run select")
    reviews = test.set_index("id").loc[selection["review_ids"]].reset_index()
    submodular_n = selection["n_reviews"] if selection["method"] == "submodular" else None
    model = load_text_model(args.model_file, args.features, fast=True)
    explanations, metrics = explain_reviews(reviews, model, cfg, params.seed, submodular_n)
    # wall time varies run to run, so it lives apart from the (reproducible) metrics
    timing = {
        "seconds_per_explanation": {
            m: round(float(np.mean([e.seconds for e in exps])), 4) for m, exps in explanations.items()
        },
        "num_samples": cfg.num_samples,
    }
    log.info("%s: %s", args.name, metrics)
    shown = reviews.set_index("id").loc[[e.review_id for e in explanations[cfg.methods[0]]]].reset_index()
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        (tmp / layout.RANKING).write_text(dumps_json(ranking(metrics, list(explanations))), encoding="utf-8")
        for method, exps in explanations.items():
            d, name = tmp / method, NAMES[method]
            d.mkdir()
            picked = submodular_pick(exps, cfg.sp_budget)
            (d / layout.EXPLANATIONS).write_text(dumps_json([e.to_dict() for e in exps]), encoding="utf-8")
            (d / layout.SP_PICK).write_text(
                dumps_json({"budget": cfg.sp_budget, "review_ids": [exps[i].review_id for i in picked]}),
                encoding="utf-8",
            )
            global_importance(exps).to_csv(d / layout.GLOBAL_WORDS, index=False, float_format="%.6f")
            pick = [exps[i] for i in picked]  # one chart per picked review; the heatmap shows all
            (d / layout.FEATURES_PNG).write_bytes(features_png(pick, f"{args.name}: {name}, the submodular pick"))
            (d / layout.HEATMAP_PNG).write_bytes(heatmap_png(exps, f"{args.name}: {name} weights, words × reviews"))
    write_text(args.highlight, highlight_html(shown, explanations, f"{args.name}: explanations"))
    write_json(args.metrics, metrics)
    write_json(args.timing, timing)


if __name__ == "__main__":
    cli.run("explain", main)
