"""Training controls: gradient accumulation, accelerate trackers, samples during training."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from qgfd_diffusion.configio import ConfigError
from qgfd_diffusion.train.config import load_run_config, run_config_from_dict
from qgfd_diffusion.train.trainer import Trainer

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
SHORT = [
    "phases.0.steps=4",
    "phases.1.steps=4",
    "phases.0.fit_steps=2",
    "sample.num_inference_steps=2",
]
SHORT += ["train.checkpoint_every=2", "train.log_with=[]"]


def train(folder: Path, *overrides: str, resume: bool = False) -> Path:
    config = load_run_config(SMOKE, [*SHORT, *overrides])
    return Trainer(config, folder, resume=resume, progress=False).fit()


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(final: Path, folder: str = "backbone") -> dict:
    return load_file(str(final / folder / "diffusion_pytorch_model.safetensors"))


@pytest.mark.slow
def test_accumulation_matches_the_large_batch(tmp_path):
    """K micro-batches of B/K see the batch and noise of one step of B: same losses and
    weights up to float rounding (the gradient is summed in another order)."""
    large = train(tmp_path / "k1")
    accumulated = train(tmp_path / "k4", "train.gradient_accumulation_steps=4")
    assert losses(tmp_path / "k4") == pytest.approx(losses(tmp_path / "k1"), rel=1e-5, abs=1e-6)
    for name, tensor in weights(large).items():
        torch.testing.assert_close(weights(accumulated)[name], tensor, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_accumulated_run_resumes_bit_for_bit(tmp_path):
    keep = ["train.gradient_accumulation_steps=2", "train.keep_checkpoints=10"]
    whole = train(tmp_path / "whole", *keep)
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "whole", resumed)
    for later in ("final", "samples", "checkpoints/step-00000006", "checkpoints/step-00000008"):
        shutil.rmtree(resumed / later, ignore_errors=True)
    kept = sorted(p.name for p in (resumed / "checkpoints").glob("step-*"))
    assert kept == ["step-00000002", "step-00000004"]  # resume from the phase boundary
    final = train(resumed, *keep, resume=True)
    assert losses(resumed) == losses(tmp_path / "whole")
    for folder in ("backbone", "backbone_ema"):
        for name, tensor in weights(whole, folder).items():
            assert torch.equal(weights(final, folder)[name], tensor), (folder, name)


@pytest.mark.slow
def test_samples_go_to_tensorboard_without_changing_the_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    plain = train(tmp_path / "plain")
    watched = train(tmp_path / "watched", "train.log_with=[tensorboard]", "train.sample_every=2")
    assert losses(tmp_path / "watched") == losses(tmp_path / "plain")
    for name, tensor in weights(plain).items():
        assert torch.equal(weights(watched)[name], tensor)
    events = tmp_path / "watched" / "tensorboard" / "qgfd"  # hparams sit in a sub-folder
    logged = EventAccumulator(str(events), size_guidance={"images": 0, "tensors": 0}).Reload()
    assert [e.step for e in logged.Images("samples/image")] == [6, 8]  # image phase: steps 5-8
    assert "samples/text/text_summary" in logged.Tags()["tensors"]  # the text phase's lines
    assert {"train/loss", "train/lr", "train/grad_norm"} <= set(logged.Tags()["scalars"])
    assert not (tmp_path / "plain" / "tensorboard").exists()  # log_with: [] writes none


@pytest.mark.parametrize(
    "override, path, message",
    [
        ("train.log_with=[tensorbored]", "train.log_with", "unknown tracker 'tensorbored'"),
        ("train.log_with=[aim]", "train.log_with", "needs the package 'aim'"),
        ("train.gradient_accumulation_steps=3", "phases[0].batch_size", "divisible by"),
        ("train.gradient_accumulation_steps=0", "train.gradient_accumulation_steps", "> 0"),
        ("train.sample_every=-1", "train.sample_every", ">= 0"),
    ],
)
def test_bad_controls_name_their_path(override, path, message):
    with pytest.raises(ConfigError) as error:
        load_run_config(SMOKE, [override])
    assert str(error.value).startswith(path) and message in str(error.value), str(error.value)


def test_old_tensorboard_switch_becomes_log_with():
    data = json.loads(json.dumps({"phases": [], "train": {"tensorboard": False}}))
    data["phases"] = load_run_config(SMOKE).to_dict()["phases"]
    assert run_config_from_dict(data).train.log_with == []
    data["train"] = {"tensorboard": True}
    assert run_config_from_dict(data).train.log_with == ["tensorboard"]
