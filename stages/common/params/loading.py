"""Reading ``params.yaml``: the file's layout checked, then every section parsed into :class:`Params`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from stages.common.errors import ParamsError
from stages.common.params.schema import Params, build_params

DEFAULT_PARAMS = Path("params.yaml")

SECTIONS = (
    "base",
    "datasets",
    "prepare",
    "models",
    "from_scratch",
    "vectorize",
    "finetune",
    "evaluate",
    "contrast",
    "behave",
    "select",
    "explain",
    "correlate",
    "report",
    "track",
    "sweep",
)
OPTIONAL = ("finetune", "sweep")


def load_params(path: Path | str = DEFAULT_PARAMS) -> Params:
    """The whole params file, every section checked (errors name the file or the key path)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ParamsError(f"{path}: params file not found") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return parse_params(data)


def parse_params(raw: Mapping[str, Any]) -> Params:
    """A params mapping checked (layout, then every section) into :class:`Params`."""
    check_layout(raw)
    return build_params(raw)


def check_layout(params: Mapping[str, Any]) -> None:
    """Top-level keys: the known sections plus one section per model named in ``models``.

    A misspelt section (``mlpp:``), a missing one or a model without its sections fails at
    once instead of being silently ignored.
    """
    models = params.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ParamsError(f"models: expected a list of model names, got {models!r}")
    for name in models:
        if name in SECTIONS:
            raise ParamsError(f"models: {name!r} is a reserved section name")
        if not isinstance(params.get(name), Mapping):
            raise ParamsError(f"{name}: model {name!r} is listed in models but has no section")
        if not isinstance((params.get("vectorize") or {}).get(name), Mapping):
            raise ParamsError(f"vectorize.{name}: model {name!r} is listed in models but has no featurizer")
    unknown = sorted(set(params) - set(SECTIONS) - set(models))
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown section (known: {', '.join([*SECTIONS, *models])})")
    datasets = params.get("datasets")
    if not isinstance(datasets, Mapping) or not datasets:
        raise ParamsError("datasets: expected at least one dataset")
    missing = [s for s in SECTIONS if s not in params and s not in OPTIONAL]
    if missing:
        raise ParamsError(f"{missing[0]}: section missing")
    _check_roles(params, list(datasets))


def _check_roles(params: Mapping[str, Any], datasets: list[str]) -> None:
    """Each dataset is trained either from scratch or fine-tuned from a from-scratch source."""
    scratch = params["from_scratch"]
    finetune = params.get("finetune") or {}
    targets = finetune.get("targets", []) if isinstance(finetune, Mapping) else []
    for key, names in (("from_scratch", scratch), ("finetune.targets", targets)):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ParamsError(f"{key}: expected a list of dataset names, got {names!r}")
        for name in names:
            if name not in datasets:
                raise ParamsError(f"{key}: {name!r} is not in datasets ({', '.join(datasets)})")
    for name in datasets:
        roles = scratch.count(name) + targets.count(name)
        if roles != 1:
            raise ParamsError(
                f"from_scratch: dataset {name!r} must be in exactly one of from_scratch and finetune.targets"
            )
    if targets and finetune.get("source") not in scratch:
        raise ParamsError(f"finetune.source: must be one of from_scratch ({', '.join(scratch)})")
