"""Where a phase's examples come from: the ``data`` section of a run config, validated.

    data: {source: bundled, name: shakespeare, max_items: 2000, options: {unit: line}}

``source`` is one of ``sources.SOURCES`` ("bundled", "files", "hub"); ``name``, ``files``,
``format``, ``column`` and ``label_column`` are ``load_dataset_source``'s arguments;
``max_items`` cuts the shuffled examples, ``validation_fraction`` carves the validation split
(``splits``); ``options`` go to the bundled reader (or ``datasets.load_dataset``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DataSource = Literal["bundled", "files", "hub"]


@dataclass
class DataConfig:
    """Where a phase's examples come from (see ``sources`` for the sources)."""

    source: DataSource = "bundled"
    name: str | None = None
    split: str = "train"
    files: list[str] | None = None
    format: str | None = None
    column: str | None = None
    label_column: str | None = None
    max_items: int | None = None
    validation_fraction: float = 0.05
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.source in ("bundled", "hub") and not self.name:
            raise ValueError(f"name is required for source {self.source!r}")
        if self.source == "files" and not self.files:
            raise ValueError("files is required for source 'files'")
        if self.max_items is not None and self.max_items <= 0:
            raise ValueError(f"max_items must be > 0, got {self.max_items!r}")
        if not 0.0 <= self.validation_fraction <= 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1], got {self.validation_fraction!r}"
            )
