"""QGFD attention: the functional kernel, its transitions, modules and integrations."""

from .functional import build_transition, diffuse_values, qgfd_attention
from .kernels import (
    ATTENTION_KINDS,
    AttentionKernel,
    DIFFormerKernel,
    HeatKernel,
    QGFDKernel,
    SDPAKernel,
    make_attention_kernel,
    set_qgfd_step,
)
from .layer import QGFDLayer, transition_from_networkx
from .multihead import MultiheadAttention, QGFDMultiheadAttention, make_attention
from .reference import naive_qgfd_attention

# The transformers integration imports transformers; load it on first use only.
_HF_NAMES = (
    "MultiHeadQGFDLayer",
    "QGFDSettings",
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
    "SDPAKernel",
    "build_transition",
    "diffuse_values",
    "make_attention",
    "make_attention_kernel",
    "naive_qgfd_attention",
    "qgfd_attention",
    "set_qgfd_step",
    "transition_from_networkx",
]
