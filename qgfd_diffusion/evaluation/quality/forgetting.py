"""The ``forgetting`` scorer: an earlier phase's validation loss before and after a later phase
trained on the same backbone (continual learning, with or without replay)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .common import ScoringJob

HEADLINE = (
    ("loss_before", False),
    ("loss_after", False),
    ("forgetting", False),
    ("relative_forgetting", False),
    ("later_phase_loss", False),
)


@dataclass
class ForgettingSettings:
    """phase: the phase whose validation loss is watched; later_phase: the phase after which it
    is measured again (validation.jsonl: after every phase, every earlier phase's loss)."""

    phase: str
    later_phase: str


def score_forgetting(job: ScoringJob) -> dict[str, Any]:
    settings = job.settings
    later = job.phase(settings.later_phase)
    job.phase(settings.phase)
    lines = (job.run_dir / "validation.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    loss = {(row["after_phase"], row["phase"]): row["loss"] for row in rows}
    before, after = loss[settings.phase, settings.phase], loss[later.name, settings.phase]
    return {
        "loss_before": before,
        "loss_after": after,
        "forgetting": after - before,
        "relative_forgetting": (after - before) / before,
        "later_phase_loss": loss[later.name, later.name],
        "replay_every": later.replay_every if later.replay_phase == settings.phase else 0,
    }
