"""Text adapter: a frozen T5 (or any transformers text encoder) -> token latents.

Dimension legend: B batch, L tokens, D encoder width, C latent channels, V vocabulary size,
Lc prompt (condition) tokens.

Latents are the encoder's last hidden states [B,L,D] (optionally through the fixed projection of
``PretrainedEncoderAdapter``) with the tokenizer's attention mask as latent mask; layout
``sequence``; ``LatentBatch.tokens`` holds the token ids. With ``learn_length`` every text is
padded to ``max_length`` and the padding is part of the sequence (mask all True): the denoiser
learns where a text ends, as Diffusion-LM does, and decoding stops at the first end token
(``</s>``, ``[SEP]`` or padding) instead of running to the maximum length.

Checkpoints are loaded encoder-only where possible: T5-family checkpoints without a
decoder load as ``T5EncoderModel`` (``AutoModel`` would build a random decoder, DESIGN.md 7).

Decoding, ``TextAdapterConfig.decoder``:
  ``seq2seq``  the checkpoint's own decoder generates from encoder-state latents
               (``generate(encoder_outputs=...)``). A pretrained T5 was trained on span
               corruption, not reconstruction, so it paraphrases / continues rather than copies.
  ``rounding`` a head z -> V logits fitted by cross-entropy on (encoder states, tokens)
               with ``fit_decoder``; argmax per real token (Diffusion-LM's rounding step).
               Linear, or an MLP with ``decoder_hidden`` > 0. With ``decoder_noise`` = s > 0
               half of each fitting batch is noised, z + sigma std eps with sigma ~ U(0, s) in
               normalised units, so the head also reads the slightly-off latents a sampler ends
               on (TEncDM, Shabalin et al. 2024, trains its decoder on corrupted latents).
  ``auto``     ``seq2seq`` when the checkpoint has a decoder, else ``rounding``.
  ``none``     no decoding.

Committing to tokens (``rounding`` only):
  clamping     ``clamp_latents``: decode x0 to tokens and encode them again (Diffusion-LM's
               clamping trick); the sampler applies it over the last steps (``clamp``).
  L_round      ``rounding_loss_weight`` > 0: ``token_loss`` is the head's cross-entropy of the
               denoiser's x0 estimate against the true tokens (Diffusion-LM's rounding term),
               added to THE training objective. The head is fitted before training and frozen.

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
from torch.func import functional_call
from torch.nn import functional as F

from ..latents import LatentBatch, LatentLayout
from .base import EncoderAdapterConfig, PretrainedEncoderAdapter
from .declarations import DataSchema
from .files import WriteOptions, check_nonempty
from .helpers import check_batch_keys, mlp_head
from .registry import register_adapter

TextBatch = str | Sequence[str] | Mapping[str, Sequence[str]]
TextDecoder = Literal["auto", "seq2seq", "rounding", "none"]

# Encoder-only classes of T5-family checkpoints (never AutoModel, which adds a random decoder).
_T5_ENCODER_CLASSES = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}
TEXT_NAME = "samples.txt"


@dataclass(kw_only=True)
class TextAdapterConfig(EncoderAdapterConfig):
    """max_length: tokens kept per text (truncation); also the generation budget.
    decoder: how ``decode`` works; decoder_hidden (MLP head width, 0 = linear), decoder_noise
    and rounding_loss_weight shape the rounding head; learn_length pads to max_length and
    learns the end (all in the module docstring)."""

    max_length: int = 64
    decoder: TextDecoder = "auto"
    learn_length: bool = False
    decoder_hidden: int = 0
    decoder_noise: float = 0.0
    rounding_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        for name in ("decoder_hidden", "decoder_noise", "rounding_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        uses_head = self.decoder_hidden or self.decoder_noise or self.rounding_loss_weight
        if uses_head and self.decoder != "rounding":
            raise ValueError(
                "decoder_hidden, decoder_noise and rounding_loss_weight shape the rounding head: "
                f"they need decoder='rounding', got decoder={self.decoder!r}"
            )


def split_text_batch(batch: TextBatch) -> tuple[list[str], list[str] | None]:
    """A text batch -> (texts, prompts or None)."""
    if isinstance(batch, str):
        batch = [batch]
    if isinstance(batch, Mapping):
        check_batch_keys(batch, ("text",), ("prompt",), "a text")
        texts, prompts = list(batch["text"]), batch.get("prompt")
        prompts = None if prompts is None else list(prompts)
    else:
        texts, prompts = list(batch), None
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("a text batch must be a non-empty list of strings")
    if prompts is not None and len(prompts) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(prompts)} prompts")
    return texts, prompts


# The data layer's text examples: {"text": str}; a hub / files string column named "text" (or
# the one a data config names) holds them.
TEXT_SCHEMA = DataSchema(column="text", feature="string")


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
    condition_kind = "prompt"
    schema = TEXT_SCHEMA
    collate = staticmethod(collate_text)
    writer = staticmethod(write_text)
    output_field = "texts"
    config_class = TextAdapterConfig

    def __init__(self, config: TextAdapterConfig):
        super().__init__(config)
        if self.decode_mode == "rounding":  # the rounding head: z [..,C] -> logits [..,V]
            hidden, V = config.decoder_hidden, len(self.tokenizer)
            self.decoder_head = (
                mlp_head(self.latent_dim, hidden, V) if hidden else nn.Linear(self.latent_dim, V)
            )

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
            padding="max_length" if self.config.learn_length else True,
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
        if self.config.learn_length:  # the padding is content: every position is a real token
            mask = torch.ones_like(input_ids, dtype=torch.bool)
        else:
            mask = attention_mask.bool()
        return self.project(h), mask, input_ids

    @torch.no_grad()
    def encode_ids(self, input_ids: Tensor, attention_mask: Tensor) -> LatentBatch:
        """Tokenized text (the tokenizer's ``input_ids`` / ``attention_mask``) -> latents."""
        z, mask, ids = self._token_features(input_ids, attention_mask)
        x0 = self.normalise(z).masked_fill(~mask[..., None], 0.0)  # padded tokens at 0, as encode
        layout = LatentLayout("sequence", (z.shape[1],))
        return LatentBatch(latents=x0, layout=layout, mask=mask, tokens=ids)

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
        z, mask, ids = self._features(texts)
        cond_tokens, cond_mask = (None, None) if prompts is None else self.encode_condition(prompts)
        return LatentBatch(
            latents=z,
            layout=LatentLayout("sequence", (z.shape[1],)),
            mask=mask,
            cond_tokens=cond_tokens,
            cond_mask=cond_mask,
            tokens=ids,
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
        return [self._text_of(row[keep].tolist()) for row, keep in zip(ids, mask, strict=True)]

    def _end_ids(self) -> set[int]:
        """Ids that end a text: end of sequence, separator, padding."""
        tokenizer = self.tokenizer
        ends = (tokenizer.eos_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
        return {i for i in ends if i is not None}

    def _text_of(self, ids: list[int]) -> str:
        """Token ids -> text: cut at the first end token with ``learn_length``; special tokens
        dropped except ``<unk>``, which stays visible (and is counted as unknown by the referee)."""
        if self.config.learn_length:
            ends = self._end_ids()
            ids = ids[: next((i for i, token in enumerate(ids) if token in ends), len(ids))]
        hidden = set(self.tokenizer.all_special_ids) - {self.tokenizer.unk_token_id}
        return self.tokenizer.decode([i for i in ids if i not in hidden])

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

    def fit_decoder(self, batches, steps: int = 200, lr: float = 1e-3) -> list[float]:
        """Start a linear rounding head at the nearest-token rule, then fit it (base class)."""
        if isinstance(self.decoder_head, nn.Linear):
            self._init_nearest_token_head()
        return super().fit_decoder(batches, steps=steps, lr=lr)

    @torch.no_grad()
    def _init_nearest_token_head(self, chunk: int = 1024) -> None:
        """Linear head at argmin_w ||z - e_w||^2 (Diffusion-LM's rounding), e_w [V,C] the latent
        of token w encoded alone: logits_w = z . e_w - ||e_w||^2 / 2. Exact for a word encoder
        (one vector per word), so words rare in the fitting batches still round trip; for a
        contextual encoder a start that the fit then adapts to context."""
        ids = torch.arange(len(self.tokenizer), device=self.device)[:, None]  # [V,1]
        alone = [self._token_features(part, torch.ones_like(part))[0] for part in ids.split(chunk)]
        e = torch.cat(alone)[:, 0]  # [V,1,C] -> [V,C]
        self.decoder_head.weight.copy_(e)
        self.decoder_head.bias.copy_(-0.5 * (e * e).sum(-1))

    def _decoder_loss(self, example: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        z, mask, ids = example
        if self.config.decoder_noise > 0:
            z = self._noised_half(z)
        logits = self.decoder_head(z)  # [B,L,V]
        return F.cross_entropy(logits[mask], ids[mask])

    def _noised_half(self, z: Tensor) -> Tensor:
        """z [B,L,C] with a random half of the rows at z + sigma std eps, sigma ~ U(0, s)."""
        B = z.shape[0]
        sigma = torch.rand(B, 1, 1, device=z.device) * self.config.decoder_noise
        sigma = sigma * (torch.rand(B, 1, 1, device=z.device) < 0.5)  # [B,1,1]
        return z + sigma * self.latent_std * torch.randn_like(z)

    # -- committing to tokens: clamping and the rounding loss ---------------------------------

    @property
    def can_clamp(self) -> bool:
        return self.decode_mode == "rounding" and bool(self.decoder_fitted)

    @torch.no_grad()
    def clamp_latents(self, x0: Tensor) -> Tensor:
        """x0 [B,L,C] -> normalised latents of its rounded tokens, re-encoded (frozen encoder)."""
        if not self.can_clamp:
            raise RuntimeError("clamping needs decoder='rounding' with a fitted head")
        ids = self.decoder_head(self.denormalise(x0)).argmax(-1)  # [B,L]
        attention = (ids != self.tokenizer.pad_token_id).long()
        z, _, _ = self._token_features(ids, attention)
        return self.normalise(z).to(x0.dtype)

    @property
    def has_token_loss(self) -> bool:
        return self.decode_mode == "rounding" and self.config.rounding_loss_weight > 0

    def token_loss(self, x0_hat: Tensor, batch: LatentBatch) -> Tensor | None:
        """Diffusion-LM's rounding term: weight x the head's cross-entropy of x0_hat [B,L,C]
        against ``batch.tokens`` [B,L], averaged over each sample's real tokens -> [B]."""
        if not self.has_token_loss or batch.tokens is None:
            return None
        weight = self.config.rounding_loss_weight
        # the head stays as fitted: the gradient reaches x0_hat (the denoiser) only
        frozen = {name: p.detach() for name, p in self.decoder_head.named_parameters()}
        logits = functional_call(self.decoder_head, frozen, (self.denormalise(x0_hat),))  # [B,L,V]
        ce = F.cross_entropy(logits.transpose(1, 2), batch.tokens, reduction="none")  # [B,L]
        mask = torch.ones_like(ce) if batch.mask is None else batch.mask.to(ce.dtype)
        return weight * (ce * mask).sum(1) / mask.sum(1).clamp_min(1)

    @torch.no_grad()
    def round_trip_accuracy(self, texts: Sequence[str]) -> float:
        """Share of real tokens whose clean latents decode to the same token id."""
        z, mask, ids = self._features(list(texts))
        return (self.decoder_head(z).argmax(-1) == ids)[mask].float().mean().item()
