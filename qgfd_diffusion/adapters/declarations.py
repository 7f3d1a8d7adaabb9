"""What an adapter class declares about its modality, as types.

A registered adapter class (``registry.register_adapter``) declares, at class level:

    name            its registry name (saved in ``adapter_config.json``), set by the decorator
    modality        the data modality it encodes: text, image, audio, video, tabular, ...
    condition_kind  what ``encode_condition`` takes: "label" (class labels), "prompt" (texts)
                    or None (no condition)
    schema          ``DataSchema``: its raw examples as the data layer serves them
    collate         staticmethod: raw examples (``schema``) -> the raw batch ``prepare_batch`` /
                    ``encode`` take
    writer          staticmethod (out_dir, decoded, WriteOptions) -> written files: what
                    ``decode`` returns, as files (PNG grid, .txt, .wav, .csv, GIF)
    output_field    the field of the pipeline's output its decoded samples go to ("images")
    convert_output  staticmethod (decoded, output_type) -> the decoded samples in the pipeline's
                    ``output_type`` ("pil", "np", "pt"); the default keeps them as decoded

The data layer (``qgfd_diffusion.data``), the pipeline and the sample writers read these and
spell no modality themselves, so a new modality is one new adapter module. Adapters of one
modality (image and patch_image, audio and mel) declare the same schema, collate, writer,
output field and conversion (checked when the second registers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from .files import WriteOptions

ConditionKind = Literal["label", "prompt"]
CONDITION_KINDS: tuple[ConditionKind | None, ...] = (None, *get_args(ConditionKind))
Collate = Callable[[list[dict[str, Any]]], Any]
Writer = Callable[[Path, Any, WriteOptions], list[Path]]
OutputConverter = Callable[[Any, str], Any]
ExampleDecoder = Callable[[dict[str, list]], dict[str, list]]


@dataclass(frozen=True)
class DataSchema:
    """One modality's raw examples as the data layer serves them (one dict per example).

    column:    the example's data column ("image"); None: the whole row is the example (a table,
               whose label column is its target)
    label:     its class-label column, kept from hub / files data where present; None: no labels
    arrays:    the columns bundled sources serve as numpy arrays
    feature:   the ``datasets`` feature that marks a hub / files column as this modality's data:
               a feature class name ("Image", "Audio"; such a column is found wherever it
               stands) or a Value dtype ("string"; then only the column named ``column``, or the
               one a data config names, is taken for it: tables hold strings too)
    decode:    hub / files rows -> rows of this schema, applied on access (``set_transform``),
               e.g. PIL images -> float arrays; None keeps the stored values
    undecoded: read the ``feature`` column undecoded (``decode=False``): ``decode`` opens the
               stored file itself
    """

    column: str | None
    label: str | None = None
    arrays: tuple[str, ...] = ()
    feature: str | None = None
    decode: ExampleDecoder | None = None
    undecoded: bool = False


def keep_decoded(decoded: Any, output_type: str) -> Any:
    """The default ``convert_output``: the samples as ``decode`` returned them."""
    return decoded
