"""Video scores for class-conditional Moving MNIST: the digit class of every frame, its agreement
across a clip, motion smoothness, and a per-frame Frechet distance over a real-vs-real floor.

Dimension legend: V videos, T frames, S frame side, d digit side in the frame, N = V*T frames,
F classifier features.

Reading a frame with the digit classifier (digits.py): the classifier is trained on 28 x 28
MNIST, whose digits are centred by their centre of mass. A Moving MNIST frame holds one digit
resized to d x d somewhere in an S x S frame (data/bundled/moving_mnist.py), so every frame is
cropped d x d around its pixel centre of mass (zeros outside the frame) and resized to 28 x 28
(antialiased bilinear): the inverse of the generator's resize. The scores assume one digit per
video (with two, the centre of mass lies between them).

    frame_class_accuracy    frames classified as the clip's requested class
    frame_class_agreement   per clip, the share of frames in its most common predicted class;
                            averaged over clips (1: the digit keeps its identity)
    motion_residual         per clip, the RMS distance (pixels) between the digit's centre of
                            mass and the best constant-velocity-with-bounces path
                            (``bounce_fit``); averaged over clips. Real clips: rounding only.
                            A still digit fits perfectly too, hence
    centre_speed            the centre of mass's mean step (pixels per frame), next to the real
    frame_fd_over_floor     FD between generated and held-out real frames in the classifier's
                            feature space over FD between two halves of the held-out clips
                            (whole clips split, frames pooled)

Every figure also comes for the held-out real clips (``real_*``), the reference row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor
from torch.nn import functional as F

from ..data.bundled.images import MNIST_SIDE
from ..data.bundled.moving_mnist import bouncing_positions
from .digits import DigitClassifier, as_label_vector
from .frechet import frechet_distance, random_group_halves

VIDEO_DIMS = "[V, T, 1, S, S]"
SPEED_GRID = 129  # candidate velocities per axis in [-travel, travel] pixels per frame
START_GRID = 65  # candidate starts per axis in [0, travel]


def as_video_batch(videos: Any, name: str = "videos") -> Tensor:
    """[V, T, 1, S, S] array / tensor (V >= 1, T >= 2, square frames, finite) -> float32 CPU."""
    batch = torch.as_tensor(np.asarray(videos) if not isinstance(videos, Tensor) else videos)
    batch = batch.detach().float().cpu()
    if batch.ndim != 5 or batch.shape[2] != 1 or batch.shape[-1] != batch.shape[-2]:
        raise ValueError(
            f"{name} must be grey square videos {VIDEO_DIMS}, got {tuple(batch.shape)}"
        )
    if batch.shape[0] < 1 or batch.shape[1] < 2 or not torch.isfinite(batch).all():
        raise ValueError(f"{name} needs V >= 1 finite videos of T >= 2 frames")
    return batch


def centres_of_mass(frames: Tensor) -> Tensor:
    """Grey frames [N, S, S] -> intensity-weighted centres (row, column) [N, 2]; a blank frame
    gets the frame's centre."""
    side = frames.shape[-1]
    weights = frames.clamp_min(0)
    total = weights.sum((-2, -1))  # [N]
    coords = torch.arange(side, dtype=frames.dtype)
    rows = (weights.sum(-1) * coords).sum(-1)  # [N]
    cols = (weights.sum(-2) * coords).sum(-1)
    centre = torch.stack([rows, cols], -1) / total.clamp_min(1e-12)[:, None]  # [N, 2]
    return torch.where(total[:, None] > 0, centre, torch.full_like(centre, (side - 1) / 2))


def digit_crops(frames: Tensor, digit_size: int) -> Tensor:
    """Frames [N, 1, S, S] -> [N, 1, 28, 28]: d x d around each centre of mass, resized."""
    corner = (centres_of_mass(frames[:, 0]) - (digit_size - 1) / 2).round().long()  # [N, 2]
    padded = F.pad(frames, (digit_size,) * 4)  # zeros outside the frame: [N, 1, S+2d, S+2d]
    crops = torch.stack(
        [
            padded[i, :, r + digit_size : r + 2 * digit_size, c + digit_size : c + 2 * digit_size]
            for i, (r, c) in enumerate(corner.tolist())
        ]
    )  # [N, 1, d, d]
    if digit_size == MNIST_SIDE:
        return crops
    return F.interpolate(crops, size=(MNIST_SIDE, MNIST_SIDE), mode="bilinear", antialias=True)


def _path_error(params: np.ndarray, target: np.ndarray, travel: float) -> np.ndarray:
    """Summed squared residual [...] of one axis' track [T] against the bouncing paths of
    params [..., 2] = (start, velocity), each with its best constant offset."""
    path = bouncing_positions(params[..., :1], params[..., 1:], len(target), travel)[..., 0]
    residual = target - path  # [..., T]
    residual = residual - residual.mean(-1, keepdims=True)  # the best offset, in closed form
    return (residual**2).sum(-1)


def bounce_fit(track: np.ndarray, travel: float) -> float:
    """RMS residual (pixels) of a track [T, 2] against the best path
    offset + bouncing_positions(start, velocity) in [0, travel] per axis.

    Per axis: a grid over (start, velocity) with the offset (the centre of mass inside the
    digit's box) solved in closed form, then Nelder-Mead from the best grid point.
    """
    starts = np.linspace(0, travel, START_GRID)
    speeds = np.linspace(-travel, travel, SPEED_GRID)
    grid = np.stack(np.meshgrid(starts, speeds, indexing="ij"), -1).reshape(-1, 2)  # [G, 2]
    squared = 0.0
    for target in track.T:  # [2, T]: one axis at a time
        errors = _path_error(grid, target, travel)  # [G]
        best = grid[np.argmin(errors)]
        refined = minimize(
            lambda p, y=target: float(_path_error(p, y, travel)), best, method="Nelder-Mead"
        )
        squared += min(float(refined.fun), float(errors.min()))
    return float(np.sqrt(squared / track.shape[0]))


def frame_class_agreement(predictions: Tensor) -> float:
    """Predicted classes [V, T] -> mean over clips of the share of frames in the clip's mode."""
    modes = predictions.mode(dim=1).values  # [V]
    return float((predictions == modes[:, None]).double().mean())


def clip_figures(
    classifier: DigitClassifier, videos: Tensor, labels: Tensor, digit_size: int
) -> tuple[dict[str, float], Tensor]:
    """Accuracy, agreement and motion residual of clips [V, T, 1, S, S] with labels [V]; and
    the frames' classifier features [V, T, F]."""
    count, frames, side = videos.shape[0], videos.shape[1], videos.shape[-1]
    flat = videos.reshape(-1, 1, side, side)  # [V, T, 1, S, S] -> [N, 1, S, S]
    crops = digit_crops(flat, digit_size)
    predictions = classifier.predict(crops).reshape(count, frames)  # [V, T]
    tracks = centres_of_mass(flat[:, 0]).reshape(count, frames, 2).double().numpy()
    figures = {
        "frame_class_accuracy": float((predictions == labels[:, None]).double().mean()),
        "frame_class_agreement": frame_class_agreement(predictions),
        "motion_residual": float(np.mean([bounce_fit(t, side - digit_size) for t in tracks])),
        "centre_speed": float(np.linalg.norm(np.diff(tracks, axis=1), axis=-1).mean()),
    }
    return figures, classifier.features(crops).reshape(count, frames, -1)


def video_report(
    classifier: DigitClassifier,
    generated: Any,
    requested_labels: Any,
    heldout_real: Any,
    heldout_labels: Any,
    digit_size: int,
    seed: int = 0,
) -> dict[str, float]:
    """The video task's figures (module docstring) for generated clips against held-out real
    clips (>= 4, with their labels). Generate about half as many clips as are held out: the
    floor compares two halves of them."""
    generated = as_video_batch(generated, "generated")
    real = as_video_batch(heldout_real, "heldout_real")
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(
            f"generated {tuple(generated.shape[1:])} and real {tuple(real.shape[1:])} clips differ"
        )
    if not 1 <= digit_size < generated.shape[-1]:
        raise ValueError(f"digit_size must lie in [1, S), got {digit_size}")
    requested = as_label_vector(requested_labels, generated.shape[0], "requested_labels")
    real_labels = as_label_vector(heldout_labels, real.shape[0], "heldout_labels")
    ours, generated_features = clip_figures(classifier, generated, requested, digit_size)
    theirs, real_features = clip_figures(classifier, real, real_labels, digit_size)
    half_a, half_b = random_group_halves(real.shape[0], seed)
    pooled_b = real_features[half_b].flatten(0, 1)  # [V_b * T, F]
    floor = frechet_distance(real_features[half_a].flatten(0, 1), pooled_b)
    distance = frechet_distance(generated_features.flatten(0, 1), pooled_b)
    return {
        **ours,
        **{f"real_{key}": value for key, value in theirs.items()},
        "frame_fd": distance,
        "frame_fd_floor": floor,
        "frame_fd_over_floor": distance / floor,
        "generated_clips": float(generated.shape[0]),
        "real_clips": float(real.shape[0]),
    }
