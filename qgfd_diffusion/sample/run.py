"""Load a trained run as a ``QGFDPipeline``, generate one modality and write it to a folder.

Shared by ``qgfd sample`` and the samples a training run writes when it ends; both go through
the pipeline, so ``qgfd sample`` and ``pipe(...)`` give the same latents for the same checkpoint,
options and seed. The output folder gets ``latents.safetensors`` (shared-space latents), the
decoded outputs where the adapter decodes (PNG grid, .txt, .wav, .csv, GIF), and
``sample_config.json`` (what produced them). Same checkpoint, same options, same seed: same bytes.

What loads (``load_pipeline``): a run folder (its ``final/``), a pipeline folder
(``model_index.json``) or a model folder (``SharedQGFDDiffusionModel.save_pretrained``, including
those written before pipelines). A run's ``checkpoints/step-*`` folders are the training loop's
own format: ``qgfd_diffusion.train.load_trained_pipeline`` loads those too (``qgfd sample`` uses
it).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..graphs import load_graph_file
from ..models.multimodal import BACKBONE_FOLDER, SharedQGFDDiffusionModel
from ..schedules.config import NoiseScheduleConfig
from .options import SampleOptions
from .pipeline import QGFDPipeline
from .schedulers import make_scheduler
from .writers import write_decoded, write_latents

EMA_FOLDER = "backbone_ema"
PIPELINE_INDEX = "model_index.json"
CHECKPOINT_PREFIX = "step-"


def load_pipeline(
    checkpoint: str | Path, use_ema: bool = True, device: str | torch.device | None = None
) -> QGFDPipeline:
    """A run, pipeline or model folder (module docstring) -> its pipeline, EMA weights unless
    ``use_ema`` is False, on ``device`` (default: where it loads, the CPU), in eval mode."""
    folder = Path(checkpoint)
    if not folder.exists():
        raise FileNotFoundError(f"checkpoint not found: {folder}")
    if (folder / "final").is_dir():
        folder = folder / "final"
    if (folder / PIPELINE_INDEX).is_file():
        pipe = QGFDPipeline.from_pretrained(folder, use_ema=use_ema)
    elif folder.name.startswith(CHECKPOINT_PREFIX):
        raise ValueError(
            f"{folder} is a training checkpoint: load it with "
            "qgfd_diffusion.train.load_trained_pipeline (as qgfd sample does)"
        )
    elif not (folder / BACKBONE_FOLDER).is_dir():
        raise FileNotFoundError(
            f"not a saved qgfd model: {folder} has no {PIPELINE_INDEX}, no {BACKBONE_FOLDER}/ "
            "and is no checkpoints/step-* folder"
        )
    else:  # a model folder (SharedQGFDDiffusionModel.save_pretrained)
        weights = EMA_FOLDER if use_ema and (folder / EMA_FOLDER).is_dir() else BACKBONE_FOLDER
        model = SharedQGFDDiffusionModel.from_pretrained(folder, backbone_folder=weights)
        pipe = QGFDPipeline.from_model(model)
    return pipe if device is None else pipe.to(device)


def load_trained_model(checkpoint: str | Path, use_ema: bool = True) -> SharedQGFDDiffusionModel:
    """A run, pipeline or model folder -> its model (EMA weights if any, unless ``use_ema``
    is False), the pipeline's model view."""
    return load_pipeline(checkpoint, use_ema=use_ema).model().eval()  # its own, fresh pipeline


def sample_to_folder(
    pipe: QGFDPipeline,
    modality: str,
    out_dir: str | Path,
    options: SampleOptions,
    *,
    progress: bool = False,
) -> Path:
    """Generate ``options.num_samples`` of ``modality`` into ``out_dir``; returns the folder."""
    if modality not in pipe.modalities:
        raise ValueError(f"unknown modality {modality!r}; this model has {pipe.modalities}")
    out_dir = Path(out_dir)
    schedule = NoiseScheduleConfig.from_mapping(pipe.scheduler.config)
    pipe.scheduler = make_scheduler(options.scheduler, schedule)
    pipe.set_progress_bar_config(disable=not progress)
    output = pipe(
        modality,
        **options.call_kwargs(),
        class_labels=options.class_labels,
        prompt=options.prompt,
        generator=torch.Generator().manual_seed(options.seed),
        output_type="pt",
        graph=None if options.graph is None else load_graph_file(options.graph),
    )
    adapter = pipe.adapters.adapters[modality]
    condition = pipe.condition(modality, options.num_samples, options.class_labels, options.prompt)
    metadata = {
        "modality": modality,
        "layout": pipe.adapters.layouts[modality].to_dict(),
        **asdict(options),
    }
    if condition is not None:
        metadata["condition"] = condition if isinstance(condition, list) else condition.tolist()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_latents(out_dir / "latents.safetensors", output.latents, metadata)
    decoded = next((value for key, value in output.items() if key != "latents"), None)
    written = []
    if decoded is not None:
        rate = adapter.output_rate  # what its writer needs (audio), None elsewhere
        written = write_decoded(out_dir, adapter.modality, decoded, sampling_rate=rate)
    summary = {
        **metadata,
        "decoded": [str(p.relative_to(out_dir)) for p in written],
        "decodable": adapter.can_decode,
    }
    (out_dir / "sample_config.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return out_dir
