"""How far QGFD moves attention inside trained denoisers: the study's companion diagnostic.

Dimension legend: B batch, H heads, N keys (latent tokens), d head width.

For each trained run folder (a QGFD model of the quality study), samples a few class-conditional
images and records the (q, k, v) of every QGFD self-attention call. On those inputs it reports
  * the mean diagonal mass of the transition P (1 / N would be uniform, 1 the identity: P = I
    makes p P = p and QGFD plain attention whatever alpha), built by the library's own
    ``build_transition``;
  * |out_qgfd - out_sdpa| / |out_sdpa|: how much the QGFD output differs from plain attention
    with the same weights (alpha = 0), mean and max over calls.
A small change with equal sample quality says the network trained around QGFD; a large one
says QGFD shaped the computation.

Usage:
    python benchmarks/attention_effect.py runs/quality/study/study/qgfd_a=0.3_T=2/seed0 [...]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from qgfd_diffusion.attention.functional import build_transition, qgfd_attention
from qgfd_diffusion.attention.kernels import QGFDKernel
from qgfd_diffusion.attention.transitions import default_scale
from qgfd_diffusion.sample import generate
from qgfd_diffusion.sample.run import load_trained_model
from qgfd_diffusion.train.logs import silence_library_progress_bars


def capture_attention_inputs(run: Path, samples: int, steps: int, modality: str) -> list:
    """(q, k, v, mask, kernel) of every QGFD call while sampling ``samples`` images of ``run``."""
    model = load_trained_model(run).eval()
    calls = []

    def record(kernel, args, kwargs):
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        calls.append((*(x.detach() for x in args[:3]), mask, kernel))

    kernels = [m for m in model.modules() if isinstance(m, QGFDKernel)]
    if not kernels:
        raise SystemExit(f"error: {run} has no QGFD attention (attention must be 'qgfd')")
    for kernel in kernels:
        kernel.register_forward_pre_hook(record, with_kwargs=True)
    labels = [i % 10 for i in range(samples)]
    with torch.no_grad():
        generate(
            model,
            modality,
            samples,
            condition=labels,
            generator=torch.Generator().manual_seed(0),
            num_inference_steps=steps,
            guidance_scale=2.0,
            decode=False,
        )
    return calls


def effect(q, k, v, mask, kernel: QGFDKernel) -> tuple[float, float]:
    """(mean diagonal mass of P, relative change of the output against alpha = 0)."""
    options = kernel.options
    P = build_transition(
        q,
        k,
        mask,
        transition=options.transition,
        topk=options.topk,
        temperature=options.temperature,
        graph=None,
        scale=default_scale(q.shape[-1]),
    ).dense()  # [B, H, N, N]
    plain = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, H, N, d]
    qgfd = qgfd_attention(q, k, v, mask, alpha=kernel.current_alpha(), **options.kernel_kwargs())
    diagonal = P.diagonal(dim1=-2, dim2=-1).mean().item()
    return diagonal, ((qgfd - plain).norm() / plain.norm()).item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="trained run folders (QGFD models)")
    parser.add_argument("--samples", type=int, default=20, help="images sampled per run")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps per sample")
    parser.add_argument("--modality", default="image")
    args = parser.parse_args(argv)
    silence_library_progress_bars()
    print("| run | N | alpha | T | transition | P diagonal mass (1/N) | output change mean | max |")
    print("|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        calls = capture_attention_inputs(run, args.samples, args.steps, args.modality)
        diagonals, changes = zip(*(effect(*call) for call in calls), strict=True)
        k, kernel = calls[0][1], calls[0][-1]
        N = k.shape[-2]
        print(
            f"| {run} | {N} | {kernel.options.alpha} | {kernel.options.steps} | "
            f"{kernel.options.transition} | {statistics.fmean(diagonals):.3f} ({1 / N:.3f}) | "
            f"{statistics.fmean(changes):.1%} | {max(changes):.1%} |"
        )


if __name__ == "__main__":
    main()
