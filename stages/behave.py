"""behave: behavioural tests of one dataset × model (CheckList's MFT, INV and DIR tests, and typos).

The tests, their templates and word lists are in a suite file (``behaviour.yaml``; its header
says what each kind checks). Minimum-functionality tests score short sentences filled in from
templates; invariance, directional and typo tests edit real test reviews of the dataset (a
seeded sample) and compare the model's predictions before and after the edit. Each test gets a
failure rate, its number of cases and a few failing cases; a test with fewer than
``behave.min_cases`` cases (a dataset without place names, say) is reported as skipped, with
the reason. Written: a DVC metrics file (rates and counts) and the cases file (the same plus the
failing cases and skip reasons: the edit and the probabilities, never a review's text).

The suite is checked before any model is loaded: an unknown placeholder, an empty word list or a
test without templates fails naming the file and the entry.
"""

from __future__ import annotations

import itertools
import logging
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pydantic
import yaml

from stages.common import cli
from stages.common.data.io import write_json
from stages.common.data.store import read_table
from stages.common.errors import DataError
from stages.common.modelling.prediction import load_text_model
from stages.common.params import load_params
from stages.common.params.schema import BehaveConfig

log = logging.getLogger(__name__)

Predict = Callable[[Sequence[str]], np.ndarray]
"""Texts → P(positive), as lime's ``classifier_fn`` (one column: the positive class)."""

KINDS = ("mft", "inv", "dir", "typo")
NUMBERS = "numbers"  # swap: numbers changes each number by up to 20% instead of swapping words
_FIELD = string.Formatter()
_NUMBER = re.compile(r"(?<![\w.,/])\d{1,6}(?![\w.,/])")
_TYPO_WORD = re.compile(r"\b[A-Za-z]{4,}\b")


class _Test(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: str = pydantic.Field(min_length=1)


class MftTest(_Test):
    """Templated sentences that must all be classified as ``label``."""

    kind: Literal["mft"]
    label: Literal["positive", "negative"]
    templates: list[str] = pydantic.Field(min_length=1)


class InvTest(_Test):
    """Swapping words of a list (or changing numbers) in real reviews must not flip the prediction."""

    kind: Literal["inv"]
    swap: str


class DirTest(_Test):
    """Appending a sentence must not move P(positive) against ``direction``."""

    kind: Literal["dir"]
    direction: Literal["up", "down"]
    append: list[str] = pydantic.Field(min_length=1)


class TypoTest(_Test):
    """A few swapped adjacent letters must not flip the prediction."""

    kind: Literal["typo"]


class Suite(pydantic.BaseModel):
    """The suite file: word lists and tests."""

    model_config = pydantic.ConfigDict(extra="forbid")
    words: dict[str, list[str]] = pydantic.Field(default_factory=dict)
    tests: list[Annotated[MftTest | InvTest | DirTest | TypoTest, pydantic.Field(discriminator="kind")]] = (
        pydantic.Field(min_length=1)
    )


def _where(loc: Sequence[Any], raw: Any) -> str:
    """``tests[2] (negated positive).templates[1]`` from a pydantic error location."""
    out, node = "", raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and node.get("name") and out.startswith("tests") and out.count("[") == 1:
                out += f" ({node['name']})"
        elif part in KINDS and out.startswith("tests"):
            continue  # the union member pydantic tried, not a key of the file
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def load_suite(text: str, where: str) -> Suite:
    """Parse and check a suite file's text; every error names ``where`` and the entry at fault."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{where}: not valid YAML ({exc})") from None
    try:
        suite = Suite.model_validate(raw)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        raise DataError(f"{where}: {_where(err['loc'], raw) or 'top level'}: {err['msg']}") from None
    for name, words in suite.words.items():
        if not words or any(not isinstance(w, str) or not w.strip() for w in words):
            raise DataError(f"{where}: words.{name}: empty word list or empty word")
    seen: set[str] = set()
    for i, test in enumerate(suite.tests):
        entry = f"tests[{i}] ({test.name})"
        if slug(test.name) in seen:
            raise DataError(f"{where}: {entry}: another test has the same name")
        seen.add(slug(test.name))
        templates = test.templates if isinstance(test, MftTest) else test.append if isinstance(test, DirTest) else []
        key = "templates" if isinstance(test, MftTest) else "append"
        for j, template in enumerate(templates):
            fields = _fields(template, f"{where}: {entry}.{key}[{j}] {template!r}")
            for f in fields:
                if f not in suite.words:
                    raise DataError(
                        f"{where}: {entry}.{key}[{j}] {template!r}: unknown placeholder {{{f}}} "
                        f"(words: {', '.join(sorted(suite.words)) or 'none'})"
                    )
                if fields.count(f) > len(suite.words[f]):
                    raise DataError(
                        f"{where}: {entry}.{key}[{j}]: {{{f}}} {fields.count(f)} times, but words.{f} "
                        f"has {len(suite.words[f])} word(s)"
                    )
        if isinstance(test, InvTest) and test.swap != NUMBERS and test.swap not in suite.words:
            raise DataError(
                f"{where}: {entry}.swap: {test.swap!r} is neither a word list ({', '.join(sorted(suite.words))}) "
                f"nor {NUMBERS!r}"
            )
    return suite


def slug(name: str) -> str:
    """A test's key in the metrics: ``negated positive`` → ``negated_positive``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _fields(template: str, where: str) -> list[str]:
    try:
        parsed = list(_FIELD.parse(template))
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    fields = [f for _, f, spec, conv in parsed if f is not None]
    for f in fields:
        if not f.isidentifier():
            raise DataError(f"{where}: placeholder {{{f}}} is not a word-list name")
    return fields


def expand(template: str, words: dict[str, list[str]]) -> list[str]:
    """Every filling of a template; a placeholder used twice draws two different words. Pure."""
    parts = list(_FIELD.parse(template))
    fields = [f for _, f, _, _ in parts if f is not None]
    out = []
    for combo in itertools.product(*(words[f] for f in fields)):
        pairs = list(zip(fields, combo, strict=True))
        if len(set(pairs)) < len(pairs):  # the same word twice for one placeholder
            continue
        it = iter(combo)
        out.append("".join(lit + (next(it) if f is not None else "") for lit, f, _, _ in parts))
    return out


@dataclass
class Case:
    """One test case: the text scored, and for edited reviews, the review and the edit."""

    text: str
    review_id: str | None = None
    edit: str = ""
    original: str | None = None


@dataclass
class Outcome:
    """One test's result."""

    name: str
    kind: str
    n_cases: int
    failed: int = 0
    skipped: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failure_rate(self) -> float | None:
        """Failed cases / cases (None when skipped)."""
        return None if self.skipped else round(self.failed / self.n_cases, 6)


def _sample(items: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    if len(items) <= n:
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


def mft_cases(test: MftTest, words: dict[str, list[str]], max_cases: int, rng: np.random.Generator) -> list[Case]:
    """An equal share of ``max_cases`` filled-in sentences from each template (seeded). Pure."""
    quota = -(-max_cases // len(test.templates))
    return [Case(text) for t in test.templates for text in _sample(expand(t, words), quota, rng)][:max_cases]


def _swap_words(text: str, pool: Sequence[str], rng: np.random.Generator) -> tuple[str, str] | None:
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(pool, key=len, reverse=True))) + r")\b")
    found = sorted(set(pattern.findall(text)))
    if not found:
        return None
    new = {w: str(rng.choice([p for p in pool if p != w])) for w in found}
    return pattern.sub(lambda m: new[m.group(1)], text), ", ".join(f"{w} → {new[w]}" for w in found)


def _change_numbers(text: str, rng: np.random.Generator) -> tuple[str, str] | None:
    changes: list[str] = []

    def change(m: re.Match[str]) -> str:
        n = int(m.group())
        options = [v for v in range(int(n * 0.8), int(n * 1.2) + 1) if v != n]
        if not options:
            return m.group()
        v = int(rng.choice(options))
        changes.append(f"{n} → {v}")
        return str(v)

    out = _NUMBER.sub(change, text)
    return (out, ", ".join(changes)) if changes else None


def _typos(text: str, n: int, rng: np.random.Generator) -> tuple[str, str] | None:
    spans = [m.span() for m in _TYPO_WORD.finditer(text)]
    spans = [(a, b) for a, b in spans if len(set(text[a:b].lower())) > 1]
    if not spans:
        return None
    chosen = sorted(_sample(spans, n, rng))
    chars, edits = list(text), []
    for a, b in chosen:
        word = text[a:b]
        positions = [i for i in range(a, b - 1) if chars[i] != chars[i + 1]]
        i = int(rng.choice(positions))
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
        edits.append(f"{word} → {''.join(chars[a:b])}")
    return "".join(chars), ", ".join(edits)


def review_cases(
    test: InvTest | DirTest | TypoTest,
    reviews: pd.DataFrame,
    words: dict[str, list[str]],
    cfg: BehaveConfig,
    rng: np.random.Generator,
) -> list[Case]:
    """Edited copies of up to ``max_cases`` test reviews, in a seeded order. Pure.

    Reviews the edit cannot apply to (no listed name, no number) are passed over.
    """
    sentences = [s for t in test.append for s in expand(t, words)] if isinstance(test, DirTest) else []
    cases: list[Case] = []
    for pos in rng.permutation(len(reviews)):
        if len(cases) >= cfg.max_cases:
            break
        rid, text = str(reviews["id"].iat[pos]), str(reviews["text"].iat[pos])
        if isinstance(test, InvTest):
            edited = _change_numbers(text, rng) if test.swap == NUMBERS else _swap_words(text, words[test.swap], rng)
        elif isinstance(test, DirTest):
            sentence = str(rng.choice(sentences))
            edited = (text.rstrip() + " " + sentence, f"+ {sentence!r}")
        else:
            edited = _typos(text, cfg.typos, rng)
        if edited is not None:
            cases.append(Case(text=edited[0], review_id=rid, edit=edited[1], original=text))
    return cases


def _skip_reason(test: Any, n_cases: int, n_reviews: int, min_cases: int) -> str:
    if isinstance(test, MftTest):
        return f"{n_cases} sentence(s) from its templates, fewer than behave.min_cases ({min_cases})"
    what = {"inv": f"a word from words.{getattr(test, 'swap', '')}", "typo": "a word of 4+ letters"}.get(
        test.kind, "text"
    )
    if getattr(test, "swap", None) == NUMBERS:
        what = "a number that can change"
    return f"{n_cases} of the {n_reviews} test reviews have {what}, fewer than behave.min_cases ({min_cases})"


def run_suite(
    suite: Suite,
    reviews: pd.DataFrame,
    predict: Predict,
    cfg: BehaveConfig,
    threshold: float,
    seed: int,
) -> list[Outcome]:
    """Run every test of ``suite`` against ``predict`` on the test ``reviews`` (``id``, ``text``). Pure.

    Each test draws from its own generator (seeded from ``seed`` and its position), so adding a
    test leaves the others' cases as they were.
    """
    outcomes = []
    memo: dict[str, float] = {}

    def scores(texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        if todo:
            memo.update(zip(todo, np.asarray(predict(todo), dtype=np.float64).reshape(-1).tolist(), strict=True))
        return np.array([memo[t] for t in texts])

    for i, test in enumerate(suite.tests):
        rng = np.random.default_rng([seed, i])
        if isinstance(test, MftTest):
            cases = mft_cases(test, suite.words, cfg.max_cases, rng)
        else:
            cases = review_cases(test, reviews, suite.words, cfg, rng)
        outcome = Outcome(test.name, test.kind, len(cases))
        outcomes.append(outcome)
        if len(cases) < cfg.min_cases:
            outcome.skipped = _skip_reason(test, len(cases), len(reviews), cfg.min_cases)
            log.info("%s: skipped: %s", test.name, outcome.skipped)
            continue
        p = scores([c.text for c in cases])
        if isinstance(test, MftTest):
            want = test.label == "positive"
            failed = (p >= threshold) != want
            before = np.full(len(p), np.nan)
        else:
            before = scores([c.original for c in cases])  # type: ignore[misc]
            if isinstance(test, DirTest):
                sign = 1.0 if test.direction == "up" else -1.0
                failed = sign * (p - before) < -cfg.tolerance
            else:
                failed = (p >= threshold) != (before >= threshold)
        outcome.failed = int(failed.sum())
        for k in np.flatnonzero(failed)[: cfg.examples]:
            c = cases[k]
            example: dict[str, Any] = {"p_positive": round(float(p[k]), 4)}
            if c.review_id is None:
                example["text"] = c.text
            else:
                example |= {"review_id": c.review_id, "edit": c.edit, "p_positive_before": round(float(before[k]), 4)}
            outcome.examples.append(example)
        log.info("%s: %d of %d cases failed", test.name, outcome.failed, outcome.n_cases)
    return outcomes


def metrics(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The DVC metrics: failure rate and cases per test, and pooled over each kind of test."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        ran = [o for o in outcomes if o.kind == kind and not o.skipped]
        if ran:
            n = sum(o.n_cases for o in ran)
            out[kind] = {"failure_rate": round(sum(o.failed for o in ran) / n, 6), "n_cases": n}
    out["tests"] = {
        slug(o.name): {"n_cases": o.n_cases}
        | ({} if o.skipped else {"failed": o.failed, "failure_rate": o.failure_rate})
        for o in outcomes
    }
    return out


def cases_file(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Every test with its kind, figures, skip reason and failing cases (for the report)."""
    return [
        {
            "name": o.name,
            "kind": o.kind,
            "n_cases": o.n_cases,
            "failed": o.failed,
            "failure_rate": o.failure_rate,
            "skipped": o.skipped,
            "failing_examples": o.examples,
        }
        for o in outcomes
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m stages.behave --suite behaviour.yaml --table ... --features ... --model-file ...``."""
    p = cli.parser(__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="dataset/model, for logs")
    p.add_argument("--suite", type=Path, required=True, help="the tests, templates and word lists (.yaml)")
    p.add_argument("--table", type=Path, required=True, help="the prepared table (its test reviews are edited)")
    cli.add_model_inputs(p)
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--cases", type=Path, required=True)
    args = p.parse_args(argv)
    params = load_params(args.params)
    if not args.suite.is_file():
        raise DataError(f"{args.suite}: suite file not found")
    suite = load_suite(args.suite.read_text(encoding="utf-8"), str(args.suite))
    reviews = read_table(args.table, ["id", "text"], split="test")
    model = load_text_model(args.model_file, args.features)
    outcomes = run_suite(suite, reviews, model.proba, params.behave, params.evaluate.threshold, params.seed)
    log.info("%s: %s", args.name, {k: v for k, v in metrics(outcomes).items() if k != "tests"})
    write_json(args.cases, cases_file(outcomes))
    write_json(args.metrics, metrics(outcomes))


if __name__ == "__main__":
    cli.run("behave", main)
