"""Typed dataclasses from YAML/JSON dicts, with errors that name the dotted path.

One source of truth (STYLE.md 4): a config file is validated into dataclasses whose field types
and ``__post_init__`` checks define what is allowed. Every error names where it happened, e.g.
``phases[1].batch_size: expected int, got str 'eight'`` or
``model.d_modle: unknown key (allowed: d_model, num_heads, ...)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A config value is missing, unknown, mistyped or out of range; ``path`` says where."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}" if path else message)


def build_dataclass(cls: type, data: Any, path: str = "") -> Any:
    """Validate ``data`` (a mapping) into dataclass ``cls``; raise ConfigError naming the path."""
    values = convert_fields(cls, data, path)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (ValueError, TypeError) as error:
        raise _locate(str(error), path, fields) from None


def convert_fields(
    cls: type, data: Any, path: str = "", exclude: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check the keys and value types of ``data`` against dataclass ``cls`` without building
    it: {field: converted value} for the keys given. ``exclude`` names fields that are not
    the config file's to set (they count as unknown keys)."""
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in exclude}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        where = _join(path, str(unknown[0]))
        raise ConfigError(where, f"unknown key (allowed: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        where = _join(path, name)
        if name not in data:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise ConfigError(where, "missing required key")
            continue
        values[name] = convert(hints[name], data[name], where)
    return values


def _locate(message: str, path: str, fields) -> ConfigError:
    """A ``__post_init__`` message that starts with a field name -> error at that field."""
    first, _, rest = message.partition(" ")
    if first in fields and rest:
        return ConfigError(_join(path, first), rest)
    return ConfigError(path, message)


def convert(annotation: Any, value: Any, path: str) -> Any:
    """Check ``value`` against a type annotation, converting where lossless (int -> float)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return convert(option, value, path)
            except ConfigError as error:
                errors.append(error.message)
        raise ConfigError(path, " or ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(path, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {_describe(value)}")
        item_type = args[0] if args else Any
        items = [convert(item_type, item, f"{path}[{i}]") for i, item in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {_describe(value)}")
        value_type = args[1] if args else Any
        return {k: convert(value_type, v, _join(path, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, path)
    return _convert_scalar(annotation, value, path)


def _convert_scalar(annotation: type, value: Any, path: str) -> Any:
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML reads 1e-3 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, bool):
        raise ConfigError(path, f"expected int, got {_describe(value)}")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ConfigError(
        path, f"expected {getattr(annotation, '__name__', annotation)}, got {_describe(value)}"
    )


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML; list items by index)."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expected dotted.key=value, got {override!r}")
        *parents, leaf = key.split(".")
        node = data
        for i, part in enumerate(parents):
            node = _child(node, part, ".".join(parents[: i + 1]))
        if isinstance(node, list):
            node[_index(node, leaf, key)] = yaml.safe_load(raw)
        else:
            node[leaf] = yaml.safe_load(raw)
    return data


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(str(path), f"invalid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the config must be a mapping at the top level")
    return data


def to_plain(config: Any) -> Any:
    """Dataclass tree -> plain dicts/lists (JSON/YAML-ready)."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_plain(item) for item in config]
    if isinstance(config, dict):
        return {k: to_plain(v) for k, v in config.items()}
    return config


def _child(node: Any, part: str, where: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where)]
    if not isinstance(node, dict):
        raise ConfigError(where, "cannot override inside a value that is not a mapping or list")
    return node.setdefault(part, {})  # a section left out of the file: create it


def _index(node: list, part: str, where: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(where, f"list index must be 0..{len(node) - 1}, got {part!r}")
    return int(part)


def _join(path: str, key: str) -> str:
    if key.startswith("["):
        return f"{path}{key}"
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
