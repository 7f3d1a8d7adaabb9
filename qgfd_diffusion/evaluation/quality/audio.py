"""The ``audio`` scorer: unconditional clips scored by ``qgfd_diffusion.evaluation.audio_report``
against the phase's held-out real clips, how near they come to the training clips
(``copy_report``), with a real-vs-generated spectrogram picture."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...adapters.audio import resample
from ...adapters.mel import MelAdapter
from ...checks import check_int
from ...data.splits import load_phase_data
from ...sample.writers import write_decoded
from ..audio import audio_report, copy_report, decoded_copy, energy_above
from .common import ScoringJob, generate

HEADLINE = (
    ("logmel_fd_over_floor", False),
    ("logmel_fd", False),
    ("logmel_floor", False),
    ("energy_above_4khz", False),
    ("real_energy_above_4khz", False),
    ("energy_ratio", False),
    ("decoded_real_energy_above_4khz", False),
    ("decoded_energy_ratio", False),
    ("voiced_share_ratio", True),
    ("level_spread_db_ratio", True),
    ("shaped_noise_fd_over_floor", False),
    ("white_noise_fd_over_floor", False),
    ("nearest_training_db", True),
    ("real_nearest_training_db", True),
    ("nearest_training_ratio", True),
    ("copy_nearest_training_db", True),
)


@dataclass
class AudioSettings:
    """phase: the audio phase; generated_clips: clips sampled and scored (at least one half of
    the held-out clips: the log-mel distance averages over groups of that many, the floor's
    footing; the energy and structure figures pool them all); sample_batch: clips per sampler
    call; shown_clips: real and generated clips in the spectrogram picture."""

    phase: str
    generated_clips: int = 24
    sample_batch: int = 8
    shown_clips: int = 3

    def __post_init__(self):
        check_int("generated_clips", self.generated_clips, 1)
        check_int("sample_batch", self.sample_batch, 1)
        check_int("shown_clips", self.shown_clips, 1)


def score_audio(job: ScoringJob) -> dict[str, Any]:
    settings = job.settings
    phase = job.phase(settings.phase)
    data = load_phase_data(phase.data, job.config.seed)
    rows = data.validation[:]
    real, training = (
        [torch.as_tensor(np.asarray(clip, dtype=np.float32)) for clip in split["audio"]]  # [T]
        for split in (rows, data.train[:])
    )
    rate = int(rows["sampling_rate"][0])
    count = settings.generated_clips
    adapter = job.model.adapters[phase.name]
    chunks = generate(job, phase.name, count, settings.sample_batch)
    generated = [resample(w.cpu(), adapter.encoder_rate, rate) for c in chunks for w in c]
    report = audio_report(generated, real, rate, seed=job.seed)
    report |= decoder_reference(adapter, real, rate, report["energy_above_4khz"])
    report |= copy_report(
        generated, real, training, rate, _decoded_copies(adapter, training, rate, count)
    )
    shown = min(settings.shown_clips, count, len(real))
    pair = [*real[:shown], *generated[:shown]]
    written = write_decoded(job.eval_dir / "compare", "audio", pair, sampling_rate=rate, nrow=shown)
    picture = written[-1]  # spectrograms.png, or its enlarged copy when there is one
    caption = (
        f"top row: {shown} held-out real clips, bottom row: {shown} generated; "
        f"0-{rate // 2000} kHz bottom to top, one dB scale"
    )
    return {
        **report,
        "artifacts": {"spectrograms": str(picture)},
        "captions": {"spectrograms": caption},
    }


def decoder_reference(adapter, real: list, rate: int, energy: float) -> dict[str, float]:
    """The held-out real clips through a mel adapter's decoder: their energy above 4 kHz (what
    exact copies of them would score; Griffin-Lim leaks some energy upwards) and the generated
    clips' energy over it. Empty for adapters that do not decode by Griffin-Lim."""
    decoded = _decoded_copies(adapter, real, rate, len(real))
    if decoded is None:
        return {}
    decoded_energy = energy_above(decoded, rate)
    return {
        "decoded_real_energy_above_4khz": decoded_energy,
        "decoded_energy_ratio": energy / decoded_energy if decoded_energy > 0 else math.inf,
    }


def _decoded_copies(adapter, clips: list, rate: int, count: int) -> list | None:
    """The first ``count`` clips (training or held-out) through a mel adapter's decoder (what
    exact copies would sound like), at ``rate``; None for adapters that do not decode by
    Griffin-Lim."""
    if not isinstance(adapter, MelAdapter):
        return None
    copies = []
    for wave in clips[:count]:
        _, rebuilt = decoded_copy(adapter, resample(wave, rate, adapter.encoder_rate))
        copies.append(resample(rebuilt.cpu(), adapter.encoder_rate, rate))
    return copies
