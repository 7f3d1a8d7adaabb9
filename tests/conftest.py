import copy
import os

import pytest
import torch

# Tests never reach a model hub: tiny models are built from configs and saved locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tiny models gain nothing from threads; one keeps the suite fast on a 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """tiny_dir(kind) -> folder of a tiny random encoder of that kind (built once a session)."""
    from qgfd_diffusion.adapters import build_tiny_encoder

    built = {}

    def get(kind: str):
        if kind not in built:
            built[kind] = build_tiny_encoder(kind, tmp_path_factory.mktemp(kind), seed=0)
        return built[kind]

    return get


def perturb(module, seed):
    """Move weights off the adaLN-Zero init (a fresh backbone predicts exactly zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return module


@pytest.fixture(scope="session")
def saved_pipeline(tiny_dir, tmp_path_factory):
    """(folder, model, ema): a two-modality model (class-conditional digits, unconditional text
    with a fitted rounding head) saved as a pipeline folder with distinct live and EMA weights."""
    from qgfd_diffusion import DiffusionConfig, QGFDPipeline, SharedQGFDDiffusionModel
    from qgfd_diffusion.adapters import (
        PatchImageAdapter,
        PatchImageConfig,
        TextAdapter,
        TextAdapterConfig,
    )

    torch.manual_seed(0)
    digits = PatchImageAdapter(
        PatchImageConfig(image_size=8, patch_size=4, channels=1, num_classes=3)
    )
    digits.fit_latent_stats([torch.rand(8, 1, 8, 8)])
    text = TextAdapter(
        TextAdapterConfig(
            encoder_name_or_path=str(tiny_dir("t5")), max_length=8, decoder="rounding"
        )
    )
    lines = ["to be or not to be", "a rose by any other name", "all the world's a stage"]
    text.fit_latent_stats([lines])
    text.fit_decoder([lines], steps=5)
    cfg = DiffusionConfig(
        d_model=32, num_heads=4, num_layers=1, d_ff=64, latent_dim=32, cond_dim=8, num_timesteps=50
    )
    model = SharedQGFDDiffusionModel(cfg, adapters={"digits": digits, "text": text})
    model.encode("digits", {"images": torch.rand(2, 1, 8, 8), "labels": torch.tensor([0, 1])})
    model.encode("text", lines)
    perturb(model.backbone, 1)
    ema = perturb(copy.deepcopy(model.backbone), 2)
    folder = tmp_path_factory.mktemp("pipeline") / "final"
    QGFDPipeline.from_model(model, backbone_ema=ema).save_pretrained(folder)
    return folder, model, ema
