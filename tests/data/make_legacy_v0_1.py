"""Writes tests/data/legacy_v0_1_final and its expected latents with the code of commit e21d84b
(before the noise schedule moved to scheduler/). It runs only against that commit:

    git worktree add /tmp/old e21d84b && PYTHONPATH=/tmp/old python tests/data/make_legacy_v0_1.py \
        tests/data/legacy_v0_1_final
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from qgfd_diffusion import DiffusionConfig, SharedQGFDDiffusionModel
from qgfd_diffusion.adapters import PatchImageAdapter, PatchImageConfig
from qgfd_diffusion.models import QGFDDiffusionBackbone
from qgfd_diffusion.sample import make_scheduler
from qgfd_diffusion.sample.run import load_trained_model

out = Path(sys.argv[1])
torch.manual_seed(0)
cfg = DiffusionConfig(
    d_model=32,
    num_heads=2,
    num_layers=1,
    d_ff=64,
    latent_dim=16,
    num_timesteps=50,
    beta_schedule="squaredcos_cap_v2",
    prediction_type="v_prediction",
    qgfd_alpha=0.3,
    qgfd_steps=3,
    transition="cosine",
    qgfd_temperature=0.5,
    cond_dim=8,
    num_modalities=1,
)
adapter = PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=4, channels=1, num_classes=3))
adapter.fit_latent_stats([torch.rand(6, 1, 8, 8)])
model = SharedQGFDDiffusionModel(cfg, adapters={"image": adapter})
model.encode("image", {"images": torch.rand(2, 1, 8, 8), "labels": torch.tensor([0, 1])})
with torch.no_grad():
    for p in model.backbone.parameters():
        p.add_(0.2 * torch.randn_like(p))
model.save_pretrained(out)
ema = QGFDDiffusionBackbone.from_diffusion_config(cfg)
ema.load_state_dict(model.backbone.state_dict())
with torch.no_grad():
    for p in ema.parameters():
        p.mul_(0.9)
ema.save_pretrained(out / "backbone_ema")
expected = {}
for use_ema in (True, False):
    m = load_trained_model(out, use_ema=use_ema)
    o = m.sample(
        "image",
        3,
        condition=torch.tensor([0, 1, 2]),
        generator=torch.Generator().manual_seed(0),
        num_inference_steps=4,
        guidance_scale=2.0,
        scheduler=make_scheduler("ddim", m.backbone),
    )
    expected["ema" if use_ema else "live"] = o.latents.contiguous()
save_file(expected, str(out.parent / "legacy_final_expected_latents.safetensors"))
print({k: v.abs().mean().item() for k, v in expected.items()})
