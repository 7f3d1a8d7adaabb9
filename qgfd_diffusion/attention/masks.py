"""Attention-mask plumbing shared by the QGFD kernels.

Dimension legend: B batch, H heads, Lq queries, N keys (nodes).

Masks follow ``F.scaled_dot_product_attention``: a boolean mask (True = takes part) or an
additive float bias, broadcastable to [B, H, Lq, N]. QGFD also applies the mask to the
transition P [B, H, N, N] over keys, which is possible when the mask is a key-padding mask
(query dimension 1) or a self-attention mask (query dimension N with Lq = N).
"""

from __future__ import annotations

import torch
from torch import Tensor


def as_4d(attn_mask: Tensor | None) -> Tensor | None:
    """Prepend singleton dims so that the mask is [b, h, lq, n] (b, h, lq may be 1)."""
    if attn_mask is None:
        return None
    if attn_mask.dim() > 4:
        raise ValueError(f"attn_mask must have at most 4 dims, got shape {tuple(attn_mask.shape)}")
    while attn_mask.dim() < 4:
        attn_mask = attn_mask.unsqueeze(0)
    return attn_mask


def as_additive_bias(attn_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Boolean mask -> additive bias (0 where True, -inf where False); float passes through."""
    if attn_mask is None:
        return None
    if attn_mask.dtype == torch.bool:
        zeros = torch.zeros((), dtype=dtype, device=attn_mask.device)
        return torch.where(
            attn_mask, zeros, torch.tensor(float("-inf"), dtype=dtype, device=attn_mask.device)
        )
    return attn_mask.to(dtype)


def transition_mask(attn_mask: Tensor | None, num_queries: int, num_keys: int) -> Tensor | None:
    """The part of ``attn_mask`` that applies to P [.., N, N] (None when there is no mask).

    A key-padding mask [.., 1, N] broadcasts over the rows of P. A self-attention mask
    [.., N, N] (only when Lq = N) applies entry by entry. Any other query dimension cannot be
    carried over to P and is rejected, so that padded keys can never receive mass through P.
    """
    mask = as_4d(attn_mask)
    if mask is None:
        return None
    rows = mask.shape[-2]
    if rows == 1 or (rows == num_keys and num_queries == num_keys):
        return mask
    raise ValueError(
        f"attn_mask of shape {tuple(attn_mask.shape)} cannot be applied to the transition P over "
        f"{num_keys} keys: pass a key-padding mask [..., 1, {num_keys}] or, for self-attention, "
        f"a mask [..., {num_keys}, {num_keys}]"
    )


def _support(mask: Tensor, what: str) -> Tensor:
    """A bool mask, or a float mask with 0 / -inf entries, as bool (True = takes part).

    Transitions without scores (graph, linear) can only take "this entry takes part or not";
    an additive bias with other values has nothing to apply to and is rejected.
    """
    if mask.dtype == torch.bool:
        return mask
    keep = mask > torch.finfo(mask.dtype).min / 2
    if bool((mask[keep] != 0).any()):
        raise ValueError(
            f"{what} accept only masks (bool, or float with 0 / -inf entries); got an additive "
            "bias with other values, which has no scores to apply to"
        )
    return keep


def key_mask(attn_mask: Tensor | None, num_queries: int, num_keys: int) -> Tensor | None:
    """Which keys take part, as a bool mask [b, h, N], for the linear transition.

    The linear transition has no logits to add a bias to, and its O(N) products cannot skip
    single entries, so only the information "this key is padded" can apply to it. A [.., N, N]
    mask is accepted only when all of its rows agree (a key-padding mask expanded over queries,
    as transformers passes it).
    """
    mask = transition_mask(attn_mask, num_queries, num_keys)
    if mask is None:
        return None
    mask = _support(mask, "linear transitions")
    if mask.shape[-2] > 1 and not bool((mask == mask[..., :1, :]).all()):
        raise ValueError(
            "linear transitions accept only key-padding masks (every query row equal); "
            "got a mask whose rows differ (e.g. a causal mask)"
        )
    return mask[..., 0, :]


def entry_mask(attn_mask: Tensor | None, num_queries: int, num_keys: int) -> Tensor | None:
    """Which entries of P take part, as a bool mask [b, h, 1|N, N], for the graph transition.

    A key-padding mask [.., 1, N] removes keys from every row; a self-attention mask [.., N, N]
    removes single edges (P = row-normalised A * M), e.g. a causal mask or a 1-hop graph mask.
    """
    mask = transition_mask(attn_mask, num_queries, num_keys)
    return None if mask is None else _support(mask, "graph transitions")


def graph_attention_mask(adjacency: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
    """The 1-hop attention mask of a graph: [B|1, 1, L, L] bool, True where i may attend j.

    i attends j when A_ij != 0 or i = j (its own token). Padded keys (``key_padding_mask``
    [B, L], True = real) are excluded; a padded query keeps only itself, so no row is empty
    (an empty row would make SDPA return NaN, which would reach real rows as 0 * NaN).
    adjacency: [L, L] or [B, L, L], dense or torch sparse.
    """
    A = adjacency.to_dense() if adjacency.is_sparse else adjacency
    L = A.shape[-1]
    eye = torch.eye(L, dtype=torch.bool, device=A.device)
    support = (A != 0) | eye  # [B|1, L, L] or [L, L]
    support = support if support.dim() == 3 else support[None]
    if key_padding_mask is not None:
        support = (support & key_padding_mask.bool()[:, None, :]) | eye  # [B, L, L]
    return support[:, None]  # [B|1, 1, L, L]


def rows_all_equal(mask: Tensor) -> bool:
    """Whether every query row of a mask [.., rows, N] is the same (a key-padding mask, maybe
    expanded over queries as transformers passes it)."""
    return mask.shape[-2] == 1 or bool((mask == mask[..., :1, :]).all())


def symmetric_on_live_keys(values: Tensor, live: Tensor) -> bool:
    """Whether ``values`` [.., N, N] is symmetric on the keys that some row reaches.

    ``live`` [.., N, N] marks the entries that take part. A key no row reaches (an all-False
    column, e.g. a padded key) only has an out-row, which leaves the transition block-triangular
    with the reached block's spectrum, so its row need not mirror its column.
    """
    reached = live.any(-2)  # [.., N]
    both = reached[..., :, None] & reached[..., None, :]  # [.., N, N]
    return bool(((values == values.transpose(-1, -2)) | ~both).all())
