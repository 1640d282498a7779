"""predict: label, probability and the top LIME words for review text; or a whole file, without LIME.

The model is a registered one (``models:/sentiment-imdb@champion``), any logged one
(``runs:/<run id>/model``), or a local pipeline output (``imdb/mlp``: the model and
featurizer that ``dvc repro`` wrote, found through ``dvc.yaml``'s paths). Reviews come as
arguments, from ``--file`` (one review per line, or a CSV with a ``--text-column``) or from
stdin (one per line). LIME runs with the ``explain:`` params (its fast path), seeded per review
as in the explain stage. ``--no-explain`` scores in batches with a progress bar instead (the
probabilities ``mlflow models predict`` gives for the same model) and writes ``--out`` as CSV or
JSON lines.

    python -m tools.predict --model imdb/mlp "A moving, beautifully acted film."
    echo "Cold food, rude staff." | python -m tools.predict --model models:/sentiment-yelp@champion
    python -m tools.predict --model imdb/lstm --no-explain --file reviews.csv --out scores.csv
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stages.common.data import layout
from stages.common.explanation.explaining import explain_text
from stages.common.modelling.prediction import TextModel, load_text_model
from stages.common.params import DEFAULT_PARAMS, load_params
from stages.common.params.schema import ExplainConfig
from stages.common.tracking.tracker import default_tracking_uri

log = logging.getLogger("predict")


def model_files(model: str, dvc_yaml: Path = Path("dvc.yaml")) -> tuple[Path, Path]:
    """(Keras model file, featurizer.json) for a local ``dataset/model`` or an MLflow model URI."""
    if "://" not in model and ":/" not in model:
        dataset, _, name = model.partition("/")
        if not dataset or not name:
            raise ValueError(f"--model {model!r}: expected dataset/model (e.g. imdb/mlp) or an MLflow model URI")
        paths = layout.dvc_paths(dvc_yaml)
        keras_file = Path(paths["models"]) / dataset / f"{name}.keras"
        featurizer = Path(paths["features"]) / dataset / name / layout.FEATURIZER
        for f in (keras_file, featurizer):
            if not f.is_file():
                raise FileNotFoundError(f"{f}: not found; run `dvc repro` (or `dvc pull`) first")
        return keras_file, featurizer
    import mlflow

    mlflow.set_tracking_uri(default_tracking_uri())
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model))
    keras_files = sorted(local.rglob("*.keras"))
    featurizers = sorted(local.rglob(layout.FEATURIZER))
    if not keras_files or not featurizers:
        raise FileNotFoundError(f"{model}: no .keras model and {layout.FEATURIZER} in the logged model")
    return keras_files[0], featurizers[0]


def predict_texts(
    texts: Sequence[str], model: TextModel, explain: ExplainConfig, random_state: int, top: int
) -> list[dict[str, Any]]:
    """Each text → label, probability of positive, and its top LIME words with weights."""
    out = []
    for i, text in enumerate(texts):
        e = explain_text(
            text,
            f"input-{i}",
            -1,
            model,
            random_state=random_state,
            num_features=top,
            num_samples=explain.num_samples,
            kernel_width=explain.kernel_width,
        )
        out.append(
            {
                "text": text,
                "label": "positive" if e.predicted else "negative",
                "proba_positive": round(e.proba, 4),
                "top_words": [[w, round(v, 4)] for w, v in sorted(e.words, key=lambda wv: -abs(wv[1]))],
            }
        )
    return out


def read_texts(args: argparse.Namespace) -> list[str]:
    """Reviews from arguments, ``--file`` or stdin (one per line, blank lines skipped; a ``.csv``: its text column)."""
    if args.text:
        return list(args.text)
    if args.file and ".csv" in [x.lower() for x in Path(args.file).suffixes]:
        import pandas as pd

        table = pd.read_csv(args.file, keep_default_na=False)
        if args.text_column not in table.columns:
            raise ValueError(
                f"{args.file}: column {args.text_column!r} not found (columns: {', '.join(map(str, table.columns))}); "
                "name it with --text-column"
            )
        return table[args.text_column].astype(str).tolist()
    source = Path(args.file).read_text(encoding="utf-8") if args.file else sys.stdin.read()
    return [line.strip() for line in source.splitlines() if line.strip()]


def score_texts(texts: Sequence[str], model: TextModel, batch_size: int = 1024) -> Any:
    """P(positive) of every text, in batches, with a progress bar (no LIME): the pyfunc model's numbers."""
    import numpy as np
    from tqdm import tqdm

    out = np.zeros(len(texts))
    with tqdm(total=len(texts), unit="review", desc="scoring", file=sys.stderr, disable=None) as bar:
        for lo in range(0, len(texts), batch_size):
            batch = texts[lo : lo + batch_size]
            out[lo : lo + len(batch)] = model.proba(batch)
            bar.update(len(batch))
    return out


def write_scores(texts: Sequence[str], proba: Any, threshold: float, out: Path | None) -> None:
    """``row, proba, label`` per review: CSV or JSON lines by ``out``'s suffix (stdout: JSON lines)."""
    import pandas as pd

    from stages.common.data.io import atomic_path

    table = pd.DataFrame({"row": range(len(texts)), "proba": proba, "label": (proba >= threshold).astype(int)})
    if out is None:
        sys.stdout.write(table.to_json(orient="records", lines=True))
        return
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False, float_format="%.6f")
        else:
            table.to_json(tmp, orient="records", lines=True)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m tools.predict --model <uri or dataset/model> [text ...] [--file F] [--json]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("text", nargs="*", help="review text(s); none: read --file or stdin")
    p.add_argument("--model", required=True, help="models:/<name>@<alias>, runs:/<id>/model, or dataset/model")
    p.add_argument("--file", help="a file with one review per line, or a .csv with a text column")
    p.add_argument("--text-column", default="text", help="the review column of a --file .csv (default: text)")
    p.add_argument("--no-explain", action="store_true", help="probabilities only, in batches (for many reviews)")
    p.add_argument("--out", type=Path, help="with --no-explain: write .csv or .jsonl here (default: stdout)")
    p.add_argument("--top", type=int, default=None, help="LIME words to show (default: explain.num_features)")
    p.add_argument("--json", action="store_true", help="one JSON object per review")
    p.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file (default: params.yaml)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    params = load_params(args.params)
    try:
        keras_file, featurizer_file = model_files(args.model)
        texts = read_texts(args)
    except (FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    if not texts:
        log.error("no review text given (arguments, --file or stdin)")
        raise SystemExit(1)
    if args.no_explain:
        start = time.perf_counter()
        proba = score_texts(texts, load_text_model(keras_file, featurizer_file))
        seconds = time.perf_counter() - start
        write_scores(texts, proba, params.evaluate.threshold, args.out)
        log.info("%d reviews scored in %.1f s (%.0f reviews/s)", len(texts), seconds, len(texts) / seconds)
        return
    if args.out is not None:
        log.error("--out writes the scores of --no-explain; without it the output is printed")
        raise SystemExit(1)
    model = load_text_model(keras_file, featurizer_file, fast=True)
    explain = params.explain
    results = predict_texts(texts, model, explain, params.seed, args.top or explain.num_features)
    for r in results:
        if args.json:
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
            continue
        words = ", ".join(f"{w} ({v:+.3f})" for w, v in r["top_words"])
        preview = r["text"] if len(r["text"]) <= 70 else r["text"][:67] + "..."
        sys.stdout.write(f"{r['label']:8s} p(positive)={r['proba_positive']:.4f}  {preview}\n    top words: {words}\n")


if __name__ == "__main__":
    main()
