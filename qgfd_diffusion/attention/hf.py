"""QGFD inside Hugging Face transformers models, through the ``AttentionInterface`` registry.

Dimension legend: B batch, H heads (query heads), Hkv key/value heads (GQA), Lq query tokens,
N key tokens, d head width.

transformers 5.x routes every attention call of a model through ``ALL_ATTENTION_FUNCTIONS``,
keyed by ``config._attn_implementation``. Registering :func:`qgfd_attention_forward` as
``"qgfd"`` makes any such model (T5, ViT, Wav2Vec2, BERT, Llama, ...) run QGFD with
``attn_implementation="qgfd"``; no module is replaced, so weights, caches and checkpoints stay
as they are. The mask builder of ``"sdpa"`` is registered for ``"qgfd"`` as well, so the model
hands over the same boolean masks it would give SDPA.

Prototype-003 API on top (DESIGN.md section 2):

* :class:`MultiHeadQGFDLayer`: the QGFD state (a ``QGFDState``) attached to one attention
  module as ``module.qgfd``: its ``QGFDOptions`` (prototype 003's defaults: ``HF_QGFD_DEFAULTS``)
  and a ``step`` buffer (the training step) from which the warm-up
  alpha(step) = alpha * min(1, step / warmup_steps) is read.
* :func:`wrap_model_with_qgfd`: attaches one state per attention module and switches the model
  to ``"qgfd"``. :func:`set_qgfd_step` (or :class:`QGFDStepCallback` in a ``Trainer``) moves
  the step; ``forward`` never mutates it (DESIGN.md section 7).

Coverage (transformers 5.x): T5 (``T5Attention``, its relative position bias arrives as
``position_bias`` and is folded into an additive float mask), ViT, Wav2Vec2, BERT and Llama all
route through the registry, so no attention class is replaced or special-cased here. A model
with no routed attention module is rejected by :func:`wrap_model_with_qgfd` with a ValueError.

Masks (the kernel applies the mask to p0 and to the transition P over keys):

* self-attention (Lq = N): the mask, causal pattern and T5 relative position bias included, is
  an [.., N, N] mask and applies to P entry by entry; a causal model's P never sees future keys.
* cross-attention (Lq != N): P is over the N keys, so only a key-padding mask can apply to it.
  A mask whose rows all agree is reduced to [.., 1, N]; otherwise the call falls back to plain
  SDPA with a warning.
* causal decoding with a cache (Lq < N): the causal [N, N] mask over all keys is rebuilt (key
  padding and a relative position bias f(j - i), as T5's, read off the last query row) and the
  queries are left-padded to N, so P is the same causal transition as in a full forward pass.
  Where the given rows are not of that form (a float attention mask, a sliding window), the
  call falls back to plain SDPA with a warning.
* rows of P that are fully masked (left-padded positions) attend to themselves, so that they
  stay finite; no real query gives them mass.

The cross-attention row check and the decoding rebuild read tensor values (a graph break under
torch.compile); self-attention without a cache, the training path, has no such check.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AttentionInterface, AttentionMaskInterface, TrainerCallback
from transformers.integrations.sdpa_attention import create_position_bias_mask, repeat_kv
from transformers.masking_utils import sdpa_mask

from ..checks import check_choice
from .functional import qgfd_attention
from .options import PROTOTYPE_ALIASES, QGFDOptions, qgfd_options
from .state import QGFDState, set_qgfd_step

QGFD_ATTN_IMPLEMENTATION = "qgfd"
HFTransition = Literal["keys", "cosine"]
HFAlphaMode = Literal["fixed", "warmup"]
# Source marker of an attention module that dispatches through the registry (transformers'
# own `_can_set_attn_implementation` uses the same heuristic).
_REGISTRY_MARKER = "ALL_ATTENTION_FUNCTIONS"


# Prototype 003's defaults for transformers models: the cosine transition, T = 4, a small alpha.
HF_QGFD_DEFAULTS = QGFDOptions(alpha=0.02, steps=4, transition="cosine")


class MultiHeadQGFDLayer(QGFDState):
    """Per-module QGFD state (``QGFDState``): options plus the training step of the warm-up.

    ``MultiHeadQGFDLayer(options=None, **overrides)``: ``overrides`` are ``QGFDOptions`` fields
    or prototype spellings (``diffusion_steps``, ``target_alpha``, ``temp``, ``detach_P``) over
    ``options`` (default ``HF_QGFD_DEFAULTS``); see :func:`hf_qgfd_options`. Attached as
    ``attention_module.qgfd``; its ``step`` buffer is saved in the state dict.
    """

    def __init__(self, options: QGFDOptions | None = None, **overrides: object) -> None:
        options = hf_qgfd_options(options, **overrides)
        check_hf_options(options)
        super().__init__(options)


def hf_qgfd_options(base: QGFDOptions | None = None, /, **overrides: object) -> QGFDOptions:
    """``qgfd_options`` over ``base`` (default ``HF_QGFD_DEFAULTS``) with prototype 003's rule: a
    given ``warmup_steps`` turns the warm-up on when > 0 and off when 0, unless ``alpha_mode``
    is given too."""
    names = {PROTOTYPE_ALIASES.get(key, key): key for key in overrides}
    if "warmup_steps" in names and "alpha_mode" not in names:
        warmup_steps = overrides[names["warmup_steps"]]
        warms_up = isinstance(warmup_steps, (int, float)) and warmup_steps > 0
        overrides = {**overrides, "alpha_mode": "warmup" if warms_up else "fixed"}
    return qgfd_options(HF_QGFD_DEFAULTS if base is None else base, **overrides)


def check_hf_options(options: QGFDOptions) -> None:
    """What the transformers integration runs: a ``keys`` or ``cosine`` transition (P over the
    keys of any attention call) and a fixed or warmed-up alpha (no per-head parameter)."""
    check_choice("transition (transformers models)", options.transition, HFTransition)
    check_choice("alpha_mode (transformers models)", options.alpha_mode, HFAlphaMode)


# Used by modules that run with attn_implementation="qgfd" but carry no `qgfd` state.
_DEFAULT_STATE = MultiHeadQGFDLayer()


def qgfd_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    position_bias: Tensor | None = None,
    **kwargs: object,
) -> tuple[Tensor, None]:
    """The ``"qgfd"`` entry of ``AttentionInterface``, mirroring ``sdpa_attention_forward``.

    query [B, H, Lq, d], key / value [B, Hkv, N, d]; attention_mask bool (True = attend) or
    additive float, [B|1, 1|H, Lq, N]; position_bias (T5) additive [1|B, H, Lq, N].
    Returns (attn_output [B, Lq, H, d], None): attention weights are never materialised.
    """
    if kwargs.get("softcap") is not None:
        raise ValueError("attn_implementation='qgfd' does not support softcap; use 'eager'")
    if kwargs.get("cache") is not None:
        raise ValueError(
            "attn_implementation='qgfd' does not support paged caches "
            "(continuous batching); use a regular cache"
        )
    n_rep = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, n_rep), repeat_kv(value, n_rep)  # [B, H, N, d]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    Lq = query.shape[2]
    if causal and attention_mask is None and 1 < Lq < key.shape[2]:
        # prefill into an empty static cache: the keys past Lq are empty slots (as in SDPA)
        key, value = key[:, :, :Lq], value[:, :, :Lq]  # [B, H, Lq, d]
        position_bias = None if position_bias is None else position_bias[..., :Lq]
    state = getattr(module, "qgfd", None)
    state = state if isinstance(state, MultiHeadQGFDLayer) else _DEFAULT_STATE
    attend = _AttendWith(state, dropout, scaling)
    if causal and Lq < key.shape[2]:
        out = _causal_decode(attend, query, key, value, attention_mask, position_bias)
    else:
        mask = _explicit_mask(attention_mask, position_bias, causal, query, key)
        out = _dispatch(attend, query, key, value, mask)  # [B, H, Lq, d]
    return out.transpose(1, 2).contiguous(), None  # [B, Lq, H, d]


def _explicit_mask(
    attention_mask: Tensor | None,
    position_bias: Tensor | None,
    causal: bool,
    query: Tensor,
    key: Tensor,
) -> Tensor | None:
    """One mask for p0 and P: the causal pattern made explicit (SDPA's is_causal would reach
    p0 only) and T5's position bias folded in as an additive float mask."""
    Lq, N = query.shape[2], key.shape[2]
    if causal and attention_mask is None and Lq == N > 1:
        attention_mask = _causal_mask(N, query.device)[None, None]  # [1, 1, N, N]
    if position_bias is not None:
        attention_mask = create_position_bias_mask(position_bias, attention_mask, False, query, key)
    return attention_mask


def _causal_mask(n: int, device: torch.device) -> Tensor:
    """[n, n] bool, True where key j <= query i."""
    idx = torch.arange(n, device=device)
    return idx[:, None] >= idx[None, :]


@dataclass(frozen=True)
class _AttendWith:
    """QGFD with one module's settings; ``plain`` is the SDPA fallback with the same inputs."""

    state: MultiHeadQGFDLayer
    dropout: float
    scaling: float | None

    def qgfd(self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None) -> Tensor:
        return qgfd_attention(
            query,
            key,
            value,
            mask,
            alpha=self.state.current_alpha(),
            scale=self.scaling,
            dropout_p=self.dropout,
            **self.state.options.kernel_kwargs(),
        )

    def plain(
        self, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None, why: str
    ) -> Tensor:
        warnings.warn(f"qgfd attention fell back to plain SDPA for this call: {why}", stacklevel=3)
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=self.dropout, scale=self.scaling
        )


def _dispatch(
    attend: _AttendWith, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None
) -> Tensor:
    """Self-attention and key-padding masks go to QGFD; other cross-attention masks to SDPA."""
    if query.shape[2] == key.shape[2] or mask is None or mask.shape[-2] == 1:
        return attend.qgfd(query, key, value, mask)
    if bool((mask == mask[..., :1, :]).all()):  # the same key-padding for every query
        return attend.qgfd(query, key, value, mask[..., :1, :])  # [B|1, H|1, 1, N]
    return attend.plain(
        query,
        key,
        value,
        mask,
        "the query rows of the cross-attention mask "
        "differ, so it cannot apply to the transition P over keys",
    )


def _causal_decode(
    attend: _AttendWith,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    position_bias: Tensor | None,
) -> Tensor:
    """Causal queries at the last Lq of N positions (decoding with a cache).

    P must be the causal transition over all N keys, as in a full forward pass: rebuild the
    [N, N] mask, left-pad the queries to N with placeholders and keep the last Lq outputs.
    """
    B, H, Lq, d = query.shape
    N = key.shape[2]
    full, why = _rebuild_causal_mask(attention_mask, position_bias, query, key)
    if full is None:
        mask = _explicit_mask(attention_mask, position_bias, False, query, key)
        return attend.plain(query, key, value, mask, why)
    pad = query.new_zeros(B, H, N - Lq, d)  # placeholder queries for the earlier positions
    out = attend.qgfd(torch.cat([pad, query], dim=2), key, value, full)  # [B, H, N, d]
    return out[:, :, N - Lq :]  # [B, H, Lq, d]


def _rebuild_causal_mask(
    attention_mask: Tensor | None, position_bias: Tensor | None, query: Tensor, key: Tensor
) -> tuple[Tensor | None, str]:
    """The [.., N, N] mask of a full causal pass, from the [.., Lq, N] one of the last Lq queries.

    Causal AND key-padding, the padding read off the last query row (which sees every key);
    a relative position bias f(j - i) (T5's) read off the last row too, which holds every causal
    offset. Returns (None, why) when the given rows are not of that form.
    """
    Lq, N = query.shape[2], key.shape[2]
    full = _causal_mask(N, query.device)[None, None]  # [1, 1, N, N]
    if attention_mask is not None:
        if attention_mask.dtype != torch.bool:
            return None, "a float attention mask cannot be rebuilt over all keys"
        full = full & attention_mask[..., -1:, :]  # [B|1, 1, N, N]
        if not torch.equal(full[..., N - Lq :, :].expand_as(attention_mask), attention_mask):
            return None, "the decoding mask is not causal AND key-padding (e.g. a sliding window)"
    if position_bias is None:
        return full, ""
    bias = _relative_bias_from_last_row(position_bias)  # [B|1, H, N, N]
    rows = full[..., N - Lq :, :]  # [B|1, 1, Lq, N]
    if not torch.equal(
        torch.where(rows, bias[..., N - Lq :, :], 0), torch.where(rows, position_bias, 0)
    ):
        return None, "the position bias is not a function of the offset j - i"
    return create_position_bias_mask(bias, full, False, query, key), ""


def _relative_bias_from_last_row(position_bias: Tensor) -> Tensor:
    """[.., Lq, N] bias of a function f(j - i) -> the [.., N, N] one, f(j - i) for j <= i."""
    N = position_bias.shape[-1]
    idx = torch.arange(N, device=position_bias.device)
    offset = (idx[None, :] - idx[:, None] + N - 1).clamp(max=N - 1)  # [N, N]: column of f(j - i)
    return position_bias[..., -1, :][..., offset]  # [.., N, N]


def register_qgfd_attention() -> None:
    """Register ``"qgfd"`` in transformers' attention and mask registries (idempotent)."""
    AttentionInterface.register(QGFD_ATTN_IMPLEMENTATION, qgfd_attention_forward)
    AttentionMaskInterface.register(QGFD_ATTN_IMPLEMENTATION, sdpa_mask)


register_qgfd_attention()


def routes_through_registry(module: nn.Module) -> bool:
    """Whether ``module`` dispatches its attention through ``AttentionInterface``."""
    return hasattr(module, "config") and _forward_reads_registry(type(module))


@functools.cache
def _forward_reads_registry(cls: type) -> bool:
    try:
        return _REGISTRY_MARKER in inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False


def wrap_model_with_qgfd(
    model: nn.Module,
    layer_cls: type[MultiHeadQGFDLayer] = MultiHeadQGFDLayer,
    diffusion_steps: int = 4,
    target_alpha: float = 0.02,
    warmup_steps: int = 20000,
    detach_P: bool = False,
    temp: float = 1.0,
    verbose: bool = True,
    **settings: object,
) -> nn.Module:
    """Run every attention module of a transformers model as QGFD (prototype 003's entry point).

    Attaches one ``layer_cls`` state (``module.qgfd``) per attention module that routes through
    ``AttentionInterface`` and switches the model to ``attn_implementation="qgfd"``. The prototype
    arguments map to ``QGFDOptions`` (T = ``diffusion_steps``, alpha = ``target_alpha``,
    ``temperature``, ``detach_transition``); the warm-up is on when ``warmup_steps`` > 0. Extra
    ``settings`` are other ``QGFDOptions`` fields (``transition``, ``topk``, ``iteration``,
    ``early_stop_eps``, ``path``). Returns ``model``.
    """
    if not (isinstance(layer_cls, type) and issubclass(layer_cls, MultiHeadQGFDLayer)):
        raise TypeError(f"layer_cls must be MultiHeadQGFDLayer or a subclass, got {layer_cls!r}")
    base = hf_qgfd_options(
        diffusion_steps=diffusion_steps,
        target_alpha=target_alpha,
        warmup_steps=warmup_steps,
        detach_P=detach_P,
        temp=temp,
        **settings,
    )
    check_hf_options(base)
    modules = [m for m in model.modules() if routes_through_registry(m)]
    if not modules:
        raise ValueError(
            f"{type(model).__name__} has no attention module that routes through transformers' "
            "AttentionInterface (its forward never reads ALL_ATTENTION_FUNCTIONS)"
        )
    register_qgfd_attention()
    for module in modules:
        param = next(module.parameters(), None)
        module.qgfd = layer_cls(base).to(None if param is None else param.device)
    _switch_implementation(model, modules)
    if verbose:
        print(
            f"wrap_model_with_qgfd: {len(modules)} attention modules -> qgfd "
            f"({_count_classes(modules)}); {base}"
        )
    return model


def _switch_implementation(model: nn.Module, modules: list[nn.Module]) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(QGFD_ATTN_IMPLEMENTATION)
    stuck = {
        type(m).__name__
        for m in modules
        if m.config._attn_implementation != QGFD_ATTN_IMPLEMENTATION
    }
    if stuck:
        raise ValueError(
            f"could not switch {sorted(stuck)} of {type(model).__name__} to "
            f"attn_implementation={QGFD_ATTN_IMPLEMENTATION!r}"
        )


def _count_classes(modules: list[nn.Module]) -> str:
    counts = Counter(type(m).__name__ for m in modules)
    return ", ".join(f"{name} x{n}" for name, n in counts.items())


class QGFDStepCallback(TrainerCallback):
    """``Trainer`` callback: keeps the QGFD alpha warm-up on the trainer's global step."""

    def on_step_begin(self, args, state, control, model: nn.Module | None = None, **kwargs):
        if model is not None:
            set_qgfd_step(model, state.global_step)
