"""Audio scores: log-mel Frechet distance over a real-vs-real floor, the share of energy above
4 kHz, and the mel adapter's round trip.

Dimension legend: B clips, T samples, F frames of one clip, N frames pooled over clips,
C mel channels, S STFT bins.

The metrics' front end is fixed, whatever adapter made the audio: the usual speech filterbank
(25 ms windows, 10 ms hop, 40 mel bands up to the Nyquist frequency, log(power + 1e-5)),
torchaudio's ``MelSpectrogram`` through the mel adapter's ``LogMel``. Every frame of every
clip is one point [C]; the Frechet distance (``frechet.py``) compares the Gaussians of two frame
sets. Its finite-sample floor is measured on real data: the held-out clips are split into two
halves A and B (whole clips, so frames of one clip never sit on both sides) and
``logmel_fd_over_floor`` = FD(generated, B) / FD(A, B). Generate as many clips as A holds so
the two distances stand on the same footing.

``energy_above`` is the share of STFT power above a cutoff (4 kHz: the bundled speech is
band-limited there, so real clips score near 0, 2.6e-7 over all 30 s, and white noise 0.5). Its
spectrogram does not pad the clip's edges: a clip cut mid-sound ends abruptly, and the padded
edge's broadband power alone would triple that figure.

``mel_round_trip``: encode -> decode -> encode with a mel adapter's own transforms (decoding by
Griffin-Lim); spectral convergence ||M' - M||_F / ||M||_F on the mel power spectrogram and the
mean absolute log-mel error (natural log, the latents' unit, and in dB).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..adapters.mel import LogMel, MelAdapter, MelAdapterConfig
from .frechet import frechet_distance, random_group_halves

METRIC_WINDOW_S = 0.025  # the speech filterbank's 25 ms windows ...
METRIC_HOP_S = 0.010  # ... every 10 ms
METRIC_MELS = 40
ENERGY_N_FFT = 512
CUTOFF_HZ = 4000.0
DB_PER_NEPER = 10 / math.log(10)  # 10 log10(x) = DB_PER_NEPER * ln(x)


def as_waveforms(clips: Any, name: str = "clips") -> list[Tensor]:
    """A [B, T] tensor / array or a list of 1-D waveforms -> list of float32 CPU tensors [T]."""
    if isinstance(clips, (Tensor, np.ndarray)) and clips.ndim == 2:
        clips = list(clips)
    if not isinstance(clips, Sequence) or not len(clips):
        raise ValueError(f"{name} must be a non-empty list of 1-D waveforms or a [B, T] array")
    waves = [torch.as_tensor(np.asarray(c) if not isinstance(c, Tensor) else c) for c in clips]
    for i, wave in enumerate(waves):
        if wave.ndim != 1 or wave.numel() == 0 or not torch.isfinite(wave).all():
            raise ValueError(f"{name}[{i}] must be a finite, non-empty 1-D waveform")
    return [w.detach().float().cpu() for w in waves]


def metric_log_mel(rate: int) -> LogMel:
    """The metrics' log-mel front end at ``rate`` (module docstring)."""
    return LogMel(
        MelAdapterConfig(
            sampling_rate=rate,
            n_fft=round(METRIC_WINDOW_S * rate),
            hop_length=round(METRIC_HOP_S * rate),
            n_mels=METRIC_MELS,
        )
    )


@torch.no_grad()
def log_mel_frames(clips: Any, rate: int) -> np.ndarray:
    """Clips -> every frame's log-mel vector, pooled: [N, C] float64."""
    front = metric_log_mel(rate)
    frames = [front(wave) for wave in as_waveforms(clips)]  # B x [F_i, C]
    return torch.cat(frames).double().numpy()


@torch.no_grad()
def energy_above(clips: Any, rate: int, cutoff_hz: float = CUTOFF_HZ) -> float:
    """Share of the clips' total STFT power at frequencies >= ``cutoff_hz``."""
    if not 0 < cutoff_hz < rate / 2:
        raise ValueError(f"cutoff_hz must lie in (0, {rate / 2}), got {cutoff_hz}")
    from torchaudio.transforms import Spectrogram

    spectrogram = Spectrogram(n_fft=ENERGY_N_FFT, power=2.0, center=False)  # no edge padding
    bins = torch.fft.rfftfreq(ENERGY_N_FFT, d=1.0 / rate) >= cutoff_hz  # [S]
    high = total = 0.0
    for wave in as_waveforms(clips):
        power = spectrogram(wave)  # [S, F]
        high += float(power[bins].sum())
        total += float(power.sum())
    return high / total if total > 0 else 0.0


def audio_report(generated: Any, heldout_real: Any, rate: int, seed: int = 0) -> dict[str, float]:
    """The issue's audio figures for generated clips against held-out real clips (>= 4).

    Returns logmel_fd (FD(generated, B)), logmel_floor (FD(A, B)), logmel_fd_over_floor,
    energy_above_4khz of the generated clips and real_energy_above_4khz of all held-out clips
    (the reference row), their ratio, and the clip counts.
    """
    generated, real = as_waveforms(generated, "generated"), as_waveforms(heldout_real, "heldout")
    half_a, half_b = random_group_halves(len(real), seed)
    frames_b = log_mel_frames([real[i] for i in half_b], rate)
    floor = frechet_distance(log_mel_frames([real[i] for i in half_a], rate), frames_b)
    distance = frechet_distance(log_mel_frames(generated, rate), frames_b)
    energy, real_energy = energy_above(generated, rate), energy_above(real, rate)
    return {
        "logmel_fd": distance,
        "logmel_floor": floor,
        "logmel_fd_over_floor": distance / floor,
        "energy_above_4khz": energy,
        "real_energy_above_4khz": real_energy,
        "energy_ratio": energy / real_energy if real_energy > 0 else math.inf,
        "generated_clips": float(len(generated)),
        "real_clips": float(len(real)),
    }


@torch.no_grad()
def mel_round_trip(adapter: MelAdapter, clips: Any) -> dict[str, float]:
    """mel -> waveform -> mel through ``adapter``'s transforms, over clips at its rate.

    Each clip is cut to the decoded length ((F - 1) * hop samples) before its mel spectrogram
    is compared with the re-encoded one. Returns mel_spectral_convergence (pooled Frobenius
    norms), logmel_mae (nepers), logmel_mae_db, and energy_above_4khz of the original and the
    decoded clips.
    """
    log_mel, originals, decoded = adapter.log_mel, [], []
    squared_error = squared_norm = absolute_error = count = 0.0
    for wave in as_waveforms(clips):
        z = log_mel(wave.to(adapter.device))  # [F, C]
        rebuilt = log_mel.invert(z)  # [(F - 1) * hop]
        original = wave[: rebuilt.numel()].to(rebuilt.device)
        z, z_rebuilt = log_mel(original), log_mel(rebuilt)  # [F', C] each
        mel, mel_rebuilt = torch.exp(z) - log_mel.floor, torch.exp(z_rebuilt) - log_mel.floor
        squared_error += float((mel_rebuilt - mel).square().sum())
        squared_norm += float(mel.square().sum())
        absolute_error += float((z_rebuilt - z).abs().sum())
        count += z.numel()
        originals.append(original.cpu())
        decoded.append(rebuilt.cpu())
    rate = adapter.encoder_rate
    return {
        "mel_spectral_convergence": math.sqrt(squared_error / squared_norm),
        "logmel_mae": absolute_error / count,
        "logmel_mae_db": DB_PER_NEPER * absolute_error / count,
        "original_energy_above_4khz": energy_above(originals, rate),
        "decoded_energy_above_4khz": energy_above(decoded, rate),
        "clips": float(len(originals)),
    }
