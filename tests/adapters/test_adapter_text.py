"""Text adapter on tiny T5 (with and without decoder) and tiny BERT, all offline."""

import pytest
import torch

from qgfd_diffusion.adapters import TextAdapter, TextAdapterConfig, load_adapter

KINDS = ["t5", "t5_encoder", "bert"]


def make(tiny_dir, kind, **options) -> TextAdapter:
    return TextAdapter(TextAdapterConfig(encoder_name_or_path=str(tiny_dir(kind)), **options))


@pytest.mark.parametrize("kind", KINDS)
def test_encode_shapes_mask_layout(tiny_dir, texts, kind):
    adapter = make(tiny_dir, kind)
    batch = adapter.encode(texts)
    B, L = len(texts), batch.latents.shape[1]
    assert batch.latents.shape == (B, L, adapter.latent_dim)
    assert batch.mask.dtype == torch.bool and batch.mask.shape == (B, L)
    assert batch.layout.kind == "sequence" and batch.layout.shape == (L,)
    assert torch.isfinite(batch.latents).all()
    lengths = batch.mask.sum(1)
    assert lengths.max() == L and lengths.min() < L  # padding is masked out
    assert (batch.latents[~batch.mask] == 0).all()  # and zeroed
    single = adapter.encode(texts[-1:])  # latents do not depend on the batch's padding
    n = single.latents.shape[1]
    torch.testing.assert_close(single.latents[0], batch.latents[-1, :n], atol=1e-5, rtol=1e-5)


def test_t5_loads_encoder_only_or_seq2seq(tiny_dir):
    from transformers import T5EncoderModel, T5ForConditionalGeneration

    assert isinstance(make(tiny_dir, "t5").pretrained, T5ForConditionalGeneration)
    encoder_only = make(tiny_dir, "t5_encoder")
    assert isinstance(encoder_only.pretrained, T5EncoderModel)
    assert encoder_only.decode_mode == "rounding"
    rounding = make(tiny_dir, "t5", decoder="rounding")
    assert isinstance(rounding.pretrained, T5EncoderModel)
    with pytest.raises(ValueError, match="has no decoder"):
        make(tiny_dir, "bert", decoder="seq2seq")


@pytest.mark.parametrize("kind", KINDS)
def test_encoder_is_frozen(tiny_dir, texts, kind, assert_frozen_upstream):
    assert_frozen_upstream(make(tiny_dir, kind), texts)


@pytest.mark.parametrize("kind", ["t5_encoder", "bert"])
def test_stats_normalise_fitted_data(tiny_dir, texts, kind, assert_unit_stats):
    adapter = make(tiny_dir, kind).fit_latent_stats([texts[:3], texts[3:]])
    batch = adapter.encode(texts)
    assert_unit_stats(batch.latents, batch.mask)


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(tiny_dir, texts, tmp_path, kind):
    adapter = make(tiny_dir, kind, latent_dim=8, projection="orthogonal").fit_latent_stats([texts])
    if adapter.decoder_parameters():
        adapter.fit_decoder([texts], steps=3)
    adapter.save_pretrained(tmp_path / "saved")
    loaded = load_adapter(tmp_path / "saved")
    assert isinstance(loaded, TextAdapter) and loaded.decode_mode == adapter.decode_mode
    assert torch.equal(loaded.encode(texts).latents, adapter.encode(texts).latents)
    if adapter.decoder_parameters():
        x0 = adapter.encode(texts)
        assert loaded.decode(x0.latents, x0.mask) == adapter.decode(x0.latents, x0.mask)


@pytest.mark.parametrize("kind", ["t5_encoder", "bert"])
def test_rounding_head_learns_to_reconstruct(tiny_dir, texts, kind):
    adapter = make(tiny_dir, kind).fit_latent_stats([texts])
    before = adapter.encode(texts).latents
    losses = adapter.fit_decoder([texts], steps=150, lr=1e-2)
    assert losses[-1] < 0.2 * losses[0]
    x0 = adapter.encode(texts)
    assert torch.equal(x0.latents, before)  # fitting the head never moves the latents
    decoded = adapter.decode(x0.latents, x0.mask)
    assert sum(d == t for d, t in zip(decoded, texts, strict=True)) >= len(texts) - 1


def test_untrained_rounding_head_refuses_to_decode(tiny_dir, texts):
    adapter = make(tiny_dir, "bert")
    assert not adapter.can_decode
    with pytest.raises(RuntimeError, match="fit_decoder"):
        adapter.decode(adapter.encode(texts).latents)


def test_seq2seq_decoder_generates_from_latents(tiny_dir, texts):
    adapter = make(tiny_dir, "t5", max_length=4).fit_latent_stats([texts])
    assert adapter.can_decode
    x0 = adapter.encode(texts[:2])
    decoded = adapter.decode(x0.latents, x0.mask)
    assert (
        isinstance(decoded, list) and len(decoded) == 2 and all(isinstance(d, str) for d in decoded)
    )


def test_decoder_none_is_not_decodable(tiny_dir, texts):
    adapter = make(tiny_dir, "bert", decoder="none")
    with pytest.raises(NotImplementedError, match="decoder='none'"):
        adapter.decode(adapter.encode(texts).latents)


@pytest.mark.parametrize("kind", ["t5", "bert"])
def test_condition_tokens_do_not_depend_on_target(tiny_dir, texts, kind):
    adapter = make(tiny_dir, kind).fit_latent_stats([texts])
    prompts = ["hello world", "the cat"]
    a = adapter.encode({"text": texts[:2], "prompt": prompts})
    b = adapter.encode({"text": texts[2:4], "prompt": prompts})
    assert not torch.equal(a.latents[:, :3], b.latents[:, :3])
    assert torch.equal(a.cond_tokens, b.cond_tokens) and torch.equal(a.cond_mask, b.cond_mask)
    tokens, mask = adapter.encode_condition(prompts)
    assert torch.equal(tokens, a.cond_tokens) and torch.equal(mask, a.cond_mask)
    assert adapter.encode(texts[:2]).cond_tokens is None


def test_pca_projection_keeps_top_variance(tiny_dir, texts, assert_unit_stats):
    adapter = make(tiny_dir, "bert", latent_dim=4, projection="pca").fit_latent_stats([texts])
    q = adapter.projection
    assert q.shape == (32, 4) and torch.allclose(q.T @ q, torch.eye(4), atol=1e-4)
    batch = adapter.encode(texts)
    assert batch.latents.shape[-1] == 4
    assert_unit_stats(batch.latents, batch.mask)


def test_bad_text_batches(tiny_dir):
    adapter = make(tiny_dir, "bert")
    with pytest.raises(ValueError, match="'text'"):
        adapter.encode({"txt": ["a"]})
    with pytest.raises(ValueError, match="2 texts but 1 prompts"):
        adapter.encode({"text": ["a", "b"], "prompt": ["c"]})
    with pytest.raises(ValueError, match="non-empty list of strings"):
        adapter.encode([])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TextAdapter(TextAdapterConfig(encoder_name_or_path="/nonexistent/t5"))
