"""Scoring a reviews table on Spark (local[2]) with the registered model, as predict scores it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages.common.modelling.prediction import load_text_model
from stages.common.tracking.tracker import MlflowTracker, ModelArtifact, RunPlan
from tests.synthetic import reviews_frame, tiny_text_model

pytestmark = pytest.mark.spark


def test_spark_scores_a_table_with_the_registered_model_as_predict_does(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    from tools.score_spark import read_reviews, score, spark_session, write

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the driver and its Python workers
    mlflow.set_tracking_uri(uri)
    keras_file, featurizer = tiny_text_model(tmp_path, seed=3)
    tracker = MlflowTracker(uri, artifact_root=tmp_path / "artifacts")
    child = RunPlan(name="imdb/mlp", metrics={"test_accuracy": 0.8}, tags={"run.kind": "model", "model": "mlp"},
                    model=ModelArtifact(keras_file=keras_file, featurizer_file=featurizer))  # fmt: skip
    tracker.record("sentiment-imdb", RunPlan(name="imdb @ x", tags={"run.kind": "pipeline"}, children=[child]))
    tracker.register_best("sentiment-imdb", "sentiment-imdb", "test_accuracy", "max")

    reviews = reviews_frame(600, seed=5)[["text"]].assign(review_id=np.arange(600))
    table = tmp_path / "reviews.parquet"
    reviews.to_parquet(table, row_group_size=150)  # several partitions
    spark = spark_session("local[2]")
    try:
        with pytest.raises(ValueError, match=r"reviews\.parquet: column 'body' not found"):
            read_reviews(spark, str(table), "body")
        with pytest.raises(ValueError, match=r"missing\.parquet: cannot read reviews"):
            read_reviews(spark, str(tmp_path / "missing.parquet"), "text")
        scored = score(spark, "models:/sentiment-imdb@champion", read_reviews(spark, str(table), "text"))
        write(scored, str(tmp_path / "scores"))
    finally:
        spark.stop()
    out = pd.read_parquet(tmp_path / "scores").sort_values("review_id").reset_index(drop=True)
    assert list(out.columns) == ["text", "review_id", "proba", "label"] and len(out) == 600
    expected = load_text_model(keras_file, featurizer).proba(reviews["text"].tolist())
    np.testing.assert_allclose(out["proba"], expected, atol=1e-6)
    assert (out["label"] == (expected >= 0.5)).all()
    assert not list(tmp_path.glob(".scores*"))  # written beside, then renamed into place
