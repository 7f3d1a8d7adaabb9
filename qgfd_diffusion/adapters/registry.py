"""The adapter registry: adapters by name, and every per-modality table derived from them.

``@register_adapter(name)`` checks a class's declarations (``declarations``: modality,
condition_kind, schema, collate, writer, output_field, convert_output) and makes it loadable by
``name``, the name saved in ``adapter_config.json``. Every per-modality table is derived from
``ADAPTERS``: ``modalities()``, ``collate_for(modality)`` (the data layer's collation),
``schema_for(modality)`` (its raw examples) and ``writer_for(modality)`` (the sample writer).
``load_adapter`` and ``build_adapter`` find the class of a saved or specified adapter here.
Adding a modality is one new module in adapters/.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .base import ModalityAdapter, read_adapter_config
from .declarations import CONDITION_KINDS, Collate, DataSchema, Writer

# Declared once per modality: every adapter of a modality declares the same.
SHARED_DECLARATIONS = ("schema", "collate", "writer", "output_field", "convert_output")
STATIC_DECLARATIONS = ("collate", "writer", "convert_output")  # declared as staticmethod
RESERVED_OUTPUT_FIELDS = ("latents",)  # the pipeline output's own field

ADAPTERS: dict[str, type[ModalityAdapter]] = {}
A = TypeVar("A", bound="type[ModalityAdapter]")


def _check_declarations(cls: type, name: str) -> None:
    """Raise ValueError naming the class attribute that is missing or not allowed."""
    where = f"adapter {name!r} ({cls.__name__})"
    if not isinstance(getattr(cls, "modality", None), str) or not cls.modality:
        raise ValueError(f"{where} must declare modality, a non-empty str (e.g. 'image')")
    if getattr(cls, "condition_kind", None) not in CONDITION_KINDS:
        raise ValueError(
            f"{where}: condition_kind must be one of {CONDITION_KINDS}, got {cls.condition_kind!r}"
        )
    if not isinstance(getattr(cls, "schema", None), DataSchema):
        raise ValueError(f"{where} must declare schema, a DataSchema (the data layer's columns)")
    field = getattr(cls, "output_field", None)
    if not isinstance(field, str) or not field.isidentifier() or field in RESERVED_OUTPUT_FIELDS:
        raise ValueError(
            f"{where} must declare output_field, an identifier other than "
            f"{RESERVED_OUTPUT_FIELDS} (e.g. 'images'), got {field!r}"
        )
    for attribute in STATIC_DECLARATIONS:
        if not isinstance(inspect.getattr_static(cls, attribute, None), staticmethod):
            raise ValueError(f"{where} must declare {attribute} = staticmethod(function)")
    for other in ADAPTERS.values():
        if other is cls:
            continue
        if other.modality == cls.modality:
            for attribute in SHARED_DECLARATIONS:
                if getattr(other, attribute) != getattr(cls, attribute):
                    raise ValueError(
                        f"{where} declares another {attribute} than {other.__name__} for "
                        f"modality {cls.modality!r}; adapters of one modality share one {attribute}"
                    )
        elif cls.schema.feature is not None and other.schema.feature == cls.schema.feature:
            raise ValueError(
                f"{where}: schema feature {cls.schema.feature!r} already marks modality "
                f"{other.modality!r} ({other.__name__}); a data feature names one modality"
            )


def register_adapter(name: str) -> Callable[[A], A]:
    """Class decorator: make an adapter loadable by ``name`` (saved in its config JSON).

    Checks the class's declarations (``declarations``) before anything is registered.
    """

    def wrap(cls: A) -> A:
        if name in ADAPTERS and ADAPTERS[name] is not cls:
            raise ValueError(f"adapter name {name!r} is already registered to {ADAPTERS[name]}")
        _check_declarations(cls, name)
        cls.name = name
        ADAPTERS[name] = cls
        return cls

    return wrap


def unregister_adapter(name: str) -> type[ModalityAdapter]:
    """Remove ``name`` from the registry (plugins, tests); returns the class it held."""
    cls = get_adapter_class(name)  # a clear error for an unknown name
    del ADAPTERS[name]
    return cls


def get_adapter_class(name: str) -> type[ModalityAdapter]:
    if name not in ADAPTERS:
        raise ValueError(f"unknown adapter {name!r}; allowed: {sorted(ADAPTERS)}")
    return ADAPTERS[name]


# ---------------------------------------------------------------------------------------------
# Adapters by name: saved folders and specs


def load_adapter(directory: str | os.PathLike) -> ModalityAdapter:
    """Load any saved adapter; its class comes from the registry name in its config."""
    meta = read_adapter_config(Path(directory))
    return get_adapter_class(meta["adapter"]).from_pretrained(directory)


def adapter_spec(adapter: ModalityAdapter) -> dict[str, Any]:
    """{"adapter": registry name, "config": config dict}: enough to rebuild ``adapter``."""
    return {"adapter": adapter.name, "config": adapter.config.to_dict()}


def build_adapter(spec: dict[str, Any]) -> ModalityAdapter:
    """Build a fresh adapter from ``adapter_spec`` output (stats and heads not included)."""
    if set(spec) != {"adapter", "config"}:
        raise ValueError(f"an adapter spec needs keys 'adapter' and 'config', got {sorted(spec)}")
    adapter_cls = get_adapter_class(spec["adapter"])
    return adapter_cls(adapter_cls.config_class.from_dict(spec["config"]))


# ---------------------------------------------------------------------------------------------
# Tables derived from the registry


def modalities() -> tuple[str, ...]:
    """Every registered adapter's modality, sorted, each once."""
    return tuple(sorted({cls.modality for cls in ADAPTERS.values()}))


def adapter_classes(modality: str) -> list[type[ModalityAdapter]]:
    """The registered classes of ``modality``, in registration order."""
    return [cls for cls in ADAPTERS.values() if cls.modality == modality]


def modality_class(modality: str) -> type[ModalityAdapter]:
    """A registered class of ``modality``: they all share its declarations."""
    classes = adapter_classes(modality)
    if not classes:
        raise ValueError(f"unknown modality {modality!r}; allowed: {', '.join(modalities())}")
    return classes[0]  # all of them share the modality's declarations (``_check_declarations``)


def collate_for(modality: str) -> Collate:
    """The collate function of ``modality``'s adapters (raw examples -> raw batch)."""
    return modality_class(modality).collate


def schema_for(modality: str) -> DataSchema:
    """The raw-example schema of ``modality``'s adapters (what the data layer serves)."""
    return modality_class(modality).schema


def writer_for(modality: str) -> Writer:
    """The writer of ``modality``'s adapters (decoded samples -> files under a folder)."""
    return modality_class(modality).writer
