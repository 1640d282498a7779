"""Loading ``params.yaml`` into typed, validated configs.

Each stage owns one section of ``params.yaml`` and turns it into a frozen dataclass with
:func:`parse`. Validation happens before any work and every error names the key path
(``lstm.units``) so a typo or an impossible value fails fast and clearly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from stages.common.errors import ParamsError

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read the whole params file as a dict, every section checked (errors name the file or key path)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ParamsError(f"{path}: params file not found") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    check_layout(data)
    from stages.common.config import check_params  # the configs use this module's parse()

    check_params(data)
    return data


# finetune keys that hold one value per model (finetune.<key>.<model>; dvc.yaml makes each finetune
# stage depend on its own model's): what one value is, and an example for error messages
FINETUNE_PER_MODEL: dict[str, tuple[str, Any]] = {
    "learning_rate": ("rate", 0.002),
    "new_words_min_count": ("threshold", 0),
    "soup": ("soup size", 1),
}

SECTIONS = (
    "base",
    "datasets",
    "prepare",
    "models",
    "from_scratch",
    "vectorize",
    "finetune",
    "behave",
    "select",
    "explain",
    "correlate",
    "evaluate",
    "track",
    "sweep",
)


def check_layout(params: Mapping[str, Any]) -> None:
    """Top-level keys: the known sections plus one section per model named in ``models``.

    Every stage runs this before any work, so a misspelt section (``mlpp:``) or a model
    without its sections fails at once instead of being silently ignored.
    """
    models = params.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ParamsError(f"models: expected a list of model names, got {models!r}")
    for name in models:
        if name in SECTIONS:
            raise ParamsError(f"models: {name!r} is a reserved section name")
        if not isinstance(params.get(name), Mapping):
            raise ParamsError(f"{name}: model {name!r} is listed in models but has no section")
        if not isinstance((params.get("vectorize") or {}).get(name), Mapping):
            raise ParamsError(f"vectorize.{name}: model {name!r} is listed in models but has no featurizer")
    finetune = params.get("finetune")
    # dvc.yaml declares finetune.<key>.<model>: exactly one value per model
    for key, (what, example) in FINETUNE_PER_MODEL.items():
        if not isinstance(finetune, Mapping) or key not in finetune:
            continue
        values = finetune[key]
        if not isinstance(values, Mapping):
            raise ParamsError(f"finetune.{key}: expected one {what} per model (mlp: {example}, ...), got {values!r}")
        for name in models:
            if name not in values:
                raise ParamsError(f"finetune.{key}.{name}: model {name!r} is listed in models but has no {what}")
        for name in values:
            if name not in models:
                raise ParamsError(f"finetune.{key}.{name}: not a model in models ({', '.join(models)})")
    unknown = sorted(set(params) - set(SECTIONS) - set(models))
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown section (known: {', '.join([*SECTIONS, *models])})")
    datasets = params.get("datasets", {})
    if not isinstance(datasets, Mapping) or not datasets:
        raise ParamsError("datasets: expected at least one dataset")
    _check_roles(params, list(datasets))


def _check_roles(params: Mapping[str, Any], datasets: list[str]) -> None:
    """Each dataset is trained either from scratch or fine-tuned from a from-scratch source."""
    scratch = params.get("from_scratch", [])
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


def section(params: Mapping[str, Any], dotted: str) -> Any:
    """Return ``params[a][b]`` for ``dotted == "a.b"``, naming the missing key if absent."""
    node: Any = params
    walked: list[str] = []
    for part in dotted.split("."):
        walked.append(part)
        if not isinstance(node, Mapping) or part not in node:
            raise ParamsError(f"params: missing key '{'.'.join(walked)}'")
        node = node[part]
    return node


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested params to dotted names (``{"mlp": {"units": 16}}`` → ``mlp.units``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ParamsError(f"{path}: {value!r} is not one of {allowed}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{path}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ParamsError(f"{path}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1] if args else Any, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{path}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{path}: unsupported type {_type_name(tp)}")  # pragma: no cover


def parse(cls: type[T], data: Any, path: str) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types.

    Fields without a default are required. After construction the dataclass's own
    ``validate()`` (if any) checks cross-field constraints such as ``skip_top < max_tokens``.
    """
    if not isinstance(data, Mapping):
        raise ParamsError(f"{path}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ParamsError(f"{path}.{unknown[0]}: unknown key (known keys: {known})")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key_path = f"{path}.{name}"
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], key_path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{key_path}: required key is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(path)
    return obj


def check(condition: bool, path: str, message: str) -> None:
    """Raise :class:`ParamsError` for ``path`` unless ``condition`` holds."""
    if not condition:
        raise ParamsError(f"{path}: {message}")


def seed_from(params: Mapping[str, Any]) -> int:
    """``base.seed``: the one value every random choice in the pipeline derives from."""
    seed = section(params, "base.seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParamsError(f"base.seed: expected a non-negative integer, got {seed!r}")
    return seed
