"""QGFD's graph transition: sparse (edge list) == dense == the naive seed formula, with masks."""

import pytest
import torch

from qgfd_diffusion.attention import naive_qgfd_attention, qgfd_attention
from qgfd_diffusion.attention.masks import graph_attention_mask

B, H, N, D = 3, 2, 9, 4


def _qkv():
    g = torch.Generator().manual_seed(0)
    return [
        torch.randn(B, H, N, D, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    ]


def _graphs():
    g = torch.Generator().manual_seed(1)
    A = (torch.rand(B, N, N, generator=g) < 0.3).double() * torch.rand(
        B, N, N, generator=g, dtype=torch.float64
    )
    A[1, 4] = 0.0  # a dangling node
    return A


def _masks():
    padding = torch.ones(B, N, dtype=torch.bool)
    padding[2, 6:] = False
    return {
        "none": None,
        "key_padding": padding[:, None, None, :],
        "one_hop": graph_attention_mask(_graphs(), padding),  # entrywise [B, 1, N, N]
        "causal": torch.ones(N, N, dtype=torch.bool).tril(),
    }


@pytest.mark.parametrize("steps", [3, None])
@pytest.mark.parametrize("mask_name", list(_masks()))
@pytest.mark.parametrize("layout", ["dense", "sparse", "shared_sparse"])
def test_graph_matches_naive_forward_and_grad(layout, mask_name, steps):
    q, k, v = _qkv()
    A = _graphs()
    graph = {"dense": A, "sparse": A.to_sparse(), "shared_sparse": A[0].to_sparse()}[layout]
    reference_graph = A if layout != "shared_sparse" else A[0]
    mask = _masks()[mask_name]
    options = dict(alpha=0.8, steps=steps, transition="graph")
    out = qgfd_attention(q, k, v, mask, graph=graph, tol=1e-12, **options)
    ref = naive_qgfd_attention(q, k, v, mask, graph=reference_graph, **options)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    grads_ref = torch.autograd.grad(ref.sum(), (q, k, v))
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=1e-10, rtol=0)


def test_sparse_path_never_builds_a_dense_graph_and_matches_a_loop():
    """P W from the edge list against a plain python loop over edges."""
    from qgfd_diffusion.attention.transitions import GraphTransition

    A = _graphs()
    W = torch.randn(B, H, N, 5, dtype=torch.float64)
    out = GraphTransition(A.to_sparse(), None, N).matmul(W)
    expected = torch.empty_like(W)
    for b in range(B):
        for i in range(N):
            row = A[b, i]
            if row.sum() == 0:
                expected[b, :, i] = W[b, :, i]  # dangling: keeps its mass
                continue
            expected[b, :, i] = sum(row[j] * W[b, :, j] for j in range(N)) / row.sum()
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_one_hop_mask_keeps_self_and_neighbours_and_never_empties_a_row():
    A = torch.zeros(1, 4, 4)
    A[0, 0, 1] = A[0, 1, 0] = 1.0
    padding = torch.tensor([[True, True, True, False]])
    mask = graph_attention_mask(A.to_sparse(), padding)[0, 0]
    expected = torch.tensor(
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool
    )  # padded token 3 keeps only itself
    assert torch.equal(mask, expected)


def test_graph_rejects_additive_bias_and_wrong_batch():
    q, k, v = (t.detach() for t in _qkv())
    with pytest.raises(ValueError, match="accept only"):
        qgfd_attention(
            q, k, v, torch.randn(N, N), alpha=0.5, steps=2, transition="graph", graph=_graphs()
        )
    with pytest.raises(ValueError, match="one adjacency per sample"):
        qgfd_attention(q, k, v, alpha=0.5, steps=2, transition="graph", graph=_graphs()[:2])
