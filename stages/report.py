"""report: one self-contained HTML page per dataset, readable without running anything.

Data card with duplicates and leakage, metrics of every model (also without the test reviews
found in training, and on the other datasets' reviews), confusion matrices, ROC and training
curves, behavioural test results, which explanation method to believe (LIME, SHAP, integrated
gradients ranked by faithfulness), the most faithful method's charts and heatmap, representative
reviews with every method's words side by side, stability and agreement figures, the word–label
correlation chart and the suspicious-word table. Images are embedded; review text is escaped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stages.common import cli
from stages.common.data import layout
from stages.common.data.io import read_json, write_json, write_text
from stages.common.data.store import read_table
from stages.common.params import load_params
from stages.common.params.schema import EXPLAIN_METHOD_NAMES as NAMES
from stages.common.params.schema import ReportConfig
from stages.common.report import render, scorecard

log = logging.getLogger(__name__)

METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
TRUST = (
    ("aopc_comprehensiveness", "comprehensiveness AOPC"),
    ("aopc_sufficiency", "sufficiency AOPC (lower is better)"),
    ("stability_top10_jaccard", "stability: top-10 Jaccard, two seeds"),
    ("mean_fit_r2", "mean surrogate fit (R²)"),
    ("additivity_gap", "additivity gap: |weights + intercept − p|"),
)


def _curves_png(frames: dict[str, pd.DataFrame], x: str, ys: Sequence[str], title: str, diagonal: bool) -> bytes:
    plt = render.pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, df in frames.items():
        for y in ys:
            ax.plot(df[x], df[y], label=f"{name} {y}" if len(ys) > 1 else name, marker="o" if len(df) < 30 else None)
    if diagonal:
        ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=0.8)
    ax.set_xlabel(x)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return render.png_bytes(fig)


def build_report(dataset: str, data: dict[str, Any]) -> str:
    """The page, from everything the earlier stages wrote (already loaded). Pure."""
    card, models = data["card"], data["models"]
    e = render.esc
    body = [f"<h1>Sentiment models on {e(dataset)}: accuracy and trust</h1>"]
    body.append("<h2>Scorecard</h2>")
    body.append(render.table(_shown(data["scorecard"]["table"], list(models))))
    body.append(f"<p id='verdict'>{e(data['scorecard']['paragraph'])}</p>")
    body.append(
        "<p class='meta'>A model is ahead on a measure when the 95% interval of its difference to every "
        "other model excludes 0 (a paired bootstrap over the test reviews or the explained reviews; for rates "
        "kept with their counts only, an interval for two independent proportions). The first group of "
        "measures, in the order <code>report.priority</code> gives, in which a model is ahead decides; the "
        "paragraph is generated from the table by the rule in <code>stages/common/report/scorecard.py</code>. "
        "Every figure on this page comes from the files the DVC pipeline wrote (see <code>dvc.yaml</code>); the "
        "params are in <code>params.yaml</code> and MLflow.</p>"
    )
    body.append("<h2>Data</h2>")
    splits = pd.DataFrame(
        [{"split": s, **v} for s, v in card["splits"].items()], columns=["split", "rows", "negative", "positive"]
    )
    body.append(render.table(splits))
    src = card.get("source") or {}
    body.append(
        f"<p>Source: <code>{e(src.get('location', '?'))}</code> (via {e(src.get('via', '?'))}, "
        f"sha256 <code>{e(src.get('sha256', '?'))}</code>). Median review length "
        f"{e(card['text_words']['median'])} words.</p>"
    )
    if aug := card.get("augment"):
        body.append(
            f"<p>Training split: {aug['rows']:,} rows are {aug['pairs']:,} minimal-edit pairs "
            f"(<code>{e((aug.get('source') or {}).get('location', '?'))}</code>), each kept whole by the "
            f"validation carve; {aug['dropped_pairs_in_test']:,} pair(s) with a member in the test split "
            "were left out.</p>"
        )
    body += _duplicates(card.get("duplicates"))
    body.append("<h2>Test metrics</h2>")
    rows = [{"model": m, **{k: d["metrics"][k] for k in METRICS}} for m, d in models.items()]
    body.append(render.table(pd.DataFrame(rows)))
    dedup = [
        {
            "model": m,
            "reviews left out": x["removed"],
            "reviews": x["n_test"],
            "accuracy": x["accuracy"],
            "balanced accuracy": x["balanced_accuracy"],
            "ROC AUC": x["roc_auc"],
        }
        for m, d in models.items()
        if (x := d["metrics"].get("deduplicated"))
    ]
    if dedup:
        body.append("<h3>Without the test reviews that also occur in the training split</h3>")
        body.append(render.table(pd.DataFrame(dedup)))
    body += _cross_domain(dataset, models)
    body += _contrast(models)
    body.append("<h3>Word order: the same test reviews with their words shuffled</h3>")
    order = [
        {
            "model": m,
            "accuracy": d["metrics"]["accuracy"],
            "accuracy, words shuffled": d["metrics"]["shuffled_words"]["accuracy"],
            "ROC AUC": d["metrics"]["roc_auc"],
            "ROC AUC, words shuffled": d["metrics"]["shuffled_words"]["roc_auc"],
            "predictions flipped": d["metrics"]["shuffled_words"]["flipped"],
        }
        for m, d in models.items()
    ]
    body.append(render.table(pd.DataFrame(order)))
    body.append(
        "<p>Each review's words in a seeded random order (the words a model reads stay the same). A model "
        "that reads the sequence loses accuracy; a bag of words loses only its word pairs.</p>"
    )
    body.append("<h3>Confusion matrices (prediction × truth, % of each true class)</h3><div class='row'>")
    body += [render.img(d["confusion_png"], f"{m} confusion matrix") for m, d in models.items()]
    body.append("</div><h3>ROC curves and training curves</h3><div class='row'>")
    body.append(
        render.img(_curves_png({m: d["roc"] for m, d in models.items()}, "fpr", ["tpr"], "ROC (test)", True), "ROC")
    )
    for m, d in models.items():
        body.append(
            render.img(_curves_png({m: d["history"]}, "epoch", ["loss", "val_loss"], f"{m}: loss per epoch", False), m)
        )
    body.append("</div>")
    body += _behaviour(models)
    body.append("<h2>Why the models decide: LIME, SHAP and integrated gradients</h2>")
    body += _explanations(data)
    body.append("<h2>Do the words make sense? Word–label correlation</h2>")
    body.append(render.img(data["lollipop_png"], "feature correlation rank"))
    corr_metrics = data["correlate_metrics"]
    agree = [{"model": m, **corr_metrics.get(m, {})} for m in models]
    body.append(render.table(pd.DataFrame(agree)))
    used = ", ".join(f"{m}: {NAMES[d['ranking'][0]['method']]}" for m, d in models.items())
    body.append(
        "<p>Agreement and suspicious words use each model's most faithful explanation method "
        f"({e(used)}). Suspicious words: a model leans on them heavily (top quarter of the method's word "
        "importance) although their presence barely correlates with the label. A person should look at "
        "these.</p>"
    )
    body.append(render.table(data["suspicious"]))
    return render.page(f"{dataset}: sentiment models report", body)


def _explanations(data: dict[str, Any]) -> list[str]:
    """Per model: which explanation to believe, each method's figures, the most faithful method's
    charts, and its representative reviews with every method's words side by side."""
    e, models = render.esc, data["models"]
    first = next(iter(models.values()))["explain_metrics"]
    out = [
        "<p>Each method gives every word of a review one weight toward the positive class. "
        "Comprehensiveness: drop in the predicted class's probability when a review's top-k words (those "
        "supporting the prediction) are removed (higher: the words matter to the model). Sufficiency: drop "
        f"when only those words are kept (lower: they suffice). Averaged over k ∈ {e(first.get('faithfulness_k'))} "
        "(AOPC), next to the same for k random words of the review. The explanation to believe is the "
        "most faithful one: ranked by comprehensiveness, then sufficiency.</p>"
    ]
    for m, d in models.items():
        metrics, best = d["explain_metrics"], d["ranking"][0]["method"]
        out.append(f"<h3>{e(m)}: which explanation to believe</h3>")
        rows = [
            {
                "rank": i + 1,
                "method": NAMES[r["method"]],
                "comprehensiveness over random words": r["comprehensiveness over random words"],
                "sufficiency below random words": r["sufficiency below random words"],
                "seconds per explanation": d["explain_metrics"]["seconds_per_explanation"].get(r["method"]),
            }
            for i, r in enumerate(d["ranking"])
        ]
        out.append(render.table(pd.DataFrame(rows)))
        methods = [r["method"] for r in d["ranking"]]
        trust = [
            {"measure": label, **{NAMES[x]: metrics[x].get(k) for x in methods}}
            for k, label in TRUST
            if any(k in metrics[x] for x in methods)
        ]
        trust.append(
            {
                "measure": "random words: comprehensiveness, sufficiency",
                **{
                    NAMES[methods[0]]: f"{metrics['random']['aopc_comprehensiveness']:.4f}, "
                    f"{metrics['random']['aopc_sufficiency']:.4f}"
                },
            }
        )
        out.append(render.table(pd.DataFrame(trust)))
        agree = [
            {"methods": " vs ".join(NAMES[x] for x in pair.split("_vs_")), **v}
            for pair, v in (metrics.get("agreement") or {}).items()
        ]
        if agree:
            out.append(
                "<p>Agreement between methods, averaged over the explained reviews: Spearman's rho "
                "over the words either ranks among its top words, and the share of top-10 words in "
                "common.</p>"
            )
            out.append(render.table(pd.DataFrame(agree)))
        top = d["methods"][best]
        out.append(f"<h4>{e(NAMES[best])}, the most faithful here</h4>")
        out.append(render.img(top["features_png"], f"{m} {NAMES[best]} feature importance"))
        out.append(render.img(top["heatmap_png"], f"{m} {NAMES[best]} heatmap"))
        out.append(f"<h4>Representative reviews ({len(top['sp_pick'])}, submodular pick), every method's words</h4>")
        by_method = {
            NAMES[x]: [y for y in d["methods"][x]["explanations"] if y["review_id"] in top["sp_pick"]] for x in methods
        }
        out.append(render.side_by_side(data["texts"], by_method))
        out.append(f"<h4>Global word importance by {e(NAMES[best])} (top 20)</h4>")
        out.append(render.table(top["global_words"].head(20)))
    return out


def _shown(card: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """The scorecard with its figures as text: counts whole, the rest to four places; which way is
    better as an arrow on the measure (the table stays one screen wide)."""
    shown = card.copy()
    arrows = ["↑" if b == "higher" else "↓" for b in card["better"]]
    shown["measure"] = [f"{m} {a}" for m, a in zip(card["measure"], arrows, strict=True)]
    shown = shown.drop(columns=["better"])
    for m in models:
        shown[m] = [
            "" if v is None or v != v else f"{v:.0f}" if measure == "suspicious words" else f"{v:.4f}"
            for measure, v in zip(card["measure"], card[m], strict=True)
        ]
    return shown


def _duplicates(dups: dict[str, Any] | None) -> list[str]:
    """The data card's duplicate counts and a few id pairs."""
    if not dups:
        return []
    e = render.esc
    rows = [
        {
            "": f"{kind} duplicates",
            **{k.replace("_", " "): dups[kind][k] for k in ("within_train", "within_test")},
            "test reviews found in train": dups[kind]["test_in_train"],
        }
        for kind in ("exact", "near")
    ]
    pairs = dups["exact"]["examples"] + dups["near"]["examples"]
    return [
        "<h3>Duplicates and leakage</h3>",
        render.table(pd.DataFrame(rows)),
        f"<p>Exact: the same text once normalised ({e(dups['normalised'])}). Near: at least "
        f"{e(dups['near']['jaccard'])} of their word triples shared (MinHash LSH). "
        f"{e(dups['test_in_train'])} test reviews have a twin in the training split"
        + (f", e.g. {e(', '.join(f'{a} ~ {b}' for a, b in pairs[:4]))}" if pairs else "")
        + ".</p>",
    ]


def _cross_domain(dataset: str, models: dict[str, Any]) -> list[str]:
    """Each model on the other datasets' test splits, its own test split beside it."""
    rows = [
        {
            "model": m,
            "reviews": other,
            "accuracy": s["accuracy"],
            f"accuracy on {dataset}": d["metrics"]["accuracy"],
            "balanced accuracy": s["balanced_accuracy"],
            "ROC AUC": s["roc_auc"],
        }
        for m, d in models.items()
        for other, s in (d.get("cross_domain") or {}).items()
    ]
    return _section(
        "Real-world check: the other datasets' test reviews",
        rows,
        "The same models, unchanged, on reviews from another source (a fine-tuned model has seen its "
        "source's reviews in training).",
    )


def _section(title: str, rows: list[dict[str, Any]], note: str) -> list[str]:
    """A titled table of per-model rows with a note under it (both the page's own text); nothing without rows."""
    if not rows:
        return []
    return [f"<h3>{title}</h3>", render.table(pd.DataFrame(rows)), f"<p>{note}</p>"]


def _contrast(models: dict[str, Any]) -> list[str]:
    """Each model on minimal edits that flip the sentiment: each side, and both members of a pair right."""
    rows = [
        {
            "model": m,
            "pairs": c["pairs"],
            "positive side": c["accuracy_positive"],
            "negative side": c["accuracy_negative"],
            "pair consistency (both right)": c["pair_consistency"],
            "95% interval": f"[{c['pair_consistency_low']:.3f}, {c['pair_consistency_high']:.3f}]",
            "positive member scored higher": c["positive_scored_higher"],
        }
        for m, d in models.items()
        if (c := d.get("contrast"))
    ]
    return _section(
        "Minimal edits that flip the sentiment (counterfactual pairs)",
        rows,
        "Each pair is a review and a copy edited as little as possible so that its sentiment flips. A model "
        "that reads what the review says gets both right; one that leans on words the edit left alone gets "
        "one wrong. The interval resamples the pairs.",
    )


def _behaviour(models: dict[str, Any]) -> list[str]:
    """Failure rate per behavioural test and model, then a few failing cases."""
    cases = {m: {c["name"]: c for c in d.get("behaviour") or []} for m, d in models.items()}
    names = list(dict.fromkeys(n for per in cases.values() for n in per))
    if not names:
        return []
    e = render.esc

    def cell(c: dict[str, Any] | None) -> str:
        if c is None:
            return "-"
        if c["skipped"]:
            return f"skipped ({c['n_cases']} cases)"
        return f"{100 * c['failure_rate']:.1f}% of {c['n_cases']}"

    first = {n: next(per[n] for per in cases.values() if n in per) for n in names}
    rows = [{"test": n, "kind": first[n]["kind"], **{m: cell(per.get(n)) for m, per in cases.items()}} for n in names]
    out = [
        "<h2>Behavioural tests: failure rate (share of cases failed)</h2>",
        render.table(pd.DataFrame(rows)),
        "<p>mft: short templated sentences with a clear label; inv: names, places or numbers changed in real "
        "test reviews must not flip the prediction; dir: an added negative (positive) sentence must not raise "
        "(lower) p(positive); typo: two swapped letters must not flip it. The tests are in "
        "<code>behaviour.yaml</code>.</p>",
    ]
    skipped = [(m, c) for m, per in cases.items() for c in per.values() if c["skipped"]]
    if skipped:
        out.append(
            "<ul>"
            + "".join(f"<li>{e(m)}, {e(c['name'])}: skipped, {e(c['skipped'])}</li>" for m, c in skipped)
            + "</ul>"
        )
    for m, per in cases.items():
        items = []
        for c in per.values():
            for x in c["failing_examples"]:
                if "text" in x:
                    what = f"“{e(x['text'])}” p(positive)={x['p_positive']:.3f}"
                else:
                    what = (
                        f"{e(x['review_id'])}: {e(x['edit'])}, p(positive) {x['p_positive_before']:.3f} → "
                        f"{x['p_positive']:.3f}"
                    )
                items.append(f"<li><b>{e(c['name'])}</b>: {what}</li>")
        if items:
            out.append(f"<h4>{e(m)}: failing cases</h4><ul class='meta'>{''.join(items)}</ul>")
    return out


def load_inputs(args: Any, models: Sequence[str]) -> dict[str, Any]:
    """Read every file the report shows."""
    data: dict[str, Any] = {"card": read_json(args.reports / layout.DATA_CARD), "models": {}}
    ids: set[str] = set()
    for m in models:
        ex_dir = args.reports / "explain" / m
        ranking = read_json(ex_dir / layout.RANKING)
        methods = {}
        for r in ranking:
            d = ex_dir / r["method"]
            methods[r["method"]] = {
                "features_png": (d / layout.FEATURES_PNG).read_bytes(),
                "heatmap_png": (d / layout.HEATMAP_PNG).read_bytes(),
                "explanations": read_json(d / layout.EXPLANATIONS),
                "sp_pick": read_json(d / layout.SP_PICK)["review_ids"],
                "global_words": pd.read_csv(d / layout.GLOBAL_WORDS, keep_default_na=False),
            }
            ids |= {x["review_id"] for x in methods[r["method"]]["explanations"]}
        data["models"][m] = {
            "metrics": read_json(args.reports / m / layout.METRICS),
            "explain_metrics": read_json(args.reports / m / layout.EXPLAIN_METRICS)
            | read_json(args.reports / m / layout.EXPLAIN_TIMING),
            "confusion_png": (args.plots / "confusion" / args.dataset / f"{m}.png").read_bytes(),
            "roc": pd.read_csv(args.plots / "roc" / args.dataset / f"{m}.csv"),
            "history": pd.read_csv(args.plots / "history" / args.dataset / f"{m}.csv"),
            "ranking": ranking,
            "methods": methods,
            "behaviour": read_json(args.reports / m / layout.BEHAVIOUR_CASES),
            "behaviour_metrics": read_json(args.reports / m / layout.BEHAVIOUR),
            "predictions": pd.read_parquet(
                args.predictions / f"{m}.parquet", columns=["id", "label", "proba", "predicted"]
            ),
            "cross_domain": read_json(args.reports / m / layout.CROSS_DOMAIN),
            "contrast": read_json(args.reports / m / layout.CONTRAST),
        }
    texts = read_table(args.table, ["id", "text"], ids=sorted(ids))
    data["texts"] = dict(texts.itertuples(index=False, name=None))
    data["lollipop_png"] = (args.reports / "correlate" / layout.LOLLIPOP_PNG).read_bytes()
    data["suspicious"] = pd.read_csv(args.reports / "correlate" / layout.SUSPICIOUS_WORDS, keep_default_na=False)
    data["correlate_metrics"] = read_json(args.reports / layout.CORRELATE_METRICS)
    return data


def build_scorecard(data: dict[str, Any], cfg: ReportConfig, seed: int) -> dict[str, Any]:
    """The scorecard table and its generated paragraph, from the loaded inputs. Pure."""
    models = data["models"]
    figures = {
        m: {
            "metrics": d["metrics"],
            "cross_domain": d.get("cross_domain"),
            "contrast": d.get("contrast"),
            "explain": d["explain_metrics"],
            "correlate": data["correlate_metrics"].get(m),
            "behaviour": d.get("behaviour_metrics"),
            "predictions": d.get("predictions"),
            "explanations": {x: v["explanations"] for x, v in (d.get("methods") or {}).items()},
        }
        for m, d in models.items()
    }
    card = scorecard.table(figures, cfg.resamples, seed)
    predicted = [d["predictions"].set_index("id")["predicted"] for d in models.values() if "predictions" in d]
    disagreement = None
    if len(predicted) >= 2:
        joined = pd.concat(predicted, axis=1, join="inner")
        disagreement = (int((joined.nunique(axis=1) > 1).sum()), len(joined))
    suspicious = data["suspicious"]
    words = (
        {m: suspicious.loc[suspicious["model"] == m, "word"].tolist() for m in models} if "model" in suspicious else {}
    )
    text = scorecard.paragraph(
        card,
        list(models),
        priority=cfg.priority,
        disagreement=disagreement,
        behaviour={m: d.get("behaviour") or [] for m, d in models.items()},
        suspicious=words,
    )
    return {"table": card, "paragraph": text}


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.report --dataset imdb --table ... --reports ... --plots ... --out ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--table", type=Path, required=True)
    p.add_argument("--reports", type=Path, required=True, help="the dataset's reports directory")
    p.add_argument("--plots", type=Path, required=True, help="the plots root (<kind>/<dataset>/<model>.*)")
    p.add_argument("--predictions", type=Path, required=True, help="the dataset's predictions, <model>.parquet")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--scorecard", type=Path, required=True, help="the scorecard table and paragraph (.json)")
    args = p.parse_args(argv)
    params = load_params(args.params)
    data = load_inputs(args, list(params.models))
    data["scorecard"] = build_scorecard(data, params.report, params.seed)
    html_text = build_report(args.dataset, data)
    card = data["scorecard"]
    write_json(args.scorecard, {"table": card["table"].to_dict(orient="records"), "paragraph": card["paragraph"]})
    write_text(args.out, html_text)
    log.info("%s: report written (%d kB)", args.dataset, len(html_text) // 1024)


if __name__ == "__main__":
    cli.run("report", main)
