"""The graph-signal adapter and the bundled GMRF data."""

import numpy as np
import pytest
import torch

from qgfd_diffusion.adapters import (
    GraphSignalAdapter,
    GraphSignalConfig,
    collate_for,
    get_adapter_class,
    load_adapter,
)
from qgfd_diffusion.data.bundled.graph_signals import dataset_graphs, read_graph_signals

pytest.importorskip("networkx")


def _raw(count=6, nodes=16):
    data = read_graph_signals(num_graphs=count, num_nodes=nodes)
    examples = [
        {"signal": data.columns["signal"][i], "adjacency": data.columns["adjacency"][i]}
        for i in range(count)
    ]
    return collate_for("graph_signal")(examples)


def test_registered_with_its_declarations():
    cls = get_adapter_class("graph_signal")
    assert cls is GraphSignalAdapter and cls.modality == "graph_signal"
    assert cls.condition_kind is None and cls.output_field == "signals"


@pytest.mark.parametrize("sparse", [False, True])
def test_encode_carries_the_graph_and_decode_is_exact(sparse, tmp_path):
    raw = _raw()
    adapter = GraphSignalAdapter(GraphSignalConfig(sparse_graph=sparse)).fit_latent_stats([raw])
    batch = adapter.encode(raw)
    assert batch.latents.shape == (6, 16, 1) and batch.layout.kind == "nodes"
    assert batch.graph.is_sparse == sparse
    assert torch.equal(batch.graph.to_dense(), raw["adjacency"])
    assert torch.equal(batch.latents[..., 0], raw["signal"])  # unit statistics: the GMRF's units
    assert torch.equal(adapter.decode(batch.latents), raw["signal"])
    shard = batch.select(slice(2, 4))
    assert torch.equal(shard.graph.to_dense(), raw["adjacency"][2:4])
    loaded = load_adapter(adapter.save_pretrained(tmp_path / "a"))
    assert torch.equal(loaded.encode(raw).latents, batch.latents)


def test_bad_batches_are_rejected_by_name():
    adapter = GraphSignalAdapter(GraphSignalConfig())
    with pytest.raises(ValueError, match="'signal', 'adjacency'"):
        adapter.encode({"signal": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="adjacency must be"):
        adapter.encode({"signal": torch.zeros(2, 4), "adjacency": torch.zeros(2, 5, 5)})
    with pytest.raises(ValueError, match="channels"):
        GraphSignalConfig(channels=0)


def test_data_is_seeded_unit_variance_and_permuted():
    a = read_graph_signals(num_graphs=400, num_nodes=32)
    b = read_graph_signals(num_graphs=400, num_nodes=32)
    assert np.array_equal(np.stack(a.columns["signal"]), np.stack(b.columns["signal"]))
    signal = torch.as_tensor(np.stack(a.columns["signal"]))  # [400, 32]
    assert abs(float(signal.var(0).mean()) - 1) < 0.1 and abs(float(signal.mean())) < 0.1
    A = torch.as_tensor(a.columns["adjacency"]).double()
    assert torch.equal(A, A.transpose(1, 2)) and float(A.diagonal(dim1=1, dim2=2).abs().sum()) == 0
    ring = torch.diagonal(A, offset=1, dim1=1, dim2=2).mean()  # unpermuted: ~ (1 - rewire)
    assert float(ring) < 0.5  # node ids were shuffled: no ring along the numbering
    other = read_graph_signals(num_graphs=2, num_nodes=32, data_seed=1)
    assert not (other.columns["signal"][0] == a.columns["signal"][0]).all()


def test_dataset_graphs_cycles_and_ignores_data_without_graphs():
    import datasets

    data = read_graph_signals(num_graphs=3, num_nodes=8)
    dataset = datasets.Dataset.from_dict(data.columns)
    graphs = dataset_graphs(dataset, 5)
    assert graphs.shape == (5, 8, 8) and torch.equal(graphs[3], graphs[0])
    assert dataset_graphs(datasets.Dataset.from_dict({"text": ["a"]}), 2) is None
