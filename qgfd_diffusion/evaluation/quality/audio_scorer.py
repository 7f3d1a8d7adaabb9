"""The ``audio`` scorer: unconditional clips scored by ``qgfd_diffusion.evaluation.audio_report``
against the phase's held-out real clips, with a real-vs-generated spectrogram picture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...adapters.audio import resample
from ...checks import check_int
from ...sample.writers import write_decoded
from ...train.phases import load_phase_data
from ..audio import audio_report
from ..frechet import random_group_halves

if TYPE_CHECKING:
    from .jobs import Job

HEADLINE = (
    ("logmel_fd_over_floor", False),
    ("logmel_fd", False),
    ("logmel_floor", False),
    ("energy_above_4khz", False),
    ("real_energy_above_4khz", False),
    ("energy_ratio", False),
    ("voiced_share_ratio", True),
    ("level_spread_db_ratio", True),
    ("shaped_noise_fd_over_floor", False),
    ("white_noise_fd_over_floor", False),
)


@dataclass
class AudioSettings:
    """phase: the audio phase; sample_batch: clips per sampler call; shown_clips: real and
    generated clips in the spectrogram picture. As many clips are generated as one half of
    the held-out clips holds (the floor's footing)."""

    phase: str
    sample_batch: int = 8
    shown_clips: int = 3

    def __post_init__(self):
        check_int("sample_batch", self.sample_batch, 1)
        check_int("shown_clips", self.shown_clips, 1)


def score_audio(job: Job) -> dict[str, Any]:
    from .scorers import generate  # scorers imports this module

    settings = job.settings
    phase = job.phase(settings.phase)
    rows = load_phase_data(phase.data, job.config.seed).validation[:]
    real = [torch.as_tensor(np.asarray(clip, dtype=np.float32)) for clip in rows["audio"]]  # [T]
    rate = int(rows["sampling_rate"][0])
    count = len(random_group_halves(len(real), job.seed)[0])
    adapter = job.model.adapters[phase.name]
    chunks = generate(job, phase.name, count, settings.sample_batch)
    generated = [resample(w.cpu(), adapter.encoder_rate, rate) for c in chunks for w in c]
    report = audio_report(generated, real, rate, seed=job.seed)
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
