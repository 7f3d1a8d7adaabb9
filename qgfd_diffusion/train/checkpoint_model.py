"""A training checkpoint as a model: the one loader that resume and ``qgfd sample`` share, and
the one EMA copy that samples and the final export use.

``restore_model`` reads a ``checkpoints/step-*`` folder (see checkpoint.py) into a
``SharedQGFDDiffusionModel``: the run config's model, the checkpoint's adapters and layouts, the
live weights; and its ``EMAModel``. Resume restores into the trainer's own model and EMA (their
weights are already wrapped by accelerate); ``pipeline_from_checkpoint`` builds fresh ones.

Adapter configs: an adapter loads from its copy inside the checkpoint, so loading points its
encoder source at that copy. ``checkpoint_adapter`` puts back the config the adapter was saved
with (the source the run config named) for both callers: a model read from a checkpoint
describes the run that wrote it, wherever it was read from. A resumed run then saves the same
adapter configs into its later checkpoints and ``final/`` as a run that never stopped (never a
path into a checkpoint folder that rotation deletes), and a pipeline read from a checkpoint
saves what the run's ``final/`` would. The weights are the checkpoint's either way.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.training_utils import EMAModel

from ..adapters import ModalityAdapter, load_adapter
from ..adapters.base import CONFIG_NAME
from ..latents import LatentLayout
from ..models.backbone import QGFDDiffusionBackbone
from ..models.config import DiffusionConfig
from ..models.multimodal import SharedQGFDDiffusionModel
from ..sample.pipeline import QGFDPipeline
from ..sample.run import CHECKPOINT_PREFIX, load_pipeline
from .checkpoint import load_part
from .config import RunConfig, run_config_from_dict
from .errors import TrainingError
from .manifest import verify_checkpoint


@dataclass
class RestoredModel:
    """What ``restore_model`` read: the model (live weights), its EMA, the run config the
    checkpoint was written under and the trainer part (loop state, layouts, modalities)."""

    model: SharedQGFDDiffusionModel
    ema: EMAModel
    config: RunConfig
    trainer: dict[str, Any]


def ema_copy(backbone: QGFDDiffusionBackbone, ema: EMAModel) -> QGFDDiffusionBackbone:
    """A copy of ``backbone`` holding the EMA weights, in eval mode: what samples are drawn with
    and ``final/backbone_ema`` holds. The live backbone is left as it is."""
    copied = copy.deepcopy(backbone)
    ema.copy_to(copied.parameters())
    return copied.eval()


def checkpoint_adapter(folder: Path) -> ModalityAdapter:
    """A checkpoint's adapter with the config it was saved with (module docstring)."""
    adapter = load_adapter(folder)
    saved = json.loads((folder / CONFIG_NAME).read_text())["config"]
    adapter.config = adapter.config_class.from_dict(saved)
    return adapter


def restore_model(
    folder: str | Path,
    model: SharedQGFDDiffusionModel | None = None,
    ema: EMAModel | None = None,
    *,
    expected_model: DiffusionConfig | None = None,
) -> RestoredModel:
    """Read a complete checkpoint into ``model`` and ``ema`` (built from the checkpoint's run
    config when None): adapters and layouts added, live and EMA weights loaded.

    expected_model: the model config the caller runs; a checkpoint written under another is
    refused (TrainingError) before anything is loaded into ``model``."""
    folder = Path(folder)
    trainer = load_part(folder, "trainer")
    config = run_config_from_dict(trainer["config"])
    if expected_model is not None and config.model != expected_model:
        raise TrainingError(
            f"{folder} was written by a run with another model config; "
            "resume with the same config (or start a new output dir)"
        )
    if model is None:
        model = SharedQGFDDiffusionModel(config.model_config())
    for name in trainer["modalities"]:
        model.add_modality(name, checkpoint_adapter(folder / "adapters" / name))
    model.layouts = {k: LatentLayout.from_dict(v) for k, v in trainer["layouts"].items()}
    model.backbone.load_state_dict(load_part(folder, "backbone"))
    if ema is None:
        ema = EMAModel(model.backbone.parameters())
    ema.load_state_dict(load_part(folder, "ema"))
    return RestoredModel(model, ema, config, trainer)


def pipeline_from_checkpoint(folder: str | Path, use_ema: bool = True) -> QGFDPipeline:
    """A training checkpoint (``checkpoints/step-*``), verified file by file against its
    manifest, as a pipeline in eval mode: live weights, and the EMA weights unless ``use_ema``
    is False."""
    verify_checkpoint(Path(folder))  # every file against the checkpoint's manifest
    restored = restore_model(folder)
    model = restored.model.eval()  # a fresh model: loaded models sample in eval mode
    backbone_ema = ema_copy(model.backbone, restored.ema) if use_ema else None
    return QGFDPipeline.from_model(model, backbone_ema=backbone_ema)


def load_trained_pipeline(
    checkpoint: str | Path, use_ema: bool = True, device: str | torch.device | None = None
) -> QGFDPipeline:
    """Any trained folder as a pipeline: a training checkpoint (``checkpoints/step-*``), or
    whatever ``sample.run.load_pipeline`` reads (a run, pipeline or model folder)."""
    folder = Path(checkpoint)
    if not (folder.name.startswith(CHECKPOINT_PREFIX) and folder.is_dir()):
        return load_pipeline(folder, use_ema=use_ema, device=device)
    pipe = pipeline_from_checkpoint(folder, use_ema)
    return pipe if device is None else pipe.to(device)
