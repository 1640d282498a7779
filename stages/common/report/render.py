"""HTML building blocks for the reports. Review text is untrusted: everything is escaped."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from stages.common.explanation.lime_samples import SPLIT_EXPRESSION

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72em;margin:auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}"
    ".review{border:1px solid #ddd;padding:.6em;margin:.4em 0 1em;white-space:pre-wrap}"
    ".meta{color:#555;font-size:.9em}img{max-width:100%}.row{display:flex;flex-wrap:wrap;gap:1em}"
)


def esc(value: Any) -> str:
    """Escape any value for HTML text or attribute context."""
    return html.escape(str(value), quote=True)


def page(title: str, body: Iterable[str]) -> str:
    """A complete, self-contained HTML page."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def img(png: bytes, alt: str) -> str:
    """An inline (base64) PNG image."""
    return f"<img alt='{esc(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def table(df: pd.DataFrame, floats: str = "{:.4f}") -> str:
    """An escaped HTML table."""
    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for _, row in df.iterrows():
        cells = "".join(f"<td>{_cell(v, floats)}</td>" for v in row.tolist())
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _cell(value: Any, floats: str) -> str:
    """One escaped table cell: floats formatted, a missing value as an empty cell."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return esc(floats.format(value) if isinstance(value, float) else value)


def highlighted(text: str, words: Sequence[Sequence[Any]]) -> str:
    """``text`` escaped, its weighted words highlighted (green toward positive, red toward negative)."""
    weights = {w: float(v) for w, v in words}
    lim = max((abs(v) for v in weights.values()), default=1.0) or 1.0
    body = []
    for piece in re.split(f"({SPLIT_EXPRESSION})", text):
        if piece in weights:
            v = weights[piece]
            colour = "46,125,50" if v > 0 else "198,40,40"
            body.append(
                f"<span style='background:rgba({colour},{0.15 + 0.7 * abs(v) / lim:.2f})' "
                f"title='{v:+.4f}'>{esc(piece)}</span>"
            )
        else:
            body.append(esc(piece))
    return f"<div class='review'>{''.join(body)}</div>"


def _about(e: Mapping[str, Any]) -> str:
    label = "positive" if e["label"] else "negative"
    pred = "positive" if e["predicted"] else "negative"
    fit = "" if e.get("score") is None else f" · fit R²={float(e['score']):.2f}"
    return (
        f"<div class='meta'>{esc(e['review_id'])} · true {label} · predicted {pred} "
        f"(p(positive)={float(e['proba']):.3f}){fit}</div>"
    )


def highlighted_reviews(texts: Mapping[str, str], explanations: Sequence[Mapping[str, Any]]) -> str:
    """Reviews with their explained words highlighted."""
    return "\n".join(_about(e) + highlighted(texts[e["review_id"]], e["words"]) for e in explanations)


def side_by_side(texts: Mapping[str, str], by_method: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Each review once per method, in one row: the words each method weighs, highlighted."""
    per_review = {m: {e["review_id"]: e for e in exps} for m, exps in by_method.items()}
    first = next(iter(by_method.values()), [])
    out = []
    for e in first:
        rid = e["review_id"]
        cells = "".join(
            f"<div style='flex:1;min-width:18em'><b>{esc(m)}</b>{highlighted(texts[rid], per[rid]['words'])}</div>"
            for m, per in per_review.items()
            if rid in per
        )
        out.append(_about(e) + f"<div class='row'>{cells}</div>")
    return "\n".join(out)


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any) -> bytes:
    """Render and close a figure; PNG without a software stamp, so equal plots are equal files."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    pyplot().close(fig)
    return buf.getvalue()
