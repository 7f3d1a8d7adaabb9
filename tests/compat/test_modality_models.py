"""Prototype 001's factory, per-modality models and shared text + image model, tiny encoders.

Prototype 001's own code blocks run verbatim in test_seed001_verbatim.py."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from qgfd_diffusion import DDPMBetaSchedule, DiffusionConfig, create_qgfd_diffusion_model
from qgfd_diffusion.adapters import (
    PatchImageAdapter,
    PatchImageConfig,
    TextAdapter,
    TextAdapterConfig,
)
from qgfd_diffusion.compat import SharedQGFDDiffusionModel
from qgfd_diffusion.latents import LatentLayout
from qgfd_diffusion.sample import generate

TINY = dict(
    d_model=32, num_heads=4, num_layers=2, d_ff=64, latent_dim=32, num_timesteps=100, qgfd_steps=2
)


def _perturb(module, seed=0):
    """Move every weight off its init (a fresh adaLN-Zero backbone predicts exactly 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_text_condition_never_sees_the_target(tiny_dir):
    model, tokenizer, schedule = create_qgfd_diffusion_model(
        "text", str(tiny_dir("t5")), DiffusionConfig(**TINY)
    )
    model.eval()
    _perturb(model.backbone)
    target = tokenizer(["to be or not to be"], return_tensors="pt")
    prompt = tokenizer(["hamlet speaks"], return_tensors="pt")
    x0 = model.encode_text(target["input_ids"], target["attention_mask"])
    t, noise = torch.tensor([40]), torch.randn_like(x0)
    kwargs = dict(schedule=schedule, noise=noise)
    unconditional = model.diffusion_forward(x0, t, **kwargs)
    with pytest.warns(UserWarning, match="leaks"):
        leaked = model.diffusion_forward(
            x0, t, target["input_ids"], target["attention_mask"], **kwargs
        )
    assert torch.equal(leaked, unconditional)  # the target was replaced by the null condition
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prompted = model.diffusion_forward(
            x0, t, prompt["input_ids"], prompt["attention_mask"], **kwargs
        )
    assert torch.isfinite(prompted) and not torch.equal(prompted, unconditional)


def test_library_shared_model_trains_text_then_image_on_one_backbone(tiny_dir):
    cfg = DiffusionConfig(**{**TINY, "num_modalities": 2})
    model = SharedQGFDDiffusionModel(
        cfg, text_hf_name=str(tiny_dir("t5")), image_hf_name=str(tiny_dir("vit"))
    )
    schedule = DDPMBetaSchedule(num_timesteps=cfg.num_timesteps)
    tokenizer = model.adapters["text"].tokenizer
    tokens = tokenizer(
        ["shall i compare thee", "to a summer's day"], return_tensors="pt", padding=True
    )
    size = model.adapters["image"].image_size[0]
    optimizer = torch.optim.Adam(model.backbone.parameters(), lr=1e-3)
    for loss_fn in (
        lambda: model.text_diffusion_loss(tokens["input_ids"], tokens["attention_mask"], schedule),
        lambda: model.image_diffusion_loss(torch.rand(2, 3, size, size), schedule),
    ):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)
    assert model.modality_id("text") == 0 and model.modality_id("image") == 1
    assert not any(p.requires_grad for p in model.adapters["text"].pretrained.parameters())


def _table(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.exponential(size=n),
            "kind": rng.choice(["a", "b", "c"], size=n),
        }
    )


def _modality_cases(tiny_dir):
    """modality -> (factory args, raw batch, layout to sample)."""
    waveforms = {"waveforms": [torch.randn(1600) for _ in range(2)], "sampling_rate": 16000}
    return {
        "text": (
            dict(backbone_name=str(tiny_dir("t5")), decoder="rounding"),
            ["the quality of mercy", "is not strained"],
            None,
        ),
        "image": (
            dict(backbone_name=None, image_size=8, patch_size=4, channels=1),
            torch.rand(2, 1, 8, 8),
            None,
        ),
        "audio": (dict(backbone_name=str(tiny_dir("wav2vec2"))), waveforms, None),
        "video": (
            dict(backbone_name=None, image_size=8, patch_size=4, channels=3),
            torch.rand(2, 3, 3, 8, 8),
            None,
        ),
        "tabular": (
            dict(backbone_name=None, table=_table(), latent_dim=8),
            _table(4, seed=1),
            None,
        ),
    }


@pytest.mark.parametrize("modality", ["text", "image", "audio", "video", "tabular"])
def test_every_modality_encodes_trains_samples_and_decodes(modality, tiny_dir):
    options, raw, _ = _modality_cases(tiny_dir)[modality]
    backbone_name = options.pop("backbone_name")
    cfg = DiffusionConfig(**{**TINY, "latent_dim": 64, "attention": "qgfd"})
    model, _, schedule = create_qgfd_diffusion_model(modality, backbone_name, cfg, **options)
    adapter = model.adapter
    if adapter.decoder_parameters():
        adapter.fit_decoder([raw], steps=5)
    x0 = model.encode_raw(raw)
    assert x0.shape[0] in (2, 4) and x0.shape[-1] == 64 and torch.isfinite(x0).all()
    t = torch.randint(0, cfg.num_timesteps, (x0.shape[0],))
    loss = model.diffusion_forward(x0, t, schedule=schedule)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    out = model.sample(2, generator=torch.Generator().manual_seed(0), num_inference_steps=3)
    assert out.latents.shape == (2, x0.shape[1], 64) and torch.isfinite(out.latents).all()
    assert out.adapter_latents.shape[-1] == adapter.latent_dim
    assert adapter.can_decode and out.decoded is not None
    assert len(out.decoded) == 2


def test_latent_scale_does_not_drift_while_the_denoiser_trains():
    """The collapse trap: latents must not shrink while the diffusion loss falls (DESIGN.md 7)."""
    adapter = PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=4, channels=1))
    images = torch.rand(16, 1, 8, 8)
    adapter.fit_latent_stats([images])
    model, _, schedule = create_qgfd_diffusion_model(
        "image",
        None,
        DiffusionConfig(**{**TINY, "latent_dim": 16}),
        image_size=8,
        patch_size=4,
        channels=1,
    )
    model.adapters["image"] = adapter
    start_std = model.encode_raw(images).std()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(200):
        loss = model.loss("image", images, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    end_std = model.encode_raw(images).std()
    assert abs(end_std / start_std - 1) < 0.10
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert all(name.startswith("backbone.") for name in trainable)


def test_shared_model_save_and_load_round_trip(tiny_dir, tmp_path):
    cfg = DiffusionConfig(**{**TINY, "num_modalities": 2, "cond_dim": 32})
    text = TextAdapter(TextAdapterConfig(encoder_name_or_path=str(tiny_dir("t5"))))
    patches = PatchImageAdapter(
        PatchImageConfig(image_size=8, patch_size=4, channels=1, num_classes=10)
    )
    model = SharedQGFDDiffusionModel(cfg, adapters={"text": text, "digits": patches}).eval()
    model.encode("digits", {"images": torch.rand(2, 1, 8, 8), "labels": torch.tensor([1, 2])})
    model.save_pretrained(tmp_path / "model")
    loaded = SharedQGFDDiffusionModel.from_pretrained(tmp_path / "model").eval()
    assert loaded.layouts == model.layouts == {"digits": LatentLayout("grid", (2, 2))}
    assert (tmp_path / "model" / "scheduler" / "scheduler_config.json").is_file()
    assert "num_timesteps" not in json.loads((tmp_path / "model/backbone/config.json").read_text())
    assert loaded.schedule == model.schedule
    for m in (model, loaded):
        out = generate(
            m,
            "digits",
            2,
            condition=torch.tensor([3, 4]),
            guidance_scale=2.0,
            generator=torch.Generator().manual_seed(1),
            num_inference_steps=3,
        )
        m.result = out.latents
    assert torch.equal(model.result, loaded.result)


def test_bad_inputs_are_rejected_by_name(tiny_dir):
    with pytest.raises(ValueError, match="modality must be one of"):
        create_qgfd_diffusion_model("smell")
    with pytest.raises(ValueError, match="needs table="):
        create_qgfd_diffusion_model("tabular", diffusion_cfg=DiffusionConfig(**TINY))
    model, _, _ = create_qgfd_diffusion_model(
        "image", None, DiffusionConfig(**TINY), image_size=8, patch_size=4, channels=1
    )
    with pytest.raises(ValueError, match="unknown modality"):
        model.modality_id("text")
    with pytest.raises(ValueError, match="no layout known"):
        model.sample(1)
    with pytest.raises(ValueError, match="exceeds the backbone"):
        create_qgfd_diffusion_model(
            "image",
            None,
            DiffusionConfig(**{**TINY, "latent_dim": 8}),
            image_size=8,
            patch_size=4,
            channels=1,
        )
    with pytest.raises(ValueError, match="num_train_timesteps=5 differs"):
        model.diffusion_forward(
            torch.zeros(1, 4, 32), torch.tensor([1]), schedule=DDPMBetaSchedule(num_timesteps=5)
        )


def test_the_library_model_carries_no_prototype_names():
    """Prototype 001's constructor and loss names live in compat/, which the models never
    import: the library's shared model is the plain one."""
    import ast
    import inspect
    from pathlib import Path

    from qgfd_diffusion import models
    from qgfd_diffusion.models import SharedQGFDDiffusionModel as LibraryModel

    assert issubclass(SharedQGFDDiffusionModel, LibraryModel)
    assert "text_hf_name" not in inspect.signature(LibraryModel).parameters
    assert not hasattr(LibraryModel, "text_diffusion_loss")
    for source in Path(models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "compat" not in (node.module or ""), f"{source.name} imports compat"
