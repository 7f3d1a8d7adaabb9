"""``AdapterSet``: a model's named modality adapters as one diffusers pipeline component.

A diffusers pipeline saves and loads each component through its class's ``save_pretrained`` /
``from_pretrained`` (found through a diffusers base class, here ``ModelMixin``). The adapters are
a variable set of named modules with formats of their own (adapter JSON + safetensors, encoder
folders), so this container writes ``config.json`` (the modality names in order, which fixes
their modality ids, and the latent layout each was seen with) and one sub-folder per adapter,
each saved by the adapter itself. Loading reads JSON and safetensors only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..adapters.base import ModalityAdapter
from ..adapters.registry import load_adapter
from ..latents import LatentLayout

ADAPTERS_FOLDER = "adapters"


class AdapterSet(ModelMixin, ConfigMixin):
    """Named adapters (``.adapters[name]``) with their modality order and latent layouts."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, modalities: list[str] | None = None, layouts: dict | None = None):
        super().__init__()
        self.adapters = nn.ModuleDict()

    @classmethod
    def from_adapters(
        cls, adapters: Mapping[str, ModalityAdapter], layouts: Mapping[str, LatentLayout]
    ) -> AdapterSet:
        """The set of ``adapters`` (in modality-id order) and the layouts seen for them."""
        adapter_set = cls(
            modalities=list(adapters), layouts={k: v.to_dict() for k, v in layouts.items()}
        )
        adapter_set.adapters.update(adapters)
        return adapter_set

    @property
    def layouts(self) -> dict[str, LatentLayout]:
        return {k: LatentLayout.from_dict(v) for k, v in (self.config.layouts or {}).items()}

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """``config.json`` + one folder per adapter (diffusers' serialisation options, e.g.
        ``safe_serialization``, do not apply: adapters always write safetensors)."""
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_config(directory)
        for name, adapter in self.adapters.items():
            adapter.save_pretrained(directory / name)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any):
        """Load a folder written by ``save_pretrained``; adapters keep their saved precision
        (their statistics and decoders are float32 by design), whatever ``torch_dtype`` says."""
        directory = Path(pretrained_model_name_or_path)
        if not (directory / cls.config_name).is_file():
            raise FileNotFoundError(f"not a saved adapter set (no {cls.config_name}): {directory}")
        return cls.from_folder(directory, cls.load_config(directory))

    @classmethod
    def from_folder(cls, directory: str | os.PathLike, config: Mapping[str, Any]) -> AdapterSet:
        """The set ``config`` describes (modalities, layouts), each adapter loaded from its
        sub-folder of ``directory``; in eval mode, as diffusers' loaders return models."""
        adapter_set = cls.from_config(config)
        for name in adapter_set.config.modalities or []:
            adapter_set.adapters[name] = load_adapter(Path(directory) / name)
        return adapter_set.eval()
