"""The MLflow model flavour the pipeline logs: review text in, probability out.

It bundles the Keras model with its featurizer, so ``mlflow models serve`` and
``mlflow.pyfunc.load_model`` take raw text and apply the same transform as training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd


class SentimentModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: ``predict(DataFrame[text]) -> DataFrame[proba, label]``."""

    def load_context(self, context: Any) -> None:
        """Load the Keras model (safe mode) with its featurizer from the logged artifacts."""
        from stages.common.modelling.prediction import load_text_model

        artifacts = context.artifacts
        self.model = load_text_model(Path(artifacts["keras_model"]), Path(artifacts["featurizer"]))
        self.threshold = float((context.model_config or {}).get("threshold", 0.5))

    def predict(self, context, model_input, params=None):
        """Score texts (a DataFrame with a ``text`` column, or a list of strings)."""
        if isinstance(model_input, pd.DataFrame):
            texts = model_input["text"].astype(str).tolist()
        else:
            texts = [str(t) for t in model_input]
        proba = self.model.proba(texts) if texts else np.zeros(0)
        return pd.DataFrame({"proba": proba, "label": (proba >= self.threshold).astype(np.int64)})
