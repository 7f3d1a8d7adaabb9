"""A small CNN digit classifier that scores generated 28x28 digits.

Dimension legend: N images (B in one batch), F feature dimension (the classifier's penultimate
layer), K classes (10 digits), H = W = 28 pixels.

It plays the role Inception plays in FID, on MNIST scale: trained on real training digits, it
gives (1) the accuracy of generated digits against the class they were requested with and
(2) a feature space [N, F] for the Frechet distance between generated and held-out real digits
(`qgfd_diffusion.evaluation.frechet`). `digit_report` computes both plus the real-vs-real floor.
Frechet distances depend on the scale of the features, so they compare only under one and the
same classifier: train it once, `save` it, and `load` it for every evaluation.

Images are float [N, 1, 28, 28] with values in [0, 1] (the bundled "mnist" source's schema);
they are not clipped, so a sampler must decode into that range itself.
Determinism: `train_digit_classifier` draws the initial weights and the batch order from
`seed` only (the global torch RNG is left untouched); there is no dropout.
Files: `save(directory)` writes `classifier.safetensors` (weights) + `classifier.json`
(architecture and training record); `DigitClassifier.load(directory)` reads them back.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .frechet import frechet_distance, random_halves

IMAGE_SHAPE = (1, 28, 28)  # C, H, W
NUM_CLASSES = 10
WEIGHTS_FILE = "classifier.safetensors"
CONFIG_FILE = "classifier.json"
INFERENCE_BATCH = 512


@dataclass(frozen=True)
class DigitClassifierConfig:
    """conv_channels: channels of the two 3x3 conv layers (each followed by 2x2 max-pooling);
    feature_dim: F, width of the feature layer; num_classes: K."""

    conv_channels: tuple[int, int] = (32, 64)
    feature_dim: int = 128
    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        if len(self.conv_channels) != 2 or min(self.conv_channels) < 1:
            raise ValueError(f"conv_channels must be two positive ints, got {self.conv_channels}")
        if self.feature_dim < 1 or self.num_classes < 2:
            raise ValueError("feature_dim must be >= 1 and num_classes >= 2")


def as_image_batch(images: Any, name: str = "images") -> Tensor:
    """[N, 1, 28, 28] (or [N, 28, 28]) array / tensor -> float32 tensor [N, 1, 28, 28], checked."""
    batch = torch.as_tensor(np.asarray(images) if not isinstance(images, Tensor) else images)
    batch = batch.detach().to(dtype=torch.float32, device="cpu")
    if batch.ndim == 3:
        batch = batch.unsqueeze(1)  # [N, 28, 28] -> [N, 1, 28, 28]
    if batch.ndim != 4 or tuple(batch.shape[1:]) != IMAGE_SHAPE or batch.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape [N, 1, 28, 28] with N >= 1, got {tuple(batch.shape)}"
        )
    if not torch.isfinite(batch).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return batch


def as_label_vector(labels: Any, count: int, name: str = "labels") -> Tensor:
    """[N] integer class ids in [0, K) -> int64 tensor [N], checked against the image count."""
    vector = torch.as_tensor(np.asarray(labels) if not isinstance(labels, Tensor) else labels)
    if vector.ndim != 1 or vector.shape[0] != count:
        raise ValueError(
            f"{name} must have shape [{count}] (one per image), got {tuple(vector.shape)}"
        )
    if vector.is_floating_point() or vector.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class ids, got dtype {vector.dtype}")
    vector = vector.to(torch.int64).cpu()
    if vector.min() < 0 or vector.max() >= NUM_CLASSES:
        raise ValueError(
            f"{name} must lie in [0, {NUM_CLASSES}), got range "
            f"[{int(vector.min())}, {int(vector.max())}]"
        )
    return vector


class DigitClassifier(nn.Module):
    """conv3x3 -> ReLU -> pool -> conv3x3 -> ReLU -> pool -> linear (features, F) -> ReLU
    -> linear (logits, K)."""

    def __init__(
        self,
        config: DigitClassifierConfig | None = None,
        training_record: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.config = config or DigitClassifierConfig()
        self.training_record = dict(training_record or {})
        c1, c2 = self.config.conv_channels
        pooled_side = IMAGE_SHAPE[1] // 4  # two 2x2 poolings: 28 -> 14 -> 7
        self.body = nn.Sequential(
            nn.Conv2d(IMAGE_SHAPE[0], c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),  # [N, c2, 7, 7] -> [N, c2 * 49]
            nn.Linear(c2 * pooled_side * pooled_side, self.config.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.config.feature_dim, self.config.num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """[N, 1, 28, 28] -> logits [N, K]."""
        return self.head(self.body(images))

    @torch.no_grad()
    def _batched(self, images: Any, part: nn.Module) -> Tensor:
        """Run `part` over [N, 1, 28, 28] in chunks on the classifier's device; CPU output."""
        batch = as_image_batch(images)
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        try:
            return torch.cat(
                [part(chunk.to(device)).cpu() for chunk in batch.split(INFERENCE_BATCH)]
            )
        finally:
            self.train(was_training)

    def features(self, images: Any) -> Tensor:
        """[N, 1, 28, 28] -> feature-layer activations [N, F] (eval mode, no grad)."""
        return self._batched(images, self.body)

    def logits(self, images: Any) -> Tensor:
        """[N, 1, 28, 28] -> logits [N, K] (eval mode, no grad)."""
        return self._batched(images, self)

    def predict(self, images: Any) -> Tensor:
        """[N, 1, 28, 28] -> predicted class ids [N]."""
        return self.logits(images).argmax(dim=1)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write weights (safetensors) and config + training record (JSON) into `directory`."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        _replace_atomically(folder / WEIGHTS_FILE, lambda path: save_file(state, str(path)))
        meta = {"config": asdict(self.config), "training_record": self.training_record}
        _replace_atomically(
            folder / CONFIG_FILE, lambda path: path.write_text(json.dumps(meta, indent=2))
        )
        return folder

    @classmethod
    def load(cls, directory: str | os.PathLike) -> DigitClassifier:
        """Inverse of `save`; the classifier comes back in eval mode."""
        folder = Path(directory)
        missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE) if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a saved DigitClassifier: missing {missing}")
        meta = json.loads((folder / CONFIG_FILE).read_text())
        config = meta["config"]
        config["conv_channels"] = tuple(config["conv_channels"])
        model = cls(DigitClassifierConfig(**config), meta.get("training_record"))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return model.eval()


def _replace_atomically(target: Path, write: Any) -> None:
    """Write through a temporary sibling file, then rename it over `target`."""
    temporary = target.with_name(target.name + ".tmp")
    write(temporary)
    os.replace(temporary, target)


@dataclass(frozen=True)
class DigitTrainingConfig:
    """AdamW on cross-entropy, learning rate decayed linearly to 0 over all steps; with
    `augment`, every batch is warped by a random rotation / scale / shift within the max_*
    limits; `model`: the architecture; `seed`: initial weights, batch order, augmentation."""

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    augment: bool = True
    max_rotation_degrees: float = 10.0
    max_scale_change: float = 0.1
    max_shift_pixels: float = 2.0
    model: DigitClassifierConfig = field(default_factory=DigitClassifierConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(
                "epochs and batch_size must be >= 1 and learning_rate > 0, got "
                f"{self.epochs}, {self.batch_size}, {self.learning_rate}"
            )


def _seeded_classifier(config: DigitClassifierConfig, seed: int) -> DigitClassifier:
    """Build the network with weights drawn from `seed`, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitClassifier(config)


def train_digit_classifier(
    images: Any, labels: Any, *, config: DigitTrainingConfig | None = None, **overrides: Any
) -> DigitClassifier:
    """Train a `DigitClassifier` on real digits [N, 1, 28, 28] in [0, 1] with labels [N].

    `overrides` replace fields of `config` (default `DigitTrainingConfig()`), e.g.
    `train_digit_classifier(x, y, epochs=8, seed=1, batch_size=128)`. Deterministic for a
    given seed on CPU. Returns the model in eval mode; its `training_record` holds the training
    config plus "train_images", "train_accuracy" and "seconds".
    """
    config = _with_overrides(config or DigitTrainingConfig(), overrides)
    batch = as_image_batch(images)
    targets = as_label_vector(labels, batch.shape[0])
    model = _seeded_classifier(config.model, config.seed)
    started = time.perf_counter()
    _fit(model, batch, targets, config)
    seconds = time.perf_counter() - started
    record = {k: v for k, v in asdict(config).items() if k != "model"}  # model: in config.json
    record.update(
        train_images=int(batch.shape[0]),
        seconds=seconds,
        train_accuracy=class_accuracy(model, batch, targets),
    )
    model.training_record = record
    return model.eval()


def _with_overrides(config: DigitTrainingConfig, overrides: dict[str, Any]) -> DigitTrainingConfig:
    allowed = {f.name for f in fields(DigitTrainingConfig)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}; allowed: {sorted(allowed)}")
    return replace(config, **overrides)


def _fit(
    model: DigitClassifier, images: Tensor, targets: Tensor, config: DigitTrainingConfig
) -> None:
    """Mini-batch AdamW with a linear learning-rate decay; all randomness from `config.seed`."""
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = -(-images.shape[0] // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total_steps)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(images.shape[0], generator=generator)
        for index in order.split(config.batch_size):
            inputs = _augment(images[index], config, generator) if config.augment else images[index]
            loss = nn.functional.cross_entropy(model(inputs), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval()


def _augment(images: Tensor, config: DigitTrainingConfig, generator: torch.Generator) -> Tensor:
    """Random small affine warps of a batch [B, 1, 28, 28]: rotation, scale and translation,
    each drawn uniformly within the config's limits (a standard MNIST augmentation)."""
    count = images.shape[0]

    def uniform(limit: float) -> Tensor:  # [B] in [-limit, limit]
        return (torch.rand(count, generator=generator) * 2 - 1) * limit

    angle = torch.deg2rad(uniform(config.max_rotation_degrees))
    scale = 1 + uniform(config.max_scale_change)
    shift = torch.stack([uniform(config.max_shift_pixels), uniform(config.max_shift_pixels)], 1)
    shift = shift * 2 / IMAGE_SHAPE[-1]  # pixels -> affine_grid's [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )  # [B, 2, 3]
    grid = nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return nn.functional.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


def class_accuracy(classifier: DigitClassifier, images: Any, requested_labels: Any) -> float:
    """Fraction of images [N, 1, 28, 28] that the classifier assigns to their requested class."""
    batch = as_image_batch(images)
    targets = as_label_vector(requested_labels, batch.shape[0], "requested_labels")
    return float((classifier.predict(batch) == targets).double().mean())


def digit_report(
    classifier: DigitClassifier,
    generated: Any,
    requested_labels: Any,
    heldout_real: Any,
    seed: int = 0,
) -> dict[str, float]:
    """The image task's figures for one set of class-conditional samples [N, 1, 28, 28].

    The held-out real digits [M, 1, 28, 28] (or a pair (images, labels)) are split into two
    random halves A and B (`seed`); "real_vs_real_floor" = FD(A, B) and "frechet_distance" =
    FD(generated, B), both in the classifier's feature space. The two are on the same footing
    when N = M / 2, so pass about twice as many held-out digits as generated ones.
    Returns {"class_accuracy", "frechet_distance", "real_vs_real_floor", "generated_images",
    "real_images" (M), and "real_class_accuracy" when held-out labels are given}.
    """
    real_images, real_labels = (
        heldout_real if isinstance(heldout_real, tuple) else (heldout_real, None)
    )
    generated_features = classifier.features(generated)  # [N, F]
    half_a, half_b = random_halves(classifier.features(real_images), seed)  # 2 x [M // 2, F]
    report = {
        "class_accuracy": class_accuracy(classifier, generated, requested_labels),
        "frechet_distance": frechet_distance(generated_features, half_b),
        "real_vs_real_floor": frechet_distance(half_a, half_b),
        "generated_images": float(generated_features.shape[0]),
        "real_images": float(2 * half_a.shape[0]),
    }
    if real_labels is not None:
        report["real_class_accuracy"] = class_accuracy(classifier, real_images, real_labels)
    return report
