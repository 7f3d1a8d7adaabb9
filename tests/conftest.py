import copy
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


def perturb(module, seed):
    """Move weights off the adaLN-Zero init (a fresh backbone predicts exactly zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return module


@pytest.fixture(scope="session")
def saved_pipeline(tiny_dir, tmp_path_factory):
    """(folder, model, ema): a two-modality model (class-conditional digits, unconditional text
    with a fitted rounding head) saved as a pipeline folder with distinct live and EMA weights."""
    from qgfd_diffusion import DiffusionConfig, QGFDPipeline, SharedQGFDDiffusionModel
    from qgfd_diffusion.adapters import (
        PatchImageAdapter,
        PatchImageConfig,
        TextAdapter,
        TextAdapterConfig,
    )

    torch.manual_seed(0)
    digits = PatchImageAdapter(
        PatchImageConfig(image_size=8, patch_size=4, channels=1, num_classes=3)
    )
    digits.fit_latent_stats([torch.rand(8, 1, 8, 8)])
    text = TextAdapter(
        TextAdapterConfig(
            encoder_name_or_path=str(tiny_dir("t5")), max_length=8, decoder="rounding"
        )
    )
    lines = ["to be or not to be", "a rose by any other name", "all the world's a stage"]
    text.fit_latent_stats([lines])
    text.fit_decoder([lines], steps=5)
    cfg = DiffusionConfig(
        d_model=32, num_heads=4, num_layers=1, d_ff=64, latent_dim=32, cond_dim=8, num_timesteps=50
    )
    model = SharedQGFDDiffusionModel(cfg, adapters={"digits": digits, "text": text})
    model.encode("digits", {"images": torch.rand(2, 1, 8, 8), "labels": torch.tensor([0, 1])})
    model.encode("text", lines)
    perturb(model.backbone, 1)
    ema = perturb(copy.deepcopy(model.backbone), 2)
    folder = tmp_path_factory.mktemp("pipeline") / "final"
    QGFDPipeline.from_model(model, backbone_ema=ema).save_pretrained(folder)
    return folder, model, ema


# ------------------------------------------------------------------------- a throwaway modality
SMELL = "smell"  # the modality's name, and the adapter's registry name
SMELL_LETTERS = 4  # L: a smell is a word of up to 4 letters, one latent token per letter


def _decode_smells(rows: dict[str, list]) -> dict[str, list]:
    """Hub / files rows -> the smell schema: stripped, lower-case words."""
    return {"smell": [word.strip().lower() for word in rows["smell"]]}


def _collate_smells(examples: list[dict]) -> list[str]:
    return [example["smell"] for example in examples]


def _write_smells(out_dir, decoded, options) -> list:
    path = out_dir / "smells.txt"
    path.write_text(" ".join(decoded))
    return [path]


def _smell_output(decoded: list[str], output_type: str):
    import numpy as np

    return np.asarray(decoded) if output_type == "np" else decoded


@pytest.fixture(scope="session")
def smell_class():
    """A throwaway modality declared in full, not registered: a smell is a word, its latents
    the word's letters a..z as 1/26 .. 1 (0 pads), one token each."""
    from qgfd_diffusion.adapters import AdapterConfig, DataSchema, ModalityAdapter
    from qgfd_diffusion.latents import LatentBatch, LatentLayout

    class SmellAdapter(ModalityAdapter):
        modality = SMELL
        condition_kind = None
        schema = DataSchema(column="smell", decode=_decode_smells)
        collate = staticmethod(_collate_smells)
        writer = staticmethod(_write_smells)
        output_field = "smells"
        convert_output = staticmethod(_smell_output)

        def __init__(self, config: AdapterConfig | None = None):
            super().__init__(config or AdapterConfig())
            self._init_latent_stats(1)

        def encode_features(self, batch: list[str]) -> LatentBatch:
            codes = [[ord(c) - ord("a") + 1 for c in word[:SMELL_LETTERS]] for word in batch]
            z = torch.zeros(len(batch), SMELL_LETTERS, 1)  # [B, L, C=1]
            for row, letters in enumerate(codes):
                z[row, : len(letters), 0] = torch.tensor(letters, dtype=torch.float32) / 26
            return LatentBatch(latents=z, layout=LatentLayout("sequence", (SMELL_LETTERS,)))

        @property
        def can_decode(self) -> bool:
            return True

        def decode_features(self, z, mask=None) -> list[str]:
            codes = (z[..., 0] * 26).round().clamp(0, 26).long()  # [B, L]
            return ["".join(chr(ord("a") + c - 1) for c in row if c > 0) for row in codes.tolist()]

    return SmellAdapter


@pytest.fixture()
def smell(smell_class):
    """The throwaway modality registered as "smell" for one test, unregistered afterwards."""
    from qgfd_diffusion.adapters import ADAPTERS, register_adapter, unregister_adapter

    yield register_adapter(SMELL)(smell_class)
    if SMELL in ADAPTERS:
        unregister_adapter(SMELL)
