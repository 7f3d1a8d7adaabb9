"""The factory, per-modality models and the shared text + image model (seed 001), tiny encoders."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from qgfd_diffusion import (
    DDPMBetaSchedule,
    DiffusionConfig,
    SharedQGFDDiffusionModel,
    create_qgfd_diffusion_model,
)
from qgfd_diffusion.adapters import (
    PatchImageAdapter,
    PatchImageConfig,
    TextAdapter,
    TextAdapterConfig,
)
from qgfd_diffusion.latents import LatentLayout

TINY = dict(
    d_model=32, num_heads=4, num_layers=2, d_ff=64, latent_dim=32, num_timesteps=100, qgfd_steps=2
)


def test_seed_001_quickstart_runs_as_written(tiny_dir):
    # Seed 001, "Quickstart" 1 and 2, with a local tiny T5 folder in place of "t5-small".
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    diff_cfg = DiffusionConfig(
        d_model=512,
        num_heads=8,
        num_layers=4,
        d_ff=2048,
        latent_dim=512,
        num_timesteps=1000,
        qgfd_steps=1,
    )
    text_model, tokenizer, schedule = create_qgfd_diffusion_model(
        modality="text",
        backbone_name=str(tiny_dir("t5")),
        diffusion_cfg=diff_cfg,
    )
    text_model.to(device)
    schedule = schedule.to(device)
    texts = ["hello world", "query graph flow diffusion"]
    batch = tokenizer(texts, return_tensors="pt", padding=True).to(device)
    with torch.no_grad():
        x0_embeds = text_model.encode_text(batch["input_ids"], batch["attention_mask"])  # [B,L,D]
    B = x0_embeds.size(0)
    t = torch.randint(0, diff_cfg.num_timesteps, (B,), device=device)
    with pytest.warns(UserWarning, match="leaks"):  # the seed conditions on the target itself
        loss = text_model.diffusion_forward(
            x0_embeds=x0_embeds,
            t=t,
            cond_input_ids=batch["input_ids"],
            cond_attention_mask=batch["attention_mask"],
            schedule=schedule,
        )
    assert x0_embeds.shape == (2, batch["input_ids"].shape[1], 512)
    assert torch.isfinite(loss) and 0.5 < loss.item() < 3.0  # "about 1-2 for an untrained denoiser"


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


def test_shared_backbone_snippet_runs_as_written(tiny_dir):
    """Seed 001, "Shared Backbone": the user's adapters on our backbone, schedule and q_sample."""
    import torch.nn as nn
    import torch.nn.functional as F
    from transformers import AutoImageProcessor, T5ForConditionalGeneration, T5Tokenizer, ViTModel

    from qgfd_diffusion import QGFDDiffusionBackbone, q_sample

    class TextAdapter(nn.Module):
        def __init__(self, hf_name: str, shared_cfg: DiffusionConfig):
            super().__init__()
            self.t5 = T5ForConditionalGeneration.from_pretrained(hf_name)
            self.tokenizer = T5Tokenizer.from_pretrained(hf_name)
            self.d_model = self.t5.config.d_model
            self.proj_in = nn.Linear(self.d_model, shared_cfg.latent_dim)

        def encode_to_latents(self, input_ids, attention_mask):
            enc_out = self.t5.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            return self.proj_in(enc_out), enc_out, attention_mask

    class ImageAdapter(nn.Module):
        def __init__(self, hf_name: str, shared_cfg: DiffusionConfig):
            super().__init__()
            self.processor = AutoImageProcessor.from_pretrained(hf_name)
            self.vit = ViTModel.from_pretrained(hf_name)
            self.d_model = self.vit.config.hidden_size
            self.proj_in = nn.Linear(self.d_model, shared_cfg.latent_dim)

        def encode_to_latents(self, pixel_values):
            out = self.vit(pixel_values=pixel_values)
            patches = out.last_hidden_state[:, 1:, :]
            return self.proj_in(patches), None, None

    class SeedSharedModel(nn.Module):
        def __init__(self, shared_cfg, text_hf_name, image_hf_name):
            super().__init__()
            self.cfg = shared_cfg
            self.backbone = QGFDDiffusionBackbone(shared_cfg)
            self.text_adapter = TextAdapter(text_hf_name, shared_cfg)
            self.image_adapter = ImageAdapter(image_hf_name, shared_cfg)

        def text_diffusion_loss(self, input_ids, attention_mask, schedule):
            x0_latent, cond_tokens, cond_mask = self.text_adapter.encode_to_latents(
                input_ids, attention_mask
            )
            t = torch.randint(
                0, self.cfg.num_timesteps, (x0_latent.size(0),), device=x0_latent.device
            )
            x_t, eps = q_sample(x0_latent, t, schedule)
            eps_pred = self.backbone(x_t, t, cond_tokens=cond_tokens, cond_mask=cond_mask)
            return F.mse_loss(eps_pred, eps)

        def image_diffusion_loss(self, pixel_values, schedule):
            x0_latent, cond_tokens, cond_mask = self.image_adapter.encode_to_latents(pixel_values)
            t = torch.randint(
                0, self.cfg.num_timesteps, (x0_latent.size(0),), device=x0_latent.device
            )
            x_t, eps = q_sample(x0_latent, t, schedule)
            eps_pred = self.backbone(x_t, t, cond_tokens=cond_tokens, cond_mask=cond_mask)
            return F.mse_loss(eps_pred, eps)

    t5_dir, vit_dir = str(tiny_dir("t5")), str(tiny_dir("vit"))
    t5_width = T5ForConditionalGeneration.from_pretrained(t5_dir).config.d_model
    shared_cfg = DiffusionConfig(**{**TINY, "cond_dim": t5_width})
    model = SeedSharedModel(shared_cfg, t5_dir, vit_dir)
    schedule = DDPMBetaSchedule(num_timesteps=shared_cfg.num_timesteps)
    tokens = model.text_adapter.tokenizer(["a rose by any other name"], return_tensors="pt")
    text_loss = model.text_diffusion_loss(tokens["input_ids"], tokens["attention_mask"], schedule)
    size = model.image_adapter.vit.config.image_size
    image_loss = model.image_diffusion_loss(torch.rand(2, 3, size, size), schedule)
    (text_loss + image_loss).backward()
    assert torch.isfinite(text_loss) and torch.isfinite(image_loss)


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
    for m in (model, loaded):
        out = m.sample(
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
        model._check_schedule(DDPMBetaSchedule(num_timesteps=5))
