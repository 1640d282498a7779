"""correlate: word–label correlation, cross-checked against what the models rely on.

Per dataset. As in the original analysis: the presence of every vocabulary word in the
training reviews (multi-hot bag-of-words, vocabulary ``max_tokens`` after skipping the
``skip_top`` most frequent, fitted on the training split by the pipeline's featurizer) is
correlated with the label (Pearson on binary data, i.e. phi); the top positive and negative
words are drawn as a lollipop chart and the full table is written as CSV.

Cross-check: for each model, by its most faithful explanation method (the first of explain's
``ranking.json``), the Spearman rank correlation between its global word weight (mean over the
explained reviews) and the word–label correlation of the same word
(measured for every explained word, charted or not), and the words a model leans on
heavily although they barely correlate with the label — the "zombie",
"death", "drugs" of the original analysis, words a person must look at.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from stages.common import cli
from stages.common.data import layout
from stages.common.data.io import atomic_path, read_json, write_json
from stages.common.data.store import iter_table
from stages.common.features.featurizer import Featurizer, FeaturizerConfig, featurizer_from_counts, term_counter
from stages.common.params import load_params
from stages.common.params.schema import CorrelateConfig
from stages.common.report import render

log = logging.getLogger(__name__)


Chunks = Callable[[], Iterable[tuple[Sequence[str], np.ndarray]]]
"""Reads the training reviews afresh, as (texts, labels) chunks: each call is one pass."""


def top_words(chunks: Chunks, cfg: CorrelateConfig) -> list[str]:
    """The original analysis's vocabulary: the ``max_tokens`` most frequent words after ``skip_top``.

    Counted chunk by chunk, so the training split is never held whole. Pure.
    """
    vocab_cfg = FeaturizerConfig(
        kind="bow", max_tokens=cfg.max_tokens, min_count=1, skip_top=cfg.skip_top, mode="multi_hot"
    )
    counter = term_counter(vocab_cfg)
    for texts, _ in chunks():
        counter.add(texts)
    return featurizer_from_counts(counter, vocab_cfg).vocabulary


def phi(chunks: Chunks, words: Sequence[str]) -> pd.DataFrame:
    """Phi (Pearson on binary data) of each word's presence with the label. Pure.

    One pass: per word, the reviews that contain it and how many of those are positive (phi's
    sufficient statistics), summed over chunks.
    """
    words = list(dict.fromkeys(words))
    featurizer = Featurizer(
        config=FeaturizerConfig(kind="bow", max_tokens=max(len(words), 1), min_count=1, mode="multi_hot"),
        vocabulary=words,
    )
    docs = np.zeros(len(words), dtype=np.int64)  # reviews containing the word
    docs_pos = np.zeros(len(words), dtype=np.int64)  # ... that are positive
    n = n_pos = 0
    for texts, labels in chunks():
        X = featurizer.transform(texts).astype(bool).astype(np.int64)
        y = np.asarray(labels, dtype=np.int64)
        docs += np.asarray(X.sum(axis=0)).ravel()
        docs_pos += np.asarray(X.T @ y).ravel()
        n, n_pos = n + len(y), n_pos + int(y.sum())
    px, py = docs / max(n, 1), n_pos / max(n, 1)
    cov = docs_pos / max(n, 1) - px * py
    denom = np.sqrt(px * (1 - px) * py * (1 - py))
    corr = np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 0)
    return pd.DataFrame({"word": words, "correlation": corr, "reviews": docs})


def ranked(corr: pd.DataFrame) -> pd.DataFrame:
    """Correlations highest first (ties by word), as charted and written. Pure."""
    return corr.sort_values(["correlation", "word"], ascending=[False, True]).reset_index(drop=True)


def word_label_correlation(chunks: Chunks, cfg: CorrelateConfig) -> pd.DataFrame:
    """The original analysis: phi for the top ``max_tokens`` words after ``skip_top``, highest first. Pure."""
    return ranked(phi(chunks, top_words(chunks, cfg)))


def cross_check(
    corr: pd.DataFrame, importance: pd.DataFrame, cfg: CorrelateConfig, chart_vocabulary: set[str] | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Agreement of one model's word weights with the correlations, and suspicious words. Pure.

    ``importance`` has columns ``word``, ``importance`` (mean |weight|) and ``mean_weight``;
    ``corr`` has the phi of (at least) every explained word, matched case-insensitively.
    ``in_chart`` tells whether a word is among the charted top words.
    """
    imp = importance.assign(key=importance["word"].str.lower())
    imp = imp.groupby("key", as_index=False).agg(importance=("importance", "sum"), mean_weight=("mean_weight", "mean"))
    table = imp.merge(corr[["word", "correlation"]].rename(columns={"word": "key"}), on="key", how="left")
    table["measured"] = table["correlation"].notna()
    table["correlation"] = table["correlation"].fillna(0.0)
    chart = chart_vocabulary if chart_vocabulary is not None else set(corr["word"])
    table["in_chart"] = table["key"].isin(chart)
    both = table[table["measured"]]
    rho = float(stats.spearmanr(both["mean_weight"], both["correlation"]).statistic) if len(both) > 2 else float("nan")
    threshold = float(table["importance"].quantile(cfg.suspicious_min_importance_quantile)) if len(table) else 0.0
    suspicious = table[
        (table["importance"] >= threshold) & (table["correlation"].abs() <= cfg.suspicious_max_abs_corr)
    ].sort_values("importance", ascending=False)
    suspicious = suspicious.rename(columns={"key": "word"})[
        ["word", "importance", "mean_weight", "correlation", "in_chart"]
    ]
    metrics = {
        "spearman_vs_correlation": round(rho, 6) if np.isfinite(rho) else None,
        "words_explained": len(table),
        "words_measured": len(both),
        "suspicious_words": len(suspicious),
    }
    return metrics, suspicious.reset_index(drop=True)


def lollipop_png(corr: pd.DataFrame, top_n: int, title: str) -> bytes:
    """The original analysis's chart: top positive and negative words, guide lines at 0, ±0.25."""
    plt = render.pyplot()

    top = pd.concat([corr.head(top_n), corr.tail(top_n)]).drop_duplicates("word")
    top = top.sort_values("correlation")
    colours = np.where(top["correlation"] > 0, "#2e7d32", "#c62828")
    fig, ax = plt.subplots(figsize=(6, max(4, 0.13 * len(top))))
    y = np.arange(len(top))
    ax.hlines(y, 0, top["correlation"], color=colours, lw=1)
    ax.scatter(top["correlation"], y, color=colours, s=12, zorder=3)
    for x in (-0.25, 0, 0.25):
        ax.axvline(x, color="#132F5E", lw=0.6, ls="--")
    ax.set_yticks(y, top["word"], fontsize=6)
    ax.set_xlabel("correlation of word presence with a positive label (phi)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return render.png_bytes(fig)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.correlate --name imdb --table ... --explanations <dir> --out <dir> --metrics ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--table", type=Path, required=True)
    p.add_argument(
        "--explanations", type=Path, required=True, help="the explain root (<dir>/<model>/<method>/global_words.csv)"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)
    args = p.parse_args(argv)
    params = load_params(args.params)
    cfg = params.correlate

    def training_chunks() -> Iterator[tuple[list[str], np.ndarray]]:
        for part in iter_table(args.table, ["text", "label"], split="train"):
            yield part["text"].tolist(), part["label"].to_numpy()

    method = {m: read_json(args.explanations / m / layout.RANKING)[0]["method"] for m in params.models}
    importances = {
        m: pd.read_csv(args.explanations / m / method[m] / layout.GLOBAL_WORDS, keep_default_na=False)
        for m in params.models
    }
    explained = sorted({w.lower() for df in importances.values() for w in df["word"]})
    vocabulary = top_words(training_chunks, cfg)
    measured = phi(training_chunks, [*vocabulary, *explained])  # one pass for both
    corr = ranked(measured[measured["word"].isin(vocabulary)])
    explained_corr = measured[measured["word"].isin(explained)]
    metrics: dict[str, Any] = {
        "vocabulary": len(corr),
        "max_abs_correlation": round(float(corr["correlation"].abs().max()), 6),
    }
    suspicious: dict[str, pd.DataFrame] = {}
    for model, importance in importances.items():
        metrics[model], suspicious[model] = cross_check(explained_corr, importance, cfg, set(corr["word"]))
    log.info("%s: %s", args.name, metrics)
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        corr.to_csv(tmp / layout.CORRELATIONS, index=False, float_format="%.6f")
        (tmp / layout.LOLLIPOP_PNG).write_bytes(
            lollipop_png(corr, cfg.top_n, f"{args.name}: feature correlation rank (training split)")
        )
        pd.concat([df.assign(model=m, method=method[m]) for m, df in suspicious.items()], ignore_index=True).to_csv(
            tmp / layout.SUSPICIOUS_WORDS, index=False, float_format="%.6f"
        )
    write_json(args.metrics, metrics)


if __name__ == "__main__":
    cli.run("correlate", main)
