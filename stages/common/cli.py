"""What every stage's ``main()`` shares: logging setup and readable failures."""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from stages.common.errors import EXPECTED_ERRORS
from stages.common.params import DEFAULT_PARAMS

log = logging.getLogger("stages")


STATS_ENV = "SENTIMENT_STAGE_STATS"
"""Set to a file path (the benchmark does): each stage appends its wall time and peak memory."""


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    return p


def run(stage: str, body: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a stage body with logging; expected failures exit 1 with one clear message."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    start = time.perf_counter()
    try:
        body(argv)
    except EXPECTED_ERRORS as exc:
        log.error("stage %s failed: %s", stage, exc)
        raise SystemExit(1) from None
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    log.info("stage %s finished in %.1f s (peak memory %.0f MiB)", stage, seconds, peak_mib)
    stats = os.environ.get(STATS_ENV)
    if stats:
        record = {"stage": stage, "argv": list(sys.argv[1:] if argv is None else argv), "seconds": seconds}
        record["peak_mib"] = peak_mib
        with open(stats, "a", encoding="utf-8") as fh:  # one short line per stage: appends don't interleave
            fh.write(json.dumps(record) + "\n")
