"""Words as every featurizer and explainer reads them: lower-case tokens and their offsets."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
_TAG = re.compile(r"<[^>]{0,40}>")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters/digits, inner apostrophes kept: ``don't``)."""
    return _TOKEN.findall(_TAG.sub(" ", text.lower()))


def token_spans(text: str) -> list[tuple[int, str]] | None:
    """``tokenize(text)`` with each token's start offset in ``text``; None where offsets cannot be exact.

    Markup is blanked with spaces of the same length (tokens are the same as :func:`tokenize`'s).
    None when lower-casing changes the text's length, or when a stray ``<`` could become
    part of a markup tag once words between it and a later ``>`` are removed.
    """
    lowered = text.lower()
    if len(lowered) != len(text):
        return None
    blanked = _TAG.sub(lambda m: " " * len(m.group()), lowered)
    stray = blanked.find("<")
    if stray >= 0 and ">" in blanked[stray:]:
        return None
    return [(m.start(), m.group()) for m in _TOKEN.finditer(blanked)]
