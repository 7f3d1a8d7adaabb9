"""benchmarks/graph_verdict.py applies the graph study's written rules: synthetic rows whose
verdict follows from the rules by hand."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rules():
    spec = importlib.util.spec_from_file_location(
        "graph_verdict", REPO / "benchmarks" / "graph_verdict.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def rows_for(rules, ratios: dict[str, list[float]], fd: float = 1.0) -> list[dict]:
    """Every study row; ``ratios`` sets mse_over_bayes_10 per seed (others: plain sdpa's)."""
    variants = [
        rules.PLAIN_SDPA,
        *rules.GRAPH_AWARE_SDPA,
        *rules.GRAPH_QGFD,
        rules.NEGATIVE_CONTROL,
    ]
    plain = ratios.get(rules.PLAIN_SDPA, [1.10, 1.11, 1.09])
    return [
        {"variant": v, "seed": s, "mse_over_bayes_10": ratios.get(v, plain)[s], "fd_over_floor": fd}
        for v in variants
        for s in range(3)
    ]


def test_helps_when_every_seed_has_a_fifth_less_excess(rules):
    rows = rows_for(
        rules,
        {"sdpa mask": [1.030, 1.028, 1.032], "qgfd graph a=0.9 fixed mask": [1.010, 1.012, 1.009]},
    )
    result = rules.verdict(rows)
    assert result["best_graph_aware_sdpa"] == "sdpa mask"
    assert result["verdict"] == "QGFD helps"
    assert result["negative_control_ties"]


def test_one_seed_short_of_the_margin_is_inconclusive(rules):
    rows = rows_for(
        rules,
        {"sdpa mask": [1.030, 1.028, 1.032], "qgfd graph a=0.9 fixed mask": [1.010, 1.027, 1.009]},
    )
    result = rules.verdict(rows)
    assert not result["rows"]["qgfd graph a=0.9 fixed mask"]["below_by_margin_every_seed"]
    assert result["verdict"] == "inconclusive"


def test_a_tie_does_not_help(rules):
    rows = rows_for(
        rules,
        {
            "sdpa lappe": [1.030, 1.028, 1.032],
            **{v: [1.029, 1.030, 1.031] for v in rules.GRAPH_QGFD},
        },
    )
    assert rules.verdict(rows)["verdict"] == "QGFD does not help"


def test_worse_samples_veto_a_lower_error(rules):
    rows = rows_for(
        rules,
        {"sdpa mask": [1.030, 1.028, 1.032], "qgfd graph a=0.9 fixed mask": [1.010, 1.012, 1.009]},
    )
    for row in rows:
        if row["variant"] == "qgfd graph a=0.9 fixed mask":
            row["fd_over_floor"] = 2.0
    assert rules.verdict(rows)["verdict"] != "QGFD helps"


def test_a_negative_control_off_plain_sdpa_is_flagged(rules):
    rows = rows_for(rules, {rules.NEGATIVE_CONTROL: [1.05, 1.05, 1.05]})
    assert not rules.verdict(rows)["negative_control_ties"]


def test_one_seed_decides_nothing(rules):
    rows = rows_for(
        rules,
        {"sdpa mask": [1.030, 1.028, 1.032], "qgfd graph a=0.9 fixed mask": [1.010, 1.012, 1.009]},
    )
    assert rules.verdict([r for r in rows if r["seed"] == 0])["verdict"].startswith("inconclusive")
