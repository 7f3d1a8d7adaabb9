"""Text adapter: a frozen T5 (or any transformers text encoder) -> token latents.

Dimension legend: B batch, L tokens, D encoder width, C latent channels, V vocabulary size,
Lc prompt (condition) tokens.

Latents are the encoder's last hidden states [B,L,D] (optionally through the fixed projection of
``PretrainedEncoderAdapter``) with the tokenizer's attention mask as latent mask; layout
``sequence``. Checkpoints are loaded encoder-only where possible: T5-family checkpoints without a
decoder load as ``T5EncoderModel`` (``AutoModel`` would build a random decoder, DESIGN.md 7).

Decoding, ``TextAdapterConfig.decoder``:
  ``seq2seq``  the checkpoint's own decoder generates from encoder-state latents
               (``generate(encoder_outputs=...)``). A pretrained T5 was trained on span
               corruption, not reconstruction, so it paraphrases / continues rather than copies.
  ``rounding`` a linear head z -> V logits fitted by cross-entropy on (encoder states, tokens)
               with ``fit_decoder``; argmax per real token (Diffusion-LM's rounding step).
  ``auto``     ``seq2seq`` when the checkpoint has a decoder, else ``rounding``.
  ``none``     no decoding.

Conditioning (``condition_kind`` "prompt"): pass ``{"text": [...], "prompt": [...]}``; the
prompts are encoded separately into condition tokens. The sequence being denoised never feeds
its own condition (no target leakage).

Data and files: ``collate_text`` turns the data layer's examples ``{"text": str}`` into a list of
strings; ``write_text`` writes decoded texts to ``samples.txt``, one sample a line (UTF-8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..latents import LatentBatch, LatentLayout
from .base import EncoderAdapterConfig, PretrainedEncoderAdapter
from .files import WriteOptions, check_nonempty
from .registry import register_adapter

TextBatch = str | Sequence[str] | Mapping[str, Sequence[str]]
TextDecoder = Literal["auto", "seq2seq", "rounding", "none"]

# Encoder-only classes of T5-family checkpoints (never AutoModel, which adds a random decoder).
_T5_ENCODER_CLASSES = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}
_TEXT_KEYS = ("text", "prompt")
TEXT_NAME = "samples.txt"


@dataclass(kw_only=True)
class TextAdapterConfig(EncoderAdapterConfig):
    """max_length: tokens kept per text (truncation); also the generation budget.
    decoder: how ``decode`` works, see the module docstring."""

    max_length: int = 64
    decoder: TextDecoder = "auto"


def split_text_batch(batch: TextBatch) -> tuple[list[str], list[str] | None]:
    """A text batch -> (texts, prompts or None)."""
    if isinstance(batch, str):
        batch = [batch]
    if isinstance(batch, Mapping):
        unknown = sorted(set(batch) - set(_TEXT_KEYS))
        if unknown or "text" not in batch:
            raise ValueError(
                f"a text batch dict needs key 'text' (and optionally 'prompt'); "
                f"got keys {sorted(batch)}"
            )
        texts, prompts = list(batch["text"]), batch.get("prompt")
        prompts = None if prompts is None else list(prompts)
    else:
        texts, prompts = list(batch), None
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("a text batch must be a non-empty list of strings")
    if prompts is not None and len(prompts) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(prompts)} prompts")
    return texts, prompts


def collate_text(examples: list[dict[str, Any]]) -> list[str]:
    return [example["text"] for example in examples]


def write_text(out_dir: Path, decoded: Any, options: WriteOptions) -> list[Path]:
    """Decoded texts (list of str) -> ``samples.txt``, one sample a line (newlines -> spaces)."""
    if isinstance(decoded, str) or not isinstance(decoded, Sequence):
        raise ValueError(f"text samples must be a list of str, got {type(decoded).__name__}")
    check_nonempty(len(decoded), "text")
    lines = []
    for i, sample in enumerate(decoded):
        if not isinstance(sample, str):
            raise ValueError(f"text sample {i} must be a str, got {type(sample).__name__}")
        lines.append(" ".join(sample.splitlines()))  # one sample per line
    path = out_dir / TEXT_NAME
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("".join(line + "\n" for line in lines))
    return [path]


@register_adapter("text")
class TextAdapter(PretrainedEncoderAdapter):
    """Frozen text encoder states as latents; rounding head or seq2seq decoder to go back."""

    modality = "text"
    output_field = "texts"
    condition_kind = "prompt"
    collate = staticmethod(collate_text)
    writer = staticmethod(write_text)
    config_class = TextAdapterConfig

    def __init__(self, config: TextAdapterConfig):
        super().__init__(config)
        if self.decode_mode == "rounding":  # the rounding head: z [..,C] -> logits [..,V]
            self.decoder_head = nn.Linear(self.latent_dim, len(self.tokenizer))

    # -- loading ------------------------------------------------------------------------------

    def _load_pretrained(self, source: str) -> tuple[nn.Module, Any]:
        import transformers
        from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

        hf_config = AutoConfig.from_pretrained(source)
        architectures = hf_config.architectures or []
        has_decoder = bool(getattr(hf_config, "is_encoder_decoder", False)) and not any(
            name.endswith("EncoderModel") for name in architectures
        )
        self.decode_mode = self._resolve_decoder(has_decoder)
        self._seq2seq = self.decode_mode == "seq2seq"
        if self._seq2seq:
            model_cls = AutoModelForSeq2SeqLM
        elif hf_config.model_type in _T5_ENCODER_CLASSES:
            model_cls = getattr(transformers, _T5_ENCODER_CLASSES[hf_config.model_type])
        elif has_decoder:  # other encoder-decoders (e.g. BART): keep the model, use its encoder
            model_cls, self._seq2seq = AutoModelForSeq2SeqLM, True
        else:
            model_cls = AutoModel
        model = model_cls.from_pretrained(source, use_safetensors=True)
        return model, AutoTokenizer.from_pretrained(source)

    def _resolve_decoder(self, has_decoder: bool) -> str:
        wanted = self.config.decoder
        if wanted == "seq2seq" and not has_decoder:
            raise ValueError(
                f"decoder='seq2seq' but {self.config.encoder_name_or_path!r} has no decoder; "
                "use decoder='rounding'"
            )
        if wanted == "auto":
            return "seq2seq" if has_decoder else "rounding"
        return wanted

    @property
    def tokenizer(self) -> Any:
        return self.processor

    def _text_encoder(self) -> nn.Module:
        return self.pretrained.get_encoder() if self._seq2seq else self.pretrained

    # -- encoding -----------------------------------------------------------------------------

    def _features(self, texts: list[str]) -> tuple[Tensor, Tensor, Tensor]:
        """texts -> z [B,L,C], mask [B,L] bool, token ids [B,L]."""
        tokens = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        )
        return self._token_features(tokens["input_ids"], tokens["attention_mask"])

    def _token_features(
        self, input_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Token ids [B,L] and mask [B,L] -> z [B,L,C], mask [B,L] bool, ids [B,L]."""
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        h = self._text_encoder()(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state  # [B,L,D]
        return self.project(h), attention_mask.bool(), input_ids

    @torch.no_grad()
    def encode_ids(self, input_ids: Tensor, attention_mask: Tensor) -> LatentBatch:
        """Tokenized text (the tokenizer's ``input_ids`` / ``attention_mask``) -> latents."""
        z, mask, _ = self._token_features(input_ids, attention_mask)
        x0 = self.normalise(z).masked_fill(~mask[..., None], 0.0)  # padded tokens at 0, as encode
        return LatentBatch(latents=x0, layout=LatentLayout("sequence", (z.shape[1],)), mask=mask)

    @property
    def condition_dim(self) -> int:
        """Prompts are encoded like texts: condition tokens have the latent width C."""
        return self.latent_dim

    @torch.no_grad()
    def encode_condition(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Prompts -> normalised condition tokens [B,Lc,C] and mask [B,Lc]."""
        z, mask, _ = self._features(list(prompts))
        return self.normalise(z), mask

    @torch.no_grad()
    def encode_features(self, batch: TextBatch) -> LatentBatch:
        texts, prompts = split_text_batch(batch)
        z, mask, _ = self._features(texts)
        cond_tokens, cond_mask = (None, None) if prompts is None else self.encode_condition(prompts)
        return LatentBatch(
            latents=z,
            layout=LatentLayout("sequence", (z.shape[1],)),
            mask=mask,
            cond_tokens=cond_tokens,
            cond_mask=cond_mask,
        )

    # -- decoding -----------------------------------------------------------------------------

    @property
    def can_decode(self) -> bool:
        if self.decode_mode == "seq2seq":
            return True
        return self.decode_mode == "rounding" and bool(self.decoder_fitted)

    def _no_decoder_reason(self) -> str:
        return "this text adapter was built with decoder='none'; it cannot decode"

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> list[str]:
        """z [B,L,C] -> one string per row (special tokens dropped)."""
        if mask is None:
            mask = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
        if self.decode_mode == "seq2seq":
            return self._generate(z, mask)
        ids = self.decoder_head(z).argmax(-1)  # [B,L]
        return [
            self.tokenizer.decode(row[keep].tolist(), skip_special_tokens=True)
            for row, keep in zip(ids, mask, strict=True)
        ]

    def _generate(self, z: Tensor, mask: Tensor) -> list[str]:
        from transformers.modeling_outputs import BaseModelOutput

        encoder_outputs = BaseModelOutput(last_hidden_state=self.unproject(z))  # h [B,L,D]
        ids = self.pretrained.generate(
            encoder_outputs=encoder_outputs,
            attention_mask=mask.long(),
            max_new_tokens=self.config.max_length,
        )
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)

    # -- rounding head: cross-entropy on (encoder states, tokens) -----------------------------

    def _decoder_example(self, batch: TextBatch) -> tuple[Tensor, Tensor, Tensor]:
        texts, _ = split_text_batch(batch)
        return self._features(texts)

    def _decoder_loss(self, example: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        z, mask, ids = example
        logits = self.decoder_head(z)  # [B,L,V]
        return F.cross_entropy(logits[mask], ids[mask])
