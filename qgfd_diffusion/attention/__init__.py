"""QGFD attention: the functional kernel, its transitions, options, modules and integrations."""

from .functional import build_transition, diffuse_values, qgfd_attention
from .kernels import (
    ATTENTION_KINDS,
    AttentionKernel,
    DIFFormerKernel,
    HeatKernel,
    QGFDKernel,
    SDPAKernel,
    make_attention_kernel,
)
from .layer import QGFDLayer, transition_from_networkx
from .multihead import MultiheadAttention, QGFDMultiheadAttention, make_attention
from .options import PROTOTYPE_ALIASES, QGFDOptions, canonical_qgfd_keys, qgfd_options
from .reference import naive_qgfd_attention
from .state import QGFDState, set_qgfd_step

# The transformers integration imports transformers; load it on first use only.
_HF_NAMES = (
    "HF_QGFD_DEFAULTS",
    "MultiHeadQGFDLayer",
    "QGFDStepCallback",
    "register_qgfd_attention",
    "wrap_model_with_qgfd",
)


def __getattr__(name):
    if name in _HF_NAMES:
        from . import hf

        return getattr(hf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    *_HF_NAMES,
    "ATTENTION_KINDS",
    "AttentionKernel",
    "DIFFormerKernel",
    "HeatKernel",
    "MultiheadAttention",
    "QGFDKernel",
    "QGFDLayer",
    "QGFDMultiheadAttention",
    "QGFDOptions",
    "QGFDState",
    "SDPAKernel",
    "PROTOTYPE_ALIASES",
    "build_transition",
    "canonical_qgfd_keys",
    "diffuse_values",
    "make_attention",
    "make_attention_kernel",
    "naive_qgfd_attention",
    "qgfd_attention",
    "qgfd_options",
    "set_qgfd_step",
    "transition_from_networkx",
]
