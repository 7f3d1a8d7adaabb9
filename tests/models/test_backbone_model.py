"""QGFDDiffusionBackbone: adaLN-Zero start, save/load, masks, guidance dropout, checkpointing."""

import inspect

import pytest
import torch
from torch import nn

from qgfd_diffusion.latents import LatentLayout
from qgfd_diffusion.models import DiffusionConfig, DiTBlock, QGFDDiffusionBackbone

KINDS = ["sdpa", "qgfd", "heat", "difformer"]
B, L, C, LC, DC = 2, 10, 6, 5, 12


def tiny_backbone(**overrides) -> QGFDDiffusionBackbone:
    fields = dict(
        d_model=32, num_heads=4, num_layers=2, d_ff=64, latent_dim=C, cond_dim=DC, num_modalities=2
    )
    return QGFDDiffusionBackbone(**{**fields, **overrides})


def perturbed(model: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    """Random weights everywhere (a fresh adaLN-Zero model would predict exactly zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * std)
    return model.eval()


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, C, generator=g)
    t = torch.tensor([7, 640])
    cond = torch.randn(B, LC, DC, generator=g)
    cond_mask = torch.tensor([[True] * LC, [True, True, False, False, False]])
    return x, t, cond, cond_mask


@pytest.mark.parametrize("kind", KINDS)
def test_fresh_backbone_predicts_exactly_zero(kind):
    model = tiny_backbone(attention=kind)
    x, t, cond, cond_mask = inputs()
    out = model(x, t, cond, cond_mask, layout=LatentLayout("grid", (2, 5)), modality=1)
    assert out.shape == (B, L, C) and torch.count_nonzero(out) == 0


def test_fresh_block_is_the_identity():
    block = DiTBlock(DiffusionConfig.preset("tiny", cond_dim=DC))
    h, c = torch.randn(B, L, 64), torch.randn(B, 64)
    assert torch.equal(block(h, c, None, torch.randn(B, LC, DC), None), h)


@pytest.mark.parametrize("kind", ["qgfd", "heat"])
def test_save_and_load_round_trip_exactly(tmp_path, kind):
    model = perturbed(tiny_backbone(attention=kind, heat_mode="learned"))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = QGFDDiffusionBackbone.from_pretrained(tmp_path).eval()
    assert loaded.network_config == model.network_config
    x, t, cond, cond_mask = inputs()
    assert torch.equal(model(x, t, cond, cond_mask), loaded(x, t, cond, cond_mask))


def test_init_signature_is_the_network_fields():
    params = list(inspect.signature(QGFDDiffusionBackbone.__init__).parameters)[1:]
    assert params == DiffusionConfig.network_field_names()
    assert "schedule" not in params and "num_timesteps" not in params
    cfg = DiffusionConfig.preset("tiny", attention="difformer", num_modalities=2)
    model = QGFDDiffusionBackbone(cfg)
    assert model.network_config == cfg.network_only() and model.config.attention == "difformer"
    assert QGFDDiffusionBackbone.from_diffusion_config(cfg).network_config == cfg.network_only()
    with pytest.raises(ValueError, match="attention must be one of"):
        QGFDDiffusionBackbone(attention="flash")


@pytest.mark.parametrize("kind", KINDS)
def test_padded_latents_do_not_influence_real_outputs(kind):
    model = perturbed(tiny_backbone(attention=kind))
    x, t, cond, cond_mask = inputs()
    latent_mask = torch.ones(B, L, dtype=torch.bool)
    latent_mask[0, 6:] = latent_mask[1, 3:] = False
    changed = x.clone()
    changed[~latent_mask] = 100.0 * torch.randn(int((~latent_mask).sum()), C)
    out = model(x, t, cond, cond_mask, latent_mask=latent_mask)
    out_changed = model(changed, t, cond, cond_mask, latent_mask=latent_mask)
    assert torch.allclose(out[latent_mask], out_changed[latent_mask], atol=1e-5)
    assert not torch.allclose(model(x, t, cond, cond_mask), model(changed, t, cond, cond_mask))


def test_cross_attention_respects_the_condition_mask():
    model = perturbed(tiny_backbone())
    x, t, cond, cond_mask = inputs()
    padded_changed = cond.clone()
    padded_changed[1, 2:] = 50.0
    assert torch.allclose(
        model(x, t, cond, cond_mask), model(x, t, padded_changed, cond_mask), atol=1e-5
    )
    real_changed = cond.clone()
    real_changed[1, 0] = 50.0
    assert not torch.allclose(
        model(x, t, cond, cond_mask)[1], model(x, t, real_changed, cond_mask)[1]
    )


def test_dropped_condition_is_the_learned_null_condition():
    model = perturbed(tiny_backbone(cond_dropout_prob=1.0))
    x, t, cond, cond_mask = inputs()
    unconditional = model(x, t)
    forced = model(x, t, cond, cond_mask, force_drop_cond=torch.tensor([True, False]))
    assert torch.allclose(forced[0], unconditional[0], atol=1e-6)
    assert torch.allclose(forced[1], model(x, t, cond, cond_mask)[1], atol=1e-6)
    model.train()  # cond_dropout_prob = 1: every condition is dropped
    assert torch.allclose(model(x, t, cond, cond_mask), unconditional, atol=1e-6)
    assert torch.allclose(
        model(x, t, cond, cond_mask, force_drop_cond=False)[1], forced[1], atol=1e-6
    )


def test_condition_needs_cross_attention():
    x, t, cond, _ = inputs()
    with pytest.raises(ValueError, match="cond_dim=None"):
        tiny_backbone(cond_dim=None)(x, t, cond)


@pytest.mark.parametrize("kind", ["qgfd", "difformer"])
def test_gradient_checkpointing_gives_the_same_gradients(kind):
    model = perturbed(tiny_backbone(attention=kind))
    checkpointed = tiny_backbone(attention=kind, gradient_checkpointing=True)
    checkpointed.load_state_dict(model.state_dict())
    assert checkpointed.is_gradient_checkpointing and not model.is_gradient_checkpointing
    x, t, cond, cond_mask = inputs()
    grads = []
    for m in (model, checkpointed):
        m.train()
        m.zero_grad()
        m(x, t, cond, cond_mask, force_drop_cond=False).square().mean().backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for g_plain, g_ckpt in zip(*grads, strict=True):
        assert torch.allclose(g_plain, g_ckpt, atol=1e-6)


def test_modality_and_timestep_change_the_prediction():
    model = perturbed(tiny_backbone())
    x, t, cond, cond_mask = inputs()
    base = model(x, t, cond, cond_mask, modality=0)
    assert not torch.allclose(base, model(x, t, cond, cond_mask, modality=1))
    assert not torch.allclose(base, model(x, t + 100, cond, cond_mask))
    per_sample = model(x, t, cond, cond_mask, modality=torch.tensor([0, 1]))
    assert torch.allclose(per_sample[0], base[0], atol=1e-6)
    scalar_t = model(x, torch.tensor(7), cond, cond_mask)
    assert torch.allclose(scalar_t[0], base[0], atol=1e-6)
