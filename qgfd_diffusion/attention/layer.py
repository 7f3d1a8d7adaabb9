"""Prototype 000's single-head ``QGFDLayer`` and a networkx graph -> transition helper.

Dimension legend: B batch, Lq queries, N nodes, D input width, Dp projected width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .functional import qgfd_attention
from .options import qgfd_options


class QGFDLayer(nn.Module):
    """Query-Graph-Flow-Diffusion layer (prototype 000 API): project, diffuse over keys, aggregate.

    forward(queries [B, Lq, D], kv [N, D] (shared nodes) or [B, N, D], adj None | [N, N] |
    [B, N, N] | sparse [N, N]) -> [B, Lq, D]. Without ``adj`` the transition is built from key
    similarity, restricted to the ``topk`` nearest keys per row; with ``adj`` it is the
    row-normalised adjacency. Runs on the O(N) recursion on values, never looping p @ P.
    The settings are held once, as ``self.options`` (``QGFDOptions``, T = ``diffusion_steps``).
    """

    def __init__(
        self,
        dim: int,
        proj_dim: int | None = None,
        topk: int | None = 8,
        diffusion_steps: int = 4,
        alpha: float = 0.8,
        use_bias: bool = False,
        detach_transition: bool = False,
    ):
        super().__init__()
        self.options = qgfd_options(
            alpha=alpha,
            diffusion_steps=diffusion_steps,
            topk=topk,
            detach_transition=detach_transition,
        )
        self.proj_dim = proj_dim or dim
        self.q_proj = nn.Linear(dim, self.proj_dim, bias=use_bias)
        self.k_proj = nn.Linear(dim, self.proj_dim, bias=use_bias)
        self.v_proj = nn.Linear(dim, self.proj_dim, bias=use_bias)
        self.out_proj = nn.Linear(self.proj_dim, dim, bias=use_bias)

    def forward(self, queries: Tensor, kv: Tensor, adj: Tensor | None = None) -> Tensor:
        if queries.dim() != 3:
            raise ValueError(f"queries must be [B, Lq, D], got {tuple(queries.shape)}")
        B = queries.shape[0]
        if kv.dim() == 2:
            kv = kv.unsqueeze(0).expand(B, -1, -1)  # shared nodes [N, D] -> [B, N, D] (a view)
        if kv.dim() != 3 or kv.shape[0] != B:
            raise ValueError(f"kv must be [N, D] or [B={B}, N, D], got {tuple(kv.shape)}")
        Q = self.q_proj(queries).unsqueeze(1)  # [B, 1, Lq, Dp]: one head
        K = self.k_proj(kv).unsqueeze(1)  # [B, 1, N, Dp]
        V = self.v_proj(kv).unsqueeze(1)
        options = self.options.kernel_kwargs()
        if adj is not None:  # the given graph replaces the top-k key similarity
            options.update(transition="graph", topk=None)
        out = qgfd_attention(Q, K, V, alpha=self.options.alpha, graph=adj, **options)
        return self.out_proj(out.squeeze(1))  # [B, Lq, D]

    # Prototype 000's attribute names, read from ``options``.
    @property
    def alpha(self) -> float:
        return self.options.alpha

    @property
    def diffusion_steps(self) -> int | None:
        return self.options.steps

    @property
    def topk(self) -> int | None:
        return self.options.topk


def transition_from_networkx(
    graph,
    nodelist=None,
    weight: str | None = "weight",
    sparse: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """A networkx graph -> row-stochastic transition P [N, N] (torch sparse COO or dense).

    Rows are normalised by out-degree; a node without out-edges keeps its mass (self-loop).
    Node order follows ``nodelist`` (default: ``graph.nodes``).
    """
    import networkx as nx  # optional dependency (extra "graph")
    import numpy as np

    adjacency = nx.to_scipy_sparse_array(graph, nodelist=nodelist, weight=weight, format="coo")
    if adjacency.nnz and adjacency.data.min() < 0:
        raise ValueError("graph has negative edge weights; a transition needs weights >= 0")
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    dangling = np.flatnonzero(degree == 0)
    rows = np.concatenate([adjacency.row, dangling])
    cols = np.concatenate([adjacency.col, dangling])
    values = np.concatenate([adjacency.data / degree[adjacency.row], np.ones(len(dangling))])
    n = adjacency.shape[0]
    P = torch.sparse_coo_tensor(
        np.stack([rows, cols]), values, (n, n), dtype=dtype, check_invariants=True
    ).coalesce()
    return P if sparse else P.to_dense()
