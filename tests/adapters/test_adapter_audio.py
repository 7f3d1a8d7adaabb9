"""Audio adapter on a tiny Wav2Vec2: waveforms, files, resampling, frame masks, decoder head."""

import math

import pytest
import torch

pytest.importorskip("soundfile", reason="audio extra not installed")
pytest.importorskip("torchaudio", reason="audio extra not installed")

from qgfd_diffusion.adapters import AudioAdapter, AudioAdapterConfig, load_adapter, save_audio
from qgfd_diffusion.adapters.tiny import TINY_SAMPLING_RATE

HOP = 20  # tiny Wav2Vec2 conv strides (5, 4)


def tones(lengths=(800, 600, 400), rate=TINY_SAMPLING_RATE) -> list[torch.Tensor]:
    """Sine tones of different pitch and length."""
    return [
        0.5 * torch.sin(2 * math.pi * (220 + 110 * i) * torch.arange(n) / rate)
        for i, n in enumerate(lengths)
    ]


def make(tiny_dir, **options) -> AudioAdapter:
    return AudioAdapter(
        AudioAdapterConfig(encoder_name_or_path=str(tiny_dir("wav2vec2")), **options)
    )


def expected_frames(samples: int) -> int:
    after_first = (samples - 10) // 5 + 1  # conv kernel 10, stride 5
    return (after_first - 4) // 4 + 1  # conv kernel 4, stride 4


def test_variable_lengths_give_frame_masks(tiny_dir):
    adapter = make(tiny_dir)
    batch = adapter.encode(tones())
    assert adapter.hop == HOP
    assert batch.latents.shape == (3, expected_frames(800), 32)
    assert batch.layout.kind == "sequence" and batch.layout.shape == (expected_frames(800),)
    assert batch.mask.sum(1).tolist() == [expected_frames(n) for n in (800, 600, 400)]
    assert torch.isfinite(batch.latents).all()


def test_files_and_resampling(tiny_dir, tmp_path):
    adapter = make(tiny_dir)
    low_rate = TINY_SAMPLING_RATE // 2
    path = save_audio(tmp_path / "tone.wav", tones((400,), rate=low_rate)[0], low_rate)
    from_file = adapter.encode([str(path)])
    assert from_file.mask.sum().item() == expected_frames(800)  # 400 samples at 8 kHz -> 800
    in_memory = adapter.encode(
        {"waveforms": tones((400,), rate=low_rate), "sampling_rate": low_rate}
    )
    torch.testing.assert_close(from_file.latents, in_memory.latents, atol=1e-3, rtol=1e-3)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        adapter.encode([str(tmp_path / "missing.wav")])


def test_frozen_stats_and_save_load(tiny_dir, tmp_path, assert_frozen_upstream, assert_unit_stats):
    adapter = make(tiny_dir).fit_latent_stats([tones()])
    assert_frozen_upstream(adapter, tones())
    batch = adapter.encode(tones())
    assert_unit_stats(batch.latents, batch.mask)
    loaded = load_adapter(adapter.save_pretrained(tmp_path / "audio"))
    assert torch.equal(loaded.encode(tones()).latents, batch.latents)


def test_frame_head_reduces_reconstruction_loss(tiny_dir):
    adapter = make(tiny_dir).fit_latent_stats([tones()])
    with pytest.raises(RuntimeError, match="fit_decoder"):
        adapter.decode(adapter.encode(tones()).latents)
    losses = adapter.fit_decoder([tones()], steps=80, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]
    batch = adapter.encode(tones())
    waves = adapter.decode(batch.latents, batch.mask)
    assert [w.numel() for w in waves] == [expected_frames(n) * HOP for n in (800, 600, 400)]


def test_bad_audio_batches(tiny_dir):
    adapter = make(tiny_dir)
    with pytest.raises(ValueError, match="'waveforms'"):
        adapter.encode({"audio": tones()})
    with pytest.raises(ValueError, match="1-D and non-empty"):
        adapter.encode([torch.zeros(2, 100)])
    with pytest.raises(ValueError, match="non-empty list"):
        adapter.encode([])
