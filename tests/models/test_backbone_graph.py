"""The backbone with graphs: config, locality of the 1-hop mask, sparse == dense, layout graphs,
alpha as a function of the timestep, and old configs."""

import pytest
import torch

from qgfd_diffusion import DiffusionConfig
from qgfd_diffusion.latents import LatentLayout
from qgfd_diffusion.models import backbone as backbone_module
from qgfd_diffusion.models.backbone import QGFDDiffusionBackbone

B, L = 2, 10
NODES = LatentLayout("nodes", (L,))
SMALL = dict(d_model=16, num_heads=2, num_layers=1, d_ff=32, latent_dim=3, cond_dim=None)
QGFD_GRAPH = dict(attention="qgfd", qgfd=dict(transition="graph", alpha=0.9, steps=None))


def _backbone(**options):
    torch.manual_seed(0)
    model = QGFDDiffusionBackbone(DiffusionConfig(**SMALL, **options)).double().eval()
    for p in model.parameters():  # adaLN-Zero makes a fresh model the zero map: randomise
        torch.nn.init.normal_(p, std=0.3)
    return model


def _ring():
    A = torch.zeros(L, L, dtype=torch.float64)
    i = torch.arange(L)
    A[i, (i + 1) % L] = A[(i + 1) % L, i] = 1.0
    return A.expand(B, L, L).clone()


def _x():
    return torch.randn(B, L, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_config_accepts_graph_transition_and_checks_combinations():
    assert DiffusionConfig(**QGFD_GRAPH).uses_graph
    assert not DiffusionConfig(attention="sdpa").uses_graph
    with pytest.raises(ValueError, match="graph_mask needs"):
        DiffusionConfig(attention="difformer", graph_mask=True)
    with pytest.raises(ValueError, match="alpha_from_timestep needs"):
        DiffusionConfig(attention="sdpa", alpha_from_timestep=True)
    with pytest.raises(ValueError, match="layout_graph must be one of"):
        DiffusionConfig(layout_graph="ring")


def test_config_saved_before_the_graph_fields_loads(tmp_path):
    model = QGFDDiffusionBackbone(DiffusionConfig(**SMALL))
    model.save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    import json

    data = json.loads(config)
    for key in ("graph_mask", "layout_graph", "graph_positions", "alpha_from_timestep"):
        data.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded = QGFDDiffusionBackbone.from_pretrained(tmp_path)
    assert loaded.network_config.graph_mask is False and not loaded.network_config.uses_graph


@pytest.mark.parametrize(
    "options", [dict(attention="sdpa", graph_mask=True), dict(QGFD_GRAPH, graph_mask=True)]
)
def test_one_layer_reaches_one_hop_with_sdpa_and_the_whole_graph_with_qgfd(options):
    """Both see the 1-hop mask; sdpa's output at a node then depends on its neighbours only,
    graph QGFD's (PPR fixed point on the connected ring) on every node: multi-hop in one layer."""
    model = _backbone(**options)
    x = _x()
    base = model(x, 5, layout=NODES, graph=_ring())
    moved = x.clone()
    moved[:, 5] += 1.0  # node 5: a neighbour of 4 and 6, far from 0
    delta = (model(moved, 5, layout=NODES, graph=_ring()) - base).abs().amax(-1)  # [B, L]
    assert bool((delta[:, [4, 5, 6]] > 1e-6).all())
    far = delta[:, [0, 1, 9]]
    if options["attention"] == "sdpa":
        assert bool((far == 0).all())
    else:
        assert bool((far > 0).all())


@pytest.mark.parametrize(
    "options",
    [
        QGFD_GRAPH,
        dict(QGFD_GRAPH, graph_mask=True, alpha_from_timestep=True),
        dict(attention="qgfd", qgfd=dict(transition="graph", alpha=0.7, steps=3)),
        dict(attention="sdpa", graph_mask=True, graph_positions=4),
    ],
)
@pytest.mark.parametrize("dense_up_to", [0, 10**6], ids=["edge-list", "densified"])
def test_sparse_graph_equals_dense_graph(options, dense_up_to, monkeypatch):
    """Both paths a sparse graph can take: its edge list, and small graphs made dense."""
    monkeypatch.setattr(backbone_module, "DENSE_GRAPH_MAX_TOKENS", dense_up_to)
    model = _backbone(**options)
    dense = model(_x(), 7, layout=NODES, graph=_ring())
    sparse = model(_x(), 7, layout=NODES, graph=_ring().to_sparse())
    torch.testing.assert_close(sparse, dense, atol=1e-12, rtol=0)


def test_graph_is_needed_when_read_and_ignored_otherwise():
    with pytest.raises(ValueError, match="reads a graph"):
        _backbone(**QGFD_GRAPH)(_x(), 3, layout=NODES)
    plain = _backbone(attention="sdpa")
    torch.testing.assert_close(
        plain(_x(), 3, layout=NODES, graph=_ring()), plain(_x(), 3, layout=NODES)
    )


def test_layout_graph_stands_in_for_a_missing_graph():
    layout = LatentLayout("sequence", (L,))
    chain = torch.diag(torch.ones(L - 1, dtype=torch.float64), 1)
    chain = chain + chain.T
    model = _backbone(attention="sdpa", graph_mask=True, layout_graph="chain")
    torch.testing.assert_close(
        model(_x(), 3, layout=layout), model(_x(), 3, layout=layout, graph=chain)
    )


def test_alpha_from_timestep_starts_at_alpha_and_moves_with_t():
    model = QGFDDiffusionBackbone(DiffusionConfig(**SMALL, **QGFD_GRAPH, alpha_from_timestep=True))
    block = model.blocks[0]
    c = model.t_embedder(torch.tensor([10.0, 900.0]))
    torch.testing.assert_close(block.alpha_map(c), torch.full((2, 2), 0.9))  # fresh: alpha
    torch.nn.init.normal_(block.alpha_map.regression.weight)
    alpha = block.alpha_map(c)  # [B, H]
    assert alpha.shape == (2, 2) and bool(((alpha > 0) & (alpha < 1)).all())
    assert not torch.allclose(alpha[0], alpha[1])  # a function of the timestep


def test_sampler_passes_the_graph_through_and_a_shared_graph_equals_one_per_sample():
    from qgfd_diffusion.sample import make_scheduler, sample_latents
    from qgfd_diffusion.schedules import NoiseScheduleConfig

    model = _backbone(**QGFD_GRAPH).float()
    scheduler = make_scheduler("ddim", NoiseScheduleConfig(num_train_timesteps=50))
    run = lambda graph: sample_latents(  # noqa: E731
        model,
        scheduler,
        shape=(B, L, 3),
        generator=torch.Generator().manual_seed(0),
        num_inference_steps=3,
        layout=NODES,
        graph=graph,
        progress=False,
    )
    per_sample = run(_ring().float())
    torch.testing.assert_close(run(_ring()[0].float()), per_sample)
    other = _ring().float()
    other[:, 0, 5] = other[:, 5, 0] = 1.0  # one more edge: other samples
    assert not torch.allclose(run(other), per_sample)
