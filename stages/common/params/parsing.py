"""Mappings into typed, validated dataclasses: the generic part of reading ``params.yaml``.

:func:`parse` turns one section into a frozen dataclass, rejecting unknown keys and wrong
types; every error names the key path (``lstm.units``), so a typo or an impossible value
fails before any work, clearly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

from stages.common.errors import ParamsError

T = TypeVar("T")


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
