"""Old formats, upgraded where files are read (``qgfd_diffusion.formats``): each old form
against the new one it must become. Whole old folders load in tests/models/test_saved_folders.py."""

import json
from pathlib import Path

import pytest

from qgfd_diffusion import formats
from qgfd_diffusion.configio import ConfigError
from qgfd_diffusion.schedules import NoiseScheduleConfig

REPO = Path(__file__).resolve().parents[1]


def test_flat_keys_fold_into_their_sections():
    folded = formats.fold_flat_keys({"d_model": 8, "qgfd_steps": 3, "num_timesteps": 30})
    assert folded == {
        "d_model": 8,
        "qgfd": {"steps": 3},
        "schedule": {"num_train_timesteps": 30},
    }
    with pytest.raises(ValueError, match=r"\['alpha'\] given both flat .* set qgfd.alpha only"):
        formats.fold_flat_keys({"qgfd_alpha": 0.2, "qgfd": {"alpha": 0.3}})
    network = formats.upgrade_backbone_config({"d_model": 8, "beta_schedule": "scaled_linear"})
    assert network == {"d_model": 8}  # the schedule is read from scheduler/ (or below)


def test_noise_schedule_from_scheduler_folder_or_the_old_backbone_config(tmp_path):
    schedule = NoiseScheduleConfig(200, "squaredcos_cap_v2", prediction_type="v_prediction")
    schedule.save_pretrained(tmp_path / "model")
    assert formats.read_noise_schedule(tmp_path / "model", tmp_path / "missing.json") == schedule
    legacy = tmp_path / "legacy.json"  # a backbone config.json from before scheduler/
    legacy.write_text('{"num_timesteps": 30, "beta_schedule": "scaled_linear", "d_model": 8}')
    old = formats.read_noise_schedule(tmp_path / "nowhere", legacy)
    assert old == NoiseScheduleConfig(num_train_timesteps=30, beta_schedule="scaled_linear")
    with pytest.raises(FileNotFoundError, match="no noise schedule"):
        formats.read_noise_schedule(tmp_path / "nowhere", tmp_path / "missing.json")


def test_adapter_list_from_the_adapter_set_or_the_old_manifest(tmp_path):
    layouts = {"text": {"kind": "sequence", "shape": [4]}}
    old = tmp_path / "old"
    old.mkdir()
    (old / "qgfd_model.json").write_text(json.dumps({"modalities": ["text"], "layouts": layouts}))
    expected = {"modalities": ["text"], "layouts": layouts}
    assert formats.adapter_set_config(old, old / "adapters") == expected
    new = tmp_path / "new" / "adapters"
    new.mkdir(parents=True)
    (new / "config.json").write_text(json.dumps({"_class_name": "AdapterSet", **expected}))
    assert formats.adapter_set_config(new.parent, new) == expected
    with pytest.raises(FileNotFoundError, match="no adapters/config.json and no qgfd_model.json"):
        formats.adapter_set_config(tmp_path, tmp_path / "adapters")


def test_run_config_keys_are_upgraded_with_a_warning_for_retired_ones():
    old = {"train": {"tensorboard": True, "log_every": 5}, "phases": [{"modality_id": 0}]}
    with pytest.warns(UserWarning, match=r"train.log_every', 'phases\[0\].modality_id"):
        new = formats.upgrade_run_config(old)
    assert new == {"train": {"log_with": ["tensorboard"]}, "phases": [{}]}
    assert old["train"]["tensorboard"] is True  # the caller's dict is left as it was


def test_sample_section_takes_the_pipelines_names():
    old = {"sample": {"num_samples": 4, "steps": 5, "guidance": 2.0, "eta": 0.5}}
    assert formats.upgrade_run_config(old) == {
        "sample": {"num_samples": 4, "num_inference_steps": 5, "guidance_scale": 2.0, "eta": 0.5}
    }
    both = {"sample": {"steps": 5, "num_inference_steps": 6}}
    with pytest.raises(ConfigError, match="sample.steps: the old name of sample.num_inference"):
        formats.upgrade_run_config(both)


def test_a_run_config_written_with_the_old_sample_keys_loads(tmp_path):
    from qgfd_diffusion.train.config import load_run_config

    smoke = (REPO / "configs" / "smoke.yaml").read_text()
    assert "num_inference_steps: 5" in smoke
    old = tmp_path / "old.yaml"
    old.write_text(smoke.replace("num_inference_steps: 5", "steps: 5\n  guidance: 1.5"))
    sample = load_run_config(old).sample
    assert (sample.num_inference_steps, sample.guidance_scale) == (5, 1.5)


def test_checkpoint_markers_before_manifests_are_bare_step_numbers():
    assert formats.is_bare_step_marker("120\n")
    assert not formats.is_bare_step_marker('{"format": 1, "step": 120}')
