"""QGFD's fixed point (steps=None): the iterative solve and its implicit gradients against the
dense float64 solve of the seed formula, for every transition x mask case; errors, warnings."""

import subprocess
import sys
import warnings

import pytest
import torch

from qgfd_diffusion.attention import QGFDKernel, QGFDOptions, naive_qgfd_attention, qgfd_attention
from qgfd_diffusion.attention import fixed_point as fixed_point_module
from qgfd_diffusion.attention.fixed_point import (
    FixedPointNotConverged,
    FixedPointWarning,
    choose_method,
    record_solves,
)
from qgfd_diffusion.attention.functional import TransitionBuilder
from qgfd_diffusion.attention.masks import graph_attention_mask
from qgfd_diffusion.attention.options import FixedPointSettings
from qgfd_diffusion.attention.solvers import chebyshev, gmres, ppr

B, H, N, D = 2, 2, 6, 3
ALPHA = 0.7
TIGHT = dict(tol=1e-13, max_applications=2000)


def _qkv(n=N, d=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(B, H, n, d, generator=g, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )


def _undirected(n=N):
    A = torch.zeros(n, n, dtype=torch.float64)
    i = torch.arange(n)
    A[i, (i + 1) % n] = A[(i + 1) % n, i] = 1.0
    A[0, 3] = A[3, 0] = 2.0  # a weighted chord
    return A


def _directed(n=N):
    A = torch.zeros(n, n, dtype=torch.float64)
    i = torch.arange(n)
    A[i, (i + 1) % n] = 1.0
    A[2, 5] = 0.5
    A[4] = 0.0  # a dangling node
    return A


def _masks(n=N):
    padding = torch.ones(B, n, dtype=torch.bool)
    padding[1, n - 2 :] = False
    symmetric = torch.rand(n, n, generator=torch.Generator().manual_seed(5)) < 0.6
    symmetric = symmetric | symmetric.T | torch.eye(n, dtype=torch.bool)
    return {
        "none": None,
        "key_padding": padding[:, None, None, :],  # [B, 1, 1, N]
        "causal": torch.ones(n, n, dtype=torch.bool).tril(),  # breaks the symmetry
        "symmetric": symmetric,  # [N, N], keeps a real spectrum
        "one_hop": graph_attention_mask(_undirected(n), padding),  # [B, 1, N, N]
        "float_bias": torch.randn(  # T5-like, asymmetric
            1, H, n, n, generator=torch.Generator().manual_seed(6), dtype=torch.float64
        ),
    }


# (transition options, mask, the method ``solver="auto"`` must pick)
CASES = {
    "keys": (dict(transition="keys"), "none", "chebyshev"),
    "keys key_padding": (dict(transition="keys"), "key_padding", "chebyshev"),
    "keys symmetric": (dict(transition="keys"), "symmetric", "chebyshev"),
    "keys causal": (dict(transition="keys"), "causal", "gmres"),
    "keys float_bias": (dict(transition="keys"), "float_bias", "gmres"),
    "keys topk": (dict(transition="keys", topk=3), "none", "gmres"),
    "keys topk key_padding": (dict(transition="keys", topk=3), "key_padding", "gmres"),
    "cosine": (dict(transition="cosine", temperature=0.5), "none", "chebyshev"),
    "cosine key_padding": (dict(transition="cosine"), "key_padding", "chebyshev"),
    "cosine topk float_bias": (dict(transition="cosine", topk=3), "float_bias", "gmres"),
    "attention": (dict(transition="attention"), "none", "gmres"),
    "attention causal": (dict(transition="attention"), "causal", "gmres"),
    "attention topk key_padding": (dict(transition="attention", topk=3), "key_padding", "gmres"),
    "graph": (dict(transition="graph", graph="undirected"), "none", "chebyshev"),
    "graph key_padding": (dict(transition="graph", graph="undirected"), "key_padding", "chebyshev"),
    "graph one_hop": (dict(transition="graph", graph="undirected"), "one_hop", "chebyshev"),
    "graph sparse one_hop": (dict(transition="graph", graph="sparse"), "one_hop", "chebyshev"),
    "graph causal": (dict(transition="graph", graph="undirected"), "causal", "gmres"),
    "graph directed": (dict(transition="graph", graph="directed"), "none", "gmres"),
    "graph directed sparse": (dict(transition="graph", graph="directed_sparse"), "none", "gmres"),
    "linear": (dict(transition="linear"), "none", "chebyshev"),
    "linear key_padding": (dict(transition="linear"), "key_padding", "chebyshev"),
}


def _options(name, n=N):
    options, mask_name, _ = CASES[name]
    options = dict(options)
    graph = options.pop("graph", None)
    if graph is not None:
        A = _undirected(n) if graph in ("undirected", "sparse") else _directed(n)
        options["graph"] = A.to_sparse() if graph.endswith("sparse") else A
        options["reference_graph"] = A
    return options, _masks(n)[mask_name]


def _fast_and_reference(name, n=N, **extra):
    options, mask = _options(name, n)
    reference_graph = options.pop("reference_graph", None)
    common = dict(alpha=ALPHA, steps=None, **options)
    fast = lambda q, k, v: qgfd_attention(q, k, v, mask, **common, **extra)  # noqa: E731
    ref_options = dict(common, graph=reference_graph) if reference_graph is not None else common
    ref = lambda q, k, v: naive_qgfd_attention(q, k, v, mask, **ref_options)  # noqa: E731
    return fast, ref, mask


@pytest.mark.parametrize("name", list(CASES))
def test_auto_picks_chebyshev_exactly_where_the_spectrum_is_known_real(name):
    options, mask = _options(name)
    options.pop("reference_graph", None)
    graph = options.pop("graph", None)
    q, k, _ = _qkv()
    make_P = TransitionBuilder(
        options["transition"], options.get("topk"), options.get("temperature", 1.0),
        D**-0.5, False, "fused",
    )  # fmt: skip
    P = make_P(q, k, mask, graph)
    assert choose_method(FixedPointSettings(), P)[0] == CASES[name][2]
    if CASES[name][2] == "chebyshev":  # the claim behind the choice: eig(P) real, in [lo, 1]
        lo, hi = P.spectrum()
        eig = torch.linalg.eigvals(P.dense().detach())
        assert float(eig.imag.abs().max()) < 1e-10
        assert float(eig.real.min()) >= lo - 1e-10 and float(eig.real.max()) <= hi + 1e-10


@pytest.mark.parametrize("path", ["fused", "materialized"])
@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_and_dense_solve_agree(name, path):
    """Implicit gradients pass gradcheck, and values and gradients of q, k, v equal those of
    the dense float64 solve (I - a P)^-1 of the seed formula."""
    fast, ref, _ = _fast_and_reference(name, path=path, **TIGHT)
    q, k, v = _qkv()
    assert torch.autograd.gradcheck(fast, (q, k, v), atol=1e-6, fast_mode=True)
    out, expected = fast(q, k, v), ref(q, k, v)
    torch.testing.assert_close(out, expected, atol=1e-9, rtol=0)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad((out * upstream).sum(), (q, k, v))
    grads_ref = torch.autograd.grad((expected * upstream).sum(), (q, k, v))
    for which, g, g_ref in zip("qkv", grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=1e-9, rtol=0, msg=f"grad of {which}")


@pytest.mark.parametrize("transition", ["keys", "attention"])  # Chebyshev and GMRES
@pytest.mark.parametrize(
    "alpha", [torch.tensor([0.3, 0.95]), torch.rand(B, H) * 0.9, torch.tensor([[0.5], [1e-3]])]
)
def test_per_head_and_per_sample_alpha_gradcheck(alpha, transition):
    alpha = alpha.double().requires_grad_()
    fast = lambda q, k, v, a: qgfd_attention(  # noqa: E731
        q, k, v, alpha=a, steps=None, transition=transition, path="fused", **TIGHT
    )
    q, k, v = _qkv()
    assert torch.autograd.gradcheck(fast, (q, k, v, alpha), atol=1e-6, fast_mode=True)
    out = fast(q, k, v, alpha)
    expected = naive_qgfd_attention(q, k, v, alpha=alpha, steps=None, transition=transition)
    torch.testing.assert_close(out, expected, atol=1e-9, rtol=0)
    grad, grad_ref = (torch.autograd.grad(y.sum(), alpha)[0] for y in (out, expected))
    torch.testing.assert_close(grad, grad_ref, atol=1e-9, rtol=0)


def test_a_learned_bias_gets_its_gradient_through_the_transition():
    q, k, v = (t.detach() for t in _qkv())
    bias = _masks()["float_bias"].clone().requires_grad_()
    fast = lambda b: qgfd_attention(q, k, v, b, alpha=ALPHA, steps=None, **TIGHT)  # noqa: E731
    assert torch.autograd.gradcheck(fast, (bias,), atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("name", ["keys", "keys key_padding", "attention causal", "graph one_hop"])
def test_default_tolerance_is_within_1e_4_of_the_dense_solve_at_n_256(name):
    """At the default tol = 1e-4 (relative residual), values and gradients are within 1e-4
    of the dense float64 solve, relative to their size (||x - x_dense|| / ||x_dense||)."""
    n = 256
    fast, ref, _ = _fast_and_reference(name, n=n)
    q, k, v = (t.detach().requires_grad_() for t in _qkv(n=n, d=16))
    out, expected = fast(q, k, v), ref(q, k, v)
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad((out * upstream).sum(), (q, k, v))
    grads_ref = torch.autograd.grad((expected * upstream).sum(), (q, k, v))
    pairs = {"out": (out, expected)} | {
        f"grad of {which}": pair for which, *pair in zip("qkv", grads, grads_ref, strict=True)
    }
    for what, (x, x_ref) in pairs.items():
        relative = float((x - x_ref).detach().norm() / x_ref.detach().norm())
        assert relative <= 1e-4, f"{what}: relative error {relative:.2e}"


def test_backward_stores_no_iteration():
    """The saved tensors of the graph do not grow with the number of iterations."""

    def saved_bytes(alpha):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        q, k, v = _qkv(n=64, d=8)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            qgfd_attention(q, k, v, alpha=alpha, steps=None, path="fused")
        return total

    assert saved_bytes(0.5) == saved_bytes(0.99)


def test_record_solves_counts_the_forward_and_the_adjoint_solve():
    q, k, v = _qkv(n=64, d=8)
    with record_solves() as solves:
        qgfd_attention(q, k, v, alpha=0.9, steps=None, path="fused").sum().backward()
    assert [s.direction for s in solves] == ["forward", "adjoint"]
    assert all(s.method == "chebyshev" and s.converged and s.residual <= 1e-4 for s in solves)
    assert all(2 <= s.applications <= 30 for s in solves)  # ~15 at a = 0.9 on [0, 1]


@pytest.mark.parametrize("solver", ["chebyshev", "gmres", "ppr", "dense"])
def test_every_solver_reaches_the_dense_solution(solver):
    q, k, v = _qkv(n=32, d=8)
    out = qgfd_attention(q, k, v, alpha=0.9, steps=None, solver=solver, **TIGHT)
    expected = naive_qgfd_attention(q, k, v, alpha=0.9, steps=None)
    torch.testing.assert_close(out, expected, atol=1e-9, rtol=0)


def _random_stochastic(n, symmetric, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = torch.rand(B, H, n, n, generator=g, dtype=torch.float64)
    S = S + S.transpose(-1, -2) if symmetric else S
    return S / S.sum(-1, keepdim=True)  # [B, H, n, n], eigenvalues in [-1, 1] if symmetric


@pytest.mark.parametrize("method", ["chebyshev", "gmres", "gmres restarted", "ppr"])
def test_solvers_solve_the_linear_system(method):
    P = _random_stochastic(40, symmetric=method == "chebyshev")
    a = torch.tensor([[0.0, 0.5], [0.9, 0.99]], dtype=torch.float64)[..., None, None]
    rhs = torch.randn(B, H, 40, 3, dtype=torch.float64)
    apply_P = lambda X: P @ X  # noqa: E731
    solve = {
        "chebyshev": lambda: chebyshev(apply_P, a, rhs, (-1.0, 1.0), 1e-12, 5000),
        "gmres": lambda: gmres(apply_P, a, rhs, 1e-12, 5000),
        "gmres restarted": lambda: gmres(apply_P, a, rhs, 1e-12, 5000, restart=3),
        "ppr": lambda: ppr(apply_P, a, rhs, 1e-12, 5000),
    }[method]
    result = solve()
    eye = torch.eye(40, dtype=torch.float64)
    expected = torch.linalg.solve(eye - a * P, rhs)
    assert result.converged and result.residual <= 1e-12
    torch.testing.assert_close(result.X, expected, atol=1e-9, rtol=0)


def test_set_num_threads_2_then_steps_none_at_n_256():
    """oneMKL's batched LU fails after torch.set_num_threads(2) (torch 2.14): neither the
    iterative solve nor the dense one may go through it. Own process: the failure can hang.
    It loads the attention subpackage alone (the package's __init__ imports the library)."""
    script = (
        "import importlib.util, sys, types\n"
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "package = types.ModuleType('qgfd_diffusion')\n"
        "package.__path__ = importlib.util.find_spec('qgfd_diffusion').submodule_search_locations\n"
        "sys.modules['qgfd_diffusion'] = package\n"
        "from qgfd_diffusion.attention import qgfd_attention\n"
        "q, k, v = (torch.randn(1, 2, 256, 16) for _ in range(3))\n"
        "for solver in ('auto', 'dense'):\n"
        "    out = qgfd_attention(q, k, v, alpha=0.9, steps=None, solver=solver)\n"
        "    assert torch.isfinite(out).all()\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize(
    "alpha", [1.0, 1.5, -0.1, torch.tensor([0.5, 1.0]), torch.tensor([[0.2], [-0.5]])]
)
def test_alpha_outside_0_1_with_steps_none_is_an_error_naming_alpha(alpha):
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\) for the fixed point"):
        qgfd_attention(q, k, v, alpha=alpha, steps=None)
    with pytest.raises(ValueError, match="alpha"):
        QGFDOptions(alpha=1.0, steps=None)
    qgfd_attention(q, k, v, alpha=1.0, steps=2)  # a finite walk may be all walk


def test_chebyshev_on_an_unknown_spectrum_is_an_error():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="solver='chebyshev' needs"):
        qgfd_attention(q, k, v, alpha=0.5, steps=None, topk=3, solver="chebyshev")


@pytest.fixture
def fresh_warning(monkeypatch):
    monkeypatch.setattr(fixed_point_module, "_warned", False)


def test_nonconvergence_warns_once_with_the_residual(fresh_warning):
    q, k, v = (t.detach() for t in _qkv(n=32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            qgfd_attention(q, k, v, alpha=0.99, steps=None, max_applications=2)
    ours = [w for w in caught if issubclass(w.category, FixedPointWarning)]
    assert len(ours) == 1
    assert "relative residual" in str(ours[0].message) and "max_applications=2" in str(
        ours[0].message
    )


def test_nonconvergence_raises_on_request(fresh_warning):
    q, k, v = (t.detach() for t in _qkv(n=32))
    with pytest.raises(FixedPointNotConverged, match=r"relative residual \d"):
        qgfd_attention(
            q, k, v, alpha=0.99, steps=None, max_applications=2, on_nonconvergence="raise"
        )


@pytest.mark.parametrize(
    "given,pattern",
    [
        (dict(solver="lu"), "solver must be one of"),
        (dict(tol=-1.0), "tol must be in"),
        (dict(max_applications=0), "max_applications must be an int"),
        (dict(on_nonconvergence="ignore"), "on_nonconvergence must be one of"),
    ],
)
def test_solver_options_are_checked_by_name(given, pattern):
    with pytest.raises(ValueError, match=pattern):
        QGFDOptions(steps=None, **given)
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=pattern):
        qgfd_attention(q, k, v, alpha=0.5, steps=None, **given)


def test_kernel_reads_the_solver_options():
    q, k, v = (t.detach() for t in _qkv(n=16))
    options = QGFDOptions(alpha=0.9, steps=None, solver="gmres", tol=1e-12)
    assert options.kernel_kwargs()["solver"] == "gmres"
    out = QGFDKernel(H, options)(q, k, v)
    expected = naive_qgfd_attention(q, k, v, alpha=0.9, steps=None)
    torch.testing.assert_close(out, expected, atol=1e-9, rtol=0)
