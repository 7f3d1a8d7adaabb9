"""The adapter contract: registry, configs, save/load errors, shared helpers."""

import pytest
import torch

from qgfd_diffusion.adapters import (
    ADAPTERS,
    ModalityAdapter,
    PatchImageAdapter,
    PatchImageConfig,
    TextAdapterConfig,
    adapter_spec,
    build_adapter,
    build_tiny_encoder,
    get_adapter_class,
    load_adapter,
)
from qgfd_diffusion.adapters.base import label_condition, resolve_source, seeded_orthogonal


def test_registry_lists_every_modality():
    assert {"text", "image", "patch_image", "audio", "video", "tabular"} <= set(ADAPTERS)
    assert get_adapter_class("patch_image") is PatchImageAdapter


def test_unknown_adapter_name_lists_allowed():
    with pytest.raises(ValueError, match="unknown adapter 'nope'.*patch_image"):
        get_adapter_class("nope")


def test_literal_config_field_is_checked():
    with pytest.raises(ValueError, match="std_mode.*channel"):
        PatchImageConfig(image_size=8, patch_size=2, std_mode="bogus")
    with pytest.raises(ValueError, match="decoder"):
        TextAdapterConfig(encoder_name_or_path="x", decoder="gpt")


def test_unknown_config_field_is_rejected():
    with pytest.raises(ValueError, match="unknown fields.*colour"):
        PatchImageConfig.from_dict({"image_size": 8, "patch_size": 2, "colour": 1})


def test_missing_folders_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="adapter config"):
        load_adapter(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_source(str(tmp_path / "no_encoder"))
    assert resolve_source("google/vit-base-patch16-224") == "google/vit-base-patch16-224"


def test_from_pretrained_checks_the_class(tmp_path):
    PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=2)).save_pretrained(tmp_path)
    assert isinstance(ModalityAdapter.from_pretrained(tmp_path), PatchImageAdapter)
    with pytest.raises(ValueError, match="patch_image"):
        get_adapter_class("tabular").from_pretrained(tmp_path)


def test_saved_files_are_json_and_safetensors(tmp_path):
    PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=2)).save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adapter.safetensors",
        "adapter_config.json",
    ]


def test_spec_rebuilds_adapter():
    adapter = PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=2, num_classes=3))
    rebuilt = build_adapter(adapter_spec(adapter))
    assert isinstance(rebuilt, PatchImageAdapter) and rebuilt.config == adapter.config


def test_scalar_std_mode_pools_channels():
    adapter = PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=2, std_mode="scalar"))
    images = torch.rand(4, 3, 8, 8) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1)
    adapter.fit_latent_stats([images])
    assert torch.allclose(adapter.latent_std, adapter.latent_std[0].expand(adapter.latent_dim))
    x0 = adapter.encode(images).latents
    assert x0.mean().abs() < 1e-4 and abs(x0.pow(2).mean().sqrt().item() - 1) < 1e-3


def test_latent_scale_multiplies_x0_and_decodes_exactly(tmp_path):
    images = torch.rand(4, 3, 8, 8)
    plain = PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=2))
    scaled = PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=2, latent_scale=0.3))
    plain.fit_latent_stats([images]), scaled.fit_latent_stats([images])
    x0 = scaled.encode(images).latents
    assert torch.allclose(x0, 0.3 * plain.encode(images).latents, atol=1e-6)
    assert torch.allclose(scaled.decode(x0), images, atol=1e-5)  # pixel patches stay exact
    scaled.save_pretrained(tmp_path)
    assert load_adapter(tmp_path).config.latent_scale == 0.3
    for bad in (0, -1.0, float("inf"), "0.5"):
        with pytest.raises(ValueError, match="latent_scale must be a positive number"):
            PatchImageConfig(image_size=8, patch_size=2, latent_scale=bad)


def test_label_condition_is_one_hot_and_checks_range():
    tokens, mask = label_condition([2, 0], num_classes=3)
    assert tokens.shape == (2, 1, 3) and mask.all()
    assert torch.equal(tokens[:, 0].argmax(-1), torch.tensor([2, 0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        label_condition([3], num_classes=3)
    with pytest.raises(ValueError, match="num_classes=0"):
        label_condition([0], num_classes=0)


def test_seeded_orthogonal_is_fixed_and_orthonormal():
    q = seeded_orthogonal(16, 8, seed=3)
    assert torch.allclose(q.T @ q, torch.eye(8), atol=1e-5)
    assert torch.equal(q, seeded_orthogonal(16, 8, seed=3))
    with pytest.raises(ValueError, match="cannot widen"):
        seeded_orthogonal(4, 8, seed=0)


def test_tiny_builder_rejects_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny encoder kind 'gpt'.*wav2vec2"):
        build_tiny_encoder("gpt", tmp_path)
