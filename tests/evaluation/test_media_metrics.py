"""Video and audio scores against independent references: scipy's centre of mass, a hand-made
bouncing track, two tones of known power, and a shuffled clip that must score worse."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

pytest.importorskip("torchaudio", reason="audio extra not installed")

from qgfd_diffusion.data.bundled.moving_mnist import bouncing_positions, moving_mnist
from qgfd_diffusion.evaluation.audio import (
    audio_report,
    copy_report,
    energy_above,
    level_spread_db,
    log_mel_frames,
    metric_log_mel,
    nearest_training_db,
    shaped_noise_like,
    voiced_share,
    white_noise_like,
)
from qgfd_diffusion.evaluation.frechet import frechet_distance, random_group_halves
from qgfd_diffusion.evaluation.video import (
    bounce_fit,
    centres_of_mass,
    digit_crops,
    frame_class_agreement,
)

RATE = 16000


def test_centres_of_mass_match_scipy():
    frames = torch.rand(5, 32, 32, generator=torch.Generator().manual_seed(0)) ** 4
    expected = np.array([ndimage.center_of_mass(f.numpy()) for f in frames])
    np.testing.assert_allclose(centres_of_mass(frames).numpy(), expected, rtol=1e-5)


def test_crop_recovers_the_pasted_digit():
    """A 28x28 digit pasted into a 64x64 frame is cut back out exactly around its centre."""
    digit = np.zeros((1, 28, 28), np.float32)
    digit[0, 6:22, 10:18] = 1.0  # a bar centred on (13.5, 13.5), like an MNIST digit
    videos, _ = moving_mnist(
        digit, np.array([3]), num_videos=2, num_frames=3, frame_size=64, digit_size=28, seed=1
    )
    crops = digit_crops(torch.from_numpy(videos).flatten(0, 1), 28)  # [6, 1, 28, 28]
    for crop in crops:
        np.testing.assert_array_equal(crop[0].numpy(), digit[0])


def test_bounce_fit_is_small_on_a_bouncing_track_and_large_on_a_shuffled_one():
    travel, frames = 16.0, 10
    track = bouncing_positions(np.array([3.0, 12.0]), np.array([2.5, -3.2]), frames, travel)
    track = track + np.array([7.5, 6.0])  # the centre of mass sits inside the digit's box
    assert bounce_fit(track, travel) < 0.05
    shuffled = track[np.random.default_rng(0).permutation(frames)]
    assert bounce_fit(shuffled, travel) > 1.0


def test_frame_class_agreement():
    predictions = torch.tensor([[1, 1, 1, 1], [2, 2, 5, 5], [3, 4, 3, 3]])
    assert frame_class_agreement(predictions) == pytest.approx((1 + 0.5 + 0.75) / 3)


def tone(freq: float, amplitude: float, seconds: float = 0.5) -> torch.Tensor:
    return amplitude * torch.sin(2 * math.pi * freq * torch.arange(int(seconds * RATE)) / RATE)


def test_energy_above_a_cutoff_is_the_power_share():
    low, high = tone(1000, 0.8), tone(6000, 0.3)
    expected = 0.3**2 / (0.8**2 + 0.3**2)  # mean power of a sine: amplitude^2 / 2, each
    assert energy_above([low + high], RATE) == pytest.approx(expected, rel=1e-3)
    assert energy_above([low], RATE) < 1e-6
    with pytest.raises(ValueError, match="cutoff_hz must lie in"):
        energy_above([low], RATE, cutoff_hz=9000)


def test_audio_report_averages_the_distance_over_groups_of_one_held_out_half():
    """8 held-out clips split 4 + 4; 9 generated clips are 2 groups of 4 (the ninth is left
    out): logmel_fd is the mean of the two groups' distances to half B, computed here directly."""
    generator = torch.Generator().manual_seed(1)
    real = [
        tone(200 * (k + 1), 0.3) + 0.01 * torch.randn(RATE // 2, generator=generator)
        for k in range(8)
    ]
    generated = [
        0.05 * k * torch.randn(RATE // 2, generator=generator) + tone(300, 0.3) for k in range(9)
    ]
    report = audio_report(generated, real, RATE, seed=3)
    half_a, half_b = random_group_halves(len(real), 3)
    frames_b = log_mel_frames([real[i] for i in half_b], RATE)
    groups = (generated[:4], generated[4:8])
    expected = np.mean([frechet_distance(log_mel_frames(g, RATE), frames_b) for g in groups])
    assert report["logmel_fd"] == pytest.approx(expected, rel=1e-9)
    assert report["generated_clips"] == 9  # the energy and structure figures pool all nine
    assert report["energy_above_4khz"] == pytest.approx(energy_above(generated, RATE))
    with pytest.raises(ValueError, match="need at least 4 clips"):
        audio_report(generated[:3], real, RATE)


def test_audio_report_scores_noise_worse_than_speech_like_tones():
    """Held-out 'speech': harmonic tones below 4 kHz. Tones of other pitches sit close to the
    floor; white noise is far off and carries half its energy above 4 kHz."""
    generator = torch.Generator().manual_seed(0)

    def voiced(f0: float) -> torch.Tensor:
        wave = sum(tone(f0 * k, 0.3 / k) for k in range(1, 8))
        return wave + 0.01 * torch.randn(wave.shape, generator=generator)

    real = [voiced(f0) for f0 in (110, 130, 150, 170, 190, 210, 230, 250)]
    similar = audio_report([voiced(f0) for f0 in (120, 160, 200, 240)], real, RATE)
    noise = audio_report([0.3 * torch.randn(RATE // 2, generator=generator)] * 4, real, RATE)
    assert noise["logmel_fd_over_floor"] > 10 * similar["logmel_fd_over_floor"]
    assert noise["energy_above_4khz"] == pytest.approx(0.5, abs=0.05)
    assert similar["real_energy_above_4khz"] < 1e-3
    assert similar["generated_clips"] == 4 and similar["real_clips"] == 8
    # the reference rows are scored like generated clips: white noise as far off as generated noise
    assert similar["white_noise_fd_over_floor"] > 10 * similar["logmel_fd_over_floor"]
    assert similar["shaped_noise_fd_over_floor"] > similar["logmel_fd_over_floor"]


def test_noise_references_keep_level_and_long_term_spectrum():
    low = tone(300, 0.5) + tone(900, 0.2)  # all power below 1 kHz
    white, shaped = white_noise_like([low])[0], shaped_noise_like([low])[0]
    for wave in (white, shaped):
        assert wave.shape == low.shape
        assert wave.square().mean().sqrt() == pytest.approx(
            float(low.square().mean().sqrt()), rel=0.02
        )
    assert energy_above([shaped], RATE, cutoff_hz=1500) < 1e-3  # the clip's spectrum, not white
    assert energy_above([white], RATE, cutoff_hz=1500) > 0.5
    assert torch.equal(shaped, shaped_noise_like([low])[0])  # seeded


def test_voiced_share_finds_harmonic_frames_not_noise():
    generator = torch.Generator().manual_seed(0)
    voiced = sum(tone(150 * k, 0.3 / k) for k in range(1, 8))  # F0 150 Hz with harmonics
    noise = 0.3 * torch.randn(voiced.shape, generator=generator)
    assert voiced_share([voiced], RATE) > 0.95
    assert voiced_share([noise], RATE) < 0.05
    half = voiced.numel() // 2  # half voiced, half noise at the same level
    mixed = torch.cat([voiced[:half], 0.3 * torch.randn(half, generator=generator)])
    assert voiced_share([mixed], RATE) == pytest.approx(0.5, abs=0.1)


def test_level_spread_sees_pauses():
    voiced = tone(200, 0.5)
    gated = voiced * (torch.arange(voiced.numel()) // (RATE // 8) % 2)  # 4 Hz on / off
    assert level_spread_db([voiced], RATE) < 1.0
    assert level_spread_db([gated], RATE) > 20.0


def test_nearest_training_db_finds_copies_even_across_two_clips():
    """Copies cut from inside a training clip, or across the seam of two, sit far closer than
    new material; the distance agrees with a naive loop over every offset."""
    generator = torch.Generator().manual_seed(0)
    training = [0.1 * torch.randn(RATE // 2, generator=generator) * (1 + k) for k in range(3)]
    inside = training[1][800 : 800 + RATE // 4]
    seam = torch.cat(training)[RATE // 4 : RATE // 4 + RATE // 2]  # half of clip 0, half of 1
    fresh = 0.05 * torch.randn(RATE // 2, generator=generator)
    distances = nearest_training_db([inside, seam, fresh], training, RATE)
    front = metric_log_mel(RATE)
    bank, frames = torch.cat([front(w) for w in training]), front(fresh)
    naive = min(
        (bank[o : o + len(frames)] - frames).abs().mean().item()
        for o in range(len(bank) - len(frames) + 1)
    )
    assert distances[2].item() == pytest.approx(10 / math.log(10) * naive, rel=1e-5)
    # the copies differ only in edge frames (padding; the seam's frames inside the bank)
    assert distances[0] < 0.5 and distances[1] < 0.5 * distances[2]
    report = copy_report([inside], [fresh], training, RATE, copies=[seam])
    assert report["nearest_training_db"] == pytest.approx(distances[0].item())
    assert report["nearest_training_ratio"] < 0.2
    assert report["copy_nearest_training_db"] == pytest.approx(distances[1].item())
    assert "copy_nearest_training_db" not in copy_report([inside], [fresh], training, RATE)
