"""Fixed positional embeddings for every layout, timestep and modality embeddings."""

import pytest
import torch

from qgfd_diffusion.latents import LatentLayout
from qgfd_diffusion.models import ModalityEmbedding, TimestepEmbedder, positional_embedding

LAYOUTS = [
    LatentLayout("sequence", (12,)),
    LatentLayout("columns", (7,)),
    LatentLayout("grid", (3, 5)),
    LatentLayout("video", (2, 3, 4)),
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.kind)
@pytest.mark.parametrize("dim", [32, 30])
def test_positions_differ_for_every_token(layout, dim):
    pos = positional_embedding(layout, layout.num_tokens, dim)  # [L, D]
    assert pos.shape == (layout.num_tokens, dim) and pos.dtype == torch.float32
    distances = torch.cdist(pos, pos)  # [L, L]
    off_diagonal = distances + torch.eye(layout.num_tokens) * 1e9
    assert off_diagonal.min() > 1e-3


def test_grid_embedding_is_separable_by_axis():
    pos = positional_embedding(LatentLayout("grid", (3, 5)), 15, 32).view(3, 5, 32)
    rows, cols = pos[..., :16], pos[..., 16:]
    assert torch.equal(rows[:, :1].expand(-1, 5, -1), rows)  # row part constant along a row
    assert torch.equal(cols[:1].expand(3, -1, -1), cols)  # column part constant down a column


def test_video_frames_share_the_spatial_part():
    pos = positional_embedding(LatentLayout("video", (2, 2, 3)), 12, 30).view(2, 6, 30)
    assert torch.equal(pos[0, :, 10:], pos[1, :, 10:])
    assert not torch.equal(pos[0, :, :10], pos[1, :, :10])


def test_sequence_layout_holds_up_to_its_length_and_grids_must_match():
    long = positional_embedding(LatentLayout("sequence", (20,)), 20, 16)
    assert torch.equal(positional_embedding(LatentLayout("sequence", (20,)), 8, 16), long[:8])
    with pytest.raises(ValueError, match="cannot hold 21 tokens"):
        positional_embedding(LatentLayout("sequence", (20,)), 21, 16)
    with pytest.raises(ValueError, match="grid layout"):
        positional_embedding(LatentLayout("grid", (3, 5)), 16, 16)


def test_timestep_embedding_separates_timesteps():
    emb = TimestepEmbedder(16)(torch.tensor([0, 1, 500, 999]))
    assert emb.shape == (4, 16)
    assert torch.cdist(emb, emb).add(torch.eye(4)).min() > 0
    continuous = TimestepEmbedder(16)(torch.tensor([0.5, 10.25]))
    assert torch.isfinite(continuous).all()


def test_modality_embedding_range():
    table = ModalityEmbedding(2, 8)
    assert table(1, torch.device("cpu")).shape == (1, 1, 8)
    assert table(torch.tensor([0, 1, 1]), torch.device("cpu")).shape == (3, 1, 8)
    with pytest.raises(ValueError, match=r"modality must be in \[0, 1\]"):
        table(2, torch.device("cpu"))
