"""The fast QGFD kernel against the naive seed formulas (materialise p0 and P, loop on p)."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from qgfd_diffusion.attention import naive_qgfd_attention, qgfd_attention

B, H, N, D = 2, 3, 10, 8
TOL = 1e-8
SOLVE = dict(tol=1e-12)  # the fixed point's iterative solve, far below TOL


def _inputs(Lq=N, requires_grad=True):
    g = torch.Generator().manual_seed(1)
    make = lambda L: torch.randn(
        B, H, L, D, generator=g, dtype=torch.float64, requires_grad=requires_grad
    )
    return make(Lq), make(N), make(N)


def _masks():
    padding = torch.ones(B, N, dtype=torch.bool)
    padding[1, 7:] = False
    causal = torch.ones(N, N, dtype=torch.bool).tril()
    g = torch.Generator().manual_seed(2)
    return {
        "none": None,
        "key_padding": padding[:, None, None, :],  # [B, 1, 1, N]
        "self_bool": causal,  # [N, N], self-attention only
        "float_bias": torch.randn(1, H, N, N, generator=g, dtype=torch.float64),  # T5-like bias
    }


def _graph():
    g = torch.Generator().manual_seed(3)
    A = (torch.rand(N, N, generator=g) < 0.3).double() * torch.rand(
        N, N, generator=g, dtype=torch.float64
    )
    A[4] = 0.0  # a dangling node
    return A


TRANSITIONS = ["keys", "cosine", "attention", "graph", "linear"]
ITERATIONS = ["ppr", "power", "fixed_point"]
# Transitions without scores: linear accepts only key-padding masks, graph also entrywise
# bool masks (P = rownorm(A * M)); neither takes an additive bias.
REJECTED_MASKS = {"linear": ("self_bool", "float_bias"), "graph": ("float_bias",)}


def _case(transition, iteration):
    steps = None if iteration == "fixed_point" else 3
    return dict(
        alpha=0.7,
        steps=steps,
        transition=transition,
        iteration="ppr" if iteration == "fixed_point" else iteration,
        graph=_graph() if transition == "graph" else None,
        temperature=0.5,
    )


def _assert_same_forward_and_grad(kwargs_fast, kwargs_ref, mask, Lq=N):
    q, k, v = _inputs(Lq)
    out = qgfd_attention(q, k, v, mask, **kwargs_fast, **SOLVE)
    ref = naive_qgfd_attention(q, k, v, mask, **kwargs_ref)
    torch.testing.assert_close(out, ref, atol=TOL, rtol=0)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad((out * upstream).sum(), (q, k, v))
    grads_ref = torch.autograd.grad((ref * upstream).sum(), (q, k, v))
    for name, g, g_ref in zip("qkv", grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=TOL, rtol=0, msg=f"grad wrt {name}")


@pytest.mark.parametrize("path", ["fused", "materialized"])
@pytest.mark.parametrize("mask_name", list(_masks()))
@pytest.mark.parametrize("transition,iteration", list(itertools.product(TRANSITIONS, ITERATIONS)))
def test_matches_naive_reference(transition, iteration, mask_name, path):
    mask = _masks()[mask_name]
    if mask_name in REJECTED_MASKS.get(transition, ()):
        with pytest.raises(ValueError, match="accept only"):
            qgfd_attention(*_inputs(), mask, path=path, **_case(transition, iteration), **SOLVE)
        return
    case = _case(transition, iteration)
    _assert_same_forward_and_grad(dict(case, path=path), case, mask)


@pytest.mark.parametrize("mask_name", ["none", "key_padding", "float_bias"])
@pytest.mark.parametrize("transition", ["keys", "cosine", "attention"])
def test_topk_matches_naive_topk(transition, mask_name):
    case = dict(_case(transition, "ppr"), topk=4)
    _assert_same_forward_and_grad(case, case, _masks()[mask_name])


@pytest.mark.parametrize("transition", ["keys", "cosine", "graph", "linear"])
def test_cross_attention_matches_naive(transition):
    case = _case(transition, "ppr")
    _assert_same_forward_and_grad(case, case, _masks()["key_padding"], Lq=5)


@pytest.mark.parametrize(
    "alpha", [torch.tensor([0.1, 0.5, 0.9]), torch.rand(B, H), torch.rand(B, 1)]
)
def test_tensor_alpha_per_head_and_per_sample(alpha):
    case = dict(_case("keys", "ppr"), alpha=alpha.double())
    _assert_same_forward_and_grad(case, case, None)


@pytest.mark.parametrize("mask_name", ["none", "key_padding", "float_bias"])
@pytest.mark.parametrize("alpha,steps", [(0.0, 4), (0.7, 0)])
def test_plain_attention_when_alpha_or_steps_is_zero(alpha, steps, mask_name):
    q, k, v = _inputs(requires_grad=False)
    mask = _masks()[mask_name]
    out = qgfd_attention(q, k, v, mask, alpha=alpha, steps=steps)
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_zero_alpha_tensor_is_exactly_attention():
    q, k, v = _inputs(requires_grad=False)
    out = qgfd_attention(q, k, v, alpha=torch.zeros(H, dtype=torch.float64), steps=3)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-15, rtol=0)


def test_fixed_point_is_the_limit_of_the_iteration():
    q, k, v = _inputs(requires_grad=False)
    fixed = qgfd_attention(q, k, v, alpha=0.6, steps=None, **SOLVE)
    long_run = qgfd_attention(q, k, v, alpha=0.6, steps=80)
    torch.testing.assert_close(long_run, fixed, atol=1e-12, rtol=0)


def test_early_stop_stays_close_and_differentiable():
    q, k, v = _inputs()
    full = qgfd_attention(q, k, v, alpha=0.5, steps=60)
    early = qgfd_attention(q, k, v, alpha=0.5, steps=60, early_stop_eps=1e-10)
    torch.testing.assert_close(early, full, atol=1e-9, rtol=0)
    early.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_padded_keys_receive_no_mass():
    q, k, v = _inputs(requires_grad=False)
    mask = _masks()["key_padding"]
    out = qgfd_attention(q, k, v, mask, alpha=0.8, steps=4)
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 7:] = 100.0
    v2[1, :, 7:] = -1e3
    torch.testing.assert_close(
        qgfd_attention(q, k2, v2, mask, alpha=0.8, steps=4), out, atol=1e-12, rtol=0
    )


def test_sparse_graph_equals_dense_graph():
    q, k, v = _inputs(requires_grad=False)
    A = _graph()
    mask = _masks()["key_padding"]
    dense = qgfd_attention(q, k, v, mask, alpha=0.7, steps=3, transition="graph", graph=A)
    sparse = qgfd_attention(
        q, k, v, mask, alpha=0.7, steps=3, transition="graph", graph=A.to_sparse()
    )
    torch.testing.assert_close(sparse, dense, atol=1e-12, rtol=0)


def test_batched_graph_matches_naive():
    A = torch.stack([_graph(), _graph().T])
    case = dict(_case("graph", "ppr"), graph=A)
    _assert_same_forward_and_grad(case, case, _masks()["key_padding"])


def test_float32_auto_path_close_to_float64_reference():
    q, k, v = (t.detach().float() for t in _inputs())
    out = qgfd_attention(q, k, v, alpha=0.5, steps=4)
    ref = naive_qgfd_attention(q.double(), k.double(), v.double(), alpha=0.5, steps=4)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(transition="nope"), "transition must be one of"),
        (dict(iteration="walk"), "iteration must be one of"),
        (dict(path="gpu"), "path must be one of"),
        (dict(steps=-1), "steps must be"),
        (dict(steps=None, iteration="power"), "finite number of steps"),
        (dict(transition="graph"), "needs graph="),
        (dict(transition="graph", graph=torch.ones(3, 3)), "graph must be"),
        (dict(transition="graph", graph=-torch.ones(N, N)), "negative"),
        (dict(transition="linear", topk=2), "topk"),
        (dict(temperature=0.0), "temperature"),
        (dict(alpha=torch.ones(5)), "per head"),
    ],
)
def test_bad_arguments_are_rejected_by_name(kwargs, pattern):
    q, k, v = _inputs(requires_grad=False)
    options = dict(alpha=0.5, steps=2) | kwargs
    with pytest.raises(ValueError, match=pattern):
        qgfd_attention(q, k, v, **options)


def test_attention_transition_needs_square_and_masks_must_reach_p():
    q, k, v = _inputs(Lq=4, requires_grad=False)
    with pytest.raises(ValueError, match="Lq = N"):
        qgfd_attention(q, k, v, alpha=0.5, steps=2, transition="attention")
    per_query = torch.ones(4, N, dtype=torch.bool)
    with pytest.raises(ValueError, match="cannot be applied to the transition"):
        qgfd_attention(q, k, v, per_query, alpha=0.5, steps=2)
    with pytest.raises(ValueError, match=r"\[B, H, L, d\]"):
        qgfd_attention(q[0], k[0], v[0], alpha=0.5, steps=2)


@pytest.mark.parametrize("path", ["fused", "materialized"])
def test_fully_masked_rows_do_not_poison_real_rows(path):
    # Left padding under a causal mask: rows 0-1 see no key at all, and nothing sees keys 0-1.
    q, k, v = _inputs(requires_grad=False)
    mask = torch.ones(N, N, dtype=torch.bool).tril()
    mask[:, :2] = False
    out = qgfd_attention(q, k, v, mask, alpha=0.5, steps=3, path=path)
    assert torch.isfinite(out[..., 2:, :]).all()
    trimmed = qgfd_attention(
        q[..., 2:, :], k[..., 2:, :], v[..., 2:, :], mask[2:, 2:], alpha=0.5, steps=3
    )
    torch.testing.assert_close(out[..., 2:, :], trimmed, atol=1e-12, rtol=0)
