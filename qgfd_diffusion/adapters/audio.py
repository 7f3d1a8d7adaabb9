"""Audio adapter: waveforms -> frozen Wav2Vec2 (or any transformers audio encoder) frame latents.

Dimension legend: B batch, T samples, F frames, S hop (samples per frame, the product of the
encoder's convolution strides), D encoder width, C latent channels.

Audio batches: a tensor [B,T] or [T]; a list of 1-D tensors / arrays (any lengths) or of file
paths (read with soundfile); or ``{"waveforms": ..., "sampling_rate": int}``. Inputs are mixed
to mono and resampled to the encoder's rate with torchaudio (imported lazily). The latent mask
marks the frames computed from real (not padded) samples; layout ``sequence``.

Decoding is a per-frame MLP z [C] -> S samples, fitted by MSE against the waveform with
``fit_decoder``. Be honest about it: it regresses each frame's samples independently, so it
keeps loudness and coarse spectral shape but blurs phase; it is a smoke-test / inspection
decoder, not a vocoder. Decoded audio is at the encoder's sampling rate. For audio to listen
to, use the ``mel`` adapter (mel.py: log-mel frames, decoded by Griffin-Lim); this one is the
encoder-states adapter.

Modality "audio", no condition. ``collate_audio`` turns the data layer's examples
``{"audio": [T], "sampling_rate"}`` into ``{"waveforms", "sampling_rate"}``; ``write_audio``
writes decoded waveforms [T] in [-1,1] (clipped; NaN -> 0) to ``audio/sample_000.wav``, ...
(16-bit PCM, deterministic bytes) and their spectrograms to ``spectrograms.png``. Both audio
adapters (this and ``mel``) share the collation, the batch reading (``batch_waveforms``) and the
writer.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F

from ..latents import LatentBatch, LatentLayout
from .base import EncoderAdapterConfig, PretrainedEncoderAdapter
from .declarations import DataSchema
from .files import WriteOptions, check_nonempty, sample_path, save_grid, to_uint8
from .helpers import check_batch_keys, check_file, mlp_head
from .registry import register_adapter

AudioBatch = Tensor | Sequence[Any] | Mapping[str, Any]
_MODEL_INPUT_KEYS = ("input_values", "input_features")
WAV_SUBTYPE = "PCM_16"
SPECTROGRAM_NAME = "spectrograms.png"
SPECTROGRAM_WINDOW_S = 0.032  # 32 ms analysis windows (512 samples at 16 kHz)
SPECTROGRAM_HOPS_PER_WINDOW = 4
SPECTROGRAM_DB_RANGE = 80.0  # dB below the batch's loudest bin shown; quieter is black
POWER_EPS = 1e-12


def load_audio(path: str | os.PathLike) -> tuple[Tensor, int]:
    """Read an audio file with soundfile -> (mono waveform [T] float32, sampling rate)."""
    import soundfile

    data, rate = soundfile.read(
        str(check_file(path, "audio file")), dtype="float32", always_2d=True
    )
    return torch.from_numpy(data).mean(dim=1), int(rate)  # [T, channels] -> [T]


def save_audio(path: str | os.PathLike, waveform: Tensor, sampling_rate: int) -> Path:
    """Write a mono waveform [T] with soundfile (format from the suffix, e.g. .wav)."""
    import soundfile

    path = Path(path)
    soundfile.write(str(path), waveform.detach().cpu().float().reshape(-1).numpy(), sampling_rate)
    return path


def resample(waveform: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """Resample [..., T] from ``orig_rate`` to ``new_rate`` (torchaudio, imported lazily)."""
    if orig_rate == new_rate:
        return waveform
    from torchaudio.functional import resample as torchaudio_resample

    return torchaudio_resample(waveform, orig_rate, new_rate)


def _one_waveform(item: Any, rate: int, target_rate: int) -> Tensor:
    """A file path, array or tensor [T] at ``rate`` -> float32 waveform [T] at ``target_rate``."""
    if isinstance(item, (str, os.PathLike)):
        item, rate = load_audio(item)
    wave = torch.as_tensor(np.asarray(item) if not isinstance(item, Tensor) else item).float()
    if wave.ndim != 1 or wave.numel() == 0:
        raise ValueError(f"each waveform must be 1-D and non-empty, got shape {tuple(wave.shape)}")
    return resample(wave.cpu(), rate, target_rate)


def batch_waveforms(batch: AudioBatch, rate: int, target_rate: int) -> list[Tensor]:
    """Any audio batch (module docstring) -> list of mono float32 waveforms [T] on the CPU,
    resampled from ``rate`` (in-memory inputs; a dict's ``sampling_rate`` and files carry
    their own) to ``target_rate``."""
    if isinstance(batch, Mapping):
        check_batch_keys(batch, ("waveforms",), ("sampling_rate",), "an audio")
        batch, rate = batch["waveforms"], int(batch.get("sampling_rate", rate))
    if isinstance(batch, Tensor):
        batch = list(batch.reshape(-1, batch.shape[-1]))  # [T] or [B,T] -> B x [T]
    if isinstance(batch, (str, os.PathLike)):
        batch = [batch]
    if not len(batch):
        raise ValueError("an audio batch must be a tensor, a file path or a non-empty list")
    return [_one_waveform(item, rate, target_rate) for item in batch]


def _read_audio(value: str | Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """A path, or datasets' undecoded {"bytes", "path"}, -> mono float32 [T], sampling rate."""
    import soundfile

    if isinstance(value, Mapping):
        value = io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]
    samples, rate = soundfile.read(value, dtype="float32", always_2d=True)  # [T, channels]
    return samples.mean(axis=1), int(rate)  # [T, channels] -> [T]


def decode_audio_examples(batch: dict[str, list]) -> dict[str, list]:
    """Hub / files rows {"audio": paths or undecoded files} -> the schema's rows
    (``AUDIO_SCHEMA``), read with soundfile."""
    decoded = [_read_audio(value) for value in batch["audio"]]
    return {
        "audio": [samples for samples, _ in decoded],
        "sampling_rate": [rate for _, rate in decoded],
    }


# The data layer's audio examples: {"audio": float32 [T] (mono), "sampling_rate": int}. A hub /
# files Audio column is read undecoded and decoded with soundfile on access: datasets' own audio
# decoding needs torchcodec.
AUDIO_SCHEMA = DataSchema(
    column="audio",
    arrays=("audio",),
    feature="Audio",
    decode=decode_audio_examples,
    undecoded=True,
)


def collate_audio(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """-> {"waveforms": list of float32 [T] arrays (lengths may differ), "sampling_rate": int}
    (the audio adapter's batch keys)."""
    rates = {int(example["sampling_rate"]) for example in examples}
    if len(rates) != 1:
        raise ValueError(f"one batch mixes sampling rates {sorted(rates)}; resample first")
    return {
        "waveforms": [np.asarray(example["audio"], dtype=np.float32) for example in examples],
        "sampling_rate": rates.pop(),
    }


def _waveform(sample: Any, index: int) -> np.ndarray:
    """One waveform (tensor or array) [T] -> float32 numpy in [-1,1] (clipped; NaN -> 0)."""
    if isinstance(sample, Tensor):
        sample = sample.detach().cpu().float().numpy()
    if not isinstance(sample, np.ndarray) or sample.ndim != 1:
        shape = sample.shape if isinstance(sample, np.ndarray) else type(sample).__name__
        raise ValueError(f"audio sample {index} must be a 1-D waveform [T], got {shape}")
    return np.clip(np.nan_to_num(sample.astype(np.float32), nan=0.0), -1.0, 1.0)


def spectrogram_pixels(waveforms: list[np.ndarray], rate: int) -> torch.Tensor:
    """Waveforms [T] -> uint8 log-power spectrograms [B, 1, n_freq, n_time] (low frequencies at the
    bottom; shorter clips padded with black), in dB relative to the batch's loudest bin and
    clipped SPECTROGRAM_DB_RANGE below it, so a batch's spectrograms compare on one scale."""
    n_fft = max(2, round(SPECTROGRAM_WINDOW_S * rate))
    hop = max(1, n_fft // SPECTROGRAM_HOPS_PER_WINDOW)
    window = torch.hann_window(n_fft)
    powers = []
    for wave in waveforms:
        wave = torch.from_numpy(wave)
        wave = F.pad(wave, (0, max(0, n_fft - wave.numel())))  # stft needs >= n_fft samples
        stft = torch.stft(wave, n_fft, hop, window=window, return_complex=True)  # [n_freq, n_time]
        powers.append(stft.abs().square())
    frames = max(p.shape[-1] for p in powers)
    power = torch.stack(
        [F.pad(p, (0, frames - p.shape[-1])) for p in powers]
    )  # [B, n_freq, n_time]
    decibels = 10 * torch.log10(power + POWER_EPS)
    level = (decibels - decibels.max() + SPECTROGRAM_DB_RANGE) / SPECTROGRAM_DB_RANGE
    return to_uint8(
        level.flip(-2)[:, None]
    )  # [B, 1, n_freq, n_time], low frequencies at the bottom


def write_audio(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    """Waveforms (list of [T], or [B,T]) -> audio/sample_000.wav, ... at options.sampling_rate,
    then spectrograms.png (``spectrogram_pixels``, options.nrow per row; default one sample per
    row) and its enlarged copy."""
    import soundfile as sf

    rate = options.sampling_rate
    if not isinstance(rate, int) or rate < 1:
        raise ValueError(
            f"audio needs sampling_rate, a positive int (the adapter's encoder_rate), got {rate!r}"
        )
    if isinstance(decoded, Tensor) and decoded.ndim == 2:
        decoded = list(decoded)  # [B,T] -> B waveforms [T]
    if not isinstance(decoded, Sequence):
        raise ValueError(
            f"audio samples must be a list of 1-D waveforms, got {type(decoded).__name__}"
        )
    check_nonempty(len(decoded), "audio")
    waves = [_waveform(sample, i) for i, sample in enumerate(decoded)]
    files = []
    for i, wave in enumerate(waves):
        path = sample_path(out_dir / "audio", i, ".wav")
        sf.write(path, wave, rate, subtype=WAV_SUBTYPE, format="WAV")
        files.append(path)
    pixels = spectrogram_pixels(waves, rate)
    return files + save_grid(pixels, out_dir / SPECTROGRAM_NAME, nrow=options.nrow or 1)


class AudioModality:
    """The audio modality's declarations (``declarations``), shared by both audio adapters
    (this and ``mel``)."""

    modality = "audio"
    condition_kind = None
    schema = AUDIO_SCHEMA
    collate = staticmethod(collate_audio)
    writer = staticmethod(write_audio)
    output_field = "audios"


@dataclass(kw_only=True)
class AudioAdapterConfig(EncoderAdapterConfig):
    """sampling_rate: rate of in-memory inputs (None: already at the encoder's rate; files
    carry their own); decoder_hidden: width of the frame-to-waveform head."""

    sampling_rate: int | None = None
    decoder_hidden: int = 256


@register_adapter("audio")
class AudioAdapter(AudioModality, PretrainedEncoderAdapter):
    """Frame features of a frozen audio encoder; an optional frame-to-waveform head."""

    config_class = AudioAdapterConfig

    def __init__(self, config: AudioAdapterConfig):
        super().__init__(config)
        self.encoder_rate = int(getattr(self.processor, "sampling_rate", 0) or 16000)
        strides = getattr(self.pretrained.config, "conv_stride", None)
        self.hop = math.prod(strides) if strides else None  # S
        if self.hop is not None:
            self.decoder_head = mlp_head(self.latent_dim, config.decoder_hidden, self.hop)

    @property
    def output_rate(self) -> int:
        """Decoded audio is at the encoder's rate."""
        return self.encoder_rate

    def _load_pretrained(self, source: str) -> tuple[nn.Module, Any]:
        from transformers import AutoFeatureExtractor, AutoModel

        model = AutoModel.from_pretrained(source, use_safetensors=True)
        return model, AutoFeatureExtractor.from_pretrained(source)

    # -- inputs -------------------------------------------------------------------------------

    def waveforms(self, batch: AudioBatch) -> list[Tensor]:
        """Any audio batch -> list of mono waveforms [T] at the encoder's rate."""
        waves = batch_waveforms(
            batch, self.config.sampling_rate or self.encoder_rate, self.encoder_rate
        )
        return [w.to(self.device) for w in waves]

    # -- encoding -----------------------------------------------------------------------------

    def _features(self, waves: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Waveforms -> z [B,F,C] and frame mask [B,F]."""
        inputs = self.processor(
            [w.cpu().numpy() for w in waves],
            sampling_rate=self.encoder_rate,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        kwargs = {k: inputs[k].to(self.device) for k in _MODEL_INPUT_KEYS if k in inputs}
        if getattr(self.processor, "return_attention_mask", False):
            kwargs["attention_mask"] = inputs["attention_mask"].to(self.device)
        h = self.pretrained(**kwargs).last_hidden_state  # [B,F,D]
        lengths = torch.tensor([w.numel() for w in waves], device=self.device)
        if hasattr(self.pretrained, "_get_feat_extract_output_lengths"):
            frames = self.pretrained._get_feat_extract_output_lengths(lengths)  # [B]
        else:
            frames = torch.full_like(lengths, h.shape[1])
        mask = torch.arange(h.shape[1], device=self.device)[None, :] < frames[:, None]  # [B,F]
        return self.project(h), mask

    @torch.no_grad()
    def encode_features(self, batch: AudioBatch) -> LatentBatch:
        z, mask = self._features(self.waveforms(batch))
        return LatentBatch(latents=z, layout=LatentLayout("sequence", (z.shape[1],)), mask=mask)

    # -- frame-to-waveform head ---------------------------------------------------------------

    @property
    def can_decode(self) -> bool:
        return self.decoder_head is not None and bool(self.decoder_fitted)

    def _no_decoder_reason(self) -> str:
        return (
            f"{type(self.pretrained).__name__} has no conv_stride, so the frame hop is "
            "unknown and this audio adapter cannot decode"
        )

    def _samples(self, z: Tensor) -> Tensor:
        return rearrange(self.decoder_head(z), "b f s -> b (f s)")  # [B, F*S]

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """z [B,F,C] -> one waveform [F_real*S] per row, at ``self.encoder_rate``."""
        samples = self._samples(z)
        frames = [z.shape[1]] * z.shape[0] if mask is None else mask.sum(1).tolist()
        return [row[: n * self.hop] for row, n in zip(samples, frames, strict=True)]

    def _decoder_example(self, batch: AudioBatch) -> tuple[Tensor, Tensor, Tensor]:
        waves = self.waveforms(batch)
        z, mask = self._features(waves)
        total = z.shape[1] * self.hop  # F*S samples covered by the frames
        target = torch.stack([F.pad(w[:total], (0, max(0, total - w.numel()))) for w in waves])
        return z, mask, target  # target [B, F*S]

    def _decoder_loss(self, example: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        z, mask, target = example
        sample_mask = mask.repeat_interleave(self.hop, dim=1)  # [B,F] -> [B, F*S]
        return F.mse_loss(self._samples(z)[sample_mask], target[sample_mask])
