"""Audio scores: log-mel Frechet distance over a real-vs-real floor, the share of energy above
4 kHz, the structure of speech (voiced frames, pauses), and the mel adapter's round trip.

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

``nearest_training_db``: how close each clip comes to the training speech, the smallest mean
absolute log-mel difference (dB) between the clip and any stretch of the training clips laid end
to end; generated clips far closer than held-out real ones are copies of the training data.

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


VOICING_WINDOW_S = 0.040  # two periods of a 50 Hz voice
PITCH_RANGE_HZ = (60.0, 400.0)  # F0 of adult and child speech
VOICED_CORRELATION = 0.6
SILENCE_DB = 40.0  # frames this far below a clip's loudest are pauses, not voiced or unvoiced


def frames_of(wave: Tensor, window: int, hop: int) -> Tensor:
    """[T] -> [F, window] frames every ``hop`` samples, no padding (a short clip: one frame)."""
    if wave.numel() < window:
        wave = torch.nn.functional.pad(wave, (0, window - wave.numel()))
    return wave.unfold(0, window, hop)


def frame_level_db(wave: Tensor, rate: int) -> Tensor:
    """Mean power of 25 ms frames every 10 ms, in dB: [F]."""
    frames = frames_of(wave, round(METRIC_WINDOW_S * rate), round(METRIC_HOP_S * rate))
    return 10 * torch.log10(frames.square().mean(dim=1) + 1e-10)


def voiced_share(clips: Any, rate: int) -> float:
    """Share of the non-silent 40 ms frames (every 10 ms) that are periodic at a pitch in
    PITCH_RANGE_HZ: the peak of the frame's normalised autocorrelation over those lags,
    unbiased for the overlap (r(tau) / r(0) * W / (W - tau)), exceeds VOICED_CORRELATION.
    Speech's harmonic stripes are voiced frames; noise of any spectrum has almost none.
    Written by hand: torchaudio's ``detect_pitch_frequency`` returns a pitch for every frame,
    noise included, with no periodicity strength to threshold."""
    window, hop = round(VOICING_WINDOW_S * rate), round(METRIC_HOP_S * rate)
    low, high = round(rate / PITCH_RANGE_HZ[1]), round(rate / PITCH_RANGE_HZ[0])
    lags = torch.arange(low, high + 1)  # [K]
    voiced = counted = 0
    for wave in as_waveforms(clips):
        frames = frames_of(wave.double(), window, hop)  # [F, W]
        level = 10 * torch.log10(frames.square().mean(dim=1) + 1e-20)  # [F]
        frames = frames[level > level.max() - SILENCE_DB]
        frames = frames - frames.mean(dim=1, keepdim=True)
        spectrum = torch.fft.rfft(frames, n=2 * window)  # zero-padded: linear, not circular
        autocorrelation = torch.fft.irfft(spectrum.abs().square(), n=2 * window)[:, :window]
        normalised = autocorrelation[:, lags] / autocorrelation[:, :1].clamp_min(1e-20)
        peak = (normalised * window / (window - lags)).max(dim=1).values  # [F]
        voiced += int((peak > VOICED_CORRELATION).sum())
        counted += len(frames)
    return voiced / counted if counted else 0.0


def level_spread_db(clips: Any, rate: int) -> float:
    """Standard deviation of the frame level in dB over each clip's 10 ms frames, mean over
    clips: syllables and pauses make speech's level swing; stationary sound barely moves."""
    return float(torch.stack([frame_level_db(w, rate).std() for w in as_waveforms(clips)]).mean())


def structure_report(generated: list[Tensor], real: list[Tensor], rate: int) -> dict[str, float]:
    """voiced_share and level_spread_db of generated and real clips, and generated / real."""
    report = {}
    for name, measure in (("voiced_share", voiced_share), ("level_spread_db", level_spread_db)):
        ours, theirs = measure(generated, rate), measure(real, rate)
        report |= {name: ours, f"real_{name}": theirs, f"{name}_ratio": ours / theirs}
    return report


@torch.no_grad()
def training_frames(training: Any, rate: int) -> Tensor:
    """Every training clip's log-mel frames (the metrics' front end) end to end: [N, C]."""
    front = metric_log_mel(rate)
    return torch.cat([front(wave) for wave in as_waveforms(training, "training")])


@torch.no_grad()
def nearest_training_db(clips: Any, training: Any, rate: int, bank: Tensor | None = None) -> Tensor:
    """Per clip [B]: min over offsets o of mean |L_clip - L_train[o : o + F]| in dB, where L are
    log-mel frames [F, C] (the metrics' front end) and L_train holds every training clip's
    frames end to end [N, C] (``training_frames``; pass it as ``bank`` to reuse it), so a copy
    that straddles two training clips is still found. A clip longer than the training frames
    is compared with its first N frames."""
    front = metric_log_mel(rate)
    bank = training_frames(training, rate) if bank is None else bank  # [N, C]
    distances = []
    for wave in as_waveforms(clips):
        frames = front(wave)[: bank.shape[0]]  # [F, C]
        windows = bank.unfold(0, frames.shape[0], 1)  # [N - F + 1, C, F]
        gaps = (windows - frames.T).abs().mean(dim=(1, 2))  # [N - F + 1]
        distances.append(DB_PER_NEPER * gaps.min())
    return torch.stack(distances)


def copy_report(
    generated: Any, heldout_real: Any, training: Any, rate: int, copies: Any = None
) -> dict[str, float]:
    """Median ``nearest_training_db`` of the generated and of the held-out real clips, and
    generated / real: well below 1, the model reproduces its training clips. ``copies``
    (optional): training clips passed through the decoder (``decoded_copy``), whose median,
    copy_nearest_training_db, is where exact copies would score."""
    bank = training_frames(training, rate)  # once for every set of clips

    def median_db(clips: Any) -> float:
        return nearest_training_db(clips, training, rate, bank).median().item()

    ours, theirs = median_db(generated), median_db(heldout_real)
    report = {
        "nearest_training_db": ours,
        "real_nearest_training_db": theirs,
        "nearest_training_ratio": ours / theirs if theirs > 0 else math.inf,
    }
    if copies is not None:
        report["copy_nearest_training_db"] = median_db(copies)
    return report


def white_noise_like(clips: Sequence[Tensor], seed: int = 0) -> list[Tensor]:
    """Gaussian white noise with each clip's length and RMS level: the crudest non-speech."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(c.numel(), generator=generator) * c.square().mean().sqrt() for c in clips]


def shaped_noise_like(clips: Sequence[Tensor], seed: int = 0) -> list[Tensor]:
    """Stationary noise with each clip's length, RMS level and long-term power spectrum (white
    noise filtered by the square root of the clip's mean STFT power): speech's timbre without
    its harmonics, onsets or pauses, the reference that a log-mel distance must tell apart."""
    generator, shaped = torch.Generator().manual_seed(seed), []
    window = torch.hann_window(ENERGY_N_FFT)
    for clip in clips:
        power = torch.stft(clip, ENERGY_N_FFT, window=window, return_complex=True).abs().square()
        spectrum = power.mean(dim=1)  # [S]: the clip's long-term power spectrum
        noise = torch.fft.rfft(torch.randn(clip.numel(), generator=generator))  # [T/2 + 1]
        gain = torch.nn.functional.interpolate(
            spectrum.sqrt()[None, None], size=noise.numel(), mode="linear", align_corners=True
        )[0, 0]
        wave = torch.fft.irfft(noise * gain, n=clip.numel())
        shaped.append(wave * clip.square().mean().sqrt() / wave.square().mean().sqrt())
    return shaped


def audio_report(generated: Any, heldout_real: Any, rate: int, seed: int = 0) -> dict[str, float]:
    """The audio task's figures for generated clips against held-out real clips (>= 4).

    The held-out clips split into halves A and B. logmel_floor is FD(A, B); logmel_fd is
    FD(group, B) averaged over the consecutive groups of |A| generated clips (one group when
    as many clips are generated as A holds), so each distance stands on the floor's footing
    (the estimate's bias depends on the sample sizes) while more clips lower its variance.
    Returns logmel_fd, logmel_floor, logmel_fd_over_floor,
    energy_above_4khz of the generated clips and real_energy_above_4khz of all held-out clips
    (the reference row), their ratio, and the clip counts. Two reference rows, made from half A
    and scored against B like the generated clips, say what the distance can tell apart:
    white_noise_fd_over_floor (white noise at each clip's level) and shaped_noise_fd_over_floor
    (stationary noise with each clip's long-term spectrum; ``shaped_noise_like``). Speech's
    structure, for generated and all held-out clips: voiced_share (harmonic frames) and
    level_spread_db (syllables and pauses).
    """
    generated, real = as_waveforms(generated, "generated"), as_waveforms(heldout_real, "heldout")
    half_a, half_b = random_group_halves(len(real), seed)
    real_a = [real[i] for i in half_a]
    frames_b = log_mel_frames([real[i] for i in half_b], rate)

    def distance_to_b(clips: list[Tensor]) -> float:
        return frechet_distance(log_mel_frames(clips, rate), frames_b)

    if len(generated) < len(real_a):
        raise ValueError(
            f"generated: need at least {len(real_a)} clips (one held-out half), "
            f"got {len(generated)}"
        )
    groups = [generated[i : i + len(real_a)] for i in range(0, len(generated), len(real_a))]
    groups = [group for group in groups if len(group) == len(real_a)]  # a short tail is left out
    floor = distance_to_b(real_a)
    distance = float(np.mean([distance_to_b(group) for group in groups]))
    energy, real_energy = energy_above(generated, rate), energy_above(real, rate)
    return {
        "logmel_fd": distance,
        "logmel_floor": floor,
        "logmel_fd_over_floor": distance / floor,
        "white_noise_fd_over_floor": distance_to_b(white_noise_like(real_a, seed)) / floor,
        "shaped_noise_fd_over_floor": distance_to_b(shaped_noise_like(real_a, seed)) / floor,
        "energy_above_4khz": energy,
        "real_energy_above_4khz": real_energy,
        "energy_ratio": energy / real_energy if real_energy > 0 else math.inf,
        **structure_report(generated, real, rate),
        "generated_clips": float(len(generated)),
        "real_clips": float(len(real)),
    }


@torch.no_grad()
def decoded_copy(adapter: MelAdapter, wave: Tensor) -> tuple[Tensor, Tensor]:
    """A clip at the adapter's rate -> (the clip cut to the decoded length, its mel -> Griffin-Lim
    waveform [(F - 1) * hop]): what a model that copied the clip exactly would put out."""
    rebuilt = adapter.log_mel.invert(adapter.log_mel(wave.to(adapter.device)))
    return wave[: rebuilt.numel()].to(rebuilt.device), rebuilt


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
        original, rebuilt = decoded_copy(adapter, wave)
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
