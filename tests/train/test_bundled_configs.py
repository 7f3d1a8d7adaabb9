"""Every shipped config validates; each offline one trains, samples and decodes (a few steps)."""

import json
from pathlib import Path

import pytest

from qgfd_diffusion.train.config import load_run_config
from qgfd_diffusion.train.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHORT = [
    "train.checkpoint_every=2",
    "train.validation_batches=1",
    "sample.num_samples=2",
    "sample.num_inference_steps=2",
]


def _short_phases(config_path: Path) -> list[str]:
    phases = load_run_config(config_path).phases
    return [
        f"phases.{i}.{key}={value}"
        for i in range(len(phases))
        for key, value in (
            ("steps", 2),
            ("fit_steps", 2),
            ("batch_size", 4),
            ("data.max_items", 64),
        )
    ]


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.yaml")))
def test_every_config_validates(name):
    config = load_run_config(CONFIGS / f"{name}.yaml")
    assert config.phases and config.model_config().num_modalities >= len(config.phases)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["quickstart", "audio_speech", "video_clips", "video_moving_mnist", "tabular_wine"]
)
def test_offline_configs_train_sample_and_decode(name, tmp_path):
    path = CONFIGS / f"{name}.yaml"
    config = load_run_config(path, SHORT + _short_phases(path))
    final = Trainer(config, tmp_path / "run", progress=False).fit()
    for phase in config.phases:
        written = json.loads(
            (tmp_path / "run" / "samples" / phase.name / "sample_config.json").read_text()
        )
        assert written["decodable"] and written["decoded"], written
    assert (final / "backbone_ema").is_dir()
