"""The scorecard: every trust figure of a dataset's models in one table, and a paragraph written by a rule.

The rule (also in the README): a model is *ahead* on a measure when the 95% interval of its
difference to every other model excludes 0 in its favour (:mod:`.significance`: a paired
bootstrap where both models' per-item outcomes are kept, else an interval for two independent
proportions; a measure with neither is shown and never counts). Measures come in groups, taken
in the order ``report.priority`` gives (default: accuracy on the model's own test split, then
robustness, then explanation quality). The first group in which some model is ahead decides: the
model ahead there and behind on none of that group's measures is favoured; when two models are
each ahead on a measure of that group, none is. A later group never overrules an earlier one.
The paragraph then names where the models disagree and what to inspect first. Nothing in it is
written by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stages.common.params.schema import EXPLAIN_METHOD_NAMES, SCORECARD_GROUPS
from stages.common.report.significance import (
    Interval,
    RocAuc,
    balanced_accuracy,
    bootstrap_counts,
    paired_interval,
    proportion_interval,
    weighted_mean,
)

GROUPS = SCORECARD_GROUPS
BEHAVIOUR_KINDS = {"mft": "minimum functionality", "inv": "invariance", "dir": "directional", "typo": "typos"}
Figures = Mapping[str, Any]
Statistic = Callable[[np.ndarray], float]  # a measure of a model's items, given each item's weight


@dataclass(frozen=True)
class Measure:
    """One scorecard row: its group, which way is better, each model's value and the interval of a difference."""

    label: str
    better: str  # "higher" | "lower"
    group: str  # one of GROUPS
    value: Callable[[Figures], float | None]
    # (model a, model b) -> 95% interval of value(a) - value(b); None: no interval, never ahead
    interval: Callable[[str, str], Interval | None]


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        d = (d or {}).get(key) if isinstance(d, Mapping) or d is None else None
    return d


def _rate(
    models: Mapping[str, Figures], label: str, better: str, where: tuple[str, ...], rate: str, count: str
) -> Measure:
    """A robustness measure kept as a rate (``<where>.<rate>``) and its count (``<where>.<count>``)
    only: its interval is the one for two independent proportions."""

    def interval(a: str, b: str) -> Interval | None:
        pa, pb = _num(_get(models[a], *where, rate)), _num(_get(models[b], *where, rate))
        na, nb = _num(_get(models[a], *where, count)), _num(_get(models[b], *where, count))
        if pa is None or pb is None or na is None or nb is None:
            return None
        return proportion_interval(pa, int(na), pb, int(nb))

    return Measure(label, better, "robustness", lambda d: _num(_get(d, *where, rate)), interval)


def _none(a: str, b: str) -> None:
    return None


class _Paired:
    """Per-item outcomes of every model on the same items, and the bootstrap resamples over them."""

    def __init__(self, frames: Mapping[str, pd.DataFrame | None], key: str, resamples: int, seed: int) -> None:
        self.data: dict[str, pd.DataFrame] = {}
        if frames and all(f is not None and len(f) for f in frames.values()):
            shared = set.intersection(*(set(f[key]) for f in frames.values()))  # type: ignore[union-attr]
            if shared:
                self.data = {m: f[f[key].isin(shared)].sort_values(key) for m, f in frames.items()}  # type: ignore[union-attr]
        n = len(next(iter(self.data.values()))) if self.data else 0
        self.counts = bootstrap_counts(n, resamples, seed) if n else np.zeros((0, 0))

    def interval(self, stat: Callable[[pd.DataFrame], Statistic]) -> Callable[[str, str], Interval | None]:
        """Interval of ``stat(a) - stat(b)`` over the shared resamples; ``stat(frame)`` is the statistic
        of one model's items as a function of the items' weights."""

        def interval(a: str, b: str) -> Interval | None:
            if not self.data:
                return None
            sa, sb = stat(self.data[a]), stat(self.data[b])
            return paired_interval(lambda w: sa(w) - sb(w), self.counts)

        return interval


def _accuracy(d: pd.DataFrame) -> Statistic:
    correct = (d["predicted"] == d["label"]).to_numpy(float)
    return lambda w: weighted_mean(correct, w)


def _balanced(d: pd.DataFrame) -> Statistic:
    y, correct = d["label"].to_numpy(), (d["predicted"] == d["label"]).to_numpy(float)
    return lambda w: balanced_accuracy(y, correct, w)


def _auc(d: pd.DataFrame) -> Statistic:
    return RocAuc(d["label"].to_numpy(), d["proba"].to_numpy())


def _mean_of(column: str) -> Callable[[pd.DataFrame], Statistic]:
    def stat(d: pd.DataFrame) -> Statistic:
        values = d[column].to_numpy(float)
        return lambda w: weighted_mean(values, w)

    return stat


def _per_review(explanations: Sequence[Mapping[str, Any]] | None) -> pd.DataFrame | None:
    """Each explained review's comprehensiveness and sufficiency (their AOPC) and stability."""
    if not explanations or not all("comprehensiveness" in e and "sufficiency" in e for e in explanations):
        return None
    return pd.DataFrame(
        {
            "review_id": [e["review_id"] for e in explanations],
            "comprehensiveness": [float(np.mean(e["comprehensiveness"])) for e in explanations],
            "sufficiency": [float(np.mean(e["sufficiency"])) for e in explanations],
            "stability": [float(e.get("stability_jaccard", np.nan)) for e in explanations],
        }
    )


def measures(models: Mapping[str, Figures], resamples: int, seed: int) -> list[Measure]:
    """The scorecard's measures. ``models[name]`` holds ``metrics``, ``cross_domain``, ``contrast``,
    ``explain`` (explain metrics), ``correlate`` (its correlate entry), ``behaviour`` (behave's
    metrics) and, for the paired intervals, ``predictions`` (test split: ``id``, ``label``,
    ``proba``, ``predicted``) and ``explanations`` (explain's per-review entries)."""
    test = _Paired({m: d.get("predictions") for m, d in models.items()}, "id", resamples, seed)

    out = [
        Measure("accuracy", "higher", "accuracy", lambda d: _num(_get(d, "metrics", "accuracy")),
                test.interval(_accuracy)),
        Measure("balanced accuracy", "higher", "accuracy", lambda d: _num(_get(d, "metrics", "balanced_accuracy")),
                test.interval(_balanced)),
        Measure("ROC AUC", "higher", "accuracy", lambda d: _num(_get(d, "metrics", "roc_auc")), test.interval(_auc)),
    ]  # fmt: skip
    others = list(dict.fromkeys(o for d in models.values() for o in (d.get("cross_domain") or {})))
    for other in others:
        label = f"accuracy on {other} reviews"
        out.append(_rate(models, label, "higher", ("cross_domain", other), "accuracy", "n_test"))
    label = "pair consistency on minimal edits (both right)"
    out.append(_rate(models, label, "higher", ("contrast",), "pair_consistency", "pairs"))
    for kind, name in BEHAVIOUR_KINDS.items():
        label = f"behavioural failure rate: {name}"
        out.append(_rate(models, label, "lower", ("behaviour", kind), "failure_rate", "n_cases"))

    methods = list(dict.fromkeys(m for d in models.values() for m in (d.get("explanations") or {})))
    for method in methods:
        out += _faithfulness(models, method, resamples, seed)
    if "lime" in methods:
        reviews = _Paired(
            {m: _per_review((d.get("explanations") or {}).get("lime")) for m, d in models.items()},
            "review_id",
            resamples,
            seed,
        )
        out.append(
            Measure(
                "stability of LIME's explanations (top-10 Jaccard)",
                "higher",
                "explanation",
                lambda d: _num(_get(d, "explain", "lime", "stability_top10_jaccard")),
                reviews.interval(_mean_of("stability")),
            )
        )
    out += [
        Measure(
            "agreement with word-label correlation (Spearman)",
            "higher",
            "explanation",
            lambda d: _num(_get(d, "correlate", "spearman_vs_correlation")),
            _none,
        ),
        Measure(
            "suspicious words", "lower", "explanation", lambda d: _num(_get(d, "correlate", "suspicious_words")), _none
        ),
    ]  # fmt: skip
    return out


def _faithfulness(models: Mapping[str, Figures], method: str, resamples: int, seed: int) -> list[Measure]:
    """One explanation method's comprehensiveness and sufficiency over random words, per model."""
    reviews = _Paired(
        {m: _per_review((d.get("explanations") or {}).get(method)) for m, d in models.items()},
        "review_id",
        resamples,
        seed,
    )
    random = {m: _get(d, "explain", "random") or {} for m, d in models.items()}

    def gain(a: str, b: str, column: str) -> Interval | None:
        """Interval of a gain over random words: the per-review AOPC resampled, the random baseline as measured."""
        rand = f"aopc_{column}"
        iv = reviews.interval(_mean_of(column))(a, b)
        if iv is None or _num(random[a].get(rand)) is None or _num(random[b].get(rand)) is None:
            return None
        base = random[a][rand] - random[b][rand]
        # comprehensiveness: the method's minus random's; sufficiency: random's minus the method's (lower is better)
        return (iv[0] - base, iv[1] - base) if column == "comprehensiveness" else (base - iv[1], base - iv[0])

    def value(column: str) -> Callable[[Figures], float | None]:
        def get(d: Figures) -> float | None:
            mine, rand = _get(d, "explain", method, f"aopc_{column}"), _get(d, "explain", "random", f"aopc_{column}")
            return _diff(mine, rand) if column == "comprehensiveness" else _diff(rand, mine)

        return get

    name = EXPLAIN_METHOD_NAMES.get(method, method)
    return [
        Measure(f"comprehensiveness over random words ({name})", "higher", "explanation", value("comprehensiveness"),
                lambda a, b: gain(a, b, "comprehensiveness")),
        Measure(f"sufficiency over random words ({name})", "higher", "explanation", value("sufficiency"),
                lambda a, b: gain(a, b, "sufficiency")),
    ]  # fmt: skip


def _diff(a: Any, b: Any) -> float | None:
    a, b = _num(a), _num(b)
    return None if a is None or b is None else round(a - b, 6)


def ahead(measure: Measure, values: Mapping[str, float | None]) -> tuple[str | None, str]:
    """The model whose difference to every other has a 95% interval excluding 0 in its favour, if any,
    and the interval of the leader's difference to the runner-up as text."""
    known = {m: v for m, v in values.items() if v is not None}
    if len(known) < 2:
        return None, ""
    sign = 1.0 if measure.better == "higher" else -1.0
    order = sorted(known, key=lambda m: -sign * known[m])
    best, runner = order[0], order[1]
    intervals = {m: measure.interval(best, m) for m in order[1:]}
    shown = intervals[runner]
    text = "no interval" if shown is None else f"{known[best] - known[runner]:+.3f} [{shown[0]:+.3f}, {shown[1]:+.3f}]"
    wins = all(iv is not None and (iv[0] > 0 if sign > 0 else iv[1] < 0) for iv in intervals.values())
    return (best if wins else None), f"{best} - {runner}: {text}"


def table(models: Mapping[str, Figures], resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The scorecard as a table: measure, group, which way is better, one column per model, the
    leader's difference to the runner-up with its 95% interval, and who is ahead."""
    records = []
    for measure in measures(models, resamples, seed):
        values = {m: measure.value(d) for m, d in models.items()}
        leader, difference = ahead(measure, values)
        records.append(
            {"measure": measure.label, "group": measure.group, "better": measure.better, **values,
             "difference (95% interval)": difference, "ahead": leader or ""}
        )  # fmt: skip
    columns = ["measure", "group", "better", *models, "difference (95% interval)", "ahead"]
    return pd.DataFrame(records, columns=columns)


def verdict(card: pd.DataFrame, models: Sequence[str], priority: Sequence[str]) -> tuple[str | None, str]:
    """The rule's verdict: (favoured model or None, the sentence that says why)."""
    order = " > ".join(priority)
    for group in priority:
        rows = card[card["group"] == group]
        leaders = [m for m in models if (rows["ahead"] == m).any()]
        if not leaders:
            continue
        if len(leaders) > 1:
            split = "; ".join(f"{m} on {', '.join(rows.loc[rows['ahead'] == m, 'measure'])}" for m in leaders)
            return None, (
                f"The evidence favours neither model: in {group}, the first group (priority {order}) where any model "
                f"is ahead, each is ahead somewhere ({split})."
            )
        best = leaders[0]
        won = rows.loc[rows["ahead"] == best, "measure"].tolist()
        later = card[card["group"].isin(priority[priority.index(group) + 1 :])]
        behind = later.loc[(later["ahead"] != "") & (later["ahead"] != best), "measure"].tolist()
        return best, (
            f"The evidence favours {best}, decided by {group} (priority {order}): ahead on {', '.join(won)}"
            f" and behind on none of that group"
            + (f"; in later groups behind on {', '.join(behind)}." if behind else ".")
        )
    return None, f"The evidence favours neither model: none is ahead on any measure (priority {order})."


def paragraph(
    card: pd.DataFrame,
    models: Sequence[str],
    *,
    priority: Sequence[str] = GROUPS,
    disagreement: tuple[int, int] | None,
    behaviour: Mapping[str, Sequence[Mapping[str, Any]]],
    suspicious: Mapping[str, Sequence[str]],
) -> str:
    """The rule's reading of the scorecard (plain text). ``priority``: the groups, first decides;
    ``disagreement``: (reviews labelled differently, test reviews); ``behaviour``: each model's
    behave cases; ``suspicious``: each model's suspicious words, strongest first."""
    favoured, why = verdict(card, models, priority)
    parts = [why]
    if disagreement is not None and disagreement[1]:
        n, total = disagreement
        parts.append(f"The models label {n:,} of the {total:,} test reviews differently ({100 * n / total:.1f}%).")
    cases = {m: {c["name"]: c for c in behaviour.get(m, []) if c.get("failure_rate") is not None} for m in models}
    rates = {m: {n: c["failure_rate"] for n, c in cases[m].items()} for m in models}
    shared = [n for n in rates[models[0]] if all(n in rates[m] for m in models)] if models else []
    if len(models) >= 2 and shared:
        gap = max(shared, key=lambda n: max(rates[m][n] for m in models) - min(rates[m][n] for m in models))
        hi, lo = (max(models, key=lambda m: rates[m][gap]), min(models, key=lambda m: rates[m][gap]))
        iv = proportion_interval(rates[hi][gap], int(cases[hi][gap].get("n_cases", 0)),
                                 rates[lo][gap], int(cases[lo][gap].get("n_cases", 0)))  # fmt: skip
        if iv is not None and iv[0] > 0:
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
