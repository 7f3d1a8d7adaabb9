"""Checks of a run config against the registries, at load time, before any work is done.

``run_config_from_dict`` builds the dataclasses (keys, types, ranges: ``configio``) and then
calls ``check_run_config`` for what the dataclasses cannot know on their own. Every error is a
``ConfigError`` naming the dotted path, so a typo in the last phase stops the run before the
first phase has trained:

    phases[i].adapter                  a registered adapter (``adapters.ADAPTERS``)
    phases[i].adapter_options          typed against that adapter's config dataclass, like the
                                       rest of the config (``patch_sz: unknown key (allowed:
                                       ...)``); nested adapter specs (video's image_adapter) too
      .encoder_name_or_path            ``tiny:KIND`` names a tiny encoder (``TINY_ENCODERS``)
    phases[i].data.name / .options     a bundled source and its reader's options, typed
    phases[i].data.format              a files format (``FILE_FORMATS``)
    phases[i].replay_every             set exactly when replay_phase is
    sample.scheduler                   a sampling scheduler (``SAMPLING_SCHEDULERS``)

What needs the network or reads data (hub datasets and encoders, local files) is checked when
the run starts, before its first step (``phases.check_sources``).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from ..adapters import ADAPTERS, TabularAdapter, VideoAdapterConfig
from ..adapters.tiny import TINY_ENCODERS, TINY_PREFIX
from ..configio import ConfigError, build_dataclass, convert, convert_fields, to_plain
from ..data.bundled import BUNDLED_SOURCES
from ..data.sources import FILE_FORMATS

# Config fields an adapter built from its data fills in itself (not the config file's to set).
FROM_DATA_FIELDS = {TabularAdapter: ("numeric_columns", "categorical_columns", "categories")}
# Config fields that hold a nested adapter spec {"adapter": name, "config": {...}}.
NESTED_SPECS = {VideoAdapterConfig: ("image_adapter",)}
SPEC_KEYS = ("adapter", "config")


def check_run_config(config: Any) -> None:
    """Check a built ``RunConfig`` (see the module docstring); typed options are written back."""
    for index, phase in enumerate(config.phases):
        where = f"phases[{index}]"
        phase.adapter_options = check_adapter_options(
            phase.adapter, phase.adapter_options, f"{where}.adapter_options", f"{where}.adapter"
        )
        check_data(phase.data, f"{where}.data")
        check_replay(phase, where)
    check_sampling(config.sample, "sample")


def check_adapter_name(name: Any, path: str) -> type:
    if name not in ADAPTERS:
        raise ConfigError(
            path, f"unknown adapter {name!r} (allowed: {', '.join(sorted(ADAPTERS))})"
        )
    return ADAPTERS[name]


def check_adapter_options(
    adapter: str, options: dict[str, Any], path: str, adapter_path: str
) -> dict[str, Any]:
    """``options`` checked against the adapter's config dataclass; returns them typed.

    Adapters built from data (tabular) get their data fields filled in later, so their options
    are checked key by key without building the config.
    """
    adapter_class = check_adapter_name(adapter, adapter_path)
    config_class = adapter_class.config_class
    from_data = next((f for c, f in FROM_DATA_FIELDS.items() if issubclass(adapter_class, c)), ())
    if from_data:
        values = convert_fields(config_class, options, path, exclude=from_data)
    else:
        built = build_dataclass(config_class, options, path)
        values = {key: getattr(built, key) for key in options}
    for field_name in NESTED_SPECS.get(config_class, ()):
        if field_name in values:
            values[field_name] = check_adapter_spec(values[field_name], f"{path}.{field_name}")
    check_encoder_name(values.get("encoder_name_or_path"), f"{path}.encoder_name_or_path")
    return to_plain(values)


def check_adapter_spec(spec: Any, path: str) -> dict[str, Any]:
    """A nested ``{"adapter": name, "config": {...}}`` spec, checked like a phase's options."""
    if not isinstance(spec, dict) or set(spec) != set(SPEC_KEYS):
        raise ConfigError(path, f"expected a mapping with keys {list(SPEC_KEYS)}, got {spec!r}")
    config = check_adapter_options(spec["adapter"], spec["config"], f"{path}.config", path)
    encoder = config.get("encoder_name_or_path")
    if isinstance(encoder, str) and encoder.startswith(TINY_PREFIX):
        raise ConfigError(
            f"{path}.config.encoder_name_or_path",
            f"{TINY_PREFIX}KIND is resolved only at the top of adapter_options; give a folder",
        )
    return {"adapter": spec["adapter"], "config": config}


def check_encoder_name(name: Any, path: str) -> None:
    """``tiny:KIND`` must name a tiny encoder; hub ids and folders are checked at run start."""
    if not isinstance(name, str) or not name.startswith(TINY_PREFIX):
        return
    kind = name[len(TINY_PREFIX) :]
    if kind not in TINY_ENCODERS:
        allowed = ", ".join(f"{TINY_PREFIX}{k}" for k in TINY_ENCODERS)
        raise ConfigError(path, f"unknown tiny encoder {name!r} (allowed: {allowed})")


def check_data(data: Any, path: str) -> None:
    """Bundled name and reader options; files format. (Hub names need the hub: run start.)"""
    if data.source == "files" and data.format not in FILE_FORMATS:
        raise ConfigError(
            f"{path}.format", f"must be one of {list(FILE_FORMATS)}, got {data.format!r}"
        )
    if data.source != "bundled":
        return
    if data.name not in BUNDLED_SOURCES:
        allowed = ", ".join(BUNDLED_SOURCES)
        raise ConfigError(
            f"{path}.name", f"unknown bundled source {data.name!r} (allowed: {allowed})"
        )
    data.options = check_reader_options(BUNDLED_SOURCES[data.name], data.options, f"{path}.options")


def check_reader_options(reader: Any, options: dict[str, Any], path: str) -> dict[str, Any]:
    """Options of a bundled reader, checked against its signature and annotations."""
    parameters = inspect.signature(reader).parameters
    hints = typing.get_type_hints(reader)
    typed = {}
    for key, value in options.items():
        if key not in parameters:
            allowed = ", ".join(parameters) or "none"
            raise ConfigError(f"{path}.{key}", f"unknown option (allowed: {allowed})")
        typed[key] = convert(hints.get(key, Any), value, f"{path}.{key}")
    return typed


def check_replay(phase: Any, where: str) -> None:
    """Replay needs both a phase and a period (replay_phase itself is checked by RunConfig)."""
    if phase.replay_phase is not None and phase.replay_every < 1:
        raise ConfigError(f"{where}.replay_every", "must be >= 1 when replay_phase is set")
    if phase.replay_phase is None and phase.replay_every:
        raise ConfigError(
            f"{where}.replay_phase", f"missing: replay_every is {phase.replay_every}; set both"
        )


def check_sampling(sample: Any, path: str) -> None:
    from ..sample.schedulers import SAMPLING_SCHEDULERS

    if sample.scheduler not in SAMPLING_SCHEDULERS:
        allowed = ", ".join(SAMPLING_SCHEDULERS)
        raise ConfigError(
            f"{path}.scheduler", f"unknown scheduler {sample.scheduler!r} (allowed: {allowed})"
        )
