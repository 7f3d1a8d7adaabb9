"""The quality scorers: each samples a trained run and scores the samples against real held-out
data with the metrics of ``qgfd_diffusion.evaluation``.

registry    ``SCORERS`` by name (the eval files' ``scorer`` key) and ``Scorer``
common      what every scorer shares: ``ScoringJob`` (the run it reads), ``generate``, the
            digit classifier
digits, table, text, forgetting, graph, video, audio
            one scorer each: ``<Key>Settings``, ``score_<key>``, ``HEADLINE``

The harness that trains the runs from eval files and reports the scores sits beside its
command line, benchmarks/quality.py (benchmarks/harness/).
"""

from .audio import AudioSettings, score_audio
from .common import ScoringJob, digit_arrays, digit_classifier, generate
from .digits import DigitsSettings, score_digits
from .forgetting import ForgettingSettings, score_forgetting
from .graph import GraphSettings, score_graph
from .registry import SCORERS, Scorer
from .table import TableSettings, score_table
from .text import TextSettings, score_text
from .video import VideoSettings, score_video

__all__ = [
    "SCORERS",
    "AudioSettings",
    "DigitsSettings",
    "ForgettingSettings",
    "GraphSettings",
    "Scorer",
    "ScoringJob",
    "TableSettings",
    "TextSettings",
    "VideoSettings",
    "digit_arrays",
    "digit_classifier",
    "generate",
    "score_audio",
    "score_digits",
    "score_forgetting",
    "score_graph",
    "score_table",
    "score_text",
    "score_video",
]
