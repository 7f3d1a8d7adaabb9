"""The eval file: one configs/eval/*.yaml document (``base`` chains, --quick / --set overrides,
--seeds), its variants (named override sets) and targets (thresholds reported on the mean)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgfd_diffusion.configio import apply_overrides, build_dataclass, load_yaml
from qgfd_diffusion.evaluation.quality import SCORERS


@dataclass
class Variant:
    """A named set of dotted overrides (``run.model.attention=sdpa``) on the eval file;
    ``seeds``: run only these of the file's seeds (e.g. one seed for an ablation)."""

    name: str
    set: list[str] = field(default_factory=list)
    seeds: list[int] | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.=-]+", "_", self.name).strip("_") or "default"


@dataclass
class Target:
    """A target of the task (the eval file's ``targets``), checked on the mean over seeds
    (reported, never asserted)."""

    metric: str
    min: float | None = None
    max: float | None = None

    def met(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        return " and ".join(
            part
            for part in (
                self.min is not None and f">= {self.min}",
                self.max is not None and f"<= {self.max}",
            )
            if part
        )


@dataclass
class EvalFile:
    """One configs/eval/*.yaml file (its header comment documents the keys)."""

    scorer: str
    run: dict[str, Any]
    seeds: list[int] = field(default_factory=lambda: [0])
    eval: dict[str, Any] = field(default_factory=dict)
    quick: list[str] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=lambda: [Variant("default")])
    targets: list[Target] = field(default_factory=list)

    def __post_init__(self):
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {list(SCORERS)}, got {self.scorer!r}")
        if not self.seeds or min(self.seeds) < 0:
            raise ValueError(f"seeds must list at least one seed >= 0, got {self.seeds}")
        names = [variant.name for variant in self.variants]
        if not names or len({Variant(n).slug for n in names}) != len(names):
            raise ValueError(f"variants need distinct names, got {names}")


def read_document(path: Path) -> dict:
    """An eval file as a dict; ``base: other.yaml`` starts from that file, applies ``set``,
    appends ``quick`` to the base's and replaces every other key given."""
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    merged = apply_overrides(read_document(path.parent / base), data.pop("set", []))
    merged["quick"] = merged.get("quick", []) + data.pop("quick", [])
    return {**merged, **data}


def load_eval_file(
    path: Path, *, quick: bool, overrides: list[str], seeds: list[int] | None
) -> EvalFile:
    """Read, apply --quick's then --set's overrides and --seeds, validate."""
    data = read_document(path)
    data = apply_overrides(data, (data.get("quick", []) if quick else []) + overrides)
    if seeds is not None:
        data["seeds"] = seeds
    return build_dataclass(EvalFile, data, path.name)


def with_attention(variants: list[Variant], kinds: list[str] | None) -> list[Variant]:
    """--attention: keep the variants that set one of these kinds; variants that set no kind
    run once per kind."""
    if not kinds:
        return variants
    chosen = []
    for variant in variants:
        setting = [o for o in variant.set if o.partition("=")[0] == "run.model.attention"]
        if setting:
            chosen += [variant] if setting[-1].partition("=")[2] in kinds else []
            continue
        for kind in kinds:
            name = kind if variant.name == "default" else f"{variant.name} {kind}"
            chosen.append(Variant(name, [*variant.set, f"run.model.attention={kind}"]))
    if not chosen:
        raise ValueError(
            f"no variant uses attention {kinds}; variants: {[v.name for v in variants]}"
        )
    return chosen
