"""The quality report's statistics against hand arithmetic (no training)."""

import math

import pytest
from harness.report import paired_differences, summarise


def rows_of(file, variant, values):
    return [
        {"file": file, "variant": variant, "seed": seed, "accuracy": value, "label": "x"}
        for seed, value in values.items()
    ]


def test_paired_differences_are_per_seed_differences_from_the_first_variant():
    rows = [
        *rows_of("study", "sdpa", {0: 0.50, 1: 0.60, 2: 0.70}),
        *rows_of("study", "qgfd", {0: 0.55, 1: 0.58, 2: 0.80}),
        *rows_of("study", "heat", {1: 0.65, 2: 0.71, 3: 0.90}),  # seed 3 has no sdpa run
        *rows_of("alone", "default", {0: 0.1}),  # one variant: nothing to pair with
    ]
    paired = {p["variant"]: p for p in paired_differences(rows, ["accuracy"])}
    assert set(paired) == {"qgfd", "heat"}
    qgfd = paired["qgfd"]
    assert qgfd["reference"] == "sdpa" and qgfd["seeds"] == [0, 1, 2]
    diffs = [0.05, -0.02, 0.10]
    mean = sum(diffs) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert qgfd["metrics"]["accuracy"]["mean"] == pytest.approx(mean)
    assert qgfd["metrics"]["accuracy"]["std"] == pytest.approx(std)
    heat = paired["heat"]
    assert heat["seeds"] == [1, 2]
    assert heat["metrics"]["accuracy"]["mean"] == pytest.approx((0.05 + 0.01) / 2)


def test_pairing_removes_the_shared_seed_spread():
    """A constant offset between variants shows as zero spread paired, not unpaired."""
    rows = [
        *rows_of("study", "a", {0: 0.2, 1: 0.5, 2: 0.9}),
        *rows_of("study", "b", {0: 0.3, 1: 0.6, 2: 1.0}),
    ]
    (paired,) = paired_differences(rows, ["accuracy"])
    assert paired["metrics"]["accuracy"]["mean"] == pytest.approx(0.1)
    assert paired["metrics"]["accuracy"]["std"] == pytest.approx(0.0, abs=1e-12)
    unpaired = {g["variant"]: g["metrics"]["accuracy"] for g in summarise(rows)}
    assert (
        unpaired["b"]["std"] == pytest.approx(unpaired["a"]["std"]) and unpaired["a"]["std"] > 0.3
    )
