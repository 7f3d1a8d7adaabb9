"""The bundled graph-signal data: Gaussian Markov random fields on random small-world graphs.

Dimension legend: B examples, N nodes per graph.

Each example is one graph and one signal on it, generated offline from ``data_seed``:

    G ~ networkx.connected_watts_strogatz_graph(N, k, p)   (or another ``GRAPH_GENERATORS`` entry)
    nodes relabelled by a random permutation                (ids carry no position)
    x ~ N(0, S),  S = the unit-variance GMRF covariance of G  (``gmrf``)

Columns (the graph-signal adapter's schema): "signal" float32 [N], "adjacency" uint8 [N, N]
(symmetric, no self-loops). The exact Bayes denoiser of this data is known in closed form
(``qgfd_diffusion.evaluation.gmrf.bayes_mse``), so a trained denoiser's error has an absolute
reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from datasets import Array2D, Features, List, Value

from .base import BundledData
from .gmrf import gmrf_covariance, sample_gmrf

MODALITY = "graph_signal"
ADJACENCY = "adjacency"  # the graph column
DEFAULT_EPS = 0.1  # eps of the GMRF precision L_G + eps I (smaller: smoother fields)


def watts_strogatz(num_nodes: int, degree: int, rewire: float, seed: int):
    """networkx's connected Watts-Strogatz small world (a ring of ``degree`` nearest
    neighbours, each edge rewired with probability ``rewire``)."""
    import networkx as nx

    return nx.connected_watts_strogatz_graph(num_nodes, degree, rewire, seed=seed)


def barabasi_albert(num_nodes: int, degree: int, rewire: float, seed: int):
    """networkx's Barabasi-Albert graph, ``degree // 2`` edges per new node (``rewire`` unused)."""
    import networkx as nx

    return nx.barabasi_albert_graph(num_nodes, max(1, degree // 2), seed=seed)


GRAPH_GENERATORS: dict[str, Callable] = {
    "watts_strogatz": watts_strogatz,
    "barabasi_albert": barabasi_albert,
}


def random_adjacency(
    generator: str, num_nodes: int, degree: int, rewire: float, rng: np.random.Generator
) -> np.ndarray:
    """One graph as a uint8 adjacency [N, N], nodes in a random order."""
    import networkx as nx

    if generator not in GRAPH_GENERATORS:
        raise ValueError(
            f"graph_signals option generator={generator!r}; allowed: {sorted(GRAPH_GENERATORS)}"
        )
    graph = GRAPH_GENERATORS[generator](num_nodes, degree, rewire, int(rng.integers(2**31)))
    order = rng.permutation(num_nodes)  # node ids carry no position
    A = nx.to_numpy_array(graph, nodelist=range(num_nodes), dtype=np.uint8)
    return A[np.ix_(order, order)]


def read_graph_signals(
    num_graphs: int = 2000,
    num_nodes: int = 64,
    degree: int = 4,
    rewire: float = 0.1,
    eps: float = DEFAULT_EPS,
    generator: str = "watts_strogatz",
    data_seed: int = 0,
) -> BundledData:
    """``num_graphs`` (graph, GMRF signal) examples as ``BundledData``, a function of the
    options alone (``data_seed``, not the run seed: paired runs share one data set)."""
    if min(num_graphs, num_nodes, degree) < 1 or not 0.0 <= rewire <= 1.0:
        raise ValueError(
            "graph_signals options num_graphs, num_nodes, degree must be >= 1 and rewire in "
            f"[0, 1]; got {num_graphs}, {num_nodes}, {degree}, {rewire}"
        )
    rng = np.random.default_rng(data_seed)
    adjacency = np.stack(
        [random_adjacency(generator, num_nodes, degree, rewire, rng) for _ in range(num_graphs)]
    )  # [B, N, N]
    S = gmrf_covariance(torch.from_numpy(adjacency), eps)  # [B, N, N]
    signal = sample_gmrf(S, torch.Generator().manual_seed(data_seed)).float().numpy()  # [B, N]
    features = Features(
        {
            "signal": List(Value("float32")),
            "adjacency": Array2D(shape=(num_nodes, num_nodes), dtype="uint8"),
        }
    )
    return BundledData({"signal": list(signal), "adjacency": adjacency}, features, MODALITY)


def dataset_graphs(dataset, count: int) -> torch.Tensor | None:
    """The adjacencies [count, N, N] (float32) of the first ``count`` examples of a graph-signal
    dataset, cycled when it has fewer; None for data without graphs. A trained graph-aware model
    samples on these (the validation split: graphs it never trained on)."""
    if ADJACENCY not in dataset.column_names or len(dataset) == 0:
        return None
    index = [i % len(dataset) for i in range(count)]
    return torch.as_tensor(np.asarray(dataset.select(index)[ADJACENCY])).float()
