"""Every section of ``params.yaml`` as a typed, validated config, and the check of the whole file.

Each stage reads its own sections through these classes; :func:`check_params` parses *all* of
them, and :func:`stages.common.params.load_params` runs it, so whichever stage runs first
fails on a typo or an impossible value anywhere in the file, naming its key path, before any
stage does work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from stages.common.errors import ParamsError
from stages.common.features import FeaturizerConfig
from stages.common.params import FINETUNE_PER_MODEL as PER_MODEL
from stages.common.params import check, parse, section


@dataclass(frozen=True)
class DatasetConfig:
    """``datasets.<name>``: where a dataset comes from and how to read it."""

    format: Literal["aclimdb", "reviews"]
    source: str
    checksum: str | None = None
    mirror_file: str | None = None
    mirror_checksum: str | None = None
    text_column: str = "text"
    label_column: str | None = None
    rating_column: str | None = None
    negative_max: float | None = None
    positive_min: float | None = None
    split_column: str | None = None
    id_column: str | None = None
    test_size: float = 0.2

    def validate(self, path: str) -> None:
        """Cross-field checks with key paths."""
        check(0.0 < self.test_size < 1.0, f"{path}.test_size", f"must be in (0, 1), got {self.test_size}")
        if self.format != "reviews":
            return
        check(
            (self.label_column is None) != (self.rating_column is None),
            f"{path}.label_column",
            "give exactly one of label_column or rating_column",
        )
        if self.rating_column is not None:
            check(
                self.negative_max is not None and self.positive_min is not None,
                f"{path}.negative_max",
                "a rating_column needs negative_max and positive_min",
            )
            check(
                self.negative_max < self.positive_min,  # type: ignore[operator]
                f"{path}.positive_min",
                f"must be greater than negative_max ({self.negative_max}), got {self.positive_min}",
            )


@dataclass(frozen=True)
class PrepareConfig:
    """``prepare:``: reading policy shared by every dataset."""

    encoding_errors: Literal["strict", "replace"] = "replace"
    download_retries: int = 3
    download_timeout_s: float = 60.0
    max_review_bytes: int = 1_000_000  # a longer review is refused, naming it
    near_duplicate_jaccard: float = 0.8  # word 3-shingle similarity from which two reviews are near-duplicates

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.download_retries >= 1, f"{path}.download_retries", "must be >= 1")
        check(self.download_timeout_s > 0, f"{path}.download_timeout_s", "must be > 0")
        check(self.max_review_bytes >= 1, f"{path}.max_review_bytes", f"must be >= 1, got {self.max_review_bytes}")
        check(
            0.0 < self.near_duplicate_jaccard <= 0.98,  # MinHash LSH bands (128 permutations) need <= 0.98
            f"{path}.near_duplicate_jaccard",
            f"must be in (0, 0.98] (exact duplicates are counted apart), got {self.near_duplicate_jaccard}",
        )


@dataclass(frozen=True)
class ModelConfig:
    """Params shared by every model: architecture, optimiser and the training loop."""

    architecture: Literal["mlp", "lstm"]
    # MLP
    hidden_units: list[int] | None = None
    kernel_initializer: str = "glorot_uniform"
    activation: str = "relu"
    # LSTM
    embedding_dim: int = 128
    units: int = 128
    bidirectional: bool = False
    pooling: Literal["last", "mean"] = "last"  # the LSTM's last state, or the mean of its states over the words
    recurrent_dropout: float = 0.0
    # both
    dropout: float = 0.0
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd"] = "adam"
    learning_rate: float = 0.001
    epochs: int = 10
    batch_size: int = 32
    validation_split: float = 0.2
    early_stopping_patience: int | None = 2
    # how training spreads over hardware: tf.distribute strategies (README: scaling)
    distribution: Literal["default", "mirrored", "multi_worker_mirrored"] = "default"

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.epochs >= 1, f"{path}.epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"{path}.batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.learning_rate > 0, f"{path}.learning_rate", f"must be > 0, got {self.learning_rate}")
        check(0.0 <= self.dropout < 1.0, f"{path}.dropout", f"must be in [0, 1), got {self.dropout}")
        check(
            0.0 <= self.recurrent_dropout < 1.0,
            f"{path}.recurrent_dropout",
            f"must be in [0, 1), got {self.recurrent_dropout}",
        )
        check(
            0.0 < self.validation_split < 1.0,
            f"{path}.validation_split",
            f"must be in (0, 1), got {self.validation_split}",
        )
        if self.early_stopping_patience is not None:
            check(self.early_stopping_patience >= 0, f"{path}.early_stopping_patience", "must be >= 0 or null")
        if self.architecture == "mlp":
            check(bool(self.hidden_units), f"{path}.hidden_units", "an MLP needs at least one hidden layer")
            for i, u in enumerate(self.hidden_units or []):
                check(u >= 1, f"{path}.hidden_units[{i}]", f"must be >= 1, got {u}")
        else:
            check(self.units >= 1, f"{path}.units", f"must be >= 1, got {self.units}")
            check(self.embedding_dim >= 1, f"{path}.embedding_dim", f"must be >= 1, got {self.embedding_dim}")


@dataclass(frozen=True)
class FinetuneConfig:
    """``finetune:`` params: which datasets start from which, and how they are refined."""

    source: str
    targets: list[str]
    # one rate per model name ({mlp: 0.002, lstm: 0.002}), so that each finetune stage depends on
    # its own model's rate (dvc.yaml: finetune.learning_rate.${item.model}); for_model() resolves
    # it to that one number before finetune()
    learning_rate: dict[str, float] | float
    epochs: int = 3
    early_stopping_patience: int | None = 1
    # one per model, like learning_rate: > 0 gives a target word (LSTM) or n-gram (bag of words)
    # missing from the source vocabulary its own word vector or input column (weights starting at
    # zero) when it occurs in at least this many of the target's training reviews; 0 keeps the
    # source vocabulary
    new_words_min_count: dict[str, int] | int = 0
    # one per model, like learning_rate: > 1 fine-tunes the model this many times (seeds base.seed,
    # base.seed + 1, ...) from the same source weights and keeps one model whose weights are their
    # mean (a "weight soup": an ensemble's gain at one model's cost to predict and explain); 1: one
    soup: dict[str, int] | int = 1

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.source not in self.targets, f"{path}.targets", f"must not contain the source {self.source!r}")
        check(
            isinstance(self.learning_rate, dict),
            f"{path}.learning_rate",
            f"expected one rate per model ({{mlp: 0.002, lstm: 0.002}}), got {self.learning_rate!r}",
        )
        for model, rate in self.learning_rate.items():  # type: ignore[union-attr]
            check(rate > 0, f"{path}.learning_rate.{model}", f"must be > 0, got {rate}")
        check(self.epochs >= 1, f"{path}.epochs", f"must be >= 1, got {self.epochs}")
        for name, least, meaning in (
            ("new_words_min_count", 0, "keep the source vocabulary"),
            ("soup", 1, "one fine-tune"),
        ):
            values = getattr(self, name)  # per model, or one value once for_model() resolved it
            for model, value in values.items() if isinstance(values, dict) else [(None, values)]:
                key = f"{path}.{name}" + ("" if model is None else f".{model}")
                check(value >= least, key, f"must be >= {least} ({least}: {meaning}), got {value}")

    def for_model(self, model: str, path: str = "finetune") -> FinetuneConfig:
        """This config with one model's value of each per-model key (:data:`PER_MODEL`; a mapping must name it)."""
        resolved: dict[str, Any] = {}
        for key in PER_MODEL:
            values = getattr(self, key)
            if isinstance(values, dict):
                check(
                    model in values,
                    f"{path}.{key}.{model}",
                    f"missing: the per-model values name only {', '.join(sorted(values))}",
                )
                resolved[key] = values[model]
        return dataclasses.replace(self, **resolved)


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate:`` params."""

    threshold: float = 0.5
    curve_points: int = 200

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(0.0 < self.threshold < 1.0, f"{path}.threshold", f"must be in (0, 1), got {self.threshold}")
        check(self.curve_points >= 2, f"{path}.curve_points", f"must be >= 2, got {self.curve_points}")


@dataclass(frozen=True)
class BehaveConfig:
    """``behave:`` params (the tests themselves are in the suite file, ``behaviour.yaml``)."""

    max_cases: int = 200  # per test: filled-in sentences, or edited test reviews
    min_cases: int = 20  # a test with fewer cases is reported as skipped, with the reason
    typos: int = 2  # words per review with two adjacent letters swapped
    tolerance: float = 0.1  # directional tests: a move the wrong way up to this much is not a failure
    examples: int = 3  # failing cases kept per test

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.max_cases >= 1, f"{path}.max_cases", f"must be >= 1, got {self.max_cases}")
        check(1 <= self.min_cases <= self.max_cases, f"{path}.min_cases", "must be in [1, max_cases]")
        check(self.typos >= 1, f"{path}.typos", f"must be >= 1, got {self.typos}")
        check(0.0 <= self.tolerance < 1.0, f"{path}.tolerance", f"must be in [0, 1), got {self.tolerance}")
        check(self.examples >= 0, f"{path}.examples", f"must be >= 0, got {self.examples}")


@dataclass(frozen=True)
class SelectConfig:
    """``select:`` params."""

    method: Literal["first", "random", "misclassified", "submodular"] = "random"
    n_reviews: int = 10
    pool_size: int = 30

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.n_reviews >= 1, f"{path}.n_reviews", f"must be >= 1, got {self.n_reviews}")
        check(self.pool_size >= self.n_reviews, f"{path}.pool_size", "must be >= n_reviews")


@dataclass(frozen=True)
class ExplainConfig:
    """``explain:`` params."""

    num_features: int = 10
    num_samples: int = 5000
    kernel_width: float = 25.0
    random_state: int | None = None
    sp_budget: int = 4
    faithfulness_k: list[int] | None = None

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.num_features >= 1, f"{path}.num_features", f"must be >= 1, got {self.num_features}")
        check(self.num_samples >= 10, f"{path}.num_samples", f"must be >= 10, got {self.num_samples}")
        check(self.kernel_width > 0, f"{path}.kernel_width", f"must be > 0, got {self.kernel_width}")
        check(self.sp_budget >= 1, f"{path}.sp_budget", f"must be >= 1, got {self.sp_budget}")
        for i, k in enumerate(self.ks):
            check(k >= 1, f"{path}.faithfulness_k[{i}]", f"must be >= 1, got {k}")

    @property
    def ks(self) -> list[int]:
        """The k bins of the deletion metrics."""
        return list(self.faithfulness_k or [1, 2, 3, 5, 10])


@dataclass(frozen=True)
class CorrelateConfig:
    """``correlate:`` params."""

    max_tokens: int = 2000
    skip_top: int = 20
    top_n: int = 50
    suspicious_max_abs_corr: float = 0.05
    suspicious_min_importance_quantile: float = 0.75

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.top_n >= 1, f"{path}.top_n", f"must be >= 1, got {self.top_n}")
        check(0 <= self.suspicious_max_abs_corr <= 1, f"{path}.suspicious_max_abs_corr", "must be in [0, 1]")
        check(
            0 <= self.suspicious_min_importance_quantile <= 1,
            f"{path}.suspicious_min_importance_quantile",
            "must be in [0, 1]",
        )
        FeaturizerConfig(kind="bow", max_tokens=self.max_tokens, skip_top=self.skip_top).validate(path)


@dataclass(frozen=True)
class RegisterConfig:
    """``track.register``: which model run the registry's ``champion`` alias points at."""

    metric: str = "accuracy"  # a test metric of evaluate (accuracy, roc_auc, f1, log_loss, ...)
    direction: Literal["max", "min"] = "max"


@dataclass(frozen=True)
class TrackConfig:
    """``track:`` params: MLflow experiment names and the Model Registry."""

    experiment_prefix: str = "sentiment"  # experiments are <prefix>-<dataset>
    register: RegisterConfig | None = None  # null: register nothing


@dataclass(frozen=True)
class SearchSpace:
    """``sweep.params.<param>``: a range (``low``, ``high``, ``log``) or a list of ``choices``."""

    low: int | float | None = None  # ints on both bounds: an integer param
    high: int | float | None = None
    log: bool = False  # sample on a log scale (learning rates)
    choices: list[str | int | float | bool] | None = None

    def validate(self, path: str) -> None:
        """A range or choices, never both; a range that holds values; distinct choices."""
        if self.choices is not None:
            check(self.low is None and self.high is None, f"{path}.choices", "give choices or low/high, not both")
            check(len(self.choices) > 0, f"{path}.choices", "empty: give at least one value")
            check(len(set(map(repr, self.choices))) == len(self.choices), f"{path}.choices", "repeats a value")
            return
        check(self.low is not None and self.high is not None, f"{path}.low", "give low and high (or choices)")
        check(self.low < self.high, f"{path}.high", f"empty range: high ({self.high}) must exceed low ({self.low})")  # type: ignore[operator]
        check(not self.log or self.low > 0, f"{path}.low", f"a log range needs low > 0, got {self.low}")  # type: ignore[operator]


@dataclass(frozen=True)
class SweepConfig:
    """``sweep:``: the Optuna study ``python -m tools.sweep`` runs (README: sweeps across machines)."""

    metric: str  # <stage>:<key of its metrics file>, e.g. evaluate@imdb-mlp:accuracy
    params: dict[str, SearchSpace]  # dotted param name -> its search space
    study: str = "sweep"
    direction: Literal["maximize", "minimize"] = "maximize"
    n_trials: int = 10

    def validate(self, path: str) -> None:
        """Names DVC and Optuna accept; at least one param and one trial."""
        import re

        check(bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.study)), f"{path}.study",
              f"letters, digits, '.', '_' and '-' only (it names DVC experiments), got {self.study!r}")  # fmt: skip
        check(self.metric.count(":") == 1 and all(self.metric.split(":")), f"{path}.metric",
              f"expected <stage>:<metric>, e.g. evaluate@imdb-mlp:accuracy, got {self.metric!r}")  # fmt: skip
        check(bool(self.params), f"{path}.params", "empty: name at least one param to search")
        check(self.n_trials >= 1, f"{path}.n_trials", f"must be >= 1, got {self.n_trials}")


EXCLUDE_TERMS = "exclude_terms"  # vectorize.exclude_terms: words every model's featurizer leaves out


def featurizer_config(params: Mapping[str, Any], model: str) -> FeaturizerConfig:
    """``vectorize.<model>`` with the shared ``vectorize.exclude_terms`` (lower-cased), checked."""
    key = f"vectorize.{model}"
    raw = dict(section(params, key))
    if EXCLUDE_TERMS in raw:
        raise ParamsError(f"{key}.{EXCLUDE_TERMS}: set vectorize.{EXCLUDE_TERMS} (every model leaves them out)")
    terms = section(params, "vectorize").get(EXCLUDE_TERMS) or []
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise ParamsError(f"vectorize.{EXCLUDE_TERMS}: expected a list of words, got {terms!r}")
    raw[EXCLUDE_TERMS] = sorted({t.strip().lower() for t in terms})
    try:
        return parse(FeaturizerConfig, raw, key)
    except ParamsError as exc:
        raise ParamsError(str(exc).replace(f"{key}.{EXCLUDE_TERMS}", f"vectorize.{EXCLUDE_TERMS}")) from None


def check_params(params: Mapping[str, Any]) -> None:
    """Parse every section of ``params`` with its config class: the first error names its key path."""
    parse(PrepareConfig, params.get("prepare") or {}, "prepare")
    for name, raw in section(params, "datasets").items():
        parse(DatasetConfig, raw, f"datasets.{name}")
    for name in section(params, "models"):
        featurizer_config(params, name)
        parse(ModelConfig, section(params, name), name)
    unknown = sorted(set(section(params, "vectorize")) - set(section(params, "models")) - {EXCLUDE_TERMS})
    if unknown:
        raise ParamsError(f"vectorize.{unknown[0]}: not a model in models")
    if "finetune" in params:
        parse(FinetuneConfig, params["finetune"], "finetune")
    parse(EvaluateConfig, params.get("evaluate") or {}, "evaluate")
    parse(BehaveConfig, params.get("behave") or {}, "behave")
    parse(SelectConfig, params.get("select") or {}, "select")
    parse(ExplainConfig, params.get("explain") or {}, "explain")
    parse(CorrelateConfig, params.get("correlate") or {}, "correlate")
    parse(TrackConfig, params.get("track") or {}, "track")
    if "sweep" in params:
        parse(SweepConfig, params["sweep"], "sweep")
