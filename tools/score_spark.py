"""score_spark: score a table of millions of reviews with a logged or registered model, on Spark.

Each Spark task loads the MLflow model once (``mlflow.pyfunc.spark_udf``: the pyfunc flavour the
track stage logs, featurizer included) and scores its partition's reviews in Arrow batches, so the
table never has to fit one machine. Input: Parquet (a file or a folder of parts) or CSV with a
header; output: Parquet, the input's columns plus ``proba`` (P(positive)) and ``label`` (the
model's threshold), the same numbers ``tools.predict --no-explain`` gives.

    python -m tools.score_spark --model models:/sentiment-imdb@champion --table reviews.parquet --out scores
    # on a cluster: the same command with --master spark://<host>:7077 (or yarn), a shared
    # MLFLOW_TRACKING_URI, and --env-manager virtualenv (each executor builds the model's environment)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stages.common.data.io import atomic_path
from stages.common.tracking.tracker import default_tracking_uri

log = logging.getLogger("score_spark")
RESULT_TYPE = "proba double, label long"  # the pyfunc model's output columns (stages.common.modelling.pyfunc)


def read_reviews(spark: Any, table: str, text_column: str) -> Any:
    """The reviews as a Spark DataFrame (CSV by its ``.csv`` suffix, else Parquet), checked for the text column."""
    from pyspark.errors import AnalysisException

    try:
        if ".csv" in [s.lower() for s in Path(table).suffixes]:
            df = spark.read.csv(table, header=True, multiLine=True, escape='"')
        else:
            df = spark.read.parquet(table)
    except AnalysisException as exc:  # a missing path, a file that is not the format
        raise ValueError(f"{table}: cannot read reviews ({exc})") from None
    if text_column not in df.columns:
        raise ValueError(f"{table}: column {text_column!r} not found (columns: {', '.join(df.columns)})")
    return df


def score(spark: Any, model_uri: str, reviews: Any, text_column: str = "text", env_manager: str = "local") -> Any:
    """``reviews`` with ``proba`` and ``label`` columns from the model at ``model_uri`` (lazy: nothing runs yet)."""
    import mlflow.pyfunc
    from pyspark.sql import functions

    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=RESULT_TYPE, env_manager=env_manager)
    text = functions.col(text_column).cast("string").alias("text")  # the model's input column
    scored = reviews.withColumn("_scores", predict(functions.struct(text)))
    return scored.select("*", "_scores.proba", "_scores.label").drop("_scores")


def write(scored: Any, out: str) -> None:
    """Write Parquet; a local ``out`` appears whole or not at all (written beside it, then renamed)."""
    if "://" in out:  # a cluster file system: Spark's output committer marks a complete job with _SUCCESS
        scored.write.mode("overwrite").parquet(out)
        return
    with atomic_path(Path(out)) as tmp:
        scored.write.parquet(str(tmp))


def spark_session(master: str, app: str = "sentiment-scoring") -> Any:
    """A Spark session on ``master`` (``local[2]``: this machine's two cores; a cluster's URL)."""
    from pyspark.sql import SparkSession

    if master.startswith("local"):  # the workers are this machine's: this Python, with its packages
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return SparkSession.builder.master(master).appName(app).config("spark.ui.enabled", "false").getOrCreate()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m tools.score_spark --model <uri> --table <in> --out <dir> [--master local[2]]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="models:/<name>@<alias> or runs:/<id>/model")
    p.add_argument("--table", required=True, help="Parquet file or folder, or a CSV with a header")
    p.add_argument("--out", required=True, help="Parquet folder to write (local path or cluster URL)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--master", default="local[2]", help="Spark master (default: local[2])")
    p.add_argument("--env-manager", default="local", choices=["local", "virtualenv", "uv", "conda"],
                   help="how executors get the model's Python environment (local: this one)")  # fmt: skip
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import mlflow

    mlflow.set_tracking_uri(default_tracking_uri())
    spark = spark_session(args.master)
    try:
        start = time.perf_counter()
        reviews = read_reviews(spark, args.table, args.text_column)
        write(score(spark, args.model, reviews, args.text_column, args.env_manager), args.out)
        rows = spark.read.parquet(args.out).count()
        seconds = time.perf_counter() - start
        log.info("%d reviews scored in %.1f s (%.0f reviews/s) into %s", rows, seconds, rows / seconds, args.out)
    except ValueError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
