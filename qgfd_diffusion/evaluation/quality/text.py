"""The ``text`` scorer: generated lines against held-out real lines (n-gram perplexity,
distinct-n, entropy, unknown words, length, copies) and the rounding head's round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...checks import check_int
from ...configio import ConfigError
from ...data.config import DataConfig
from ...data.splits import load_phase_data, load_source
from ..text import text_report
from .common import ScoringJob, generate

HEADLINE = (
    ("perplexity_ratio", False),
    ("distinct_1_ratio", True),
    ("distinct_2_ratio", True),
    ("entropy_ratio", True),
    ("generated_unknown_rate", False),
    ("mean_tokens_ratio", True),
    ("generated_copy_rate", False),
    ("round_trip_accuracy", True),
    ("reference_shuffled_perplexity_ratio", False),
    ("reference_frequent_perplexity_ratio", False),
    ("reference_bigram_perplexity_ratio", False),
)


@dataclass
class TextSettings:
    """phase: the text phase; num_samples: generated lines (and real validation lines scored
    alike); fit_lines: unseen real lines past the phase's data.max_items that the n-gram model
    is fitted on; ngram_order, min_count, distinct_orders: text_report's; shown_samples: lines
    printed in results.md."""

    phase: str
    num_samples: int = 500
    sample_batch: int = 250
    fit_lines: int = 20000
    ngram_order: int = 3
    min_count: int = 2
    distinct_orders: list[int] = field(default_factory=lambda: [1, 2, 3])
    shown_samples: int = 20

    def __post_init__(self):
        for name in ("num_samples", "sample_batch", "fit_lines", "ngram_order", "min_count"):
            check_int(name, getattr(self, name), 1)
        check_int("shown_samples", self.shown_samples, 0)


def unseen_lines(data: DataConfig, seed: int, count: int) -> list[str]:
    """Real lines the run never saw: the source is shuffled with the run seed and cut to
    max_items (``data.sources``), so the lines after max_items in that order are unseen."""
    if data.max_items is None:
        raise ConfigError(
            "data.max_items",
            "text scoring needs max_items so that unseen lines remain to fit the n-gram model on",
        )
    full = load_source(data, seed, limit=False)
    rest = range(data.max_items, min(len(full), data.max_items + count))
    if len(rest) == 0:
        raise ConfigError("data.max_items", f"all {len(full)} lines are used in training")
    return full.select(rest)["text"]


def score_text(job: ScoringJob) -> dict[str, Any]:
    settings = job.settings
    phase = job.phase(settings.phase)
    data = load_phase_data(phase.data, job.config.seed)
    generated = [
        line
        for chunk in generate(job, phase.name, settings.num_samples, settings.sample_batch)
        for line in chunk
    ]
    (job.eval_dir / "generated.txt").write_text("\n".join(generated) + "\n", encoding="utf-8")
    real = data.validation["text"][: settings.num_samples]
    fit_lines = unseen_lines(phase.data, job.seed, settings.fit_lines)
    report = text_report(
        generated,
        real,
        fit_lines,
        n=settings.ngram_order,
        min_count=settings.min_count,
        distinct_orders=settings.distinct_orders,
        training_lines=data.train["text"],
        seed=job.seed,
    )
    report["round_trip_accuracy"] = round_trip_accuracy(job.model.adapters[phase.name], real)
    shown = settings.shown_samples
    return {**report, "samples": {"generated": generated[:shown], "real": real[:shown]}}


def round_trip_accuracy(adapter, lines: list[str], batch: int = 250) -> float | None:
    """Token accuracy of clean latents -> rounding head -> tokens on real lines; None for a
    decoder without a token-level round trip (a seq2seq decoder)."""
    if getattr(adapter, "decode_mode", None) != "rounding":
        return None
    chunks = [lines[i : i + batch] for i in range(0, len(lines), batch)]
    accuracies = [adapter.round_trip_accuracy(chunk) for chunk in chunks]
    return sum(a * len(c) for a, c in zip(accuracies, chunks, strict=True)) / len(lines)
