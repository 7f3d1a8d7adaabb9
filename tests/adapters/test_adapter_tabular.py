"""Tabular adapter: one token per column, fixed codes, exact inverse."""

import numpy as np
import pandas as pd
import pytest
import torch

from qgfd_diffusion.adapters import TabularAdapter, TabularAdapterConfig, load_adapter


@pytest.fixture()
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 1, 300),
            "age": rng.integers(18, 90, 300).astype(float),
            "score": rng.normal(0, 1, 300),
            "city": rng.choice(["paris", "lyon", "nice"], 300),
            "member": rng.choice([True, False], 300),
            "grade": rng.integers(0, 40, 300),  # 40 categories > C: random unit codes
        }
    )


CATEGORICAL = ["city", "member", "grade"]


def assert_round_trip(adapter: TabularAdapter, table: pd.DataFrame) -> None:
    decoded = adapter.decode(adapter.encode(table).latents)
    assert list(decoded.columns) == adapter.columns
    for name in adapter.config.numeric_columns:
        scale = max(1.0, float(table[name].std()))  # 1e-5 in the column's own units
        assert np.abs(decoded[name].to_numpy() - table[name].to_numpy()).max() < 1e-5 * scale
    for name in CATEGORICAL:
        assert decoded[name].tolist() == table[name].tolist()


@pytest.mark.parametrize("transform", ["standard", "quantile"])
def test_round_trip_is_exact(table, transform):
    adapter = TabularAdapter.from_table(
        table, CATEGORICAL, numeric_transform=transform, latent_dim=16
    )
    batch = adapter.encode(table)
    assert batch.latents.shape == (300, 6, 16)
    assert batch.layout.kind == "columns" and batch.layout.shape == (6,)
    assert torch.isfinite(batch.latents).all()
    assert_round_trip(adapter, table)


def test_stats_frozen_and_save_load(table, tmp_path, assert_unit_stats, assert_frozen_upstream):
    adapter = TabularAdapter.from_table(table, CATEGORICAL, numeric_transform="quantile")
    assert_unit_stats(adapter.encode(table).latents, None)
    assert_frozen_upstream(adapter, table)
    assert not list(adapter.parameters())
    loaded = load_adapter(adapter.save_pretrained(tmp_path / "tab"))
    assert loaded.config.categories == adapter.config.categories
    assert torch.equal(loaded.encode(table).latents, adapter.encode(table).latents)
    assert_round_trip(loaded, table)


def test_dict_of_tensors_and_inferred_categoricals(table):
    adapter = TabularAdapter.from_table(table)  # object/bool-free dtypes inferred
    assert set(adapter.config.categorical_columns) == {"city", "member"}
    as_dict = {
        "income": torch.tensor(table["income"].to_numpy()),
        "age": table["age"].tolist(),
        "score": table["score"].to_numpy(),
        "city": table["city"].tolist(),
        "member": table["member"].tolist(),
        "grade": torch.tensor(table["grade"].to_numpy()),
    }
    assert torch.equal(adapter.encode(as_dict).latents, adapter.encode(table).latents)


def test_bad_tables(table):
    adapter = TabularAdapter.from_table(table, CATEGORICAL)
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['height'\]"):
        adapter.encode(table.assign(height=1.0))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['age'\]"):
        adapter.encode(table.drop(columns="age"))
    with pytest.raises(ValueError, match=r"column 'city' has categories \['rome'\]"):
        adapter.encode(table.assign(city="rome"))
    with pytest.raises(ValueError, match=r"numeric column\(s\) \['score'\] contain NaN"):
        adapter.encode(table.assign(score=np.nan))
    unfitted = TabularAdapter(TabularAdapterConfig(numeric_columns=["a"]))
    with pytest.raises(RuntimeError, match="fit"):
        unfitted.encode({"a": [1.0]})
    with pytest.raises(ValueError, match="unique names"):
        TabularAdapterConfig(numeric_columns=["a"], categorical_columns=["a"])
