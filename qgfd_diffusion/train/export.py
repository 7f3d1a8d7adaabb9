"""The end of a run: ``final/`` (a QGFDPipeline folder with the EMA weights beside the live
ones, the run config and a summary) and the samples of every phase, drawn from that folder.

``final/`` is written into a temporary folder and renamed into place, so it is complete or
absent. Its samples load ``final/`` back, so they are what ``qgfd sample`` gives for it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from torch import nn

from ..graphs import save_graph_file
from ..models.multimodal import SharedQGFDDiffusionModel
from ..sample.options import SampleOptions
from ..sample.pipeline import QGFDPipeline
from ..sample.run import load_pipeline, sample_to_folder
from .checkpoint_model import ema_copy
from .config import PhaseConfig, RunConfig
from .errors import TrainingError

FINAL_FOLDER = "final"
SAMPLES_FOLDER = "samples"

# (phase, number of samples) -> held-out graphs to sample on, or None (``Trainer.sample_graphs``)
SampleGraphs = Callable[[PhaseConfig, int], torch.Tensor | None]


def check_finite_weights(backbone: nn.Module) -> None:
    """Refuse to save weights with a NaN or inf (names the first such parameter)."""
    bad = [n for n, p in backbone.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise TrainingError(f"refusing to save non-finite weights (first: {bad[0]})")


def ranks_in_sync(backbone: nn.Module, accelerator: Accelerator) -> bool:
    """Every process holds the same backbone weights (a checksum gathered from all ranks)."""
    checksum = torch.stack([p.detach().double().sum() for p in backbone.parameters()]).sum()
    gathered = accelerator.gather(checksum.reshape(1).to(accelerator.device))
    return bool((gathered == gathered[0]).all())


def replace_folder(new: Path, target: Path) -> None:
    """Put the complete folder ``new`` at ``target``: a reader sees the old folder or the new
    one, whole, never half of either (renames; the old one is deleted only once replaced)."""
    old = target.with_name(f".{target.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


def export_final(
    out: Path,
    model: SharedQGFDDiffusionModel,
    ema: EMAModel,
    config: RunConfig,
    summary: dict[str, Any],
    accelerator: Accelerator,
    sample_graphs: SampleGraphs,
) -> Path:
    """Write ``out/final`` and ``out/samples/<phase>/`` (main process); returns ``final/``.

    summary: the loop state written to ``train_summary.json`` (with the process count and
    whether every rank ended on the same weights)."""
    check_finite_weights(model.backbone)
    in_sync = ranks_in_sync(model.backbone, accelerator)
    final = out / FINAL_FOLDER
    if accelerator.is_main_process:
        tmp = out / ".final-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        backbone_ema = ema_copy(model.backbone, ema)
        QGFDPipeline.from_model(model, backbone_ema=backbone_ema).save_pretrained(tmp)
        (tmp / "run_config.json").write_text(json.dumps(config.to_dict(), indent=2))
        summary = {**summary, "processes": accelerator.num_processes, "ranks_in_sync": in_sync}
        (tmp / "train_summary.json").write_text(json.dumps(summary, indent=2))
        replace_folder(tmp, final)
        write_samples(out, final, config, sample_graphs)
    accelerator.wait_for_everyone()
    return final


def write_samples(out: Path, final: Path, config: RunConfig, sample_graphs: SampleGraphs) -> None:
    """``config.sample`` samples of every phase from ``final/``, into ``out/samples/<phase>/``;
    guidance only where the phase is conditional, graphs saved beside graph samples."""
    options = SampleOptions(**asdict(config.sample), seed=config.seed)
    pipe = load_pipeline(final)
    for phase in config.phases:
        conditional = pipe.condition(phase.name, options.num_samples) is not None
        phase_options = options if conditional else replace(options, guidance_scale=1.0)
        folder = out / SAMPLES_FOLDER / phase.name
        graph = sample_graphs(phase, options.num_samples)
        if graph is not None:  # saved beside the samples: `qgfd sample --graph` reads it
            phase_options = replace(phase_options, graph=str(save_graph_file(graph, folder)))
        sample_to_folder(pipe, phase.name, folder, phase_options)
