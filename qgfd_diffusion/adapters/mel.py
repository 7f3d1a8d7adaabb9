"""Mel adapter: log-mel spectrogram frames as latent tokens, decoded back by Griffin-Lim.

Dimension legend: B batch, T samples, F frames, C = n_mels mel bins, S = n_fft // 2 + 1 STFT
bins, pm x pf a token's patch (mel bins x frames), L tokens, Ct = pm * pf token channels.

The audio analogue of the exact pixel patches: no encoder, nothing trainable.

    encode  waveform [T] --MelSpectrogram (power)--> mel [C, F] --log(mel + floor)--> z [F, C]
    decode  z [F, C] --exp - floor--> mel [C, F] --InverseMelScale (least squares)--> |X|^2
            [S, F] --GriffinLim--> waveform [(F - 1) * hop]

Decoding is not exact: the mel filterbank drops fine frequency detail and the spectrogram drops
phase, which Griffin-Lim estimates (Griffin & Lim 1984, with the momentum of Perraudin et al.
2013, torchaudio's ``GriffinLim``). ``qgfd_diffusion.evaluation.audio.mel_round_trip`` measures
how far mel -> waveform -> mel lands from the start (the README reports it on real speech).
Griffin-Lim starts from zero phase (``rand_init=False``) so decoding is deterministic.

Tokens. By default a token is one frame (all C mel bins; layout ``sequence``). With
``patch_mels`` / ``patch_frames`` the spectrogram is cut like an image (mel bins as height, frames
as width, ``image.patchify``) into pm x pf patches, AST's and AudioMAE's tokens, so that a token
holds a piece of a harmonic over several frames and attention runs between frequency bands as well
as times: layout ``grid`` (C / pm bands, F / pf times), or ``sequence`` when pm = C (frames
stacked pf at a time). Clips are padded at the end to whole patches; decoding keeps whole
patches, so a clip comes back up to pf - 1 frames longer (frames at the mean log-mel).

Latents are normalised with per-mel-bin statistics measured on data (``fit_latent_stats``), like
every adapter, before patching: a patch's channels mix bands of very different levels, so
statistics per patch channel would not standardise them. Batches, collation and the writer are
the audio modality's (``audio.py``); inputs are resampled to ``sampling_rate`` and decoded audio
comes out at that rate (``encoder_rate``). Clips of different lengths are encoded one by one and
padded: the mask marks real frames (real patches).
torchaudio is imported when the adapter is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..checks import check_int
from ..latents import LatentBatch, LatentLayout
from .audio import AudioBatch, AudioModality, batch_waveforms
from .base import AdapterConfig, ModalityAdapter
from .image import patchify, unpatchify
from .registry import register_adapter

TRANSFORMS = "log_mel"  # sub-module name; its filterbank buffers are rebuilt, not saved


@dataclass(kw_only=True)
class MelAdapterConfig(AdapterConfig):
    """sampling_rate: rate of the adapter's audio (inputs are resampled to it); n_fft, hop_length:
    STFT window and hop in samples; n_mels: C; f_min, f_max: mel band edges in Hz (f_max None:
    sampling_rate / 2); log_floor: added to the mel power before the log (the quietest level
    kept); griffin_lim_iters: Griffin-Lim iterations when decoding."""

    sampling_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    log_floor: float = 1e-5
    griffin_lim_iters: int = 32
    patch_mels: int | None = None
    patch_frames: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        positive = ("sampling_rate", "n_fft", "hop_length", "n_mels", "griffin_lim_iters")
        for name in (*positive, "patch_frames"):
            check_int(f"MelAdapterConfig.{name}", getattr(self, name), 1)
        if self.patch_mels is not None:
            check_int("MelAdapterConfig.patch_mels", self.patch_mels, 1)
            if self.n_mels % self.patch_mels:
                raise ValueError(
                    f"patch_mels {self.patch_mels} must divide n_mels {self.n_mels} (bands of "
                    "equal height)"
                )
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length {self.hop_length} must be <= n_fft {self.n_fft}")
        nyquist = self.sampling_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if not 0 <= self.f_min < f_max <= nyquist:
            raise ValueError(
                f"mel band must satisfy 0 <= f_min < f_max <= sampling_rate / 2 = {nyquist}, "
                f"got f_min={self.f_min}, f_max={self.f_max}"
            )
        if self.log_floor <= 0:
            raise ValueError(f"MelAdapterConfig.log_floor must be > 0, got {self.log_floor}")


class LogMel(nn.Module):
    """torchaudio's mel transforms with one set of parameters: ``forward`` waveforms -> log-mel
    frames, ``invert`` log-mel frames -> waveforms. Also the evaluation's log-mel front end."""

    def __init__(self, config: MelAdapterConfig):
        super().__init__()
        from torchaudio.transforms import GriffinLim, InverseMelScale, MelSpectrogram

        band = dict(sample_rate=config.sampling_rate, f_min=config.f_min, f_max=config.f_max)
        self.floor = config.log_floor
        self.hop = config.hop_length
        self.mel = MelSpectrogram(
            n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels, **band
        )
        self.inverse_mel = InverseMelScale(config.n_fft // 2 + 1, n_mels=config.n_mels, **band)
        self.griffin_lim = GriffinLim(
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            n_iter=config.griffin_lim_iters,
            rand_init=False,
        )

    def frames(self, samples: int) -> int:
        """F for a clip of ``samples`` samples (centred windows: 1 + T // hop)."""
        return 1 + samples // self.hop

    def forward(self, waveforms: Tensor) -> Tensor:
        """[..., T] -> z = log(mel power + floor) [..., F, C]."""
        return torch.log(self.mel(waveforms) + self.floor).transpose(-1, -2)

    def invert(self, z: Tensor) -> Tensor:
        """z [..., F, C] -> waveforms [..., (F - 1) * hop] (Griffin-Lim from zero phase)."""
        mel = (torch.exp(z.transpose(-1, -2)) - self.floor).clamp_min(0)  # [..., C, F]
        power = self.inverse_mel(mel)  # [..., S, F], least squares, >= 0
        return self.griffin_lim(power)


@register_adapter("mel")
class MelAdapter(AudioModality, ModalityAdapter):
    """Log-mel spectrograms as tokens: a frame each (layout ``sequence``) or pm x pf patches
    (module docstring); decodes."""

    config_class = MelAdapterConfig

    def __init__(self, config: MelAdapterConfig):
        super().__init__(config)
        self.log_mel = LogMel(config)
        self._init_latent_stats(config.n_mels)  # per mel bin, whatever the tokens
        self.patch = (config.patch_mels or config.n_mels, config.patch_frames)  # (pm, pf)
        self.bands = config.n_mels // self.patch[0]

    @property
    def latent_dim(self) -> int:
        """Ct = pm * pf, a token's width (n_mels for one frame per token)."""
        return self.patch[0] * self.patch[1]

    @property
    def frame_tokens(self) -> bool:
        """True when every token is one whole frame (no patching)."""
        return self.patch == (self.config.n_mels, 1)

    @property
    def encoder_rate(self) -> int:
        """The rate of encoded and decoded audio."""
        return self.config.sampling_rate

    @property
    def output_rate(self) -> int:
        """Decoded audio is at ``encoder_rate`` (what the sample writer writes WAVs at)."""
        return self.encoder_rate

    def waveforms(self, batch: AudioBatch) -> list[Tensor]:
        """Any audio batch -> list of mono waveforms [T] at ``sampling_rate``."""
        rate = self.config.sampling_rate
        return [w.to(self.device) for w in batch_waveforms(batch, rate, rate)]

    @torch.no_grad()
    def encode_features(self, batch: AudioBatch) -> LatentBatch:
        waves = self.waveforms(batch)
        frames = [self.log_mel(w) for w in waves]  # B x [F_i, C], each clip on its own
        longest = max(z.shape[0] for z in frames)
        z = torch.stack([F.pad(f, (0, 0, 0, longest - f.shape[0])) for f in frames])  # [B,F,C]
        lengths = torch.tensor([f.shape[0] for f in frames], device=z.device)
        mask = torch.arange(longest, device=z.device)[None, :] < lengths[:, None]  # [B, F]
        return LatentBatch(latents=z, layout=LatentLayout("sequence", (longest,)), mask=mask)

    @torch.no_grad()
    def encode(self, batch: AudioBatch) -> LatentBatch:
        """Raw audio -> normalised tokens [B, L, Ct] (per-bin statistics, then patches)."""
        frames = super().encode(batch)  # x0 [B, F, C], padded frames 0
        return frames if self.frame_tokens else self._patches(frames)

    def _patches(self, frames: LatentBatch) -> LatentBatch:
        """Frames x0 [B, F, C] -> patch tokens [B, bands * times, pm * pf] (row-major grid)."""
        pf = self.patch[1]
        times = -(-frames.latents.shape[1] // pf)
        x0 = F.pad(frames.latents, (0, 0, 0, times * pf - frames.latents.shape[1]))  # [B,F',C]
        tokens = patchify(x0.transpose(1, 2)[:, None], self.patch)  # mel bins as image height
        mask = None
        if frames.mask is not None:  # a patch is real when it holds a real frame
            real = F.pad(frames.mask, (0, times * pf - frames.mask.shape[1]))  # [B, F']
            mask = real.view(real.shape[0], times, pf).any(-1).repeat(1, self.bands)  # [B, L]
        kind, shape = ("grid", (self.bands, times)) if self.bands > 1 else ("sequence", (times,))
        return LatentBatch(latents=tokens, layout=LatentLayout(kind, shape), mask=mask)

    def _frames(self, tokens: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Patch tokens [B, bands * times, Ct] -> frames [B, times * pf, C] (and their mask)."""
        if tokens.shape[1] % self.bands:
            raise ValueError(
                f"{tokens.shape[1]} tokens do not fill {self.bands} mel bands of patches"
            )
        times = tokens.shape[1] // self.bands
        frames = unpatchify(tokens, (self.bands, times), self.patch)[:, 0].transpose(1, 2)
        if mask is not None:  # the first band's patches say which times are real
            mask = mask[:, :times].repeat_interleave(self.patch[1], dim=1)  # [B, F']
        return frames, mask

    @torch.no_grad()
    def decode(self, latents: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """Normalised tokens [B, L, Ct] (mask [B, L], True = real) -> one waveform per row."""
        if latents.ndim != 3 or latents.shape[-1] != self.latent_dim:
            raise ValueError(
                f"latents must be [B, L, {self.latent_dim}], got {tuple(latents.shape)}"
            )
        latents, mask = latents.to(self.device), None if mask is None else mask.to(self.device)
        if not self.frame_tokens:
            latents, mask = self._frames(latents, mask)
        return self.decode_features(self.denormalise(latents), mask)

    @property
    def can_decode(self) -> bool:
        return True

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """z [B, F, C] -> one waveform [(F_real - 1) * hop] per row, at ``sampling_rate``."""
        if mask is None:
            return list(self.log_mel.invert(z))
        return [self.log_mel.invert(row[: int(n)]) for row, n in zip(z, mask.sum(1), strict=True)]

    def _skipped_prefixes(self) -> tuple[str, ...]:
        return (f"{TRANSFORMS}.",)
