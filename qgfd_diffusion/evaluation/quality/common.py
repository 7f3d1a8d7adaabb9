"""What every scorer shares: the trained run it scores (``ScoringJob``), sampling it in chunks
(``generate``), and the digit classifier that digit and video scorers read samples with."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ...configio import to_plain
from ...data.config import DataConfig
from ...models.multimodal import SharedQGFDDiffusionModel
from ...sample import generate as generate_modality
from ...sample import make_scheduler
from ..digits import DigitClassifier, train_digit_classifier


class ScoringJob(Protocol):
    """One trained run to score, as a scorer reads it (the benchmark harness's job provides it).

    seed: the run seed; settings: the scorer's settings dataclass (the eval file's ``eval``);
    config: the run config (``seed``, ``sample`` settings, ``phases``); model: the trained model;
    run_dir: the run folder; eval_dir: the folder the scores and pictures go to; cache_dir:
    caches shared by every run (digit classifiers); phase(name): a phase's config (its data
    config under ``.data``).
    """

    seed: int
    settings: Any
    config: Any
    run_dir: Path
    cache_dir: Path

    @property
    def model(self) -> SharedQGFDDiffusionModel: ...

    @property
    def eval_dir(self) -> Path: ...

    def phase(self, name: str) -> Any: ...


def generate(
    job: ScoringJob, phase: str, count: int, batch: int, condition: torch.Tensor | None = None
) -> list:
    """``count`` decoded samples of ``phase`` in chunks of ``batch`` (run.sample's sampler,
    steps, eta and guidance; one generator seeded with the run seed)."""
    options, model = job.config.sample, job.model
    generator = torch.Generator().manual_seed(job.config.seed)
    scheduler = make_scheduler(options.scheduler, model.schedule)
    chunks = []
    for start in range(0, count, batch):
        size = min(batch, count - start)
        chunk = None if condition is None else condition[start : start + size]
        output = generate_modality(
            model,
            phase,
            size,
            condition=chunk,
            generator=generator,
            scheduler=scheduler,
            num_inference_steps=options.num_inference_steps,
            eta=options.eta,
            guidance_scale=options.guidance_scale,
            clamp_steps=options.clamp_steps,
        )
        if output.decoded is None:
            raise ValueError(f"phase {phase!r}: its adapter cannot decode samples to score")
        chunks.append(output.decoded)
    return chunks


def digit_arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    rows = dataset[:]  # images float32 [N, 1, 28, 28] in [0, 1], labels [N]
    return torch.as_tensor(np.asarray(rows["image"])), torch.as_tensor(np.asarray(rows["label"]))


def digit_classifier(
    job: ScoringJob, data: DataConfig, images: torch.Tensor, labels: torch.Tensor
) -> DigitClassifier:
    """The scoring classifier of this data split, trained once and cached under the runs folder
    (keyed by the data config, run seed and training config)."""
    key = json.dumps(
        {"data": to_plain(data), "seed": job.seed, "classifier": job.settings.classifier},
        sort_keys=True,
    )
    folder = job.cache_dir / "digit_classifiers" / hashlib.sha1(key.encode()).hexdigest()[:12]
    if (folder / "classifier.json").is_file():
        return DigitClassifier.load(folder)
    classifier = train_digit_classifier(images, labels, config=job.settings.training_config())
    classifier.save(folder)
    (folder / "key.json").write_text(key)
    return classifier
