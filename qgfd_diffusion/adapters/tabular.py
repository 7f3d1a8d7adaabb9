"""Tabular adapter: one latent token per column (layout ``columns``), with an exact inverse.

Dimension legend: B rows, Mn numeric columns, Mc categorical columns, M = Mn + Mc tokens,
C latent channels, Q quantile knots, K categories of one column.

Everything is fixed after ``fit`` (no trainable parameter anywhere):
  numeric x  -> u, either ``standard`` (x - mean) / std or ``quantile`` (piecewise-linear map of
               the fitted quantiles onto standard-normal quantiles, extended linearly beyond the
               end knots so it stays invertible) -> token u * e, e a fixed unit vector.
               Decode: u = <token, e>, then the inverse map.
  category k -> token = fixed code_k (orthonormal rows of a seeded orthogonal matrix when
               K <= C, seeded random unit vectors otherwise). Decode: argmax_k <token, code_k>.
Tokens are ordered numeric columns first, then categorical, as listed in the config.
Tables: a pandas DataFrame or a dict {column: array / tensor / list}.

Modality "tabular", no condition. ``collate_tabular`` turns the data layer's examples (one row
``{column: value}`` each) into a DataFrame; ``write_tabular`` writes a decoded DataFrame to
``samples.csv`` (floats in one fixed format, so the bytes are reproducible).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..latents import LatentBatch, LatentLayout
from .base import AdapterConfig, ModalityAdapter
from .declarations import DataSchema
from .files import WriteOptions, check_nonempty
from .helpers import seeded_orthogonal
from .registry import register_adapter

NumericTransform = Literal["standard", "quantile"]
Table = Any  # pandas.DataFrame | Mapping[str, array-like]
TABLE_NAME = "samples.csv"
CSV_FLOAT_FORMAT = "%.8g"


@dataclass(kw_only=True)
class TabularAdapterConfig(AdapterConfig):
    """numeric_columns / categorical_columns: column names (token order: numeric first);
    latent_dim: C; numeric_transform: ``standard`` or ``quantile``; n_quantiles: Q;
    seed: of the fixed codes; categories: {column: values}, filled in by ``fit``."""

    numeric_columns: list[str] = field(default_factory=list)
    categorical_columns: list[str] = field(default_factory=list)
    latent_dim: int = 16
    numeric_transform: NumericTransform = "standard"
    n_quantiles: int = 64
    seed: int = 0
    categories: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        names = list(self.numeric_columns) + list(self.categorical_columns)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"need at least one column and unique names, got {names}")
        if self.latent_dim < 1 or self.n_quantiles < 2:
            raise ValueError("latent_dim must be >= 1 and n_quantiles >= 2")
        if self.categories and set(self.categories) != set(self.categorical_columns):
            raise ValueError(f"categories must cover exactly {self.categorical_columns}")


def _strictly_increasing(knots: Tensor) -> Tensor:
    """Nudge tied knots [Mn,Q] apart (by a tiny gap) so the piecewise-linear map is invertible."""
    span = (knots[:, -1:] - knots[:, :1]).abs() + 1.0  # [Mn,1]
    steps = torch.arange(knots.shape[1], dtype=knots.dtype) * 1e-9 * span  # [Mn,Q]
    return torch.cummax(knots - steps, dim=1).values + steps


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Per-column piecewise-linear map x [B,Mn] through knots (xp, fp) [Mn,Q], linear beyond."""
    xp, fp = xp.contiguous(), fp.contiguous()
    idx = torch.searchsorted(xp, x.T.contiguous()).clamp(1, xp.shape[1] - 1)  # [Mn,B]
    x0, x1 = xp.gather(1, idx - 1), xp.gather(1, idx)
    f0, f1 = fp.gather(1, idx - 1), fp.gather(1, idx)
    return (f0 + (x.T - x0) * (f1 - f0) / (x1 - x0)).T  # [B,Mn]


def _as_mapping(table: Table) -> Mapping[str, Any]:
    """A DataFrame or dict table -> {column: values}."""
    if hasattr(table, "columns") and hasattr(table, "to_numpy"):  # pandas DataFrame
        return {str(name): table[name].to_numpy() for name in table.columns}
    if not isinstance(table, Mapping):
        raise ValueError(f"a table must be a DataFrame or a dict of columns, got {type(table)}")
    return table


def _python_scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _sorted_unique(values: np.ndarray) -> list[Any]:
    unique = {_python_scalar(v) for v in values}
    try:
        return sorted(unique)
    except TypeError:  # mixed types: a stable order by text
        return sorted(unique, key=str)


# The data layer's table rows: {column: value, ...}, one row per example, the whole row the
# example; a label column names its target.
TABLE_SCHEMA = DataSchema(column=None)


def collate_tabular(examples: list[dict[str, Any]]) -> Any:
    """-> pandas DataFrame, one row per example, columns in dataset order."""
    import pandas

    return pandas.DataFrame.from_records(examples)


def write_tabular(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    """A decoded DataFrame -> samples.csv (no index, floats as CSV_FLOAT_FORMAT, UTF-8)."""
    import pandas as pd

    if not isinstance(decoded, pd.DataFrame):
        raise ValueError(
            f"tabular samples must be a pandas DataFrame, got {type(decoded).__name__}"
        )
    check_nonempty(len(decoded), "tabular")
    path = out_dir / TABLE_NAME
    decoded.to_csv(
        path, index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n", encoding="utf-8"
    )
    return [path]


@register_adapter("tabular")
class TabularAdapter(ModalityAdapter):
    """One token of width C per column; fixed codes, exact inverse."""

    modality = "tabular"
    condition_kind = None
    schema = TABLE_SCHEMA
    collate = staticmethod(collate_tabular)
    writer = staticmethod(write_tabular)
    output_field = "tables"
    config_class = TabularAdapterConfig

    def __init__(self, config: TabularAdapterConfig):
        super().__init__(config)
        n_numeric, n_knots = len(config.numeric_columns), config.n_quantiles
        self.register_buffer(
            "basis", seeded_orthogonal(config.latent_dim, config.latent_dim, config.seed)
        )  # [C,C], rows orthonormal
        self.register_buffer("numeric_mean", torch.zeros(n_numeric, dtype=torch.float64))
        self.register_buffer("numeric_std", torch.ones(n_numeric, dtype=torch.float64))
        self.register_buffer("knots_x", torch.zeros(n_numeric, n_knots, dtype=torch.float64))
        levels = (torch.arange(n_knots, dtype=torch.float64) + 0.5) / n_knots
        self.register_buffer("knots_u", torch.special.ndtri(levels))  # [Q] normal quantiles
        self.register_buffer("transform_fitted", torch.tensor(False))
        self._init_latent_stats(config.latent_dim)

    @classmethod
    def from_table(
        cls, table: Table, categorical_columns: Sequence[str] | None = None, **options: Any
    ) -> TabularAdapter:
        """Build and ``fit`` an adapter on ``table``; categorical columns default to the
        non-numeric ones (numpy dtype kinds other than bool/int/unsigned/float)."""
        arrays = {name: cls._to_numpy(values) for name, values in _as_mapping(table).items()}
        if categorical_columns is None:
            categorical_columns = [n for n, a in arrays.items() if a.dtype.kind not in "iuf"]
        numeric = [name for name in arrays if name not in categorical_columns]
        config = TabularAdapterConfig(
            numeric_columns=numeric, categorical_columns=list(categorical_columns), **options
        )
        return cls(config).fit(table)

    @property
    def columns(self) -> list[str]:
        return list(self.config.numeric_columns) + list(self.config.categorical_columns)

    # -- table parsing ------------------------------------------------------------------------

    def _column_arrays(self, table: Table) -> dict[str, np.ndarray]:
        """Validate a table and return {column: 1-D numpy array}, all of one length."""
        table = _as_mapping(table)
        unknown = sorted(set(table) - set(self.columns))
        missing = [name for name in self.columns if name not in table]
        if unknown or missing:
            raise ValueError(
                f"unknown column(s) {unknown} and missing column(s) {missing}; "
                f"the adapter's columns are {self.columns}"
            )
        arrays = {name: self._to_numpy(table[name]) for name in self.columns}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"columns must be non-empty and of one length, got lengths {lengths}")
        return arrays

    @staticmethod
    def _to_numpy(values: Any) -> np.ndarray:
        if isinstance(values, Tensor):
            values = values.detach().cpu().numpy()
        return np.asarray(values).reshape(-1)

    def _numeric_matrix(self, arrays: dict[str, np.ndarray]) -> Tensor:
        """Numeric columns -> x [B,Mn] float64 (NaN rejected)."""
        if not self.config.numeric_columns:
            return torch.zeros(len(next(iter(arrays.values()))), 0, dtype=torch.float64)
        x = torch.stack(
            [
                torch.as_tensor(arrays[name].astype(np.float64))
                for name in self.config.numeric_columns
            ],
            dim=1,
        )
        bad = [
            n
            for n, col in zip(self.config.numeric_columns, x.T, strict=True)
            if torch.isnan(col).any()
        ]
        if bad:
            raise ValueError(f"numeric column(s) {bad} contain NaN")
        return x

    # -- fitting ------------------------------------------------------------------------------

    @torch.no_grad()
    def fit(self, table: Table) -> TabularAdapter:
        """Fit the numeric transforms and category lists on ``table``, then the latent stats."""
        arrays = self._column_arrays(table)
        x = self._numeric_matrix(arrays)  # [B,Mn]
        if x.shape[1]:
            self.numeric_mean.copy_(x.mean(0))
            std = x.std(0, unbiased=False)
            self.numeric_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))
            levels = (
                torch.arange(self.config.n_quantiles, dtype=torch.float64) + 0.5
            ) / self.config.n_quantiles
            self.knots_x.copy_(_strictly_increasing(torch.quantile(x, levels, dim=0).T))
        self.config.categories = {
            name: _sorted_unique(arrays[name]) for name in self.config.categorical_columns
        }
        self.transform_fitted.fill_(True)
        return self.fit_latent_stats([table])

    # -- numeric transform --------------------------------------------------------------------

    def _forward_numeric(self, x: Tensor) -> Tensor:
        """x [B,Mn] float64 -> u [B,Mn]."""
        if self.config.numeric_transform == "standard":
            return (x - self.numeric_mean) / self.numeric_std
        return _interp(x, self.knots_x, self.knots_u.expand_as(self.knots_x))

    def _inverse_numeric(self, u: Tensor) -> Tensor:
        """u [B,Mn] float64 -> x [B,Mn]."""
        if self.config.numeric_transform == "standard":
            return u * self.numeric_std + self.numeric_mean
        return _interp(u, self.knots_u.expand_as(self.knots_x), self.knots_x)

    def _category_codes(self, column_index: int, n_categories: int) -> Tensor:
        """Fixed codes [K,C]: orthonormal basis rows, or seeded random unit vectors if K > C."""
        if n_categories <= self.latent_dim:
            return self.basis[:n_categories]
        gen = torch.Generator().manual_seed(self.config.seed + 1 + column_index)
        codes = torch.randn(n_categories, self.latent_dim, generator=gen)
        return (codes / codes.norm(dim=1, keepdim=True)).to(self.device)

    # -- encode / decode ----------------------------------------------------------------------

    @torch.no_grad()
    def encode_features(self, table: Table) -> LatentBatch:
        if not bool(self.transform_fitted):
            raise RuntimeError("the tabular adapter is not fitted: call fit(table) first")
        arrays = self._column_arrays(table)
        u = self._forward_numeric(self._numeric_matrix(arrays).to(self.device))  # [B,Mn]
        numeric = u.float()[:, :, None] * self.basis[0]  # [B,Mn,1] * [C] -> [B,Mn,C]
        categorical = [
            self._encode_category(j, name, arrays[name])
            for j, name in enumerate(self.config.categorical_columns)
        ]  # Mc x [B,C]
        tokens = torch.cat([numeric, *[t[:, None] for t in categorical]], dim=1)  # [B,M,C]
        return LatentBatch(latents=tokens, layout=LatentLayout("columns", (tokens.shape[1],)))

    def _encode_category(self, j: int, name: str, values: np.ndarray) -> Tensor:
        """One categorical column [B] -> its code tokens [B,C]."""
        vocabulary = self.config.categories[name]
        lookup = {value: k for k, value in enumerate(vocabulary)}
        unseen = sorted({_python_scalar(v) for v in values} - set(lookup), key=str)
        if unseen:
            raise ValueError(
                f"column {name!r} has categories {unseen} not seen in fit (known: {vocabulary})"
            )
        index = torch.tensor([lookup[_python_scalar(v)] for v in values], device=self.device)
        return self._category_codes(j, len(vocabulary))[index]

    @property
    def can_decode(self) -> bool:
        return bool(self.transform_fitted)

    def _no_decoder_reason(self) -> str:
        return "the tabular adapter is not fitted: call fit(table) first"

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> Any:
        """z [B,M,C] -> pandas DataFrame with the configured columns."""
        import pandas as pd

        n_numeric = len(self.config.numeric_columns)
        if z.shape[1] != len(self.columns):
            raise ValueError(f"expected {len(self.columns)} column tokens, got {z.shape[1]}")
        u = (z[:, :n_numeric] @ self.basis[0]).double()  # [B,Mn]
        x = self._inverse_numeric(u).cpu().numpy()
        table = {name: x[:, i] for i, name in enumerate(self.config.numeric_columns)}
        for j, name in enumerate(self.config.categorical_columns):
            vocabulary = self.config.categories[name]
            scores = z[:, n_numeric + j] @ self._category_codes(j, len(vocabulary)).T  # [B,K]
            table[name] = [vocabulary[k] for k in scores.argmax(-1).tolist()]
        return pd.DataFrame(table, columns=self.columns)
