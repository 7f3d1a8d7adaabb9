"""Old formats, upgraded where files are read: the one module that knows them.

A loader reads a file and hands what it read to a function here, which returns today's form;
no other module knows an old spelling. What changed, and the function that upgrades it:

* model config keys (a backbone's ``config.json``, a run config's ``model:`` section and the
  keywords of ``DiffusionConfig(...)``): prototype 001, and configs written before the network
  and the noise schedule were split, use flat keys (``qgfd_steps``, ``qgfd_alpha``,
  ``num_timesteps``, ...); they fold into the nested ``qgfd`` and ``schedule`` sections
  (``fold_flat_keys``; a backbone's config also drops the schedule, ``upgrade_backbone_config``);
* the noise schedule of a model folder: ``scheduler/``, or, in folders written before that
  folder existed, the schedule keys of the backbone's ``config.json`` (``read_noise_schedule``);
* the modalities of a model folder: ``adapters/config.json``, or, in folders written before it
  existed, ``qgfd_model.json`` beside the backbone (``adapter_set_config``);
* run configs (``upgrade_run_config``): keys that never did anything are dropped with a warning
  (``RETIRED_KEYS``), ``train.tensorboard`` (a bool) becomes ``train.log_with`` and the
  ``sample`` section's keys take the pipeline's (diffusers') names (``SAMPLE_RENAMES``);
* checkpoints written before manifests: their ``COMPLETE`` marker holds only the step number;
  they load unverified (``is_bare_step_marker``);
* dataset metadata written before the tabular modality got its name says "table"
  (``modality_name``).

Imports only the attention options and the schedule config, so every loader can use it.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .attention.options import canonical_qgfd_keys
from .configio import ConfigError
from .schedules.config import (
    SCHEDULE_ALIASES,
    SCHEDULER_CONFIG,
    SCHEDULER_FOLDER,
    NoiseScheduleConfig,
)

# -- model configs ----------------------------------------------------------------------------

# Flat keys of prototype 001 / pre-split configs -> their nested section.
QGFD_FLAT_KEYS = ("qgfd_steps", "qgfd_alpha", "qgfd_topk", "qgfd_temperature", "qgfd_alpha_mode")
QGFD_FLAT_KEYS += ("qgfd_warmup_steps", "transition", "iteration")
SCHEDULE_FLAT_KEYS = ("num_timesteps", *NoiseScheduleConfig.field_names())


def fold_flat_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat prototype-001 / pre-split keys -> the nested ``qgfd`` and ``schedule`` sections.

    ``{"qgfd_steps": 1, "num_timesteps": 1000}`` -> ``{"qgfd": {"steps": 1},
    "schedule": {"num_train_timesteps": 1000}}``, merged into sections given as well. A nested
    section given as an object (``QGFDOptions``) is kept as it is.
    """
    values = dict(values)
    qgfd_flat = {k: values.pop(k) for k in QGFD_FLAT_KEYS if k in values}
    schedule_flat = {k: values.pop(k) for k in SCHEDULE_FLAT_KEYS if k in values}
    if qgfd_flat:
        values["qgfd"] = _merge(values.get("qgfd"), canonical_qgfd_keys(qgfd_flat), "qgfd")
    if schedule_flat:
        renamed = {SCHEDULE_ALIASES.get(k, k): v for k, v in schedule_flat.items()}
        values["schedule"] = _merge(values.get("schedule"), renamed, "schedule")
    return values


def _merge(section: Any, flat: dict[str, Any], name: str) -> dict[str, Any]:
    if section is None:
        return flat
    base = section.to_dict() if hasattr(section, "to_dict") else dict(section)
    clash = sorted(set(base) & set(flat))
    if clash and not hasattr(section, "to_dict"):
        raise ValueError(
            f"{name}: {clash} given both flat (an old spelling) and inside the {name!r} section; "
            f"set {', '.join(f'{name}.{key}' for key in clash)} only"
        )
    return {**base, **flat}


def upgrade_backbone_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A backbone's ``config.json`` -> today's network fields: flat keys folded, the schedule
    keys dropped (the schedule is read by ``read_noise_schedule``)."""
    folded = fold_flat_keys(config)
    folded.pop("schedule", None)
    return folded


# -- model folders ----------------------------------------------------------------------------

ADAPTER_MANIFEST = "qgfd_model.json"  # modalities and layouts, before adapters/config.json


def read_noise_schedule(directory: str | Path, backbone_config: str | Path) -> NoiseScheduleConfig:
    """The schedule saved beside a model: ``directory/scheduler/``, or, in folders written
    before it existed, the schedule keys of the backbone's ``backbone_config`` JSON."""
    saved = Path(directory) / SCHEDULER_FOLDER / SCHEDULER_CONFIG
    source = saved if saved.is_file() else Path(backbone_config)
    if not source.is_file():
        raise FileNotFoundError(f"no noise schedule in {directory}: neither {saved} nor {source}")
    return NoiseScheduleConfig.from_mapping(json.loads(source.read_text()))


def adapter_set_config(directory: str | Path, adapters_folder: str | Path) -> dict[str, Any]:
    """The adapter set's config ({"modalities": [...], "layouts": {...}}) of a model folder:
    ``adapters_folder/config.json``, or ``qgfd_model.json`` in folders written before it."""
    directory = Path(directory)
    for source in (Path(adapters_folder) / "config.json", directory / ADAPTER_MANIFEST):
        if source.is_file():
            saved = json.loads(source.read_text())
            return {"modalities": saved["modalities"], "layouts": saved.get("layouts") or {}}
    raise FileNotFoundError(
        f"not a saved qgfd model (no {Path(adapters_folder).name}/config.json and no "
        f"{ADAPTER_MANIFEST}): {directory}"
    )


# -- run configs ------------------------------------------------------------------------------

# Keys of earlier run configs that never did anything; dropped with a warning so old files load.
RETIRED_KEYS = ("log_every", "modality_id")
# The ``sample:`` section's earlier keys -> the pipeline argument each one sets.
SAMPLE_RENAMES = {"steps": "num_inference_steps", "guidance": "guidance_scale"}


def upgrade_run_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A run config dict (a YAML file, a checkpoint's copy) in today's keys: ``RETIRED_KEYS``
    removed with a warning naming them, ``train.tensorboard`` -> ``train.log_with``,
    ``SAMPLE_RENAMES`` in ``sample`` (an old key next to its new name is an error naming both)."""
    data = copy.deepcopy(dict(data))
    if isinstance(data.get("sample"), dict):
        data["sample"] = _rename_keys(data["sample"], SAMPLE_RENAMES, "sample")
    train = data.get("train")
    if isinstance(train, dict) and "tensorboard" in train and "log_with" not in train:
        train["log_with"] = ["tensorboard"] if train.pop("tensorboard") else []
    phases = data.get("phases") if isinstance(data.get("phases"), list) else []
    sections = [("train", data.get("train"))]
    sections += [(f"phases[{i}]", phase) for i, phase in enumerate(phases)]
    found = []
    for where, section in sections:
        for key in RETIRED_KEYS if isinstance(section, dict) else ():
            if key in section:
                del section[key]
                found.append(f"{where}.{key}")
    if found:
        warnings.warn(f"ignoring retired config keys {found} (they had no effect)", stacklevel=3)
    return data


def _rename_keys(section: dict, renames: Mapping[str, str], where: str) -> dict:
    for old, new in renames.items():
        if old not in section:
            continue
        if new in section:
            raise ConfigError(
                f"{where}.{old}",
                f"the old name of {where}.{new}, which is given too: give {where}.{new} only "
                "(in the file and in --set)",
            )
        section[new] = section.pop(old)
    return section


# -- checkpoints ------------------------------------------------------------------------------


OLD_MODALITY_NAMES = {"table": "tabular"}  # datasets saved before the tabular modality's name


def modality_name(modality: str | None) -> str | None:
    """A modality as stored or configured -> its current name (old spelling "table": "tabular")."""
    return OLD_MODALITY_NAMES.get(modality, modality)


def is_bare_step_marker(text: str) -> bool:
    """A ``COMPLETE`` marker of a checkpoint written before manifests: the step number only."""
    return text.strip().isdigit()
