"""Every section of ``params.yaml`` as a frozen dataclass, and :class:`Params`, the whole file.

A field that ``params.yaml`` sets in every instance of its section has no default here, or
the very value the file sets (``tests/test_params.py`` checks it), so a reader of the code
sees the values the pipeline uses. ``validate()`` methods check what a type cannot say and
name the key path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stages.common.errors import ParamsError
from stages.common.features.tokens import tokenize
from stages.common.params.parsing import check, parse


@dataclass(frozen=True)
class PairsConfig:
    """A table of minimal-edit pairs: a review and a copy edited as little as possible to flip its label."""

    source: str  # an http(s) URL or a local path, as for datasets
    text_column: str
    label_column: str
    pair_column: str  # the two rows of a pair share its value
    positive_label: str  # the label column's value for a positive review; the other value is negative
    checksum: str | None = None
    mirror_file: str | None = None
    mirror_checksum: str | None = None


@dataclass(frozen=True)
class AugmentConfig:
    """``datasets.<name>.augment``: minimal-edit pairs added to a dataset's training split.

    Each pair stays whole on one side of the validation carve; a pair with a member that is also
    (or nearly) a test review is dropped and counted on the data card. How much a pair weighs in
    training is each model's ``pair_weight``.
    """

    pairs: PairsConfig


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
    test_size: float = 0.2
    augment: AugmentConfig | None = None  # minimal-edit pairs added to the training split

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
class FeaturizerConfig:
    """``vectorize.<model>`` params: how one model sees text."""

    kind: Literal["bow", "seq"]
    max_tokens: int
    min_count: int  # a term must occur in at least this many training reviews
    skip_top: int = 0
    ngram_range: tuple[int, int] = (1, 1)
    mode: Literal["multi_hot", "count", "tfidf"] = "multi_hot"
    sublinear_tf: bool = False
    maxlen: int = 400
    padding: Literal["pre", "post"] = "pre"
    truncating: Literal["pre", "post"] = "pre"
    exclude_terms: tuple[str, ...] = ()  # words the model never sees (vectorize.exclude_terms)

    def validate(self, path: str) -> None:
        """Cross-field checks, with the key path in the message."""
        for i, term in enumerate(self.exclude_terms):
            check(
                tokenize(term) == [term],
                f"{path}.exclude_terms[{i}]",
                f"{term!r} is not one word as the tokenizer reads it (lower-case letters, digits, inner ')",
            )
        check(self.max_tokens > 0, f"{path}.max_tokens", f"must be > 0, got {self.max_tokens}")
        check(self.skip_top >= 0, f"{path}.skip_top", f"must be >= 0, got {self.skip_top}")
        check(
            self.skip_top < self.max_tokens,
            f"{path}.skip_top",
            f"must be smaller than max_tokens ({self.max_tokens}), got {self.skip_top}",
        )
        check(self.min_count >= 1, f"{path}.min_count", f"must be >= 1, got {self.min_count}")
        lo, hi = self.ngram_range
        check(1 <= lo <= hi, f"{path}.ngram_range", f"must be [min, max] with 1 <= min <= max, got {[lo, hi]}")
        check(self.maxlen > 0, f"{path}.maxlen", f"must be > 0, got {self.maxlen}")
        if self.kind == "seq":
            check(hi == 1, f"{path}.ngram_range", "sequences use single words: must be [1, 1]")


@dataclass(frozen=True)
class ModelConfig:
    """Params shared by every model: architecture, optimiser and the training loop."""

    architecture: Literal["mlp", "lstm"]
    dropout: float  # MLP: after each hidden layer; LSTM: on its inputs (the word vectors)
    epochs: int  # at most; early stopping ends it
    validation_split: float  # share of the training split carved out for early stopping
    early_stopping_patience: int | None  # epochs without a lower validation loss; null: none
    # MLP
    hidden_units: tuple[int, ...] | None = None
    kernel_initializer: str = "glorot_uniform"
    activation: str = "relu"
    # LSTM
    embedding_dim: int = 64
    units: int = 32
    bidirectional: bool = True
    pooling: Literal["last", "mean"] = "mean"  # the LSTM's last state, or the mean of its states over the words
    recurrent_dropout: float = 0.0
    shuffled_share: float = 0.0  # this share of the training reviews added with shuffled words and label 0.5
    # both (Adam)
    learning_rate: float = 0.001
    batch_size: int = 64
    pair_weight: float = 5.0  # a minimal-edit pair row weighs this in the loss (datasets.<name>.augment); a review: 1
    # how training spreads over hardware: tf.distribute strategies (README: scaling)
    distribution: Literal["default", "mirrored"] = "default"

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.epochs >= 1, f"{path}.epochs", f"must be >= 1, got {self.epochs}")
        check(self.batch_size >= 1, f"{path}.batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.learning_rate > 0, f"{path}.learning_rate", f"must be > 0, got {self.learning_rate}")
        check(self.pair_weight > 0, f"{path}.pair_weight", f"must be > 0, got {self.pair_weight}")
        share = self.shuffled_share
        check(0.0 <= share <= 1.0, f"{path}.shuffled_share", f"must be in [0, 1], got {share}")
        check(self.shuffled_share == 0 or self.architecture == "lstm", f"{path}.shuffled_share",
              "shuffled copies teach word order: an lstm option (a bag of words has no order)")  # fmt: skip
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
class FinetuneModelConfig:
    """``finetune.per_model.<model>``: one model's fine-tune values (its finetune stage depends on these alone)."""

    learning_rate: float
    # > 0: a target word (LSTM) or n-gram (bag of words) missing from the source vocabulary gets its
    # own word vector or input column (weights starting at zero) when it occurs in at least this many
    # of the target's training reviews; 0 keeps the source vocabulary
    new_words_min_count: int
    # > 1: fine-tune this many times (seeds base.seed, base.seed + 1, ...) from the same source
    # weights and keep one model whose weights are their mean (a "weight soup"); 1: one fine-tune
    soup: int

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.learning_rate > 0, f"{path}.learning_rate", f"must be > 0, got {self.learning_rate}")
        check(self.new_words_min_count >= 0, f"{path}.new_words_min_count",
              f"must be >= 0 (0: keep the source vocabulary), got {self.new_words_min_count}")  # fmt: skip
        check(self.soup >= 1, f"{path}.soup", f"must be >= 1 (1: one fine-tune), got {self.soup}")


@dataclass(frozen=True)
class FinetuneConfig:
    """``finetune:``: which datasets start from which, and how they are refined."""

    source: str
    targets: list[str]
    per_model: dict[str, FinetuneModelConfig]
    epochs: int = 8
    early_stopping_patience: int | None = 1

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.source not in self.targets, f"{path}.targets", f"must not contain the source {self.source!r}")
        check(self.epochs >= 1, f"{path}.epochs", f"must be >= 1, got {self.epochs}")

    def model(self, name: str) -> FinetuneModelConfig:
        """``finetune.per_model.<name>``."""
        check(name in self.per_model, f"finetune.per_model.{name}", "missing: every model needs its block")
        return self.per_model[name]


@dataclass(frozen=True)
class ContrastConfig:
    """``contrast:``: the minimal-edit pairs every model is scored on (the contrast stage)."""

    pairs: PairsConfig
    resamples: int = 1000  # bootstrap resamples of the pairs for the 95% interval

    def validate(self, path: str) -> None:
        """Enough resamples for a 95% interval."""
        check(self.resamples >= 100, f"{path}.resamples", f"must be >= 100, got {self.resamples}")


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
    n_reviews: int = 100
    pool_size: int = 300

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(self.n_reviews >= 1, f"{path}.n_reviews", f"must be >= 1, got {self.n_reviews}")
        check(self.pool_size >= self.n_reviews, f"{path}.pool_size", "must be >= n_reviews")


ExplainMethod = Literal["lime", "shap", "integrated_gradients"]
EXPLAIN_METHODS: tuple[ExplainMethod, ...] = ("lime", "shap", "integrated_gradients")
EXPLAIN_METHOD_NAMES = {"lime": "LIME", "shap": "SHAP", "integrated_gradients": "integrated gradients"}


@dataclass(frozen=True)
class ExplainConfig:
    """``explain:`` params."""

    methods: tuple[ExplainMethod, ...] = ("lime", "integrated_gradients")  # the first makes the submodular pick
    num_features: int = 10
    num_samples: int = 5000  # LIME
    kernel_width: float = 25.0  # LIME
    shap_max_evals: int = 1000  # SHAP: model calls per review
    gradient_steps: int = 32  # integrated gradients: points on the path
    sp_budget: int = 3
    faithfulness_k: tuple[int, ...] = (1, 2, 3, 5, 10)  # the k bins of the deletion metrics

    def validate(self, path: str) -> None:
        """Impossible values fail with the key path."""
        check(bool(self.methods), f"{path}.methods", f"empty: give at least one of {', '.join(EXPLAIN_METHODS)}")
        for i, method in enumerate(self.methods):
            check(method not in self.methods[:i], f"{path}.methods[{i}]", f"{method!r} is listed twice")
        check(self.shap_max_evals >= 10, f"{path}.shap_max_evals", f"must be >= 10, got {self.shap_max_evals}")
        check(self.gradient_steps >= 1, f"{path}.gradient_steps", f"must be >= 1, got {self.gradient_steps}")
        check(self.num_features >= 1, f"{path}.num_features", f"must be >= 1, got {self.num_features}")
        check(self.num_samples >= 10, f"{path}.num_samples", f"must be >= 10, got {self.num_samples}")
        check(self.kernel_width > 0, f"{path}.kernel_width", f"must be > 0, got {self.kernel_width}")
        check(self.sp_budget >= 1, f"{path}.sp_budget", f"must be >= 1, got {self.sp_budget}")
        check(bool(self.faithfulness_k), f"{path}.faithfulness_k", "empty: give at least one k")
        for i, k in enumerate(self.faithfulness_k):
            check(k >= 1, f"{path}.faithfulness_k[{i}]", f"must be >= 1, got {k}")


@dataclass(frozen=True)
class CorrelateConfig:
    """``correlate:`` params."""

    max_tokens: int = 2000  # words whose correlation with the label is measured (the most frequent)
    skip_top: int = 20  # after leaving out this many most frequent ones
    top_n: int = 50  # words in the chart
    # suspicious: a word LIME ranks among its top quarter that barely correlates with the label
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
        FeaturizerConfig(kind="bow", max_tokens=self.max_tokens, min_count=1, skip_top=self.skip_top).validate(path)


SCORECARD_GROUPS = ("accuracy", "robustness", "explanation")  # the scorecard's groups of measures


@dataclass(frozen=True)
class ReportConfig:
    """``report:``: how the scorecard's verdict weighs its measures."""

    # the groups, most important first: the first group in which a model is ahead decides
    priority: tuple[str, ...] = SCORECARD_GROUPS
    resamples: int = 1000  # bootstrap resamples for the 95% interval of each difference

    def validate(self, path: str) -> None:
        """Every group once, and enough resamples for a 95% interval."""
        check(
            sorted(self.priority) == sorted(SCORECARD_GROUPS),
            f"{path}.priority",
            f"must list each of {', '.join(SCORECARD_GROUPS)} once, got {list(self.priority)}",
        )
        check(self.resamples >= 100, f"{path}.resamples", f"must be >= 100, got {self.resamples}")


@dataclass(frozen=True)
class RegisterConfig:
    """``track.register``: which model run the registry's ``champion`` alias points at."""

    metric: str = "accuracy"  # a test metric of evaluate (accuracy, roc_auc, f1, log_loss, ...)
    direction: Literal["max", "min"] = "max"


@dataclass(frozen=True)
class TrackConfig:
    """``track:`` params: MLflow experiment names and the Model Registry."""

    register: RegisterConfig | None  # null: register nothing
    experiment_prefix: str = "sentiment"  # experiments are <prefix>-<dataset>


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

    study: str  # workers naming the same study in the same storage share its trials
    metric: str  # <stage>:<key of its metrics file>, e.g. evaluate@imdb-mlp:accuracy
    n_trials: int
    params: dict[str, SearchSpace]  # dotted param name -> its search space
    direction: Literal["maximize", "minimize"] = "maximize"

    def validate(self, path: str) -> None:
        """Names DVC and Optuna accept; at least one param and one trial."""
        check(bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.study)), f"{path}.study",
              f"letters, digits, '.', '_' and '-' only (it names DVC experiments), got {self.study!r}")  # fmt: skip
        check(self.metric.count(":") == 1 and all(self.metric.split(":")), f"{path}.metric",
              f"expected <stage>:<metric>, e.g. evaluate@imdb-mlp:accuracy, got {self.metric!r}")  # fmt: skip
        check(bool(self.params), f"{path}.params", "empty: name at least one param to search")
        check(self.n_trials >= 1, f"{path}.n_trials", f"must be >= 1, got {self.n_trials}")


@dataclass(frozen=True)
class Params:
    """The whole ``params.yaml``, parsed and checked once by :func:`stages.common.params.load_params`."""

    seed: int  # base.seed: the one value every random choice derives from
    datasets: dict[str, DatasetConfig]
    prepare: PrepareConfig
    models: tuple[str, ...]
    from_scratch: tuple[str, ...]
    featurizers: dict[str, FeaturizerConfig]  # vectorize.<model>, with vectorize.exclude_terms
    model_configs: dict[str, ModelConfig]  # the <model> sections
    finetune: FinetuneConfig | None
    evaluate: EvaluateConfig
    contrast: ContrastConfig
    behave: BehaveConfig
    select: SelectConfig
    explain: ExplainConfig
    correlate: CorrelateConfig
    report: ReportConfig
    track: TrackConfig
    sweep: SweepConfig | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)  # the file as read: MLflow logs it, a sweep edits it

    def model(self, name: str) -> ModelConfig:
        """The ``<name>`` model section."""
        check(name in self.model_configs, name, f"not a model in models ({', '.join(self.models)})")
        return self.model_configs[name]

    def featurizer(self, name: str) -> FeaturizerConfig:
        """``vectorize.<name>`` (with ``vectorize.exclude_terms``)."""
        check(name in self.featurizers, f"vectorize.{name}", f"not a model in models ({', '.join(self.models)})")
        return self.featurizers[name]

    def dataset(self, name: str) -> DatasetConfig:
        """``datasets.<name>``."""
        check(name in self.datasets, f"datasets.{name}", f"not a dataset ({', '.join(self.datasets)})")
        return self.datasets[name]

    def experiment(self, dataset: str) -> str:
        """The MLflow experiment of a dataset's runs: ``<track.experiment_prefix>-<dataset>``."""
        return f"{self.track.experiment_prefix}-{dataset}"


ARCHITECTURE_KIND = {"mlp": "bow", "lstm": "seq"}  # the features each architecture reads
EXCLUDE_TERMS = "exclude_terms"  # vectorize.exclude_terms: words every model's featurizer leaves out


def _featurizer(vectorize: Mapping[str, Any], model: str) -> FeaturizerConfig:
    """``vectorize.<model>`` with the shared ``vectorize.exclude_terms`` (lower-cased), checked."""
    key = f"vectorize.{model}"
    raw = dict(vectorize[model])
    if EXCLUDE_TERMS in raw:
        raise ParamsError(f"{key}.{EXCLUDE_TERMS}: set vectorize.{EXCLUDE_TERMS} (every model leaves them out)")
    terms = vectorize.get(EXCLUDE_TERMS) or []
    if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
        raise ParamsError(f"vectorize.{EXCLUDE_TERMS}: expected a list of words, got {terms!r}")
    raw[EXCLUDE_TERMS] = sorted({t.strip().lower() for t in terms})
    try:
        return parse(FeaturizerConfig, raw, key)
    except ParamsError as exc:
        raise ParamsError(str(exc).replace(f"{key}.{EXCLUDE_TERMS}", f"vectorize.{EXCLUDE_TERMS}")) from None


def build_params(raw: Mapping[str, Any]) -> Params:
    """Every section of a params mapping parsed with its class: the first error names its key path.

    ``raw`` has passed the layout check (:func:`stages.common.params.loading.check_layout`).
    """
    base = parse(_Base, raw["base"], "base")
    models = tuple(raw["models"])
    unknown = sorted(set(raw["vectorize"]) - set(models) - {EXCLUDE_TERMS})
    if unknown:
        raise ParamsError(f"vectorize.{unknown[0]}: not a model in models")
    featurizers = {name: _featurizer(raw["vectorize"], name) for name in models}
    model_configs = {name: parse(ModelConfig, raw[name], name) for name in models}
    for name, cfg in model_configs.items():
        kind = ARCHITECTURE_KIND[cfg.architecture]
        check(featurizers[name].kind == kind, f"vectorize.{name}.kind",
              f"an {cfg.architecture} needs '{kind}' features, got '{featurizers[name].kind}'")  # fmt: skip
    finetune = parse(FinetuneConfig, raw["finetune"], "finetune") if "finetune" in raw else None
    if finetune is not None:
        for name in models:
            check(name in finetune.per_model, f"finetune.per_model.{name}",
                  f"model {name!r} is listed in models but has no block")  # fmt: skip
        for name in finetune.per_model:
            check(name in models, f"finetune.per_model.{name}", f"not a model in models ({', '.join(models)})")
    return Params(
        seed=base.seed,
        datasets={name: parse(DatasetConfig, d, f"datasets.{name}") for name, d in raw["datasets"].items()},
        prepare=parse(PrepareConfig, raw["prepare"], "prepare"),
        models=models,
        from_scratch=tuple(raw["from_scratch"]),
        featurizers=featurizers,
        model_configs=model_configs,
        finetune=finetune,
        evaluate=parse(EvaluateConfig, raw["evaluate"], "evaluate"),
        contrast=parse(ContrastConfig, raw["contrast"], "contrast"),
        behave=parse(BehaveConfig, raw["behave"], "behave"),
        select=parse(SelectConfig, raw["select"], "select"),
        explain=parse(ExplainConfig, raw["explain"], "explain"),
        correlate=parse(CorrelateConfig, raw["correlate"], "correlate"),
        report=parse(ReportConfig, raw["report"], "report"),
        track=parse(TrackConfig, raw["track"], "track"),
        sweep=parse(SweepConfig, raw["sweep"], "sweep") if "sweep" in raw else None,
        raw=raw,
    )


@dataclass(frozen=True)
class _Base:
    """``base:``."""

    seed: int

    def validate(self, path: str) -> None:
        """The seed is a non-negative integer."""
        check(self.seed >= 0, f"{path}.seed", f"expected a non-negative integer, got {self.seed}")
