"""The adapter registry: every adapter class declares everything about its modality.

A registered class (``@register_adapter(name)``) declares, at class level:

    name            its registry name (saved in ``adapter_config.json``), set by the decorator
    modality        the data modality it encodes: text, image, audio, video, tabular, ...
    condition_kind  what ``encode_condition`` takes: "label" (class labels), "prompt" (texts)
                    or None (no condition)
    collate         staticmethod: the data layer's raw examples (train/data.py's fixed schema
                    of that modality) -> the raw batch ``prepare_batch`` / ``encode`` take
    writer          staticmethod (out_dir, decoded, WriteOptions) -> written files: what
                    ``decode`` returns, as files (PNG grid, .txt, .wav, .csv, GIF)

Every other per-modality table is derived from ``ADAPTERS``: ``modalities()``,
``collate_for(modality)`` (the data layer's collation) and ``writer_for(modality)`` (the sample
writer). Adapters of one modality (e.g. image and patch_image) share one collate and one
writer, checked when the second registers. Adding a modality is one new module in adapters/.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from .files import WriteOptions

if TYPE_CHECKING:
    from .base import ModalityAdapter

ConditionKind = Literal["label", "prompt"]
CONDITION_KINDS: tuple[ConditionKind | None, ...] = (None, *get_args(ConditionKind))
Collate = Callable[[list[dict[str, Any]]], Any]
Writer = Callable[[Path, Any, WriteOptions], list[Path]]
SHARED_DECLARATIONS = ("collate", "writer")  # one function per modality, declared staticmethod

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
    for attribute in SHARED_DECLARATIONS:
        if not isinstance(inspect.getattr_static(cls, attribute, None), staticmethod):
            raise ValueError(f"{where} must declare {attribute} = staticmethod(function)")
    for other in adapter_classes(cls.modality):
        for attribute in SHARED_DECLARATIONS:
            if other is not cls and getattr(other, attribute) is not getattr(cls, attribute):
                raise ValueError(
                    f"{where} declares another {attribute} than {other.__name__} for modality "
                    f"{cls.modality!r}; adapters of one modality share one {attribute}"
                )


def register_adapter(name: str) -> Callable[[A], A]:
    """Class decorator: make an adapter loadable by ``name`` (saved in its config JSON).

    Checks the class's declarations (module docstring) before anything is registered.
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
# Tables derived from the registry


def modalities() -> tuple[str, ...]:
    """Every registered adapter's modality, sorted, each once."""
    return tuple(sorted({cls.modality for cls in ADAPTERS.values()}))


def adapter_classes(modality: str) -> list[type[ModalityAdapter]]:
    """The registered classes of ``modality``, in registration order."""
    return [cls for cls in ADAPTERS.values() if cls.modality == modality]


def _modality_class(modality: str) -> type[ModalityAdapter]:
    classes = adapter_classes(modality)
    if not classes:
        raise ValueError(f"unknown modality {modality!r}; allowed: {', '.join(modalities())}")
    return classes[0]  # all of them share collate and writer (``_check_declarations``)


def collate_for(modality: str) -> Collate:
    """The collate function of ``modality``'s adapters (raw examples -> raw batch)."""
    return _modality_class(modality).collate


def writer_for(modality: str) -> Writer:
    """The writer of ``modality``'s adapters (decoded samples -> files under a folder)."""
    return _modality_class(modality).writer
