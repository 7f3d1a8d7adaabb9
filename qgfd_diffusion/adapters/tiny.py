"""Tiny random encoders saved to a local folder, for offline tests and quick starts.

Each builder writes a transformers model (``save_pretrained``, safetensors) plus its tokenizer /
image processor / feature extractor, in milliseconds, so adapters load them exactly like a hub
checkpoint: ``from_pretrained(folder, use_safetensors=True)``. Weights are random (seeded): the
features are meaningless but have the right shapes, masks and plumbing. The exception is
``t5_words`` (``words``), a word-level encoder whose vectors are fitted to the given texts.

Dimension legend: D model width (``TINY_WIDTH``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .words import save_word_encoder

TINY_PREFIX = "tiny:"  # encoder_name_or_path "tiny:KIND" asks a run for a tiny KIND encoder
TINY_WIDTH = 32
TINY_HEADS = 2
TINY_FFN = 64
TINY_IMAGE_SIZE = 16
TINY_PATCH = 4
TINY_SAMPLING_RATE = 16000
# The size of the tiny BERT, ViT and Wav2Vec2 (their configs name these fields alike), and the
# dropout BERT and ViT would add (none: a tiny encoder is a deterministic feature map).
TINY_ENCODER_SIZE: dict[str, int] = {
    "hidden_size": TINY_WIDTH,
    "num_hidden_layers": 1,
    "num_attention_heads": TINY_HEADS,
    "intermediate_size": TINY_FFN,
}
NO_DROPOUT: dict[str, float] = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
T5_VOCAB_SIZE = 2000  # upper bound; small corpora give fewer pieces
T5_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2, as in t5-small
METASPACE = "\u2581"  # the word-boundary mark of SentencePiece pieces

DEFAULT_TEXTS = (
    "the cat sat on the mat",
    "a dog ran in the park",
    "query graph flow diffusion",
    "diffusion models denoise latent tokens",
    "the quick brown fox jumps over the lazy dog",
    "hello world",
)


def build_word_tokenizer(texts: Sequence[str], specials: dict[str, str], template: str) -> Any:
    """A lower-case whitespace WordLevel tokenizer trained on ``texts``, as a fast tokenizer.

    specials: {role: token}, e.g. {"pad_token": "<pad>", ...}; ids 0.. in this order, so the
              first one (padding) gets id 0. One role must be ``unk_token``.
    template: post-processing of a single sequence, e.g. ``"$A </s>"``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token=specials["unk_token"]))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=list(specials.values()))
    tokenizer.train_from_iterator(list(texts), trainer)
    used = [token for token in specials.values() if token in template.split()]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(token, tokenizer.token_to_id(token)) for token in used]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **specials)


def build_t5_tokenizer(texts: Sequence[str], vocab_size: int = T5_VOCAB_SIZE) -> Any:
    """A real ``T5Tokenizer`` (SentencePiece-style Unigram over Metaspace pieces) trained on
    ``texts``, with T5's ids: <pad> 0, </s> 1, <unk> 2; no extra_ids. Loads with
    ``T5Tokenizer.from_pretrained`` and ``AutoTokenizer.from_pretrained`` like t5-small's.

    Deterministic: the same texts give the same ``tokenizer.json`` bytes. The Unigram trainer
    (tokenizers' Rust code) chooses the pieces, but its scores vary in the last bits from run to
    run (it sums over hash maps in a random order), and the ids follow the scores. So the scores
    and the order come from ``_piece_scores``: exact counts, ties broken by the piece itself.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=list(T5_SPECIALS), unk_token="<unk>"
    )
    unigram.train_from_iterator(list(texts), trainer)
    pieces = [piece for piece in unigram.get_vocab() if piece not in T5_SPECIALS]
    specials = [(token, 0.0) for token in T5_SPECIALS]
    return T5Tokenizer(vocab=specials + _piece_scores(pieces, texts), extra_ids=0)


def _piece_scores(pieces: Sequence[str], texts: Sequence[str]) -> list[tuple[str, float]]:
    """[(piece, log relative frequency)], most frequent first, ties by piece.

    A piece's count is how often it occurs in the texts as Metaspace writes them (a word
    boundary is ``METASPACE``): integers, so the scores and their order never vary.
    """
    corpus = "\n".join(METASPACE + text.replace(" ", METASPACE) for text in texts)
    counts = {piece: max(corpus.count(piece), 1) for piece in pieces}
    log_total = math.log(sum(counts.values()))
    ordered = sorted(pieces, key=lambda piece: (-counts[piece], piece))
    return [(piece, math.log(counts[piece]) - log_total) for piece in ordered]


def _t5(out_dir: Path, texts: Sequence[str], encoder_only: bool) -> None:
    from transformers import T5Config, T5EncoderModel, T5ForConditionalGeneration

    tokenizer = build_t5_tokenizer(texts)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=TINY_WIDTH,
        d_kv=TINY_WIDTH // TINY_HEADS,
        d_ff=TINY_FFN,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=TINY_HEADS,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    model_cls = T5EncoderModel if encoder_only else T5ForConditionalGeneration
    model_cls(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _bert(out_dir: Path, texts: Sequence[str]) -> None:
    from transformers import BertConfig, BertModel

    specials = {
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
    }
    tokenizer = build_word_tokenizer(texts, specials, "[CLS] $A [SEP]")
    config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=64,
        pad_token_id=0,
        **TINY_ENCODER_SIZE,
        **NO_DROPOUT,
    )
    BertModel(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _vit(out_dir: Path) -> None:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        image_size=TINY_IMAGE_SIZE, patch_size=TINY_PATCH, **TINY_ENCODER_SIZE, **NO_DROPOUT
    )
    ViTModel(config).save_pretrained(out_dir)
    ViTImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}).save_pretrained(
        out_dir
    )


def _wav2vec2(out_dir: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(
        **TINY_ENCODER_SIZE,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        mask_time_prob=0.0,
    )
    Wav2Vec2Model(config).save_pretrained(out_dir)
    Wav2Vec2FeatureExtractor(
        sampling_rate=TINY_SAMPLING_RATE, return_attention_mask=True, do_normalize=True
    ).save_pretrained(out_dir)


_BUILDERS: dict[str, Callable[[Path, Sequence[str]], None]] = {
    "t5": lambda out, texts: _t5(out, texts, encoder_only=False),
    "t5_encoder": lambda out, texts: _t5(out, texts, encoder_only=True),
    "t5_words": save_word_encoder,
    "bert": _bert,
    "vit": lambda out, texts: _vit(out),
    "wav2vec2": lambda out, texts: _wav2vec2(out),
}
TINY_ENCODERS = tuple(_BUILDERS)
# Texts a tiny tokenizer is trained on: a subword tokenizer learns its pieces from a sample, the
# word encoder's vocabulary (words seen twice) and vectors need the whole training text.
TOKENIZER_TEXTS: dict[str, int | None] = {"t5": 5000, "t5_encoder": 5000, "bert": 5000}


def build_tiny_encoder(
    kind: str, out_dir: str | os.PathLike, seed: int = 0, texts: Sequence[str] | None = None
) -> Path:
    """Build a tiny random ``kind`` encoder (+ processor) into ``out_dir``; returns the folder.

    kind: ``t5`` (T5ForConditionalGeneration, so it has a decoder), ``t5_encoder``, ``bert``,
    ``t5_words`` (word vocabulary + PPMI-SVD word vectors, not random: ``words``), ``vit``,
    ``wav2vec2``. texts: the tokenizer's training text (text kinds; default
    ``DEFAULT_TEXTS``).
    """
    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny encoder kind {kind!r}; allowed: {list(TINY_ENCODERS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):  # seeded weights, global RNG left untouched
        torch.manual_seed(seed)
        _BUILDERS[kind](out_dir, tuple(texts) if texts is not None else DEFAULT_TEXTS)
    return out_dir
