"""The word-level text encoder (tiny:t5_words) and the text adapter's token-committing options."""

import json

import pytest
import torch

from qgfd_diffusion.adapters import TextAdapter, TextAdapterConfig, build_tiny_encoder
from qgfd_diffusion.adapters.words import (
    build_word_tokenizer,
    ppmi,
    split_words,
    svd_vectors,
    word_vectors,
)
from qgfd_diffusion.evaluation.text import tokenize

CORPUS = [
    "the king is dead , long live the king !",
    "the queen is here , and the king is gone .",
    "my lord , the queen is dead .",
    "long live the queen , my lord !",
    "o'er the hills the king rode , and the queen slept .",
    "my king , my queen , my lord .",
    "the hills are long , the night is dead .",
    "and the lord rode o'er the hills .",
] * 3


@pytest.fixture(scope="module")
def words_dir(tmp_path_factory):
    return build_tiny_encoder("t5_words", tmp_path_factory.mktemp("words"), texts=CORPUS)


def make(folder, **options) -> TextAdapter:
    config = TextAdapterConfig(encoder_name_or_path=str(folder), decoder="rounding", **options)
    return TextAdapter(config)


def test_vocabulary_words_seen_twice_punctuation_and_unk():
    tokenizer = build_word_tokenizer(["a b b c", "c d d ."])
    vocab = tokenizer.get_vocab()
    assert set(vocab) == {"<pad>", "</s>", "<unk>", "b", "c", "d"}  # a, . seen once
    assert [vocab[t] for t in ("<pad>", "</s>", "<unk>")] == [0, 1, 2]
    ids = tokenizer("B, a c")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["b", "<unk>", "<unk>", "c", "</s>"]


def test_word_split_is_the_referees():
    line = "O'er the hills, Romeo! 'Tis 3 o'clock -- well?"
    assert split_words(line) == tokenize(line)


def test_tokenizer_is_deterministic_and_loads_like_a_checkpoint(tmp_path):
    from transformers import AutoTokenizer

    first, second = build_word_tokenizer(CORPUS), build_word_tokenizer(list(CORPUS))
    first.save_pretrained(tmp_path / "a")
    second.save_pretrained(tmp_path / "b")
    a, b = ((tmp_path / d / "tokenizer.json").read_bytes() for d in ("a", "b"))
    assert a == b
    loaded = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert loaded("the king")["input_ids"] == first("the king")["input_ids"]


def test_ppmi_matches_the_formula():
    counts = torch.tensor([[4.0, 0.0, 1.0], [2.0, 3.0, 0.0]], dtype=torch.float64)
    power, total = 0.75, counts.sum()
    smoothed = counts.sum(0) ** power
    expected = torch.zeros_like(counts)
    for w in range(2):
        for c in range(3):
            if counts[w, c] > 0:
                p_wc = counts[w, c] / total
                p_w = counts[w].sum() / total
                p_c = smoothed[c] / smoothed.sum()
                expected[w, c] = max(torch.log(p_wc / (p_w * p_c)).item(), 0.0)
    torch.testing.assert_close(ppmi(counts, power), expected)


def test_svd_vectors_are_u_sqrt_s():
    matrix = torch.randn(30, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    vectors = svd_vectors(matrix, 5)
    U, S, _ = torch.linalg.svd(matrix, full_matrices=False)
    expected = U[:, :5] * S[:5].sqrt()
    torch.testing.assert_close(vectors.abs(), expected.abs(), atol=1e-8, rtol=1e-6)


def test_similar_words_get_similar_vectors():
    tokenizer = build_word_tokenizer(CORPUS)
    vectors = torch.nn.functional.normalize(word_vectors(CORPUS, tokenizer, width=8), dim=1)
    ids = tokenizer.convert_tokens_to_ids
    same_role = vectors[ids("king")] @ vectors[ids("queen")]
    other_role = vectors[ids("king")] @ vectors[ids(",")]
    assert same_role > other_role


def test_latents_are_per_word_and_round_trip_exactly(words_dir):
    adapter = make(words_dir, max_length=16, learn_length=True)
    adapter.fit_latent_stats([CORPUS[:8], CORPUS[8:16]])
    adapter.fit_decoder([CORPUS[:8], CORPUS[8:]], steps=300, lr=0.05)
    batch = adapter.encode(["the king is dead", "dead is the king"])
    assert batch.mask.all() and batch.latents.shape[1] == 16  # padded, padding is content
    torch.testing.assert_close(batch.latents[0, 1], batch.latents[1, 3])  # "king", any context
    assert adapter.round_trip_accuracy(CORPUS) == 1.0
    assert adapter.decode(batch.latents) == ["the king is dead", "dead is the king"]


def test_decode_stops_at_the_first_end_token(words_dir):
    adapter = make(words_dir, max_length=16, learn_length=True)
    adapter.fit_latent_stats([CORPUS])
    adapter.fit_decoder([CORPUS], steps=300, lr=0.05)
    tok = adapter.tokenizer
    ids = tok.convert_tokens_to_ids(["the", "king", "</s>", "<pad>", "queen", "<pad>", "lord", "."])
    x0 = adapter.normalise(adapter._token_features(torch.tensor([ids]), torch.ones(1, 8))[0])
    assert adapter.decode(x0) == ["the king"]
    plain = make(words_dir, max_length=16)  # without learn_length every real token is decoded
    plain.load_state_dict(adapter.state_dict())
    assert plain.decode(x0) == ["the king queen lord."]


def test_unknown_words_stay_visible(words_dir):
    adapter = make(words_dir, max_length=16, learn_length=True)
    with_unknown = [*CORPUS, "the yak and the gnu rode ."]  # words the vocabulary lacks
    adapter.fit_latent_stats([with_unknown])
    adapter.fit_decoder([with_unknown], steps=300, lr=0.05)
    decoded = adapter.decode(adapter.encode(["the zebra is dead"]).latents)
    assert decoded == ["the <unk> is dead"]
    assert tokenize(decoded[0]) == ["the", "<unk>", "is", "dead"]


def test_clamping_snaps_to_the_nearest_tokens(words_dir):
    adapter = make(words_dir, max_length=12, learn_length=True)
    adapter.fit_latent_stats([CORPUS])
    adapter.fit_decoder([CORPUS], steps=300, lr=0.05)
    clean = adapter.encode(CORPUS[:4]).latents
    torch.testing.assert_close(adapter.clamp_latents(clean), clean, atol=1e-5, rtol=1e-5)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(adapter.clamp_latents(noisy), clean, atol=1e-5, rtol=1e-5)


def test_noised_head_fitting_reads_noisy_latents_better(words_dir):
    """Both heads start at the nearest-word rule; fitted on noised latents (TEncDM) the head
    learns what a heavily noised latent most likely was, and reads such latents better."""
    accuracies = {}
    for noise in (0.0, 2.0):
        torch.manual_seed(0)
        adapter = make(words_dir, max_length=12, decoder_noise=noise)
        adapter.fit_latent_stats([CORPUS])
        adapter.fit_decoder([CORPUS], steps=400, lr=0.05)
        batch = adapter.encode(CORPUS[:8])
        gen = torch.Generator().manual_seed(1)
        hits = []
        for _ in range(20):
            x0 = batch.latents + 2.5 * torch.randn(batch.latents.shape, generator=gen)
            ids = adapter.decoder_head(adapter.denormalise(x0)).argmax(-1)
            hits.append((ids == batch.tokens)[batch.mask].float().mean())
        accuracies[noise] = torch.stack(hits).mean().item()
    assert accuracies[2.0] > accuracies[0.0] + 0.05


def test_token_loss_reaches_x0_hat_not_the_head(words_dir):
    adapter = make(words_dir, max_length=12, learn_length=True, rounding_loss_weight=0.5)
    adapter.fit_latent_stats([CORPUS])
    adapter.fit_decoder([CORPUS], steps=50, lr=0.05)
    batch = adapter.encode(CORPUS[:3])
    x0_hat = batch.latents.clone().requires_grad_(True)
    per_sample = adapter.token_loss(x0_hat, batch)
    assert per_sample.shape == (3,) and torch.isfinite(per_sample).all()
    logits = adapter.decoder_head(adapter.denormalise(batch.latents))
    ce = torch.nn.functional.cross_entropy(logits[0], batch.tokens[0])
    torch.testing.assert_close(per_sample[0], 0.5 * ce)
    per_sample.sum().backward()
    assert x0_hat.grad.abs().sum() > 0
    assert all(p.grad is None for p in adapter.decoder_head.parameters())
    assert make(words_dir, max_length=12).token_loss(x0_hat, batch) is None  # weight 0: none


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_length": 1}, "max_length"),
        ({"decoder_noise": -0.1}, "decoder_noise"),
        ({"rounding_loss_weight": 1.0, "decoder": "none"}, "rounding"),
    ],
)
def test_bad_options_name_the_field(tmp_path, options, message):
    options = {"encoder_name_or_path": str(tmp_path), **options}
    with pytest.raises(ValueError, match=message):
        TextAdapterConfig(**options)


def test_saved_adapter_keeps_the_options(words_dir, tmp_path):
    adapter = make(words_dir, max_length=12, learn_length=True, decoder_hidden=16)
    adapter.fit_latent_stats([CORPUS])
    adapter.fit_decoder([CORPUS], steps=20, lr=0.05)
    adapter.save_pretrained(tmp_path)
    meta = json.loads((tmp_path / "adapter_config.json").read_text())
    assert meta["config"]["learn_length"] is True and meta["config"]["decoder_hidden"] == 16
    loaded = TextAdapter.from_pretrained(tmp_path)
    x0 = adapter.encode(CORPUS[:2]).latents
    assert loaded.decode(x0) == adapter.decode(x0)
