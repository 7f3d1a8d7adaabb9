"""``QGFDDiffusionBackbone``: the shared DiT-style denoiser (epsilon / v / x0 predictor).

Dimension legend: B batch, L latent tokens, C latent channels, D model width, H heads,
Lc condition tokens, Dc condition width.

    x_t [B, L, C] -> Linear -> + fixed positional embedding (from the layout)
                  -> (+ Laplacian-eigenvector positions of the graph)
                  -> + modality embedding -> N x DiTBlock(adaLN-Zero) -> final adaLN + Linear
                  -> prediction [B, L, C]
    c [B, D] = MLP(sinusoid(t)) + Linear(masked mean of the condition tokens)

Graphs: a per-sample adjacency over the L tokens (``forward(..., graph=)``, from data whose
samples carry a structure) or one built from the layout (``layout_graph``) feeds QGFD's
``graph`` transition, the 1-hop self-attention mask (``graph_mask``) and the graph positions
(``graph_positions``). A backbone that uses none of them ignores a given graph, so one data
set serves graph-aware and graph-blind models alike.

Classifier-free guidance (Ho & Salimans 2022): a learned null condition (one token) replaces the
condition of a sample when it is dropped (probability ``cond_dropout_prob`` in training, or forced
per sample with ``force_drop_cond``), and stands in when no condition is given at all.

The network never sees betas: the schedule lives in ``qgfd_diffusion.schedules``.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import Tensor, nn

from ..attention.masks import graph_attention_mask
from ..formats import upgrade_backbone_config
from ..graphs import check_graph, layout_graph
from ..latents import LatentLayout
from .blocks import DiTBlock, FinalLayer
from .config import DiffusionConfig
from .embeddings import (
    GraphPositionEmbedding,
    ModalityEmbedding,
    TimestepEmbedder,
    positional_embedding,
)

CONFIG_FILE = "config.json"  # diffusers' ConfigMixin file name
EMBEDDING_INIT_STD = 0.02  # DiT's normal init of the timestep MLP and learned embeddings


def _network_signature(init):
    """Give ``__init__(self, **config)`` the network fields of ``DiffusionConfig`` as its keyword
    signature, with their defaults as plain JSON values.

    diffusers' ``register_to_config`` and ``from_pretrained`` read the init signature to know the
    config keys; deriving it from ``DiffusionConfig`` keeps the field list in one place.
    """
    defaults = DiffusionConfig().network_dict()
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name])
        for name in DiffusionConfig.network_field_names()
    ]
    init.__signature__ = inspect.Signature(params)
    return init


def _accepts_config_object(init):
    """Also accept prototype 001's ``QGFDDiffusionBackbone(cfg)`` with a ``DiffusionConfig``.

    Keywords given next to ``cfg`` override its fields (any spelling ``DiffusionConfig`` takes);
    the resolved network fields reach ``register_to_config``, so the saved config.json holds
    exactly the network (never the noise schedule, which lives in ``scheduler/``).
    """

    @functools.wraps(init)
    def wrapper(self, cfg: DiffusionConfig | None = None, /, **config):
        if cfg is not None:
            if not isinstance(cfg, DiffusionConfig):
                raise TypeError(
                    f"expected a DiffusionConfig or keyword fields, got {type(cfg).__name__}"
                )
            config = {**cfg.to_dict(), **config}
        resolved = DiffusionConfig(**config).with_modalities(1)
        init(self, **resolved.network_dict())

    return wrapper


@dataclass
class QGFDBackboneOutput(BaseOutput):
    """sample: the prediction [B, L, C] (epsilon, v or x0, as the schedule's prediction_type)."""

    sample: Tensor


# A sparse graph over at most this many tokens is made dense: a training step with QGFD over a
# 4-neighbour grid (T = 4, B = 4, D = 128) measured the edge list at 1.13 / 1.07 / 0.99 / 0.80 /
# 0.72 x dense QGFD over keys at L = 64 / 100 / 144 / 196 / 256 and the dense adjacency at
# 0.97 / 0.92 / 0.92 / 0.80 / 0.80 x (benchmarks/backbone.py, 2 CPU threads): dense wins up to
# 144 tokens, ties at 196, loses beyond. The edge list keeps large graphs at O(E d).
DENSE_GRAPH_MAX_TOKENS = 196


class QGFDDiffusionBackbone(ModelMixin, ConfigMixin):
    """The denoiser eps_theta(x_t, t, cond) / v_theta / x0_theta shared by all modalities.

    Built from the ``DiffusionConfig`` network fields as keyword arguments
    (``QGFDDiffusionBackbone(d_model=64, ...)``) or from a config (``QGFDDiffusionBackbone(cfg)``);
    ``save_pretrained`` / ``from_pretrained`` store the network config as JSON and the weights as
    safetensors.
    """

    _supports_gradient_checkpointing = True

    @_accepts_config_object
    @register_to_config
    @_network_signature
    def __init__(self, **config):
        super().__init__()
        cfg = DiffusionConfig(**config).network_only()
        self._network_config = cfg
        D = cfg.d_model
        inputs = 2 * cfg.latent_dim if cfg.self_conditioning else cfg.latent_dim
        self.x_embedder = nn.Linear(inputs, D)  # [x_t ; x0_hat] when self-conditioning
        self.t_embedder = TimestepEmbedder(D)
        self.modality_embedder = ModalityEmbedding(cfg.num_modalities, D)
        self.graph_pos_embedder = None
        if cfg.graph_positions > 0:
            self.graph_pos_embedder = GraphPositionEmbedding(cfg.graph_positions, D)
        self.cond_pool = self.null_cond = None
        if cfg.cond_dim is not None:
            self.cond_pool = nn.Linear(cfg.cond_dim, D)
            self.null_cond = nn.Parameter(torch.zeros(1, 1, cfg.cond_dim))  # [1, 1, Dc]
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.num_layers))
        self.final_layer = FinalLayer(D, cfg.latent_dim)
        self.gradient_checkpointing = False
        self._init_weights()
        if cfg.gradient_checkpointing:
            self.enable_gradient_checkpointing()

    @classmethod
    def from_diffusion_config(cls, cfg: DiffusionConfig) -> QGFDDiffusionBackbone:
        return cls(cfg)

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        """diffusers' config loading, on the config upgraded to today's fields
        (``formats.upgrade_backbone_config``: flat keys folded, schedule keys dropped)."""
        return super().extract_init_dict(upgrade_backbone_config(config_dict), **kwargs)

    @property
    def network_config(self) -> DiffusionConfig:
        """The network's ``DiffusionConfig`` (``schedule=None``: the backbone never sees it)."""
        return self._network_config

    def _init_weights(self) -> None:
        """DiT init: xavier-uniform linears, N(0, 0.02) embeddings; adaLN and output stay zero."""
        trunk = [self.x_embedder, self.cond_pool, self.graph_pos_embedder]
        trunk += [m for b in self.blocks for m in (b.self_attn, b.cross_attn, b.mlp)]
        for module in filter(None, trunk):
            for linear in filter(lambda m: isinstance(m, nn.Linear), module.modules()):
                nn.init.xavier_uniform_(linear.weight)
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)
        for linear in (self.t_embedder.mlp[0], self.t_embedder.mlp[2]):
            nn.init.normal_(linear.weight, std=EMBEDDING_INIT_STD)
        nn.init.normal_(self.modality_embedder.table.weight, std=EMBEDDING_INIT_STD)
        if self.null_cond is not None:
            nn.init.normal_(self.null_cond, std=EMBEDDING_INIT_STD)

    def forward(
        self,
        x_t: Tensor,
        t: Tensor | float,
        cond_tokens: Tensor | None = None,
        cond_mask: Tensor | None = None,
        *,
        layout: LatentLayout | None = None,
        latent_mask: Tensor | None = None,
        modality: int | Tensor = 0,
        force_drop_cond: bool | Tensor | None = None,
        self_cond: Tensor | None = None,
        graph: Tensor | None = None,
        return_dict: bool = False,
    ) -> Tensor | QGFDBackboneOutput:
        """Predict epsilon / v / x0 (``prediction_type``) for x_t [B, L, C] at timesteps t.

        t: [B], a 0-d tensor or a number (integer or continuous timesteps).
        cond_tokens / cond_mask: [B, Lc, Dc] / [B, Lc] bool (True = real); needs ``cond_dim``.
        layout: how the L tokens are arranged (default: a sequence of length L).
        latent_mask: [B, L] bool, True = real token; padded tokens are never attended to.
        modality: modality id, an int or [B] long.
        force_drop_cond: bool or [B] bool: replace the condition by the null condition exactly
            there (no random dropout then); None: random dropout with ``cond_dropout_prob`` in
            training mode, none in eval mode.
        self_cond: an estimate of x0 [B, L, C] (self-conditioning; zeros when None).
        graph: adjacency over the L tokens, [B, L, L] or [L, L], dense or torch sparse; None
            uses the ``layout_graph``. Read only by a backbone that uses a graph
            (``DiffusionConfig.uses_graph``), ignored by others.
        return_dict: False (default, prototype 001's call) returns the prediction [B, L, C];
            True returns it as ``QGFDBackboneOutput(sample=...)``, the diffusers convention.
        """
        B, L, _ = x_t.shape
        layout = LatentLayout("sequence", (L,)) if layout is None else layout
        c = self.t_embedder(_batch_timesteps(t, B, x_t.device))  # [B, D]
        cond_tokens, cond_mask = self._condition(cond_tokens, cond_mask, B, force_drop_cond, x_t)
        if cond_tokens is not None:
            c = c + self.cond_pool(_masked_mean(cond_tokens, cond_mask))
        h = self.x_embedder(self._with_self_cond(x_t, self_cond))  # [B, L, D]
        h = h + positional_embedding(layout, L, h.shape[-1], device=h.device, dtype=h.dtype)
        h = h + self.modality_embedder(modality, h.device)
        graph = self._graph(graph, layout, B, L, h.device)
        attn_mask = None
        if graph is not None and self._network_config.graph_mask:
            attn_mask = graph_attention_mask(graph, latent_mask)  # [B|1, 1, L, L]
        if self.graph_pos_embedder is not None:
            h = h + self.graph_pos_embedder(graph)  # [B|1, L, D]
        qgfd_graph = graph if self._walks_on_graph() else None
        inputs = (c, latent_mask, cond_tokens, cond_mask, attn_mask, qgfd_graph)
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                h = self._gradient_checkpointing_func(block, h, *inputs)
            else:
                h = block(h, *inputs)
        prediction = self.final_layer(h, c)  # [B, L, C]
        return QGFDBackboneOutput(sample=prediction) if return_dict else prediction

    def _walks_on_graph(self) -> bool:
        cfg = self._network_config
        return cfg.attention == "qgfd" and cfg.qgfd.transition == "graph"

    def _graph(
        self, graph: Tensor | None, layout: LatentLayout, batch: int, L: int, device
    ) -> Tensor | None:
        """The graph the network reads: the given one, else the layout's; None when the
        network reads none. A network that needs one and finds none is an error."""
        cfg = self._network_config
        if not cfg.uses_graph:
            return None
        if graph is None:
            graph = layout_graph(layout, cfg.layout_graph, L)
            if graph is None:
                raise ValueError(
                    "this backbone reads a graph (qgfd transition 'graph', graph_mask or "
                    "graph_positions) but got none: pass graph= (e.g. LatentBatch.graph) or "
                    "set layout_graph (chain, grid4, grid8, video)"
                )
        graph = check_graph(graph, batch, L).to(device)
        if graph.is_sparse and L <= DENSE_GRAPH_MAX_TOKENS:
            graph = graph.to_dense()  # small graphs: one batched matmul beats the edge list
        return graph

    def _with_self_cond(self, x_t: Tensor, self_cond: Tensor | None) -> Tensor:
        """x_t [B, L, C] -> [x_t ; x0_hat] [B, L, 2C] when self-conditioning (Chen et al. 2022)."""
        if not self._network_config.self_conditioning:
            if self_cond is not None:
                raise ValueError("self_cond given, but the backbone has self_conditioning=False")
            return x_t
        if self_cond is None:
            self_cond = torch.zeros_like(x_t)
        elif self_cond.shape != x_t.shape:
            raise ValueError(
                f"self_cond must have x_t's shape {tuple(x_t.shape)}, got {tuple(self_cond.shape)}"
            )
        return torch.cat([x_t, self_cond.to(x_t.dtype)], dim=-1)

    def _condition(
        self,
        cond_tokens: Tensor | None,
        cond_mask: Tensor | None,
        batch: int,
        force_drop: bool | Tensor | None,
        x_t: Tensor,
    ) -> tuple[Tensor | None, ...]:
        """Condition tokens [B, Lc, Dc] and mask [B, Lc] after classifier-free-guidance dropout."""
        if self.null_cond is None:
            if cond_tokens is not None:
                raise ValueError(
                    "cond_tokens given, but the backbone was built with cond_dim=None "
                    "(no cross-attention)"
                )
            return None, None
        null = self.null_cond.to(x_t.dtype).expand(batch, 1, -1)  # [B, 1, Dc]
        null_mask = torch.ones(batch, 1, dtype=torch.bool, device=x_t.device)
        if cond_tokens is None:  # unconditional: the null condition for every sample
            return null, null_mask
        _check_condition(cond_tokens, cond_mask, batch, self._network_config.cond_dim)
        if cond_mask is None:
            cond_mask = torch.ones(cond_tokens.shape[:2], dtype=torch.bool, device=x_t.device)
        drop = self._drop_mask(force_drop, batch, x_t.device)
        if drop is None:
            return cond_tokens, cond_mask.bool()
        # A dropped sample sees the null token in slot 0 and padding after it.
        null_tokens = nn.functional.pad(null, (0, 0, 0, cond_tokens.shape[1] - 1))  # [B, Lc, Dc]
        first_only = torch.zeros_like(cond_mask, dtype=torch.bool)
        first_only[:, 0] = True
        cond_tokens = torch.where(drop[:, None, None], null_tokens, cond_tokens)
        cond_mask = torch.where(drop[:, None], first_only, cond_mask.bool())
        return cond_tokens, cond_mask

    def _drop_mask(
        self, force_drop: bool | Tensor | None, batch: int, device: torch.device
    ) -> Tensor | None:
        """[B] bool: which samples get the null condition (None: none of them)."""
        if force_drop is not None:
            return torch.as_tensor(force_drop, dtype=torch.bool, device=device).expand(batch)
        p = self._network_config.cond_dropout_prob
        if self.training and p > 0:
            return torch.rand(batch, device=device) < p
        return None


def _batch_timesteps(t: Tensor | float, batch: int, device: torch.device) -> Tensor:
    """t as a [B] tensor on ``device`` (a number or 0-d tensor is broadcast)."""
    t = torch.as_tensor(t, device=device)
    if t.dim() == 0:
        return t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must be a number, a 0-d tensor or [B={batch}], got {tuple(t.shape)}")
    return t


def _masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """tokens [B, Lc, Dc], mask [B, Lc] bool -> mean over the real tokens [B, Dc]."""
    weights = mask.to(tokens.dtype)[..., None]  # [B, Lc, 1]
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def _check_condition(tokens: Tensor, mask: Tensor | None, batch: int, width: int) -> None:
    if tokens.dim() != 3 or tokens.shape[0] != batch or tokens.shape[-1] != width:
        raise ValueError(
            f"cond_tokens must be [B={batch}, Lc, Dc={width}], got {tuple(tokens.shape)}"
        )
    if mask is not None and mask.shape != tokens.shape[:2]:
        raise ValueError(
            f"cond_mask must be [B, Lc] = {tuple(tokens.shape[:2])}, got {tuple(mask.shape)}"
        )
