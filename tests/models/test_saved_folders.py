"""Model folders written before the noise schedule moved to scheduler/ still load and sample.

tests/fixtures/legacy_v0_1_final was written by the code at commit e21d84b (schedule fields and flat
``qgfd_*`` keys in backbone/config.json, no scheduler/) with tests/fixtures/make_legacy_v0_1.py,
which also recorded the latents that code sampled from it (EMA and live weights).
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from qgfd_diffusion.attention import QGFDOptions
from qgfd_diffusion.sample import generate, make_scheduler
from qgfd_diffusion.sample.run import load_trained_model
from qgfd_diffusion.schedules import NoiseScheduleConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGACY = FIXTURES / "legacy_v0_1_final"


def sample_like_the_old_code(model):
    return generate(
        model,
        "image",
        3,
        condition=torch.tensor([0, 1, 2]),
        generator=torch.Generator().manual_seed(0),
        num_inference_steps=4,
        guidance_scale=2.0,
        scheduler=make_scheduler("ddim", model.schedule),
    ).latents


def test_legacy_folder_loads_with_its_schedule_and_qgfd_settings():
    assert not (LEGACY / "scheduler").exists()
    model = load_trained_model(LEGACY)
    assert model.schedule == NoiseScheduleConfig(
        50, "squaredcos_cap_v2", prediction_type="v_prediction"
    )
    assert model.cfg.qgfd == QGFDOptions(alpha=0.3, steps=3, transition="cosine", temperature=0.5)
    kernel = model.backbone.blocks[0].self_attn.kernel
    assert kernel.options == model.cfg.qgfd  # the flat keys reached the attention


def test_legacy_folder_samples_what_the_old_code_sampled():
    # Equal to float32 rounding, not bitwise: the recorded latents come from one machine, and the
    # order of float32 sums in CPU matmul kernels differs between CPUs and thread counts (about
    # 1e-6 relative here). A lost setting (alpha, transition, the EMA weights) moves them by O(1).
    expected = load_file(str(FIXTURES / "legacy_v0_1_expected_latents.safetensors"))
    for use_ema, name in ((True, "ema"), (False, "live")):
        sampled = sample_like_the_old_code(load_trained_model(LEGACY, use_ema=use_ema))
        torch.testing.assert_close(sampled, expected[name], rtol=1e-5, atol=1e-5)


def test_resaving_a_legacy_folder_writes_todays_layout(tmp_path):
    folder = shutil.copytree(LEGACY, tmp_path / "old")
    model = load_trained_model(folder, use_ema=False)
    model.save_pretrained(tmp_path / "new")
    network = json.loads((tmp_path / "new/backbone/config.json").read_text())
    assert "qgfd_alpha" not in network and "num_timesteps" not in network
    assert network["qgfd"]["alpha"] == 0.3
    again = load_trained_model(tmp_path / "new", use_ema=False)
    assert again.schedule == model.schedule
    assert torch.equal(sample_like_the_old_code(again), sample_like_the_old_code(model))
