"""Image adapters: exact pixel patches and a tiny ViT with a pixel decoder head."""

import pytest
import torch

from qgfd_diffusion.adapters import (
    PatchImageAdapter,
    PatchImageConfig,
    ViTImageAdapter,
    ViTImageConfig,
    load_adapter,
    patchify,
    unpatchify,
)
from qgfd_diffusion.adapters.tiny import TINY_IMAGE_SIZE, TINY_PATCH

GRID = TINY_IMAGE_SIZE // TINY_PATCH


def images(batch: int = 6, size: int = TINY_IMAGE_SIZE) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(batch, 3, size, size, generator=gen)


def make_vit(tiny_dir, **options) -> ViTImageAdapter:
    return ViTImageAdapter(ViTImageConfig(encoder_name_or_path=str(tiny_dir("vit")), **options))


def make_patch(**options) -> PatchImageAdapter:
    return PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=4, **options))


# -- patches ------------------------------------------------------------------------------------


def test_patchify_is_exactly_invertible():
    x = torch.randn(2, 3, 8, 12)
    tokens = patchify(x, (4, 4))
    assert tokens.shape == (2, 2 * 3, 3 * 16)
    assert torch.equal(tokens[0, 1], x[0, :, 0:4, 4:8].reshape(-1))  # row-major grid
    assert torch.equal(unpatchify(tokens, (2, 3), (4, 4)), x)


@pytest.mark.parametrize("low", [0.0, -1.0])
def test_patch_adapter_round_trip_is_exact(low):
    adapter = make_patch()
    x = images(4, 8) * (1 - low) + low  # [0,1] or [-1,1]
    batch = adapter.encode(x)
    assert batch.latents.shape == (4, 4, 48) and batch.layout.kind == "grid"
    assert batch.layout.shape == (2, 2) and batch.mask is None
    assert torch.equal(adapter.decode(batch.latents), x)
    adapter.fit_latent_stats([x])
    torch.testing.assert_close(adapter.decode(adapter.encode(x).latents), x, rtol=0, atol=1e-6)


def test_patch_adapter_stats_and_save_load(tmp_path, assert_unit_stats, assert_frozen_upstream):
    adapter = make_patch(std_mode="channel").fit_latent_stats([images(8, 8)])
    assert_unit_stats(adapter.encode(images(8, 8)).latents, None)
    assert_frozen_upstream(adapter, images(2, 8))
    loaded = load_adapter(adapter.save_pretrained(tmp_path))
    assert torch.equal(loaded.encode(images(3, 8)).latents, adapter.encode(images(3, 8)).latents)


def test_patch_adapter_uint8_and_labels():
    adapter = make_patch(num_classes=5)
    pixels = (images(2, 8) * 255).to(torch.uint8)
    batch = adapter.encode({"images": pixels, "labels": torch.tensor([4, 1])})
    assert torch.equal(adapter.decode(batch.latents), pixels.float() / 255)
    assert batch.cond_tokens.shape == (2, 1, 5) and batch.cond_mask.all()
    assert torch.equal(batch.cond_tokens[:, 0].argmax(-1), torch.tensor([4, 1]))


def test_patch_adapter_bad_inputs():
    adapter = make_patch()
    with pytest.raises(ValueError, match=r"expected images \[B, 3, 8, 8\], got \(2, 3, 9, 8\)"):
        adapter.encode(torch.rand(2, 3, 9, 8))
    with pytest.raises(ValueError, match="'images'"):
        adapter.encode({"pixels": torch.rand(2, 3, 8, 8)})
    with pytest.raises(ValueError, match="must divide"):
        PatchImageConfig(image_size=10, patch_size=4)


# -- ViT ----------------------------------------------------------------------------------------


def test_vit_encode_drops_cls_and_lays_out_grid(tiny_dir):
    adapter = make_vit(tiny_dir)
    batch = adapter.encode(images())
    assert adapter.grid == (GRID, GRID) and adapter.patch == (TINY_PATCH, TINY_PATCH)
    assert batch.latents.shape == (6, GRID * GRID, 32)
    assert batch.layout.kind == "grid" and batch.layout.shape == (GRID, GRID)
    assert torch.isfinite(batch.latents).all()


def test_vit_is_frozen_and_stats_unit(tiny_dir, assert_frozen_upstream, assert_unit_stats):
    adapter = make_vit(tiny_dir).fit_latent_stats([images()[:3], images()[3:]])
    assert_frozen_upstream(adapter, images(2))
    assert_unit_stats(adapter.encode(images()).latents, None)


def test_vit_pixel_head_reduces_reconstruction_loss(tiny_dir, tmp_path):
    adapter = make_vit(tiny_dir, latent_dim=16, projection="orthogonal").fit_latent_stats(
        [images()]
    )
    before = adapter.encode(images()).latents
    losses = adapter.fit_decoder([images()], steps=60, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(adapter.encode(images()).latents, before)
    decoded = adapter.decode(before)
    assert decoded.shape == (6, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    assert decoded.min() >= 0 and decoded.max() <= 1
    loaded = load_adapter(adapter.save_pretrained(tmp_path / "vit"))
    assert torch.equal(loaded.encode(images()).latents, before)
    assert torch.equal(loaded.decode(before), decoded)


def test_vit_untrained_head_and_bad_size(tiny_dir):
    adapter = make_vit(tiny_dir, num_classes=2)
    with pytest.raises(RuntimeError, match="fit_decoder"):
        adapter.decode(adapter.encode(images(2)).latents)
    with pytest.raises(ValueError, match=r"expected images \[B, 3, 16, 16\]"):
        adapter.encode(images(2, size=20))
    batch = adapter.encode({"images": images(2), "labels": [0, 1]})
    assert batch.cond_tokens.shape == (2, 1, 2)
