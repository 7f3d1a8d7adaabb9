"""Prototype 001's own code blocks, run exactly as the document wrote them.

The blocks are read from tests/fixtures/prototype_001.txt, a byte-identical copy of the prototype
document (its sha256 is pinned below, so an edit of the copy fails here), and executed
unchanged, except for the substitutions that cannot run offline: hub model names become tiny
local checkpoints and the model sizes become tiny ones (``TINY_SIZES``). The prototype's module
names (``QGFD_Diffusion_Transformer``, ``TorchDire.QGFD_Diffusion_Transformer``) resolve to this
package. Blocks 2 and 3 are architecture sketches whose bodies are comments, not code.
"""

import hashlib
import re
import sys
import types
from pathlib import Path

import pytest
import torch

import qgfd_diffusion
from qgfd_diffusion.adapters.tiny import TINY_WIDTH

PROTOTYPE = Path(__file__).resolve().parents[1] / "fixtures" / "prototype_001.txt"
PROTOTYPE_SHA256 = "079b18082f5572841386831024a1eb0d1391680e34a96961f094d1ba9883ad6a"
QUICKSTART, TRAINING_STEP, _, _, SHARED_CALL, SHARED_BACKBONE = range(6)
TINY_SIZES = {
    "d_model=512": f"d_model={TINY_WIDTH}",  # = the tiny T5's width (prototype: t5-small's 512)
    "num_heads=8": "num_heads=4",
    "num_layers=4": "num_layers=2",
    "d_ff=2048": "d_ff=64",
    "latent_dim=512": "latent_dim=32",
    "num_timesteps=1000": "num_timesteps=100",
}


def prototype_blocks() -> list[str]:
    return re.findall(r"```python[ \t]*\n(.*?)```", PROTOTYPE.read_text(encoding="utf-8"), re.S)


def run_block(index: int, namespace: dict, substitutions: dict[str, str]) -> dict:
    code = prototype_blocks()[index]
    for old, new in substitutions.items():
        assert old in code, f"prototype block {index} no longer contains {old!r}"
        code = code.replace(old, new)
    exec(compile(code, f"<prototype 001, code block {index}>", "exec"), namespace)
    return namespace


@pytest.fixture
def prototype_modules(monkeypatch):
    """The prototype's import names -> this package."""
    torchdire = types.ModuleType("TorchDire")
    torchdire.QGFD_Diffusion_Transformer = qgfd_diffusion
    monkeypatch.setitem(sys.modules, "QGFD_Diffusion_Transformer", qgfd_diffusion)
    monkeypatch.setitem(sys.modules, "TorchDire", torchdire)
    monkeypatch.setitem(sys.modules, "TorchDire.QGFD_Diffusion_Transformer", qgfd_diffusion)


def test_the_copy_is_the_prototype_document_byte_for_byte():
    assert hashlib.sha256(PROTOTYPE.read_bytes()).hexdigest() == PROTOTYPE_SHA256


def test_quickstart_blocks_run_as_written(prototype_modules, tiny_dir):
    namespace = run_block(QUICKSTART, {}, {**TINY_SIZES, '"t5-small"': repr(str(tiny_dir("t5")))})
    with pytest.warns(UserWarning, match="leaks"):  # the block conditions on the target itself
        run_block(TRAINING_STEP, namespace, {})
    loss, x0 = namespace["loss"], namespace["x0_embeds"]
    assert x0.shape[0] == 2 and x0.shape[-1] == 32
    assert torch.isfinite(loss) and 0.5 < loss.item() < 3.0  # "about 1-2 for an untrained denoiser"
    # prototype 001's shared model (compat) builds from the block's own config, modalities
    # following the adapters given (no num_modalities in that config)
    model = qgfd_diffusion.compat.SharedQGFDDiffusionModel(
        namespace["diff_cfg"], text_hf_name=str(tiny_dir("t5")), image_hf_name=str(tiny_dir("vit"))
    )
    assert list(model.adapters) == ["text", "image"] and model.cfg.num_modalities == 2
    tokens = model.adapters["text"].processor(["a rose"], return_tensors="pt")
    assert torch.isfinite(model.text_diffusion_loss(tokens["input_ids"], tokens["attention_mask"]))


def test_backbone_call_takes_condition_tokens_of_the_model_width(prototype_modules):
    cfg = qgfd_diffusion.DiffusionConfig(d_model=32, num_heads=4, num_layers=2, d_ff=64,
                                         latent_dim=8)  # fmt: skip
    B, L_shared, L_cond = 2, 6, 3
    namespace = dict(
        backbone=qgfd_diffusion.QGFDDiffusionBackbone(cfg),
        x_t=torch.randn(B, L_shared, cfg.latent_dim),
        t=torch.randint(0, cfg.num_timesteps, (B,)),
        cond_tokens=torch.randn(B, L_cond, cfg.d_model),  # "[B, L_cond, d_model]"
        cond_mask=torch.ones(B, L_cond, dtype=torch.bool),
    )
    assert run_block(SHARED_CALL, namespace, {})["eps_pred"].shape == (B, L_shared, 8)


def test_shared_backbone_block_runs_as_written(prototype_modules, tiny_dir):
    t5_dir, vit_dir = str(tiny_dir("t5")), str(tiny_dir("vit"))
    namespace = run_block(
        SHARED_BACKBONE,
        {"__name__": "prototype_001_shared_backbone"},
        {'"t5-small"': repr(t5_dir), '"google/vit-base-patch16-224"': repr(vit_dir)},
    )
    cfg = run_block(QUICKSTART, {}, {**TINY_SIZES, '"t5-small"': repr(t5_dir)})["diff_cfg"]
    model = namespace["SharedQGFDDiffusionModel"](cfg, text_hf_name=t5_dir, image_hf_name=vit_dir)
    schedule = qgfd_diffusion.DDPMBetaSchedule(num_timesteps=cfg.num_timesteps)
    tokens = model.text_adapter.tokenizer(["a rose by any other name"], return_tensors="pt")
    text_loss = model.text_diffusion_loss(tokens["input_ids"], tokens["attention_mask"], schedule)
    size = model.image_adapter.vit.config.image_size
    image_loss = model.image_diffusion_loss(torch.rand(2, 3, size, size), schedule)
    (text_loss + image_loss).backward()
    assert torch.isfinite(text_loss) and torch.isfinite(image_loss)
    assert model.backbone.x_embedder.weight.grad is not None
