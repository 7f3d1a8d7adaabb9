import os

import pytest
import torch

# Tests never reach a model hub: tiny models are built from configs and saved locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tiny models gain nothing from threads; one keeps the suite fast on a 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """tiny_dir(kind) -> folder of a tiny random encoder of that kind (built once a session)."""
    from qgfd_diffusion.adapters import build_tiny_encoder

    built = {}

    def get(kind: str):
        if kind not in built:
            built[kind] = build_tiny_encoder(kind, tmp_path_factory.mktemp(kind), seed=0)
        return built[kind]

    return get
