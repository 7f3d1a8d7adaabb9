"""The scorers by name (``SCORERS``), for the eval files' ``scorer`` key: one module each.

Every scorer module names itself after its key and declares ``<Key>Settings`` (the dataclass
of the eval file's ``eval`` section), ``score_<key>(job)`` (a trained run -> its figures) and
``HEADLINE`` (the figures in the tables and plots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import audio, digits, forgetting, graph, table, text, video
from .common import ScoringJob


@dataclass(frozen=True)
class Scorer:
    """settings: the dataclass of the file's `eval` section; headline: metrics in the tables
    and plots (name, higher is better)."""

    settings: type
    score: Callable[[ScoringJob], dict[str, Any]]
    headline: tuple[tuple[str, bool], ...]


SCORERS: dict[str, Scorer] = {
    "digits": Scorer(digits.DigitsSettings, digits.score_digits, digits.HEADLINE),
    "table": Scorer(table.TableSettings, table.score_table, table.HEADLINE),
    "text": Scorer(text.TextSettings, text.score_text, text.HEADLINE),
    "forgetting": Scorer(
        forgetting.ForgettingSettings, forgetting.score_forgetting, forgetting.HEADLINE
    ),
    "graph": Scorer(graph.GraphSettings, graph.score_graph, graph.HEADLINE),
    "video": Scorer(video.VideoSettings, video.score_video, video.HEADLINE),
    "audio": Scorer(audio.AudioSettings, audio.score_audio, audio.HEADLINE),
}
