"""Attention kinds behind one interface, the multi-head module and seed 000's QGFDLayer."""

import math

import pytest
import torch
import torch.nn.functional as F

from qgfd_diffusion.attention import (
    DIFFormerKernel,
    HeatKernel,
    QGFDKernel,
    QGFDLayer,
    QGFDMultiheadAttention,
    make_attention,
    naive_qgfd_attention,
    set_qgfd_step,
    transition_from_networkx,
)

B, H, L, D = 2, 4, 9, 32


def _qkv(Lq=L):
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(B, H, n, D // H, generator=g, dtype=torch.float64) for n in (Lq, L, L))


def _padding():
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, 6:] = False
    return mask


def test_seed_000_example_runs_as_written():
    # Seed 000, section 3, with only the import changed.
    B, Lq, N, dim = 2, 4, 12, 32
    qgfd = QGFDLayer(dim=dim, proj_dim=32, topk=4, diffusion_steps=6, alpha=0.85)
    queries = torch.randn(B, Lq, dim)
    kv = torch.randn(N, dim)
    out = qgfd(queries, kv)
    assert out.shape == (B, Lq, dim)
    out.pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in qgfd.parameters())


def test_qgfd_layer_matches_naive_for_shared_and_batched_nodes_and_graphs():
    layer = QGFDLayer(dim=16, topk=3, diffusion_steps=4, alpha=0.6).double()
    queries, kv = (
        torch.randn(2, 5, 16, dtype=torch.float64),
        torch.randn(7, 16, dtype=torch.float64),
    )
    Q, K, V = (
        proj(x).unsqueeze(1)
        for proj, x in (
            (layer.q_proj, queries),
            (layer.k_proj, kv[None].expand(2, -1, -1)),
            (layer.v_proj, kv[None].expand(2, -1, -1)),
        )
    )
    ref = layer.out_proj(naive_qgfd_attention(Q, K, V, alpha=0.6, steps=4, topk=3).squeeze(1))
    torch.testing.assert_close(layer(queries, kv), ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(layer(queries, kv[None].expand(2, -1, -1)), ref, atol=1e-10, rtol=0)
    adj = torch.rand(2, 7, 7, dtype=torch.float64)
    ref_graph = layer.out_proj(
        naive_qgfd_attention(Q, K, V, alpha=0.6, steps=4, transition="graph", graph=adj).squeeze(1)
    )
    torch.testing.assert_close(layer(queries, kv, adj=adj), ref_graph, atol=1e-10, rtol=0)


def test_qgfd_layer_rejects_bad_shapes():
    layer = QGFDLayer(dim=8)
    with pytest.raises(ValueError, match="kv must be"):
        layer(torch.randn(2, 3, 8), torch.randn(3, 4, 8))
    with pytest.raises(ValueError, match="alpha"):
        QGFDLayer(dim=8, alpha=1.5)


def test_networkx_helper_is_row_stochastic_with_self_loops_on_dangling_nodes():
    nx = pytest.importorskip("networkx")
    G = nx.DiGraph([(0, 1), (0, 2), (1, 2)])
    G.add_node(3)  # isolated
    P = transition_from_networkx(G, weight=None).to_dense()
    torch.testing.assert_close(P.sum(-1), torch.ones(4))
    assert P[0, 1] == P[0, 2] == 0.5 and P[2, 2] == 1.0 and P[3, 3] == 1.0


def test_heat_kernel_at_half_time_is_softmax_attention_and_depth_scaling():
    q, k, v = _qkv()
    heat = HeatKernel(H, t=0.5)
    torch.testing.assert_close(heat(q, k, v), F.scaled_dot_product_attention(q, k, v))
    sharp = HeatKernel(H, t=0.25)(q, k, v)
    torch.testing.assert_close(
        sharp, F.scaled_dot_product_attention(q, k, v, scale=2 / math.sqrt(D // H))
    )
    scaled = HeatKernel(H, t=0.28, mode="depth_scaled", depth=16, reference_depth=4)
    torch.testing.assert_close(scaled.diffusion_time(), torch.full((H,), 0.14))


def test_learned_heat_time_gets_gradient():
    heat = HeatKernel(H, t=0.3, mode="learned").double()
    torch.testing.assert_close(heat.diffusion_time(), torch.full((H,), 0.3, dtype=torch.float64))
    heat(*_qkv()).sum().backward()
    assert heat.raw_t.grad is not None and heat.raw_t.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", ["s", "a"])
def test_difformer_matches_dense_formula_and_respects_padding(variant):
    q, k, v = _qkv()
    padding = _padding()[:, None, None, :]
    out = DIFFormerKernel(H, variant=variant)(q, k, v, padding)
    if variant == "s":
        weights = 1 + F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)
    else:
        weights = torch.sigmoid(q @ k.transpose(-1, -2) / math.sqrt(D // H))
    weights = weights * padding
    torch.testing.assert_close(out, weights / weights.sum(-1, keepdim=True) @ v)


def test_qgfd_warmup_follows_the_training_step_without_mutating_in_forward():
    module = QGFDMultiheadAttention(D, H, alpha=0.2, alpha_mode="warmup", warmup_steps=100)
    kernel = module.kernel
    x = torch.randn(B, L, D)
    assert kernel.current_alpha() == 0.0
    module(x)
    assert int(kernel.step) == 0  # forward never advances the counter
    set_qgfd_step(module, 50)
    assert kernel.current_alpha() == pytest.approx(0.1)
    set_qgfd_step(module, 10_000)
    assert kernel.current_alpha() == pytest.approx(0.2)
    restored = QGFDMultiheadAttention(D, H, alpha=0.2, alpha_mode="warmup", warmup_steps=100)
    restored.load_state_dict(module.state_dict())
    assert int(restored.kernel.step) == 10_000


def test_learnable_alpha_is_per_head_and_trains():
    kernel = QGFDKernel(H, alpha=0.3, alpha_mode="learnable", steps=2).double()
    torch.testing.assert_close(kernel.current_alpha(), torch.full((H,), 0.3, dtype=torch.float64))
    kernel(*_qkv()).pow(2).sum().backward()
    assert kernel.alpha_logit.grad.shape == (H,) and kernel.alpha_logit.grad.abs().sum() > 0


def test_qgfd_module_at_zero_alpha_equals_sdpa_module_with_same_weights():
    qgfd = QGFDMultiheadAttention(D, H, alpha=0.0, steps=3)
    sdpa = make_attention("sdpa", D, H)
    sdpa.load_state_dict(qgfd.state_dict(), strict=False)
    x = torch.randn(B, L, D)
    assert torch.equal(qgfd(x, key_padding_mask=_padding()), sdpa(x, key_padding_mask=_padding()))


@pytest.mark.parametrize(
    "kind,options",
    [
        ("sdpa", {}),
        ("qgfd", dict(alpha=0.5, steps=2)),
        ("qgfd", dict(alpha=0.5, steps=2, transition="linear")),
        ("heat", dict(t=0.3)),
        ("difformer", dict(variant="s")),
        ("difformer", dict(variant="a")),
    ],
)
def test_every_kind_handles_self_and_cross_attention_with_padding(kind, options):
    attention = make_attention(kind, D, H, kv_dim=16, **options)
    x, context = torch.randn(B, 5, D), torch.randn(B, L, 16)
    out = attention(x, context, key_padding_mask=_padding())
    assert out.shape == (B, 5, D) and torch.isfinite(out).all()
    context_changed = context.clone()
    context_changed[0, 6:] = 50.0  # padded context tokens must not matter
    torch.testing.assert_close(attention(x, context_changed, key_padding_mask=_padding()), out)


@pytest.mark.parametrize(
    "kind,options,pattern",
    [
        ("flash", {}, "attention must be one of"),
        ("qgfd", dict(alpha=2.0), "alpha must be in"),
        ("qgfd", dict(alpha_mode="cosine"), "alpha_mode must be one of"),
        ("heat", dict(mode="slow"), "heat mode must be one of"),
        ("difformer", dict(variant="b"), "difformer variant must be one of"),
    ],
)
def test_bad_kind_options_are_rejected_by_name(kind, options, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_attention(kind, D, H, **options)
