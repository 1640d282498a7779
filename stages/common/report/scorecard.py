"""The scorecard: every trust figure of a dataset's models in one table, and a paragraph written by a rule.

The rule (also in the README): a model is *ahead* on a measure when it is better than every other
model by more than the measure's margin (below: the noise a measure carries, such as the spread
between training seeds for accuracy). The evidence favours the model ahead on the most
measures; with a tie, no model is favoured. The paragraph then names where the models disagree
(the share of test reviews they label differently, the behavioural test with the widest gap) and
what to inspect first: the favoured model's (or, with a tie, every model's) most-failed
behavioural test and its suspicious words. Nothing in it is written by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Measure:
    """One scorecard row: how to read it from a model's figures, and which way is better."""

    label: str
    better: str  # "higher" | "lower"
    margin: float


ACCURACY_MARGIN = 0.005  # above the spread between training seeds (docs/decisions.md)
TRUST_MARGIN = 0.02
RATE_MARGIN = 0.02  # two points of behavioural failure rate
BEHAVIOUR_KINDS = {"mft": "minimum functionality", "inv": "invariance", "dir": "directional", "typo": "typos"}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _diff(a: Any, b: Any) -> float | None:
    a, b = _num(a), _num(b)
    return None if a is None or b is None else round(a - b, 6)


def rows(models: Mapping[str, Mapping[str, Any]]) -> list[tuple[Measure, dict[str, float | None]]]:
    """The measures and each model's value. ``models[name]`` holds ``metrics``, ``cross_domain``, ``contrast``,
    ``explain`` (explain metrics), ``correlate`` (its correlate entry) and ``behaviour`` (behave's
    metrics)."""
    out: list[tuple[Measure, dict[str, float | None]]] = []

    def add(measure: Measure, get: Any) -> None:
        out.append((measure, {m: get(d) for m, d in models.items()}))

    add(Measure("accuracy", "higher", ACCURACY_MARGIN), lambda d: _num(d["metrics"].get("accuracy")))
    add(Measure("balanced accuracy", "higher", ACCURACY_MARGIN), lambda d: _num(d["metrics"].get("balanced_accuracy")))
    add(Measure("ROC AUC", "higher", ACCURACY_MARGIN), lambda d: _num(d["metrics"].get("roc_auc")))
    others = list(dict.fromkeys(o for d in models.values() for o in (d.get("cross_domain") or {})))
    for other in others:
        add(
            Measure(f"accuracy on {other} reviews", "higher", ACCURACY_MARGIN),
            lambda d, o=other: _num(((d.get("cross_domain") or {}).get(o) or {}).get("accuracy")),
        )
    add(
        Measure("pair consistency on minimal edits (both right)", "higher", RATE_MARGIN),
        lambda d: _num((d.get("contrast") or {}).get("pair_consistency")),
    )
    add(
        Measure("comprehensiveness over random words", "higher", TRUST_MARGIN),
        lambda d: _diff(d["explain"].get("aopc_comprehensiveness"), d["explain"].get("aopc_comprehensiveness_random")),
    )
    add(
        Measure("sufficiency over random words", "higher", TRUST_MARGIN),
        lambda d: _diff(d["explain"].get("aopc_sufficiency_random"), d["explain"].get("aopc_sufficiency")),
    )
    add(
        Measure("stability of explanations (top-10 Jaccard)", "higher", TRUST_MARGIN),
        lambda d: _num(d["explain"].get("stability_top10_jaccard")),
    )
    add(
        Measure("agreement with word-label correlation (Spearman)", "higher", TRUST_MARGIN),
        lambda d: _num((d.get("correlate") or {}).get("spearman_lime_vs_correlation")),
    )
    for kind, name in BEHAVIOUR_KINDS.items():
        add(
            Measure(f"behavioural failure rate: {name}", "lower", RATE_MARGIN),
            lambda d, k=kind: _num(((d.get("behaviour") or {}).get(k) or {}).get("failure_rate")),
        )
    add(
        Measure("suspicious words", "lower", 1.0),
        lambda d: _num((d.get("correlate") or {}).get("suspicious_words")),
    )
    return out


def ahead(measure: Measure, values: Mapping[str, float | None]) -> str | None:
    """The model better than every other by more than the margin, if there is one."""
    known = {m: v for m, v in values.items() if v is not None}
    if len(known) < 2:
        return None
    sign = 1.0 if measure.better == "higher" else -1.0
    best = max(known, key=lambda m: sign * known[m])
    if all(sign * (known[best] - v) > measure.margin for m, v in known.items() if m != best):
        return best
    return None


def table(models: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The scorecard as a table: measure, which way is better, one column per model, who is ahead."""
    records = []
    for measure, values in rows(models):
        records.append(
            {"measure": measure.label, "better": measure.better, **values, "ahead": ahead(measure, values) or ""}
        )
    return pd.DataFrame(records, columns=["measure", "better", *models, "ahead"])


def paragraph(
    card: pd.DataFrame,
    models: Sequence[str],
    *,
    disagreement: tuple[int, int] | None,
    behaviour: Mapping[str, Sequence[Mapping[str, Any]]],
    suspicious: Mapping[str, Sequence[str]],
) -> str:
    """The rule's reading of the scorecard (plain text). ``disagreement``: (reviews labelled
    differently, test reviews); ``behaviour``: each model's behave cases; ``suspicious``: each
    model's suspicious words, strongest first."""
    wins = {m: card.loc[card["ahead"] == m, "measure"].tolist() for m in models}
    ranked = sorted(models, key=lambda m: -len(wins[m]))
    favoured = ranked[0] if len(ranked) == 1 or len(wins[ranked[0]]) > len(wins[ranked[1]]) else None
    parts = []
    if favoured:
        behind = [m for other in models if other != favoured for m in wins[other]]
        parts.append(
            f"The evidence favours {favoured}: ahead on {len(wins[favoured])} of {len(card)} measures "
            f"({', '.join(wins[favoured])})"
            + (f", behind on {len(behind)} ({', '.join(behind)})." if behind else ", behind on none.")
        )
    else:
        parts.append(
            "The evidence favours neither model: "
            + "; ".join(f"{m} is ahead on {len(wins[m])} of {len(card)} measures" for m in models)
            + "."
        )
    if disagreement is not None and disagreement[1]:
        n, total = disagreement
        parts.append(f"The models label {n:,} of the {total:,} test reviews differently ({100 * n / total:.1f}%).")
    rates = {
        m: {c["name"]: c["failure_rate"] for c in behaviour.get(m, []) if c.get("failure_rate") is not None}
        for m in models
    }
    shared = [n for n in rates[models[0]] if all(n in rates[m] for m in models)] if models else []
    if len(models) >= 2 and shared:
        gap = max(shared, key=lambda n: max(rates[m][n] for m in models) - min(rates[m][n] for m in models))
        spread = max(rates[m][gap] for m in models) - min(rates[m][gap] for m in models)
        if spread > RATE_MARGIN:
            failed = ", ".join(f"{m} {100 * rates[m][gap]:.1f}%" for m in models)
            parts.append(f"Their widest behavioural gap is '{gap}' ({failed} of cases failed).")
    for m in [favoured] if favoured else list(models):
        if rates.get(m):
            worst = max(rates[m], key=lambda n: rates[m][n])
            words = list(suspicious.get(m, []))[:5]
            parts.append(
                f"Inspect first in {m}: '{worst}', {100 * rates[m][worst]:.1f}% of its cases failed"
                + (f"; and the suspicious words it leans on: {', '.join(words)}." if words else ".")
            )
    return " ".join(parts)
