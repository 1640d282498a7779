"""What every stage's ``main()`` shares: logging setup and readable failures."""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from stages.common.errors import EXPECTED_ERRORS
from stages.common.params import DEFAULT_PARAMS

log = logging.getLogger("stages")


def parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the ``--params`` option every stage takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    return p


def add_model_inputs(p: argparse.ArgumentParser) -> None:
    """The trained model every scoring stage reads: its file and its features directory (the featurizer)."""
    p.add_argument("--model-file", type=Path, required=True, help="the trained model (.keras)")
    p.add_argument("--features", type=Path, required=True, help="the model's features directory (its featurizer)")


def add_training_outputs(p: argparse.ArgumentParser) -> None:
    """The files every training stage (train, finetune) writes, as train writes them."""
    p.add_argument("--out", type=Path, required=True, help="the trained model (.keras)")
    p.add_argument("--history", type=Path, required=True, help="per-epoch history (.csv)")
    p.add_argument("--summary", type=Path, required=True, help="training summary (.json)")


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
