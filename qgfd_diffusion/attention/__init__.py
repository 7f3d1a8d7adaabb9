"""QGFD attention: the functional kernel, its transitions, modules and integrations."""

from .functional import build_transition, diffuse_values, qgfd_attention
from .reference import naive_qgfd_attention

__all__ = ["build_transition", "diffuse_values", "naive_qgfd_attention", "qgfd_attention"]
