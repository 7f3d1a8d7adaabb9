"""Mel adapter: log-mel frames as tokens, Griffin-Lim decoding, the round trip on real speech."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("torchaudio", reason="audio extra not installed")

from qgfd_diffusion.adapters import MelAdapter, MelAdapterConfig, load_adapter
from qgfd_diffusion.evaluation.audio import mel_round_trip
from qgfd_diffusion.sample.writers import write_decoded

RATE = 16000
SMALL = dict(n_fft=512, hop_length=128, n_mels=40)  # fast settings for the unit tests
# Measured on all 30 one-second clips of the bundled speech with the default settings
# (benchmarks/mel_round_trip.py): spectral convergence 0.19, log-mel error 2.1 dB. A decoder
# that lost the spectral envelope (e.g. flat noise) lands near 1 and tens of dB.
MAX_SPECTRAL_CONVERGENCE = 0.3
MAX_LOGMEL_ERROR_DB = 3.0
SEMITONE = 1 / 12  # octaves


def tone(freq: float, samples: int = RATE // 2, amplitude: float = 0.5) -> torch.Tensor:
    return amplitude * torch.sin(2 * math.pi * freq * torch.arange(samples) / RATE)


def htk_mel(freq: float) -> float:
    """The HTK mel scale (torchaudio's default), written out as the reference."""
    return 2595 * math.log10(1 + freq / 700)


def test_frames_are_tokens_and_padding_is_masked():
    adapter = MelAdapter(MelAdapterConfig(**SMALL))
    lengths = (8000, 5000, 1000)
    batch = adapter.encode([tone(440, n) for n in lengths])
    frames = [1 + n // SMALL["hop_length"] for n in lengths]
    assert batch.latents.shape == (3, max(frames), SMALL["n_mels"])
    assert batch.layout.kind == "sequence" and batch.layout.shape == (max(frames),)
    assert batch.mask.sum(1).tolist() == frames
    assert (batch.latents[~batch.mask] == 0).all()
    alone = adapter.encode([tone(440, 5000)]).latents[0]  # padding does not leak into frames
    torch.testing.assert_close(batch.latents[1, : frames[1]], alone)


@pytest.mark.parametrize("patch_mels, kind", [(8, "grid"), (None, "sequence")])
def test_patches_cut_the_spectrogram_and_decode_like_frames(patch_mels, kind):
    """pm x pf patches (or frames stacked pf at a time) hold the same normalised values as the
    frame tokens, and decode to the same audio: the frame-token clip, padded to whole patches."""
    clips = [tone(440, 8000), tone(660, 3000)]
    frame_adapter = MelAdapter(MelAdapterConfig(**SMALL)).fit_latent_stats([clips])
    config = MelAdapterConfig(**SMALL, patch_mels=patch_mels, patch_frames=4)
    adapter = MelAdapter(config).fit_latent_stats([clips])
    frames, tokens = frame_adapter.encode(clips), adapter.encode(clips)
    pm = patch_mels or SMALL["n_mels"]
    bands, times = SMALL["n_mels"] // pm, -(-frames.latents.shape[1] // 4)
    assert adapter.latent_dim == pm * 4 and tokens.latents.shape == (2, bands * times, pm * 4)
    assert tokens.layout.kind == kind and tokens.layout.num_tokens == bands * times
    # token (band b, time j) holds mel bins [b pm, (b + 1) pm) of frames [4 j, 4 j + 4)
    b, j = bands - 1, 2
    patch = frames.latents[0, 4 * j : 4 * j + 4, b * pm : (b + 1) * pm].T  # [pm, pf]
    torch.testing.assert_close(tokens.latents[0, b * times + j], patch.reshape(-1))
    real_times = -(-frames.mask.sum(1) // 4)  # a patch is real when it holds a real frame
    assert tokens.mask.sum(1).tolist() == (bands * real_times).tolist()
    short = frames.mask[1].sum().item()
    padded = torch.zeros(1, 4 * real_times[1].item(), SMALL["n_mels"])
    padded[0, :short] = frames.latents[1, :short]  # whole patches: frames of 0 after the clip
    expected = frame_adapter.decode(padded)[0]
    torch.testing.assert_close(adapter.decode(tokens.latents, tokens.mask)[1], expected)
    with pytest.raises(ValueError, match=rf"latents must be \[B, L, {pm * 4}\]"):
        adapter.decode(frames.latents)


def test_tone_lands_in_its_mel_band():
    """A 1 kHz tone's loudest channel is the band whose centre (HTK formula) is nearest 1 kHz."""
    config = MelAdapterConfig(**SMALL)
    z = MelAdapter(config).encode_features([tone(1000.0)]).latents[0]  # [F, C]
    top = htk_mel(RATE / 2)
    centres = [top * (i + 1) / (config.n_mels + 1) for i in range(config.n_mels)]
    nearest = min(range(config.n_mels), key=lambda i: abs(centres[i] - htk_mel(1000.0)))
    assert int(z.mean(0).argmax()) == nearest


def test_decode_keeps_pitch_length_and_rate(tmp_path):
    adapter = MelAdapter(MelAdapterConfig(**SMALL)).fit_latent_stats([[tone(300), tone(700)]])
    batch = adapter.encode([tone(440), tone(880, 4000)])
    waves = adapter.decode(batch.latents, batch.mask)
    assert [w.numel() for w in waves] == [
        (n - 1) * SMALL["hop_length"] for n in batch.mask.sum(1).tolist()
    ]
    for wave, freq in zip(waves, (440, 880), strict=True):
        spectrum = np.abs(np.fft.rfft(wave.numpy()))
        peak = np.fft.rfftfreq(wave.numel(), 1 / RATE)[spectrum.argmax()]
        assert abs(math.log2(peak / freq)) < SEMITONE, (peak, freq)  # 40 bands: ~100 Hz wide
    files = write_decoded(tmp_path, "audio", waves, sampling_rate=adapter.encoder_rate)
    assert files[0].name == "sample_000.wav" and sf.info(files[0]).samplerate == RATE
    assert any(f.name == "spectrograms.png" for f in files)


def test_round_trip_on_real_speech(monkeypatch):
    from qgfd_diffusion.data.bundled import read_speech

    try:
        clips = read_speech(1.0).columns["audio"][:8]
    except ImportError:
        pytest.skip("pyannote-audio (the bundled speech) is not installed")
    adapter = MelAdapter(MelAdapterConfig())
    report = mel_round_trip(adapter, clips)
    assert report["mel_spectral_convergence"] < MAX_SPECTRAL_CONVERGENCE, report
    assert report["logmel_mae_db"] < MAX_LOGMEL_ERROR_DB, report
    # the bounds can fail: a decoder that keeps only the loudness (noise of the clip's level)
    generator = torch.Generator().manual_seed(0)

    def noise_of_same_level(z):
        length = (z.shape[-2] - 1) * adapter.config.hop_length
        return 0.05 * torch.randn(length, generator=generator)

    monkeypatch.setattr(adapter.log_mel, "invert", noise_of_same_level)
    broken = mel_round_trip(adapter, clips)
    assert broken["mel_spectral_convergence"] > MAX_SPECTRAL_CONVERGENCE, broken
    assert broken["logmel_mae_db"] > MAX_LOGMEL_ERROR_DB, broken


def test_stats_save_load_and_no_filterbanks_saved(tmp_path, assert_unit_stats):
    clips = [tone(220), tone(330, 6000), tone(990, 3000)]
    adapter = MelAdapter(MelAdapterConfig(**SMALL)).fit_latent_stats([clips])
    batch = adapter.encode(clips)
    assert_unit_stats(batch.latents, batch.mask)
    loaded = load_adapter(adapter.save_pretrained(tmp_path / "mel"))
    assert isinstance(loaded, MelAdapter) and loaded.config == adapter.config
    assert torch.equal(loaded.encode(clips).latents, batch.latents)
    assert not any(key.startswith("log_mel.") for key in adapter._own_state())


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(hop_length=2048), "hop_length 2048 must be <= n_fft"),
        (dict(f_max=9000.0), "f_max <= sampling_rate / 2"),
        (dict(n_mels=0), "n_mels must be an int >= 1, got 0"),
        (dict(patch_frames=0), "patch_frames must be an int >= 1, got 0"),
        (dict(patch_mels=True), "patch_mels must be an int >= 1, got True"),
        (dict(n_mels=40, patch_mels=16), "patch_mels 16 must divide n_mels 40"),
        (dict(log_floor=0.0), "log_floor must be > 0"),
        (dict(std_mode="pixel"), "std_mode must be one of"),
    ],
)
def test_bad_configs_name_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        MelAdapterConfig(**options)


def test_bad_batches_are_named():
    adapter = MelAdapter(MelAdapterConfig(**SMALL))
    with pytest.raises(ValueError, match="needs 'waveforms'"):
        adapter.encode({"audio": [tone(440)]})
    with pytest.raises(ValueError, match="must be 1-D"):
        adapter.encode([torch.zeros(2, 100)])
