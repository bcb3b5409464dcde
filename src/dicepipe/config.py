"""`params.yaml` sections as frozen dataclasses, validated on load.

Every stage reads its own section through `load_params(SectionParams, path)`, so Prefect
parameters and DVC params never drift apart. An unknown key or a bad value raises
`ConfigError` naming the section, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from dicepipe.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A params.yaml section that does not match its schema."""


def bounded(default: Any, *, lo: float | None = None, hi: float | None = None) -> Any:
    """A dataclass field whose numeric value must lie in [lo, hi]."""
    return dataclasses.field(default=default, metadata={"lo": lo, "hi": hi})


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a params file with `yaml.safe_load`; the top level must be a mapping."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the params file: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load_params(cls: type[T], path: str | Path = "params.yaml") -> T:
    """Load the section `cls.SECTION` of a params file into the dataclass `cls`, validated."""
    return load_section(path, cls.SECTION, cls)  # type: ignore[attr-defined]


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    """Load one section of a params file into the dataclass `cls`, validating every key."""
    data = load_yaml(path)
    if section not in data:
        raise ConfigError(f"{path}: section '{section}' is missing")
    return parse(data[section], cls, section)


def parse(data: Any, cls: type[T], where: str) -> T:
    """Build dataclass `cls` from a mapping; `where` is the dotted path used in errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}'; allowed keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name in data:
            value = _coerce(data[name], hints[name], f"{where}.{name}")
            _check_bounds(value, field.metadata, f"{where}.{name}")
            values[name] = value
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}.{name}: required key is missing")
    try:
        return cls(**values)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from None


def _check_bounds(value: Any, metadata: Mapping[str, Any], where: str) -> None:
    lo, hi = metadata.get("lo"), metadata.get("hi")
    if value is None:
        return  # an optional value may be null whatever its bounds
    if lo is not None and value < lo:
        raise ConfigError(f"{where}: {value!r} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"{where}: {value!r} is above the maximum {hi}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(value, option, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: {value!r} is not allowed; choose one of {allowed}")
        return value
    if origin is tuple:
        return _coerce_tuple(value, args, where)
    if dataclasses.is_dataclass(hint):
        return parse(value, hint, where)
    return _coerce_scalar(value, hint, where)


def _coerce_tuple(value: Any, args: tuple[Any, ...], where: str) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
    pairs = enumerate(zip(value, args, strict=True))
    return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in pairs)


_YAML11_EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


def _coerce_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads `2e-5` (no dot) as a string
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise ConfigError(f"{where}: unsupported type {hint!r} in the schema")
    raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
