"""Validation study: the evidence behind ``params.yaml``'s model defaults, reproducible.

One command (``make tune``), after ``dvc repro`` has made the features and the IMDB models:
each candidate is the default model section (or ``finetune:`` section) with a few values
changed; it is trained exactly as the train / finetune stage would train it (same code,
same seed, same early stopping) and scored on the validation rows that training carves
from the *training* split. The test split is never scored here (that is ``make bench``'s
job, once, for the chosen defaults). Writes a Markdown table to ``--out``
(``reports/tuning.md``) and prints it; docs/decisions.md quotes it.

``--folds K`` (fine-tune studies; ``make tune-cv``): a few hundred validation reviews decide
little on Yelp, so each candidate is instead fine-tuned K times, once per fold of a seeded,
stratified K-fold split of the target's *training* split, and scored on the pooled
out-of-fold predictions (every training review predicted once, by a model that did not see
it); the benchmark's TF-IDF + logistic regression baseline is fitted on the same folds
beside it. Still never the test split.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from bench.benchmark import linear_baseline, machine, scores
from stages.common.config import FinetuneConfig, ModelConfig
from stages.common.io import features_from_npz, write_text
from stages.common.layout import dvc_paths
from stages.common.params import load_params, parse, section, seed_from
from stages.common.persistence import load_model
from stages.common.prediction import predict_proba
from stages.common.store import load_featurizer, load_split, read_table
from stages.common.training import TrainResult, train_model, validation_indices
from stages.finetune import finetune

log = logging.getLogger("bench.tune")

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")  # what bench.benchmark.scores returns, in order


class PipelineDirs(NamedTuple):
    """Where the pipeline keeps what a study reads: dvc.yaml's ``vars.paths``, declared there only."""

    prepared: Path
    features: Path
    models: Path

    @classmethod
    def from_dvc_yaml(cls, dvc_yaml: Path = Path("dvc.yaml")) -> PipelineDirs:
        paths = dvc_paths(dvc_yaml)
        return cls(Path(paths["prepared"]), Path(paths["features"]), Path(paths["models"]))


@dataclass(frozen=True)
class Study:
    """Candidates for one dataset × model; ``finetune`` studies start from the source's trained model."""

    dataset: str
    model: str
    finetune: bool
    candidates: dict[str, dict[str, Any]]  # label → values that differ from params.yaml ({} = the default)


# The choices docs/decisions.md stands on: the default next to the
# alternatives it was preferred to. Keys are fields of the model section (or, for finetune
# studies, of ``finetune:`` where they exist there).
STUDIES: dict[str, Study] = {
    "imdb-mlp": Study(
        "imdb",
        "mlp",
        False,
        {"default": {}, "two hidden layers of 16 (the original recipe's shape)": {"hidden_units": [16, 16]}},
    ),
    "imdb-lstm": Study(
        "imdb",
        "lstm",
        False,
        {
            "default": {},
            "the LSTM's last state instead of the mean over the words": {"pooling": "last"},
            "input dropout 0.5": {"dropout": 0.5},
            "64 units per direction": {"units": 64},
            "learning rate 5e-4": {"learning_rate": 0.0005},
        },
    ),
    "yelp-mlp": Study(
        "yelp",
        "mlp",
        True,
        {
            "default": {},
            "learning rate 5e-4": {"learning_rate": 0.0005},
            "learning rate 1e-3": {"learning_rate": 0.001},
            "learning rate 4e-3": {"learning_rate": 0.004},
            "one fine-tune, no weight soup": {"soup": 1},
            "weight soup of 5 seeded fine-tunes": {"soup": 5},
            "IMDB's terms only": {"new_words_min_count": 0},
            "Yelp terms in >= 10 training reviews added": {"new_words_min_count": 10},
        },
    ),
    "yelp-lstm": Study(
        "yelp",
        "lstm",
        True,
        {
            "default": {},
            "one fine-tune, no weight soup": {"soup": 1},
            "one fine-tune, Yelp words in >= 10 training reviews added": {"soup": 1, "new_words_min_count": 10},
            "one fine-tune, learning rate 1e-3": {"soup": 1, "learning_rate": 0.001},
            "one fine-tune, learning rate 4e-3": {"soup": 1, "learning_rate": 0.004},
        },
    ),
}


def select(names: Sequence[str], labels: Sequence[str] | None = None) -> dict[str, Study]:
    """The studies ``names``, each keeping only the candidates ``labels`` (all when None).

    Lets one row be re-measured without the whole study (``--candidate default``); a label that
    none of the chosen studies has fails naming it and the labels there are.
    """
    chosen = {name: STUDIES[name] for name in names}
    if labels is None:
        return chosen
    known = {label for study in chosen.values() for label in study.candidates}
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise ValueError(
            f"--candidate {unknown[0]!r}: not a candidate of {', '.join(chosen)} (they are: "
            + "; ".join(sorted(known))
            + ")"
        )
    return {
        name: dataclasses.replace(study, candidates={k: v for k, v in study.candidates.items() if k in labels})
        for name, study in chosen.items()
    }


def with_overrides(cfg: Any, overrides: dict[str, Any], path: str) -> Any:
    """``cfg`` (a frozen dataclass) with ``overrides`` applied; an unknown key fails naming it."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{path}.{unknown[0]}: not a field of {type(cfg).__name__}")
    return dataclasses.replace(cfg, **overrides)


def finetune_candidate(base: FinetuneConfig, overrides: dict[str, Any], model: str) -> FinetuneConfig:
    """The finetune config one candidate trains ``model`` with, checked as the stage checks its params.

    A per-model value the candidate sets (``learning_rate``, ``new_words_min_count``, ``soup``)
    stands in for ``finetune.<key>.<model>``; the result is validated (so an
    impossible candidate, or a base without per-model rates, fails naming its key) and resolved to
    that model's values.
    """
    overrides = {
        key: {**getattr(base, key), model: value} if isinstance(getattr(base, key, None), dict) else value
        for key, value in overrides.items()
    }
    cfg = with_overrides(base, overrides, "finetune")
    cfg.validate("finetune")
    return cfg.for_model(model)


def split_overrides(overrides: dict[str, Any], finetune: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``finetune:`` values, model-section values) of one candidate.

    In a finetune study a key that ``finetune:`` has (e.g. ``soup``) is the
    finetune stage's value, which is what that stage trains with; otherwise every key is
    the model section's.
    """
    if not finetune:
        return {}, dict(overrides)
    ft_fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    return (
        {k: v for k, v in overrides.items() if k in ft_fields},
        {k: v for k, v in overrides.items() if k not in ft_fields},
    )


def validation_report(result: TrainResult, cfg: ModelConfig, X: Any, y: np.ndarray, seed: int, seconds: float) -> dict:
    """Scores of a trained candidate on the validation rows its training carved (the same seeded split)."""
    _, val_idx = validation_indices(y, cfg.validation_split, seed)
    return {
        **dict(zip(METRICS, map(float, scores(y[val_idx], predict_proba(result.model, X[val_idx]))), strict=True)),
        "validation_rows": len(val_idx),
        "epochs_run": result.summary["epochs_run"],
        "seconds": seconds,
    }


def score_candidate(cfg: ModelConfig, X: Any, y: np.ndarray, *, input_dim: int, seed: int) -> dict[str, Any]:
    """Train from scratch as the train stage does, then score the validation rows. Pure (no files)."""
    start = time.perf_counter()
    result = train_model(cfg, X, y, input_dim=input_dim, seed=seed)
    return validation_report(result, cfg, X, y, seed, time.perf_counter() - start)


def study_inputs(study: Study, params: dict[str, Any], dirs: PipelineDirs) -> list[Path]:
    """The pipeline outputs a study reads (``make run`` makes them)."""
    if study.finetune:
        source = params["finetune"]["source"]
        return [
            dirs.prepared / f"{study.dataset}.parquet",
            dirs.features / source / study.model,
            dirs.models / source / f"{study.model}.keras",
        ]
    return [dirs.features / study.dataset / study.model]


def run_study(
    name: str, study: Study, params: dict[str, Any], dirs: PipelineDirs, train_seed: int | None = None
) -> list[dict[str, Any]]:
    """Every candidate of one study on the pipeline's own features (and source model), each loaded once.

    A fine-tune is scored here as one fine-tune (``soup: 1``), the soup's first member: a weight
    soup's other members carve other validation rows and train on these, so a soup has no
    held-out rows here. Candidates that differ only in ``soup`` are left to ``--folds``, which
    scores rows that no member saw.
    """
    seed = seed_from(params) if train_seed is None else train_seed
    base = parse(ModelConfig, section(params, study.model), study.model)
    finetune_base = parse(FinetuneConfig, section(params, "finetune"), "finetune")
    if study.finetune:
        table = read_table(dirs.prepared / f"{study.dataset}.parquet")
        featurizer = load_featurizer(dirs.features / finetune_base.source / study.model)
    else:
        features = dirs.features / study.dataset / study.model
        featurizer = load_featurizer(features)
        train = load_split(features, "train")
    rows = []
    for label, overrides in study.candidates.items():
        ft_over, model_over = split_overrides(overrides, finetune=study.finetune)
        cfg = with_overrides(base, model_over, study.model)
        if study.finetune:
            if "soup" in ft_over:
                log.info("%s / %s: a soup is scored by --folds only (no held-out validation rows)", name, label)
                continue
            ft = dataclasses.replace(finetune_candidate(finetune_base, ft_over, study.model), soup=1)
            source = load_model(dirs.models / ft.source / f"{study.model}.keras")  # fresh weights per candidate
            start = time.perf_counter()
            _, splits, result = finetune(table, featurizer, source, cfg, ft, seed)
            X, y = features_from_npz(splits["train"]), splits["train"]["y"].astype(np.int64)
            # finetune trains with the finetune section's values: score with the config it used
            measured = validation_report(result, cfg, X, y, seed, time.perf_counter() - start)
        else:
            measured = score_candidate(cfg, train.X, train.y, input_dim=featurizer.input_dim, seed=seed)
        log.info("%s / %s: %s", name, label, measured)
        rows.append({"study": name, "candidate": label, "overrides": overrides, **measured})
    return rows


def fold_tables(table: pd.DataFrame, folds: int, seed: int) -> list[pd.DataFrame]:
    """The training split as ``folds`` tables: a seeded, stratified fold as ``test``, the rest ``train``.

    The table's own test rows are dropped first, so nothing scored here comes from them.
    """
    train = table[table["split"] == "train"].reset_index(drop=True)
    if folds < 2:
        raise ValueError(f"--folds: must be >= 2, got {folds}")
    if train["label"].value_counts().min() < folds:
        raise ValueError(f"--folds {folds}: a class has fewer training reviews than folds")
    parts = []
    kfold = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for _, held_out in kfold.split(train["text"], train["label"]):
        part = train.copy()
        part["split"] = "train"
        part.loc[held_out, "split"] = "test"
        parts.append(part)
    return parts


def pooled_report(y: np.ndarray, p: np.ndarray, epochs: list[int], seconds: float) -> dict[str, Any]:
    """Scores of out-of-fold predictions pooled over the folds (every training review once)."""
    return {
        **dict(zip(METRICS, map(float, scores(y, p)), strict=True)),
        "validation_rows": len(y),
        "epochs_run": "/".join(map(str, epochs)) or "—",
        "seconds": seconds,
    }


def cross_validate(
    name: str, study: Study, params: dict[str, Any], dirs: PipelineDirs, folds: int, train_seed: int | None = None
) -> list[dict[str, Any]]:
    """A fine-tune study scored by K-fold cross-validation on the target's training split, baseline first.

    Each candidate is fine-tuned per fold by the finetune stage's own function, from a fresh copy
    of the source's trained model, on the fold's training rows (early stopping carves its
    validation rows from them, as in the pipeline) and predicts the held-out fold. The folds
    come from ``base.seed``; ``train_seed`` (default ``base.seed``) seeds the fine-tunes, so the
    same study at two training seeds says how far a candidate moves by chance alone.
    """
    if not study.finetune:
        raise ValueError(f"--folds: study {name!r} trains from scratch; cross-validation is for fine-tune studies")
    seed = seed_from(params)
    train_seed = seed if train_seed is None else train_seed
    base = parse(ModelConfig, section(params, study.model), study.model)
    finetune_base = parse(FinetuneConfig, section(params, "finetune"), "finetune")
    table = read_table(dirs.prepared / f"{study.dataset}.parquet")
    featurizer = load_featurizer(dirs.features / finetune_base.source / study.model)
    parts = fold_tables(table, folds, seed)
    ids = pd.concat([part.loc[part["split"] == "test", ["id", "label"]] for part in parts])
    y = ids["label"].to_numpy(np.int64)
    start = time.perf_counter()
    baseline = pd.concat([linear_baseline(part)[2] for part in parts])
    rows = [
        {
            "study": name,
            "candidate": "TF-IDF + logistic regression (the benchmark's baseline)",
            "overrides": None,  # not a params.yaml model
            **pooled_report(y, baseline.loc[ids["id"]].to_numpy(), [], time.perf_counter() - start),
        }
    ]
    for label, overrides in study.candidates.items():
        ft_over, model_over = split_overrides(overrides, finetune=True)
        cfg = with_overrides(base, model_over, study.model)
        ft = finetune_candidate(finetune_base, ft_over, study.model)
        start, predicted, epochs = time.perf_counter(), [], []
        for part in parts:
            source = load_model(dirs.models / ft.source / f"{study.model}.keras")
            _, splits, result = finetune(part, featurizer, source, cfg, ft, train_seed)
            held_out = splits["test"]
            predicted.append(pd.Series(predict_proba(result.model, features_from_npz(held_out)), index=held_out["id"]))
            epochs.append(int(result.summary["best_epoch"]))
        p = pd.concat(predicted).loc[ids["id"]].to_numpy()
        measured = pooled_report(y, p, epochs, time.perf_counter() - start)
        log.info("%s / %s (%d folds): %s", name, label, folds, measured)
        rows.append({"study": name, "candidate": label, "overrides": overrides, **measured})
    return rows


def markdown(rows: list[dict[str, Any]], machine: str, folds: int | None = None, command: str | None = None) -> str:
    """The study as a Markdown table (one row per candidate), headed by the ``command`` that made it.

    ``command`` defaults to the Makefile target (``make tune``, or ``make tune-cv`` with ``folds``);
    :func:`main` passes its own command line, so a table made with ``--study``/``--candidate`` says so.
    """
    command = command or ("make tune" if folds is None else "make tune-cv")
    lines = [
        "# Validation study" + ("" if folds is None else f": {folds}-fold cross-validation"),
        "",
        f"Produced by `{command}` ({machine}). Each candidate is trained as the train/finetune stage "
        "trains it and scored on the validation rows carved from the training split; never on a test split."
        if folds is None
        else f"Produced by `{command}` ({machine}). Each candidate is fine-tuned as the finetune stage "
        f"fine-tunes it, once per fold of a seeded, stratified {folds}-fold split of the target's training "
        "split, and scored on the pooled out-of-fold predictions (every training review once); the baseline "
        "is fitted on the same folds; never on a test split. Epochs: the best epoch of each fold.",
        "",
        f"| study | candidate | changed values | {'validation' if folds is None else 'out-of-fold'} rows "
        "| accuracy | balanced accuracy | ROC AUC | epochs | time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        changed = (
            "—"
            if r["overrides"] is None
            else ", ".join(f"`{k}: {v}`" for k, v in r["overrides"].items()) or "params.yaml"
        )
        lines.append(
            f"| {r['study']} | {r['candidate']} | {changed} | {r['validation_rows']} | {r['accuracy']:.4f} | "
            f"{r['balanced_accuracy']:.4f} | {r['roc_auc']:.4f} | {r['epochs_run']} | {r['seconds']:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m bench.tune [--study imdb-lstm ...] [--candidate default ...] [--out reports/tuning.md]``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", action="append", choices=sorted(STUDIES), help="run only these (default: all)")
    p.add_argument("--out", type=Path, help="default: reports/tuning.md (reports/tuning-cv.md with --folds)")
    p.add_argument("--folds", type=int, help="cross-validate fine-tune studies on K folds of the training split")
    p.add_argument("--candidate", action="append", help="run only the candidates with this label (default: all)")
    p.add_argument("--train-seed", type=int, help="seed of the training runs (default base.seed; folds keep it)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    params = load_params(Path("params.yaml"))
    dirs = PipelineDirs.from_dvc_yaml()
    names = args.study or [n for n, s in STUDIES.items() if args.folds is None or s.finetune]
    if args.folds is not None:
        scratch = [n for n in names if not STUDIES[n].finetune]
        if scratch:
            raise SystemExit(f"bench.tune: --folds: study {scratch[0]!r} trains from scratch (fine-tune studies only)")
    try:
        studies = select(names, args.candidate)
    except ValueError as err:
        raise SystemExit(f"bench.tune: {err}") from None
    missing = [str(p) for name in names for p in study_inputs(STUDIES[name], params, dirs) if not p.exists()]
    if missing:
        raise SystemExit(f"bench.tune: {missing[0]} not found; run the pipeline first (make run)")
    rows: list[dict[str, Any]] = []
    for name, study in studies.items():
        if args.folds is None:
            rows += run_study(name, study, params, dirs, args.train_seed)
        else:
            rows += cross_validate(name, study, params, dirs, args.folds, args.train_seed)
    command = shlex.join(["python", "-m", "bench.tune", *(sys.argv[1:] if argv is None else argv)])
    text = markdown(rows, machine(), args.folds, command)
    write_text(args.out or Path("reports/tuning.md" if args.folds is None else "reports/tuning-cv.md"), text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
