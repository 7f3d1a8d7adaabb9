"""Backbone benchmark: QGFD training-step cost relative to SDPA, and DDIM sampler overhead.

Dimension legend: B batch, L latent tokens, C latent channels, D width, H heads.

1. Training step (forward + min-SNR diffusion loss + backward + Adam step) of the same backbone
   (same weights) with SDPA, QGFD T=2 and QGFD T=4 self-attention, at several L. Measurements
   are interleaved (sdpa, qgfd2, qgfd4, sdpa, ...) and summarised by their medians.
2. Graph QGFD vs dense QGFD at the same T: a training step on an image-like grid of
   L = side^2 tokens with QGFD over a 4-neighbour grid graph (``layout_graph=grid4``, sparse:
   O(E d) per step), the same graph given as a dense [B, L, L] adjacency, and QGFD over key
   similarity (``keys``, T + 1 fused attention calls); target: graph / keys <= 1.
3. DDIM sampling vs the bare model forwards it needs (same number of forwards on the same
   inputs, no scheduler): the sampler's own overhead, target under 5 %.

Usage:
    python benchmarks/backbone.py            # L = 64, 256, 1024
    python benchmarks/backbone.py --quick    # smoke run: small L, few repeats
    python benchmarks/backbone.py --device cuda:0
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from qgfd_diffusion.graphs import layout_graph
from qgfd_diffusion.latents import LatentBatch, LatentLayout
from qgfd_diffusion.models import DiffusionConfig, QGFDDiffusionBackbone
from qgfd_diffusion.sample import make_scheduler, sample_latents
from qgfd_diffusion.schedules import DiffusionObjective, NoiseScheduleConfig

MODEL = dict(d_model=128, num_heads=4, num_layers=4, d_ff=512, latent_dim=16, cond_dim=None)
VARIANTS = {
    "sdpa": dict(attention="sdpa"),
    "qgfd T=2": dict(attention="qgfd", qgfd={"steps": 2}),
    "qgfd T=4": dict(attention="qgfd", qgfd={"steps": 4}),
}
MIN_SNR_GAMMA = 5.0
GRAPH_STEPS = 4  # T of the graph-vs-dense comparison
OVERHEAD_TARGET = 0.05


def synchronize(device: torch.device) -> None:
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def build(device: torch.device, **overrides) -> QGFDDiffusionBackbone:
    torch.manual_seed(0)  # same weights for every variant
    cfg = DiffusionConfig(**MODEL, **overrides)
    return QGFDDiffusionBackbone(cfg).to(device)


def training_step(
    model: QGFDDiffusionBackbone,
    batch: int,
    length: int,
    device: torch.device,
    layout: LatentLayout | None = None,
    graph: torch.Tensor | None = None,
) -> Callable[[], None]:
    """A closure running one optimisation step on a fixed random batch (a sequence of
    ``length`` tokens unless ``layout`` says otherwise; ``graph``: the batch's adjacency)."""
    objective = DiffusionObjective(NoiseScheduleConfig(), MIN_SNR_GAMMA)
    g = torch.Generator(device).manual_seed(0)
    x0 = torch.randn(batch, length, MODEL["latent_dim"], generator=g, device=device)
    layout = layout or LatentLayout("sequence", (length,))
    latents = LatentBatch(latents=x0, layout=layout, graph=graph)
    draws = objective.draw(latents, generator=g)  # one fixed batch of t and noise
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = objective.loss(model, latents, draws).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def bench_training(
    lengths: list[int], batch: int, repeats: int, warmup: int, device: torch.device
) -> None:
    names = list(VARIANTS)
    print(
        f"\nTraining step (fwd + bwd + Adam), B={batch}, D={MODEL['d_model']}, "
        f"H={MODEL['num_heads']}, layers={MODEL['num_layers']}, median of {repeats}, {device}"
    )
    print(f"{'L':>6} {'sdpa ms':>10} " + " ".join(f"{n + ' / sdpa':>16}" for n in names[1:]))
    for length in lengths:
        steps = {
            n: training_step(build(device, **VARIANTS[n]), batch, length, device) for n in names
        }
        med = interleaved_medians(steps, repeats, warmup, device)
        ratios = " ".join(f"{med[n] / med['sdpa']:>15.2f}x" for n in names[1:])
        print(f"{length:>6} {1e3 * med['sdpa']:>10.1f} {ratios}")


def bench_graph_training(
    sides: list[int], batch: int, steps: int, repeats: int, warmup: int, device: torch.device
) -> None:
    """Graph QGFD (sparse grid graph, and the same graph dense) over dense QGFD (keys)."""
    qgfd = dict(attention="qgfd", qgfd={"steps": steps, "alpha": 0.9})
    graph_qgfd = dict(attention="qgfd", qgfd={"steps": steps, "alpha": 0.9, "transition": "graph"})
    print(
        f"\nGraph QGFD vs dense QGFD, training step, T={steps}, B={batch}, grid of side^2 tokens, "
        f"4-neighbour graph, median of {repeats}, {device}"
    )
    header = ("keys ms", "graph sparse / keys", "graph dense-A / keys", "sdpa / keys")
    print(f"{'L':>6} " + " ".join(f"{h:>20}" for h in header))
    for side in sides:
        layout, L = LatentLayout("grid", (side, side)), side * side
        grid = layout_graph(layout, "grid4", L).to(device)
        dense = grid.to_dense().expand(batch, L, L).contiguous()
        steps_by_name = {
            "keys": training_step(build(device, **qgfd), batch, L, device, layout),
            "sparse": training_step(
                build(device, **graph_qgfd, layout_graph="grid4"), batch, L, device, layout
            ),
            "dense": training_step(build(device, **graph_qgfd), batch, L, device, layout, dense),
            "sdpa": training_step(build(device, attention="sdpa"), batch, L, device, layout),
        }
        med = interleaved_medians(steps_by_name, repeats, warmup, device)
        ratios = [med[name] / med["keys"] for name in ("sparse", "dense", "sdpa")]
        print(f"{L:>6} {1e3 * med['keys']:>20.1f} " + " ".join(f"{r:>19.2f}x" for r in ratios))


def bench_sampler(
    length: int, batch: int, num_steps: int, repeats: int, device: torch.device
) -> None:
    model = build(device).eval()
    x_T = torch.randn(
        batch,
        length,
        MODEL["latent_dim"],
        device=device,
        generator=torch.Generator(device).manual_seed(0),
    )
    scheduler = make_scheduler("ddim", NoiseScheduleConfig())
    scheduler.set_timesteps(num_steps, device=device)
    timesteps = scheduler.timesteps.clone()

    def sampler() -> None:
        sample_latents(model, scheduler, latents=x_T, num_inference_steps=num_steps, progress=False)

    @torch.no_grad()
    def bare_forwards() -> None:
        for t in timesteps:
            model(x_T, t)

    med = interleaved_medians({"sampler": sampler, "bare": bare_forwards}, repeats, 1, device)
    overhead = med["sampler"] / med["bare"] - 1
    verdict = "ok" if overhead < OVERHEAD_TARGET else "ABOVE TARGET"
    print(
        f"\nDDIM sampling, {num_steps} steps, B={batch}, L={length}, qgfd T=2, median of {repeats}"
    )
    print(
        f"  sampler {1e3 * med['sampler']:.1f} ms | bare forwards {1e3 * med['bare']:.1f} ms | "
        f"ratio {med['sampler'] / med['bare']:.3f} | overhead {100 * overhead:+.1f}% "
        f"(target < {100 * OVERHEAD_TARGET:.0f}%: {verdict})"
    )


def default_device() -> torch.device:
    accelerator = (
        torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    )
    return accelerator if accelerator is not None else torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run (L = 32, 64; 3 repeats)")
    parser.add_argument("--device", default=None, help="default: the accelerator, else cpu")
    parser.add_argument("--batch", type=int, default=4, help="batch size B (default 4)")
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    if args.quick:
        lengths, repeats, warmup, sample_len, sample_steps = [32, 64], 3, 1, 32, 10
        sides = [4, 8]
    else:
        lengths, repeats, warmup, sample_len, sample_steps = [64, 256, 1024], 7, 2, 256, 50
        sides = [8, 16, 32]
    bench_training(lengths, args.batch, repeats, warmup, device)
    bench_graph_training(sides, args.batch, GRAPH_STEPS, repeats, warmup, device)
    bench_sampler(sample_len, args.batch, sample_steps, repeats, device)


if __name__ == "__main__":
    main()
