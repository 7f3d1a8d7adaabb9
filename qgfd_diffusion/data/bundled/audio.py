"""Bundled audio: pyannote-audio's 30 s sample of real speech, cut into clips.

Shapes: N clips, T samples per clip.

    speech   pyannote-audio   30 s of real speech at 16 kHz, cut into fixed-length clips
"""

from __future__ import annotations

from datasets import Features, List, Value

from .base import BundledData, package_file


def read_speech(clip_seconds: float = 1.0) -> BundledData:
    """pyannote-audio's 30 s sample of real speech (16 kHz mono), cut into equal clips.

    The tail shorter than one clip is dropped.
    """
    import soundfile

    if clip_seconds <= 0:
        raise ValueError(f"speech option clip_seconds must be > 0, got {clip_seconds}")
    wav = package_file("pyannote-audio", "pyannote/audio/sample/sample.wav")
    samples, rate = soundfile.read(wav, dtype="float32", always_2d=True)  # [T, channels]
    mono = samples.mean(axis=1)  # [T, channels] -> [T]
    clip_len = int(round(clip_seconds * rate))
    num_clips = len(mono) // clip_len
    if num_clips == 0:
        raise ValueError(f"clip_seconds={clip_seconds} exceeds the {len(mono) / rate} s sample")
    clips = mono[: num_clips * clip_len].reshape(num_clips, clip_len)  # [T] -> [N, T_clip]
    features = Features({"audio": List(Value("float32")), "sampling_rate": Value("int64")})
    return BundledData(
        {"audio": list(clips), "sampling_rate": [int(rate)] * num_clips}, features, "audio"
    )
