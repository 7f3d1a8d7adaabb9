"""Video adapter: frames through a patch or ViT image adapter; PyAV file reading."""

import pytest
import torch

from qgfd_diffusion.adapters import (
    PatchImageAdapter,
    PatchImageConfig,
    VideoAdapter,
    ViTImageAdapter,
    ViTImageConfig,
    load_adapter,
    read_video_frames,
    write_video,
)


def videos(batch=2, frames=3, size=8) -> torch.Tensor:
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(2))


def patch_video(**options) -> VideoAdapter:
    image = PatchImageAdapter(PatchImageConfig(image_size=8, patch_size=4))
    return VideoAdapter.from_image_adapter(image, **options)


def test_patch_video_layout_and_exact_round_trip(assert_frozen_upstream):
    adapter = patch_video()
    batch = adapter.encode(videos())
    assert batch.latents.shape == (2, 3 * 4, 48)
    assert batch.layout.kind == "video" and batch.layout.shape == (3, 2, 2)
    assert torch.equal(adapter.decode(batch.latents), videos())
    # frame-major order: the first 4 tokens are frame 0
    assert torch.equal(batch.latents[:, :4], adapter.image_adapter.encode(videos()[:, 0]).latents)
    assert_frozen_upstream(adapter, videos())


def test_video_stats_save_load_and_labels(tmp_path, assert_unit_stats):
    adapter = patch_video(num_classes=3).fit_latent_stats([videos(4)])
    assert_unit_stats(adapter.encode(videos(4)).latents, None)
    loaded = load_adapter(adapter.save_pretrained(tmp_path / "video"))
    assert isinstance(loaded, VideoAdapter)
    assert torch.equal(loaded.encode(videos()).latents, adapter.encode(videos()).latents)
    batch = loaded.encode({"videos": videos(), "labels": [2, 0]})
    assert batch.cond_tokens.shape == (2, 1, 3)


def test_vit_video_decodes_through_the_image_head(tiny_dir, tmp_path, assert_frozen_upstream):
    image = ViTImageAdapter(ViTImageConfig(encoder_name_or_path=str(tiny_dir("vit"))))
    adapter = VideoAdapter.from_image_adapter(image)
    clip = videos(size=16)
    batch = adapter.encode(clip)
    assert batch.latents.shape == (2, 3 * 16, 32) and batch.layout.shape == (3, 4, 4)
    assert_frozen_upstream(adapter, clip)
    assert not adapter.can_decode
    losses = adapter.fit_decoder([clip], steps=30, lr=3e-3)
    assert losses[-1] < losses[0] and adapter.can_decode
    assert adapter.decode(batch.latents).shape == clip.shape
    loaded = load_adapter(adapter.save_pretrained(tmp_path / "vit_video"))
    assert torch.equal(loaded.decode(batch.latents), adapter.decode(batch.latents))


def test_read_video_file(tmp_path):
    pytest.importorskip("av", reason="video extra not installed")
    clip = videos(1, frames=4, size=16)[0]
    path = write_video(tmp_path / "clip.mp4", clip)
    frames = read_video_frames(path, num_frames=3, size=(8, 8))
    assert frames.shape == (3, 3, 8, 8) and frames.min() >= 0 and frames.max() <= 1
    encoded = patch_video().encode(frames[None])
    assert encoded.layout.shape == (3, 2, 2)
    with pytest.raises(FileNotFoundError, match="nothing.mp4"):
        read_video_frames(tmp_path / "nothing.mp4")


def test_bad_video_batches():
    adapter = patch_video()
    with pytest.raises(ValueError, match=r"\[B, T, channels, H, W\]"):
        adapter.encode(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"expected images \[B, 3, 8, 8\]"):
        adapter.encode(torch.rand(1, 2, 3, 9, 9))
    with pytest.raises(ValueError, match="'videos'"):
        adapter.encode({"clips": videos()})
