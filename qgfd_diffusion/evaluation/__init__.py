"""Offline quality scoring of generated samples against real held-out data.

Metric functions (they train only the small scoring models: digit classifier, n-gram model):
    digits   a small CNN digit classifier: class accuracy of generated digits and the feature
             space for a Frechet distance (`digit_report` gives both plus the real floor)
    frechet  Frechet distance between feature sets (FID formula) and its real-vs-real floor
    tabular  TabDDPM machine-learning efficiency (train on synthetic, test on real)
    text     interpolated Kneser-Ney n-gram perplexity and distinct-n (`text_report`)
    video    Moving MNIST clips read frame by frame by the digit classifier, motion against a
             bouncing path, per-frame FD over the floor (`video.video_report`)
    audio    log-mel FD over the floor, energy above 4 kHz (`audio.audio_report`), nearness to
             the training clips (`audio.copy_report`), and the mel adapter's round trip
             (`audio.mel_round_trip`)
    gmrf     the exact Bayes denoiser of GMRF graph signals, and whitening to score samples

The scorers that sample a trained run and score it with these live in the subpackage
`qgfd_diffusion.evaluation.quality` (`SCORERS`); the harness that trains the runs from eval files
sits beside its command line, benchmarks/quality.py (benchmarks/harness/). Data comes from
`qgfd_diffusion.data`; nothing here imports `qgfd_diffusion.train`.
"""

from .digits import (
    DigitClassifier,
    DigitClassifierConfig,
    DigitTrainingConfig,
    class_accuracy,
    digit_report,
    train_digit_classifier,
)
from .frechet import (
    frechet_distance,
    frechet_distance_from_statistics,
    gaussian_statistics,
    random_halves,
    real_vs_real_floor,
)
from .tabular import CLASSIFIERS, ml_efficiency
from .text import NgramModel, distinct_n, text_report, tokenize

__all__ = [
    "CLASSIFIERS",
    "DigitClassifier",
    "DigitClassifierConfig",
    "DigitTrainingConfig",
    "NgramModel",
    "class_accuracy",
    "digit_report",
    "distinct_n",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "gaussian_statistics",
    "ml_efficiency",
    "random_halves",
    "real_vs_real_floor",
    "text_report",
    "tokenize",
    "train_digit_classifier",
]
