"""Load a trained model, generate one modality and write everything to a folder.

Shared by ``qgfd sample`` and the samples a training run writes when it ends. The output
folder gets ``latents.safetensors`` (shared-space latents), the decoded outputs where the adapter
decodes (PNG grid, .txt, .wav, .csv, GIF), and ``sample_config.json`` (what produced them).
Same checkpoint, same options, same seed: same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ..models.multimodal import BACKBONE_FOLDER, SharedQGFDDiffusionModel
from .generate import generate
from .options import SampleOptions
from .schedulers import make_scheduler
from .writers import write_decoded, write_latents

EMA_FOLDER = "backbone_ema"


def load_trained_model(checkpoint: str | Path, use_ema: bool = True) -> SharedQGFDDiffusionModel:
    """A run folder (its ``final/``) or a saved model folder -> the model (EMA weights if any)."""
    folder = Path(checkpoint)
    if not folder.exists():
        raise FileNotFoundError(f"checkpoint not found: {folder}")
    if (folder / "final").is_dir():
        folder = folder / "final"
    weights = EMA_FOLDER if use_ema and (folder / EMA_FOLDER).is_dir() else BACKBONE_FOLDER
    return SharedQGFDDiffusionModel.from_pretrained(folder, backbone_folder=weights).eval()


def default_condition(model: SharedQGFDDiffusionModel, modality: str, num_samples: int):
    """Class-conditional adapters (``condition_kind`` "label" with K classes) cycle through
    classes 0, 1, ..., K-1, 0, ...; prompt-conditioned and unconditional ones: None."""
    adapter = model.adapters[modality]
    labelled = adapter.condition_kind == "label" and adapter.condition_dim is not None
    if not labelled or modality not in model.cond_maps:
        return None
    return torch.arange(num_samples) % adapter.condition_dim


def sample_to_folder(
    model: SharedQGFDDiffusionModel,
    modality: str,
    out_dir: str | Path,
    options: SampleOptions,
    *,
    progress: bool = False,
) -> Path:
    """Generate ``options.num_samples`` of ``modality`` into ``out_dir``; returns the folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.modality_id(modality)  # a clear error for an unknown modality
    scheduler = make_scheduler(options.scheduler, model.schedule)
    condition = default_condition(model, modality, options.num_samples)
    output = generate(
        model,
        modality,
        options.num_samples,
        condition=condition,
        generator=torch.Generator().manual_seed(options.seed),
        num_inference_steps=options.steps,
        eta=options.eta,
        guidance_scale=options.guidance,
        scheduler=scheduler,
        progress=progress,
    )
    adapter = model.adapters[modality]
    metadata = {"modality": modality, "layout": output.layout.to_dict(), **asdict(options)}
    if condition is not None:
        metadata["condition"] = condition.tolist()
    write_latents(out_dir / "latents.safetensors", output.latents, metadata)
    written = []
    if output.decoded is not None:
        rate = getattr(adapter, "encoder_rate", None)
        written = write_decoded(out_dir, adapter.modality, output.decoded, sampling_rate=rate)
    summary = {
        **metadata,
        "decoded": [str(p.relative_to(out_dir)) for p in written],
        "decodable": adapter.can_decode,
    }
    (out_dir / "sample_config.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return out_dir
