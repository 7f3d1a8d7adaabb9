"""The mel adapter's round trip on real speech: mel -> waveform (Griffin-Lim) -> mel.

Reads the bundled speech (pyannote-audio's 30 s sample, cut into clips), encodes every clip
with a mel adapter, decodes it and encodes the result again, and prints
``qgfd_diffusion.evaluation.audio.mel_round_trip``'s figures as a markdown table (one row per
setting asked for).

Usage:
    python benchmarks/mel_round_trip.py                         # the adapter's defaults
    python benchmarks/mel_round_trip.py --n-mels 64 80 128 --griffin-lim-iters 32 64
"""

from __future__ import annotations

import argparse
import itertools
import time

from qgfd_diffusion.adapters.mel import MelAdapter, MelAdapterConfig
from qgfd_diffusion.data.bundled import read_speech
from qgfd_diffusion.evaluation.audio import mel_round_trip

DEFAULTS = MelAdapterConfig()
COLUMNS = (
    "mel_spectral_convergence",
    "logmel_mae",
    "logmel_mae_db",
    "original_energy_above_4khz",
    "decoded_energy_above_4khz",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Usage:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clip-seconds", type=float, default=1.0, help="clip length (default 1)")
    parser.add_argument("--n-fft", type=int, nargs="+", default=[DEFAULTS.n_fft])
    parser.add_argument("--hop-length", type=int, nargs="+", default=[DEFAULTS.hop_length])
    parser.add_argument("--n-mels", type=int, nargs="+", default=[DEFAULTS.n_mels])
    parser.add_argument(
        "--griffin-lim-iters", type=int, nargs="+", default=[DEFAULTS.griffin_lim_iters]
    )
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    clips = read_speech(args.clip_seconds).columns["audio"]
    print(f"{len(clips)} clips of {args.clip_seconds} s of real speech (16 kHz)\n")
    print("| n_fft | hop | n_mels | GL iters | " + " | ".join(COLUMNS) + " | seconds |")
    print("|" + "---|" * (len(COLUMNS) + 5))
    rows = []
    for n_fft, hop, n_mels, iters in itertools.product(
        args.n_fft, args.hop_length, args.n_mels, args.griffin_lim_iters
    ):
        config = MelAdapterConfig(
            n_fft=n_fft, hop_length=hop, n_mels=n_mels, griffin_lim_iters=iters
        )
        started = time.perf_counter()
        row = mel_round_trip(MelAdapter(config), clips)
        seconds = time.perf_counter() - started
        figures = " | ".join(f"{row[key]:.4g}" for key in COLUMNS)
        print(f"| {n_fft} | {hop} | {n_mels} | {iters} | {figures} | {seconds:.1f} |", flush=True)
        rows.append({**config.to_dict(), **row})
    return rows


if __name__ == "__main__":
    main()
