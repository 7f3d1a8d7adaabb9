"""Graph-signal adapter: one latent token per graph node, the graph carried in the LatentBatch.

Dimension legend: B samples, N nodes (tokens), C latent channels (signal channels).

    raw batch {"signal": [B, N] or [B, N, C], "adjacency": [B, N, N]}
        -> LatentBatch(latents x0 [B, N, C], layout nodes (N,), graph [B, N, N])

The map is the identity, with fixed unit statistics: the bundled GMRF data is zero-mean and unit
variance per node by construction, and its exact Bayes error (``evaluation.gmrf``) holds in
exactly those units, so fitting a mean and std would only blur the comparison. Decoding is the
exact inverse. The graph is a condition of the sample (it describes it, it is not it): the
backbone reads it through ``LatentBatch.graph`` / ``forward(..., graph=)``, not cross-attention.

Modality "graph_signal", no condition tokens. ``collate_graph_signals`` stacks the data layer's
examples; ``write_graph_signals`` writes decoded signals (and their graphs, when known) to
``signals.safetensors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor

from ..graphs import check_graph
from ..latents import LatentBatch, LatentLayout
from .base import AdapterConfig, ModalityAdapter
from .declarations import DataSchema
from .files import WriteOptions, check_nonempty
from .helpers import check_batch_keys
from .registry import register_adapter

SIGNALS_FILE = "signals.safetensors"


@dataclass(kw_only=True)
class GraphSignalConfig(AdapterConfig):
    """channels: C, signal values per node; sparse_graph: hand the backbone torch sparse
    adjacencies (O(E d) graph products) instead of dense ones."""

    channels: int = 1
    sparse_graph: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if (
            isinstance(self.channels, bool)
            or not isinstance(self.channels, int)
            or self.channels < 1
        ):
            raise ValueError(f"channels must be an int >= 1, got {self.channels!r}")


# The data layer's graph-signal examples: {"signal": float32 [N], "adjacency": uint8 [N, N]},
# one graph per example.
GRAPH_SIGNAL_SCHEMA = DataSchema(column="signal", arrays=("signal", "adjacency"))


def collate_graph_signals(examples: list[dict[str, Any]]) -> dict[str, Tensor]:
    """-> {"signal": float32 [B, N(, C)], "adjacency": float32 [B, N, N]}."""
    return {
        key: torch.as_tensor(np.stack([np.asarray(e[key]) for e in examples])).float()
        for key in ("signal", "adjacency")
    }


def write_graph_signals(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    """Decoded signals [B, N(, C)] -> signals.safetensors (tensor "signal")."""
    signal = torch.as_tensor(decoded).detach().float().cpu().contiguous()
    check_nonempty(len(signal), "graph signal")
    path = out_dir / SIGNALS_FILE
    save_file({"signal": signal}, str(path))
    return [path]


@register_adapter("graph_signal")
class GraphSignalAdapter(ModalityAdapter):
    """Node signals <-> latent tokens, identity map, the graph passed through."""

    modality = "graph_signal"
    condition_kind = None
    schema = GRAPH_SIGNAL_SCHEMA
    collate = staticmethod(collate_graph_signals)
    writer = staticmethod(write_graph_signals)
    output_field = "signals"
    config_class = GraphSignalConfig

    def __init__(self, config: GraphSignalConfig):
        super().__init__(config)
        self._init_latent_stats(config.channels)

    @torch.no_grad()
    def fit_latent_stats(self, batches: Iterable[Any]) -> GraphSignalAdapter:
        """Keep the unit statistics (module docstring); only checks that the batches encode."""
        for batch in batches:
            self.encode_features(batch)
        self.latent_stats_fitted.fill_(True)
        return self

    def encode_features(self, batch: dict[str, Tensor]) -> LatentBatch:
        if not isinstance(batch, dict):
            raise ValueError(f"a graph-signal batch is a dict, got {type(batch).__name__}")
        check_batch_keys(batch, ("signal", "adjacency"), (), "a graph-signal")
        x = torch.as_tensor(batch["signal"], dtype=torch.float32, device=self.device)
        x = x[..., None] if x.dim() == 2 else x  # [B, N] -> [B, N, 1]
        if x.dim() != 3 or x.shape[-1] != self.latent_dim:
            raise ValueError(
                f"signal must be [B, N] or [B, N, C={self.latent_dim}], got {tuple(x.shape)}"
            )
        B, N, _ = x.shape
        graph = check_graph(torch.as_tensor(batch["adjacency"]), B, N, "adjacency")
        graph = graph.to(device=self.device, dtype=torch.float32)
        if self.config.sparse_graph and not graph.is_sparse:
            graph = graph.to_sparse()
        return LatentBatch(latents=x, layout=LatentLayout("nodes", (N,)), graph=graph)

    @property
    def can_decode(self) -> bool:
        return True

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> Tensor:
        """z [B, N, C] -> signals [B, N] (C = 1) or [B, N, C]."""
        return z[..., 0] if z.shape[-1] == 1 else z
