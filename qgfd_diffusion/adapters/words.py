"""A word-level text encoder built from a corpus: word vocabulary + PPMI-SVD word vectors.

Dimension legend: V vocabulary (with the specials), K context words, D vector width,
N corpus tokens.

Diffusion over subword pieces glues pieces into non-words; over words it cannot produce one.
The encoder here is Diffusion-LM's setting (Li et al. 2022): a word's latent is its embedding,
one vector per word, and a sequence's latents are its words' vectors. It is saved as a real
transformers model, a ``T5EncoderModel`` with no layers (``T5Stack`` then returns the
RMS-normalised embeddings), with a ``WordLevel`` fast tokenizer, so the text adapter loads it
like any checkpoint and every vector has the same norm.

Vocabulary: lower-cased words (letters / digits with inner apostrophes: "o'er") and single
punctuation marks, the same split as the text referee (``evaluation.text``); words seen at
least ``min_count`` times; ``<unk>`` for the rest. Specials have T5's ids (``<pad>`` 0,
``</s>`` 1, ``<unk>`` 2); a text ends with ``</s>``.

Vectors, written by hand because no installed library builds count-based word vectors from
a token list (gensim is not a dependency): positive pointwise mutual information of words and
their neighbours within ``window`` (Levy, Goldberg & Dagan 2015: context distribution smoothed
by ``CONTEXT_POWER``), the K most frequent words as contexts, then a truncated SVD,
``W = U_D S_D^(1/2)``. Words used alike get nearby vectors, so a denoiser's small error lands on
a similar word rather than a random one. Specials, which have no contexts, get seeded random
directions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

WORD_PATTERN = r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\w\s]"  # applied to lower-cased text
WORD_SPECIALS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
WORD_WIDTH = 64  # D of the offline word encoder
MIN_COUNT = 2
WINDOW = 2  # neighbours on each side within a line
CONTEXT_WORDS = 1000  # K
CONTEXT_POWER = 0.75  # context distribution smoothing (Levy et al. 2015, section 3.1)

_WORD = re.compile(WORD_PATTERN)


def split_words(text: str) -> list[str]:
    """'O Romeo, Romeo!' -> ['o', 'romeo', ',', 'romeo', '!']."""
    return _WORD.findall(text.lower())


def build_word_tokenizer(texts: Sequence[str], min_count: int = MIN_COUNT) -> Any:
    """A ``PreTrainedTokenizerFast`` over the words seen >= ``min_count`` times in ``texts``.

    Ids: the specials first (T5's), then words by falling count, ties by the word, so the same
    texts always give the same ids. Unknown words map to ``<unk>``; every text gets ``</s>``.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    counts = Counter(word for text in texts for word in split_words(text))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    vocab = {token: i for i, token in enumerate([*WORD_SPECIALS.values(), *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=WORD_SPECIALS["unk_token"]))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(WORD_PATTERN), "isolated")]
    )
    eos = WORD_SPECIALS["eos_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", special_tokens=[(eos, vocab[eos])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, clean_up_tokenization_spaces=True, **WORD_SPECIALS
    )


def _cooccurrence(ids: list[list[int]], V: int, K: int, window: int) -> Tensor:
    """Counts #(w, c) [V,K] of word w with context word c within ``window`` in one line; the
    contexts are ids len(specials) .. len(specials) + K - 1 (the K most frequent words)."""
    longest = max(len(line) for line in ids)
    padded = torch.full((len(ids), longest + window), -1, dtype=torch.long)  # [lines, T]
    for row, line in enumerate(ids):
        padded[row, : len(line)] = torch.tensor(line, dtype=torch.long)
    counts = torch.zeros(V * K, dtype=torch.float64)
    for offset in range(1, window + 1):  # each pair (a, b) at distance `offset`, both ways
        a, b = padded[:, :-offset].reshape(-1), padded[:, offset:].reshape(-1)
        for w, c in ((a, b), (b, a)):
            c = c - len(WORD_SPECIALS)
            keep = (w >= 0) & (c >= 0) & (c < K)
            counts.index_add_(0, w[keep] * K + c[keep], torch.ones(int(keep.sum())).double())
    return counts.view(V, K)


def ppmi(counts: Tensor, power: float = CONTEXT_POWER) -> Tensor:
    """PPMI(w, c) = max(log p(w, c) / (p(w) p_power(c)), 0) of counts [V,K] -> [V,K]."""
    total = counts.sum()
    p_wc = counts / total
    p_w = counts.sum(1, keepdim=True) / total  # [V,1]
    smoothed = counts.sum(0) ** power
    p_c = (smoothed / smoothed.sum())[None, :]  # [1,K]
    pmi = torch.log(p_wc / (p_w * p_c))
    return torch.nan_to_num(pmi, nan=0.0, neginf=0.0).clamp_min(0.0)


def svd_vectors(matrix: Tensor, width: int) -> Tensor:
    """U_D S_D^(1/2) of matrix [V,K] -> [V,D], from the eigen-decomposition of M^T M [K,K]
    (exact, and cheap for K << V); each column's sign fixed so its largest entry is positive."""
    eigenvalues, right = torch.linalg.eigh(matrix.T @ matrix)  # ascending
    top = right[:, -width:].flip(-1)  # [K,D]
    singular = eigenvalues[-width:].flip(-1).clamp_min(0).sqrt()  # [D]
    left = matrix @ top / singular.clamp_min(1e-12)  # U_D [V,D]
    left = left * torch.sign(left.gather(0, left.abs().argmax(0, keepdim=True)))
    return left * singular.sqrt()


def word_vectors(
    texts: Sequence[str], tokenizer: Any, width: int = WORD_WIDTH, seed: int = 0
) -> Tensor:
    """PPMI-SVD vectors [V, D] for the tokenizer's words; seeded random rows for specials and
    for words with no context counts."""
    V = len(tokenizer)
    K = min(CONTEXT_WORDS, V - len(WORD_SPECIALS))
    if K < 1:
        raise ValueError(f"no word is seen {MIN_COUNT} times in the {len(texts)} texts")
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    counts = _cooccurrence(ids, V, K, WINDOW)
    rank = min(width, K)  # a tiny corpus has fewer context words than D: the rest stay 0
    vectors = torch.zeros(V, width, dtype=torch.float64)
    vectors[:, :rank] = svd_vectors(ppmi(counts), rank)  # [V,D]
    gen = torch.Generator().manual_seed(seed)
    scale = vectors.norm(dim=1).mean().clamp_min(1e-6) / width**0.5
    random_rows = torch.randn(V, width, generator=gen, dtype=torch.float64) * scale
    no_context = counts.sum(1) == 0
    no_context[: len(WORD_SPECIALS)] = True
    return torch.where(no_context[:, None], random_rows, vectors).float()


def save_word_encoder(
    out_dir: Path, texts: Sequence[str], width: int = WORD_WIDTH, seed: int = 0
) -> None:
    """Write the word tokenizer and a layer-free ``T5EncoderModel`` holding the word vectors."""
    from transformers import T5Config, T5EncoderModel

    tokenizer = build_word_tokenizer(texts)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=width,
        d_kv=width,
        d_ff=width,
        num_layers=0,  # the encoder's output is the RMS-normalised word vector
        num_heads=1,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
    )
    model = T5EncoderModel(config)
    with torch.no_grad():
        model.shared.weight.copy_(word_vectors(texts, tokenizer, width, seed))
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
