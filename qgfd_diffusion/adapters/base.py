"""The adapter contract: raw data <-> normalised latent tokens for the shared denoiser.

Dimension legend: B batch, L latent tokens, C latent channels, D encoder width, N real tokens
pooled over a batch, Lc condition tokens, K classes.

Pipeline (DESIGN.md section 5):

    raw batch --frozen encoder--> h [B,L,D] --fixed projection W (buffer)--> z [B,L,C]
              --latent stats--> x0 = (z - mean) / std   [B,L,C]  (what the backbone denoises)

Nothing upstream of x0 is trainable: DESIGN.md section 7 records that a projection optimised by
the diffusion loss collapses (the loss falls by shrinking the latents). Decoders run the other
way, x0 -> z -> raw, and are separate heads fitted with a reconstruction loss (``fit_decoder``),
never by the diffusion loss.

Modality: each adapter class declares everything about its modality at class level
(``declarations``: modality, condition_kind, schema, collate, writer, output_field,
convert_output) and registers by name (``registry``, which also loads saved adapters by that
name); the data layer, the pipeline's output and the sample writers read those declarations.
Small helpers shared by the adapters live in ``helpers``, what the writers share in ``files``.

Serialisation: ``save_pretrained(dir)`` writes ``adapter_config.json`` (registry name + the
config dataclass) and ``adapter.safetensors`` (buffers and decoder heads); pretrained encoders go
into sub-folders through their own ``save_pretrained`` so a saved adapter loads offline.
Loading reads JSON and safetensors only: no pickle, no remote code.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..latents import LatentBatch
from .declarations import (
    Collate,
    ConditionKind,
    DataSchema,
    OutputConverter,
    Writer,
    keep_decoded,
)
from .helpers import check_file, freeze, label_condition, resolve_source, seeded_orthogonal

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter.safetensors"
ENCODER_FOLDER = "encoder"
FORMAT_VERSION = 1
# Floor on a fitted latent std so a constant channel does not divide by zero.
MIN_LATENT_STD = 1e-5

StdMode = Literal["channel", "scalar"]
Projection = Literal["none", "orthogonal", "pca"]

# ---------------------------------------------------------------------------------------------
# Configuration


def _check_literal_fields(config: Any) -> None:
    """Raise ValueError naming the field when a Literal-typed field holds a value not allowed."""
    hints = get_type_hints(type(config))
    for field in fields(config):
        hint = hints.get(field.name)
        if get_origin(hint) is Literal and getattr(config, field.name) not in get_args(hint):
            raise ValueError(
                f"{type(config).__name__}.{field.name} must be one of {get_args(hint)}, "
                f"got {getattr(config, field.name)!r}"
            )


@dataclass(kw_only=True)
class AdapterConfig:
    """Fields every adapter shares. Subclasses add theirs; all values must be JSON-able.

    std_mode: ``channel`` divides each latent channel by its own std, ``scalar`` by one pooled
              std (Stable Diffusion's scaling factor).
    latent_scale: s in x0 = s (z - mean) / std, the signal's size against the unit noise.
              Scaling x0 by s shifts every timestep's log-SNR by 2 log s: s < 1 spends more of
              the schedule at noise levels where the content is still undecided (Chen 2023, "On
              the importance of noise scheduling for diffusion models").
    """

    std_mode: StdMode = "channel"
    latent_scale: float = 1.0

    def __post_init__(self) -> None:
        _check_literal_fields(self)
        if not (isinstance(self.latent_scale, int | float) and 0 < self.latent_scale < math.inf):
            raise ValueError(f"latent_scale must be a positive number, got {self.latent_scale!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{cls.__name__} got unknown fields {unknown}; allowed: {sorted(known)}"
            )
        return cls(**data)


@dataclass(kw_only=True)
class EncoderAdapterConfig(AdapterConfig):
    """Config of an adapter around a frozen pretrained transformers encoder.

    encoder_name_or_path: hub id or local folder (loaded with ``use_safetensors=True``).
    latent_dim:  C; None keeps the encoder width D (then ``projection`` must be ``none``).
    projection:  fixed map D -> C stored as a buffer: a seeded random ``orthogonal`` matrix, or
                 ``pca`` directions fitted in ``fit_latent_stats``. Never trained.
    seed:        seed of the orthogonal projection.
    """

    encoder_name_or_path: str
    latent_dim: int | None = None
    projection: Projection = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive int or None, got {self.latent_dim}")
        if self.latent_dim is not None and self.projection == "none":
            raise ValueError("latent_dim is set, so choose projection='orthogonal' or 'pca'")


# ---------------------------------------------------------------------------------------------
# Latent statistics


class _MomentAccumulator:
    """Running first/second moments of masked tokens, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.total: Tensor | None = None
        self.outer: Tensor | None = None  # sum of z z^T when covariance is needed

    def add(self, z: Tensor, mask: Tensor | None, outer: bool = False) -> None:
        real = z if mask is None else z[mask]  # [N, C]
        real = real.reshape(-1, z.shape[-1]).double()
        self.count += real.shape[0]
        squares = real.T @ real if outer else (real * real).sum(0)  # [C,C] or [C]
        self.total = real.sum(0) if self.total is None else self.total + real.sum(0)
        self.outer = squares if self.outer is None else self.outer + squares

    def mean_and_second(self) -> tuple[Tensor, Tensor]:
        if self.count == 0:
            raise ValueError("no real (unmasked) tokens seen; pass at least one non-empty batch")
        return self.total / self.count, self.outer / self.count


# ---------------------------------------------------------------------------------------------
# The contract


class ModalityAdapter(nn.Module, ABC):
    """Raw batches of one modality <-> normalised latents x0 [B,L,C] (``LatentBatch``).

    Subclasses declare their modality at class level (``declarations``), implement
    ``encode_features`` (raw -> un-normalised z, no gradients needed) and, where the modality
    allows, ``decode_features`` (z -> raw) and ``can_decode``. Trainable decoder heads implement
    ``decoder_parameters`` / ``_decoder_example`` / ``_decoder_loss`` and are fitted by
    ``fit_decoder``. Everything else (normalisation, statistics, frozen modules, saving, loading,
    the fitting loop) lives here once.
    """

    name: ClassVar[str] = ""  # registry name, set by ``register_adapter``
    modality: ClassVar[str] = ""  # data modality: text, image, audio, video, tabular, ...
    condition_kind: ClassVar[ConditionKind | None] = None  # what ``encode_condition`` takes
    schema: ClassVar[DataSchema | None] = None  # its raw examples as the data layer serves them
    collate: ClassVar[Collate | None] = None  # staticmethod: raw examples -> raw batch
    writer: ClassVar[Writer | None] = None  # staticmethod: decoded samples -> files
    output_field: ClassVar[str] = ""  # the pipeline output field its decoded samples go to
    # staticmethod: decoded samples -> the pipeline's output_type ("pil", "np", "pt")
    convert_output: ClassVar[OutputConverter] = staticmethod(keep_decoded)
    config_class: ClassVar[type[AdapterConfig]] = AdapterConfig

    def __init__(self, config: AdapterConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        self.decoder_head: nn.Module | None = None  # set by adapters with a trainable decoder

    # -- latent statistics --------------------------------------------------------------------

    def _init_latent_stats(self, channels: int) -> None:
        """Identity statistics for C channels until ``fit_latent_stats`` measures them."""
        self.register_buffer("latent_mean", torch.zeros(channels))
        self.register_buffer("latent_std", torch.ones(channels))
        self.register_buffer("latent_stats_fitted", torch.tensor(False))
        self.register_buffer("decoder_fitted", torch.tensor(False))

    @property
    def latent_dim(self) -> int:
        """C, the width of every latent token."""
        return self.latent_mean.numel()

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    def normalise(self, z: Tensor) -> Tensor:
        """z [..., C] -> x0 = s (z - mean) / std (s: ``config.latent_scale``)."""
        return (z - self.latent_mean) / self.latent_std * self.config.latent_scale

    def denormalise(self, x0: Tensor) -> Tensor:
        """x0 [..., C] -> z = x0 / s * std + mean (inverse of ``normalise``)."""
        return x0 / self.config.latent_scale * self.latent_std + self.latent_mean

    @torch.no_grad()
    def fit_latent_stats(self, batches: Iterable[Any]) -> ModalityAdapter:
        """Measure per-channel mean and (per-channel or pooled) std of z over real tokens."""
        moments = _MomentAccumulator()
        for batch in batches:
            features = self.encode_features(batch)
            moments.add(features.latents, features.mask)
        mean, second = moments.mean_and_second()
        var = (second - mean * mean).clamp_min(0)  # [C]
        std = var.sqrt() if self.config.std_mode == "channel" else var.mean().sqrt().expand_as(var)
        self.latent_mean.copy_(mean.float())
        self.latent_std.copy_(std.clamp_min(MIN_LATENT_STD).float())
        self.latent_stats_fitted.fill_(True)
        return self

    # -- encode / decode ----------------------------------------------------------------------

    def prepare_batch(self, raw: Any) -> Any:
        """The data layer's raw batch (``collate``'s output) -> what ``encode`` takes.

        Class labels are dropped where the adapter takes none (``condition_dim`` is None).
        """
        if isinstance(raw, dict) and "labels" in raw and self.condition_dim is None:
            return {key: value for key, value in raw.items() if key != "labels"}
        return raw

    @abstractmethod
    def encode_features(self, batch: Any) -> LatentBatch:
        """Raw batch -> ``LatentBatch`` of un-normalised features z [B,L,C]."""

    @torch.no_grad()
    def encode(self, batch: Any) -> LatentBatch:
        """Raw batch -> ``LatentBatch`` with normalised x0 latents (no gradient path).

        Padded tokens (mask False) are set to 0 so latents do not depend on batch padding.
        """
        features = self.encode_features(batch)
        x0 = self.normalise(features.latents)  # [B,L,C]
        if features.mask is not None:
            x0 = x0.masked_fill(~features.mask[..., None], 0.0)
        features.latents = x0
        return features

    # -- conditioning ---------------------------------------------------------------------------

    @property
    def condition_dim(self) -> int | None:
        """Width Dc of this adapter's condition tokens; None when it takes no condition.

        By default the condition is a class label (``num_classes`` > 0 in the config).
        """
        return getattr(self.config, "num_classes", 0) or None

    def encode_condition(self, condition: Any) -> tuple[Tensor, Tensor]:
        """A raw condition (here: class labels [B]) -> tokens [B, Lc, Dc] and mask [B, Lc]."""
        if self.condition_dim is None:
            raise ValueError(f"the {self.name!r} adapter takes no condition (num_classes=0)")
        tokens, mask = label_condition(condition, self.condition_dim)
        return tokens.to(self.device), mask.to(self.device)

    @property
    def can_decode(self) -> bool:
        """True when ``decode`` works now (exact inverse, pretrained decoder or fitted head)."""
        return False

    def decode_features(self, z: Tensor, mask: Tensor | None = None) -> Any:
        """Un-normalised z [B,L,C] -> raw batch. Override where the modality allows."""
        raise NotImplementedError(self._no_decoder_reason())

    @torch.no_grad()
    def decode(self, latents: Tensor, mask: Tensor | None = None) -> Any:
        """Normalised x0 [B,L,C] (mask [B,L], True = real) -> raw batch."""
        if latents.ndim != 3 or latents.shape[-1] != self.latent_dim:
            raise ValueError(
                f"latents must be [B, L, {self.latent_dim}], got {tuple(latents.shape)}"
            )
        if not self.can_decode:
            if self.decoder_parameters():
                raise RuntimeError(
                    f"the {self.name!r} adapter's decoder head is untrained: "
                    "call fit_decoder(batches) first"
                )
            raise NotImplementedError(self._no_decoder_reason())
        mask = None if mask is None else mask.to(self.device)
        return self.decode_features(self.denormalise(latents.to(self.device)), mask)

    @property
    def output_rate(self) -> int | None:
        """Samples per second of what ``decode`` returns (its writer needs it: audio); None where
        decoded samples are not a signal in time."""
        return None

    def _no_decoder_reason(self) -> str:
        return f"the {self.name!r} adapter cannot decode latents back to its modality"

    # -- discrete data: clamping and token losses (text), none by default ------------------------

    @property
    def can_clamp(self) -> bool:
        """True when ``clamp_latents`` works: the modality is discrete and decodable."""
        return False

    def clamp_latents(self, x0: Tensor) -> Tensor:
        """Normalised x0 [B,L,C] -> the latents of the data nearest to it (Diffusion-LM's
        clamping trick: decode to discrete tokens, encode them again)."""
        raise NotImplementedError(f"the {self.name!r} adapter's data is not discrete")

    @property
    def has_token_loss(self) -> bool:
        """True when ``token_loss`` adds a loss (training then computes the x0 estimate)."""
        return False

    def token_loss(self, x0_hat: Tensor, batch: LatentBatch) -> Tensor | None:
        """A per-sample [B] loss on the denoiser's normalised x0 estimate [B,L,C] against the
        batch's discrete ``tokens``, or None when the adapter asks for none (the default)."""
        return None

    # -- decoder heads (reconstruction objective, never the diffusion loss) -------------------

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of ``decoder_head``; empty when there is none."""
        return [] if self.decoder_head is None else list(self.decoder_head.parameters())

    def _decoder_example(self, batch: Any) -> Any:
        """Raw batch -> (features, targets) for the head, computed once without gradients."""
        raise NotImplementedError(f"the {self.name!r} adapter has no trainable decoder head")

    def _decoder_loss(self, example: Any) -> Tensor:
        """Reconstruction loss of the decoder head on one example from ``_decoder_example``."""
        raise NotImplementedError(f"the {self.name!r} adapter has no trainable decoder head")

    def fit_decoder(
        self, batches: Iterable[Any], steps: int = 200, lr: float = 1e-3
    ) -> list[float]:
        """Fit the decoder head by reconstruction (Adam, cycling over ``batches``).

        The encoder stays frozen; only ``decoder_parameters()`` move. Returns the loss per step.
        """
        params = self.decoder_parameters()
        if not params:
            raise NotImplementedError(f"the {self.name!r} adapter has no trainable decoder head")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        with torch.no_grad():
            examples = [self._decoder_example(batch) for batch in batches]
        if not examples:
            raise ValueError("fit_decoder needs at least one batch")
        optimiser = torch.optim.Adam(params, lr=lr)
        losses = []
        self.decoder_head.train()
        for step in range(steps):
            loss = self._decoder_loss(examples[step % len(examples)])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        optimiser.zero_grad(set_to_none=True)  # no stale gradients left on a fitted head
        self.decoder_head.eval()
        self.decoder_fitted.fill_(True)
        return losses

    # -- frozen parts -------------------------------------------------------------------------

    def frozen_modules(self) -> list[nn.Module]:
        """Modules that stay in eval mode with no gradients, whatever ``train()`` is called."""
        return []

    def train(self, mode: bool = True) -> ModalityAdapter:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    # -- save / load --------------------------------------------------------------------------

    def _subfolder_parts(self) -> dict[str, list[Any]]:
        """{sub-folder: objects saved there by their own ``save_pretrained``}."""
        return {}

    def _skipped_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes kept out of ``adapter.safetensors`` (saved in sub-folders)."""
        return ()

    def _own_state(self) -> dict[str, Tensor]:
        skip = self._skipped_prefixes()
        return {
            key: value.detach().cpu().contiguous()
            for key, value in self.state_dict().items()
            if not key.startswith(skip)
        }

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write config JSON, safetensors and sub-folders; returns the folder."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "adapter": self.name,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
        }
        (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True))
        save_file(self._own_state(), str(directory / WEIGHTS_NAME))
        for folder, parts in self._subfolder_parts().items():
            for part in parts:
                part.save_pretrained(directory / folder)
        return directory

    @classmethod
    def _from_folder(cls, config: AdapterConfig, directory: Path) -> ModalityAdapter:
        """Build the adapter from a saved folder (subclasses point sources at sub-folders)."""
        return cls(config)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> ModalityAdapter:
        """Load a folder written by ``save_pretrained``: JSON + safetensors, offline.

        The folder's saved adapter name must be this class's or a subclass's (called on
        ``ModalityAdapter`` itself, any registered adapter's); ``load_adapter`` loads any.
        """
        directory = Path(directory)
        meta = read_adapter_config(directory)
        adapter_cls = cls._subclass_named(meta["adapter"])
        if adapter_cls is None:
            raise ValueError(f"{directory} holds a {meta['adapter']!r} adapter, not {cls.__name__}")
        config = adapter_cls.config_class.from_dict(meta["config"])
        adapter = adapter_cls._from_folder(config, directory)
        adapter._load_own_state(load_file(str(check_file(directory / WEIGHTS_NAME, "weights"))))
        return adapter

    @classmethod
    def _subclass_named(cls, name: str) -> type[ModalityAdapter] | None:
        """This class or the subclass registered as ``name``; None when there is none."""
        if cls.name == name:
            return cls
        for subclass in cls.__subclasses__():
            found = subclass._subclass_named(name)
            if found is not None:
                return found
        return None

    def _load_own_state(self, state: dict[str, Tensor]) -> None:
        result = self.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(self._skipped_prefixes())]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"saved weights do not match the {self.name!r} adapter: missing {missing}, "
                f"unexpected {result.unexpected_keys}"
            )


def read_adapter_config(directory: Path) -> dict[str, Any]:
    """The JSON ``save_pretrained`` wrote: {"adapter": name, "format_version", "config"}."""
    return json.loads(check_file(directory / CONFIG_NAME, "adapter config").read_text())


# ---------------------------------------------------------------------------------------------
# Adapters around a frozen pretrained encoder (text, image, audio)


class PretrainedEncoderAdapter(ModalityAdapter):
    """Shared machinery for a frozen transformers encoder (+ its processor) and a fixed
    projection D -> C. Subclasses implement ``_load_pretrained`` and ``encode_features``.

    ``self.pretrained`` is the loaded model (saved to ``encoder/``), ``self.processor`` its
    tokenizer / image processor / feature extractor (saved alongside).
    """

    config_class = EncoderAdapterConfig

    def __init__(self, config: EncoderAdapterConfig):
        super().__init__(config)
        source = resolve_source(config.encoder_name_or_path)
        model, self.processor = self._load_pretrained(source)
        self.pretrained = freeze(model)
        width = self._encoder_width()
        channels = config.latent_dim or width
        if config.projection != "none":
            self.register_buffer("projection", seeded_orthogonal(width, channels, config.seed))
        else:
            self.register_buffer("projection", None)
        self._init_latent_stats(channels)

    @abstractmethod
    def _load_pretrained(self, source: str) -> tuple[nn.Module, Any]:
        """Load (model, processor) with ``from_pretrained(source, use_safetensors=True)``."""

    def _encoder_width(self) -> int:
        """D: the width of the encoder's output features."""
        config = self.pretrained.config
        if getattr(config, "hidden_size", None):
            return int(config.hidden_size)
        if getattr(config, "hidden_sizes", None):  # hierarchical CNN-style encoders
            return int(config.hidden_sizes[-1])
        raise ValueError(f"cannot tell the feature width of {type(self.pretrained).__name__}")

    def project(self, h: Tensor) -> Tensor:
        """Encoder features h [B,L,D] -> z [B,L,C] through the fixed projection."""
        return h if self.projection is None else h @ self.projection

    def unproject(self, z: Tensor) -> Tensor:
        """z [B,L,C] -> h [B,L,D] (exact for C = D; the subspace's least-squares h otherwise)."""
        return z if self.projection is None else z @ self.projection.T

    @torch.no_grad()
    def fit_latent_stats(self, batches: Iterable[Any]) -> ModalityAdapter:
        """For ``projection='pca'`` first fit the top-C principal directions, then the stats."""
        batches = list(batches)
        if self.config.projection == "pca":
            self._fit_pca(batches)
        return super().fit_latent_stats(batches)

    def _fit_pca(self, batches: list[Any]) -> None:
        saved, self.projection = self.projection, None  # features in the full width D
        moments = _MomentAccumulator()
        try:
            for batch in batches:
                features = self.encode_features(batch)
                moments.add(features.latents, features.mask, outer=True)
        finally:
            self.projection = saved
        mean, second = moments.mean_and_second()
        covariance = second - torch.outer(mean, mean)  # [D,D]
        _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
        top = vectors[:, -self.latent_dim :].flip(-1)  # [D,C], largest variance first
        self.projection.copy_(top.float())

    def frozen_modules(self) -> list[nn.Module]:
        return [self.pretrained]

    def _subfolder_parts(self) -> dict[str, list[Any]]:
        return {ENCODER_FOLDER: [self.pretrained, self.processor]}

    def _skipped_prefixes(self) -> tuple[str, ...]:
        return ("pretrained.",)

    @classmethod
    def _from_folder(cls, config: EncoderAdapterConfig, directory: Path) -> ModalityAdapter:
        encoder_dir = directory / ENCODER_FOLDER
        if not encoder_dir.is_dir():
            raise FileNotFoundError(f"saved adapter {str(directory)!r} lacks its {ENCODER_FOLDER}/")
        return cls(replace(config, encoder_name_or_path=str(encoder_dir)))
