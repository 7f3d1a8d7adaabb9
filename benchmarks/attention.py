"""QGFD attention cost, measured side by side with SDPA and the naive seed formula in one run.

    python benchmarks/attention.py                       # CPU, float32, N = 256, 1024, 4096
    python benchmarks/attention.py --device cuda --dtype bfloat16 --sizes 1024 4096 16384

Prints, per N, forward and forward+backward time ratios
    QGFD(T, keys) / SDPA     (the value recursion's limit is T + 1 fused calls)
    naive / QGFD             (seed formula: materialise p0 and P, loop p @ P)
and the peak extra memory of QGFD vs SDPA at --memory-size: on CPU the peak of the allocator's
running total from the PyTorch profiler's memory records, on CUDA max_memory_allocated, both
above the memory that existed before the call (the inputs). Ratios are the figures: absolute
times on
shared machines are noise.
"""

from __future__ import annotations

import os

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's own chatter, before torch loads

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from qgfd_diffusion.attention import naive_qgfd_attention, qgfd_attention

ALPHA = 0.5


def methods(steps: int) -> dict:
    return {
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        "qgfd": lambda q, k, v: qgfd_attention(q, k, v, alpha=ALPHA, steps=steps),
        "qgfd_fused": lambda q, k, v: qgfd_attention(
            q, k, v, alpha=ALPHA, steps=steps, path="fused"
        ),
        "naive": lambda q, k, v: naive_qgfd_attention(q, k, v, alpha=ALPHA, steps=steps),
    }


def make_inputs(args, N: int, requires_grad: bool):
    g = torch.Generator(device=args.device).manual_seed(0)
    shape = (args.batch, args.heads, N, args.head_dim)
    dtype = getattr(torch, args.dtype)
    return [
        torch.randn(shape, generator=g, device=args.device, dtype=dtype).requires_grad_(
            requires_grad
        )
        for _ in range(3)
    ]


def run_once(fn, inputs, backward: bool) -> None:
    if backward:
        fn(*inputs).sum().backward()
        for t in inputs:
            t.grad = None
    else:
        with torch.no_grad():
            fn(*inputs)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_interleaved(args, names, N: int, backward: bool) -> dict[str, float]:
    """Median seconds per call; methods alternate inside each repeat so drift hits all alike."""
    inputs = make_inputs(args, N, requires_grad=backward)
    table = methods(args.steps)
    times = {name: [] for name in names}
    for name in names:  # warm-up
        run_once(table[name], inputs, backward)
    for _ in range(args.repeats):
        for name in names:
            repeats = 1 if name == "naive" and N > 1024 else args.inner
            synchronize(args.device)
            start = time.perf_counter()
            for _ in range(repeats):
                run_once(table[name], inputs, backward)
            synchronize(args.device)
            times[name].append((time.perf_counter() - start) / repeats)
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_extra_memory_mib(args, name: str, N: int, backward: bool) -> float:
    """Peak memory allocated during one call above what existed before it (the inputs)."""
    inputs = make_inputs(args, N, requires_grad=backward)
    fn = methods(args.steps)[name]
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_once(fn, inputs, backward)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    return cpu_peak_bytes(lambda: run_once(fn, inputs, backward)) / 2**20


def cpu_peak_bytes(call) -> int:
    """Peak of the CPU allocator's running total during ``call``, from the profiler's records.

    Each op's own allocations are placed at its start and its own frees at its end, so a free
    never hides an allocation that was live at the same time (the figure errs high, not low).
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    changes = []
    for event in prof.events():
        delta = event.self_cpu_memory_usage
        if delta:
            at = event.time_range.start if delta > 0 else event.time_range.end
            changes.append((at, delta < 0, delta))  # at equal times, allocations come first
    total = peak = 0
    for _, _, delta in sorted(changes):
        total += delta
        peak = max(peak, total)
    return peak


def report(args) -> None:
    T = args.steps
    print(
        f"device={args.device} dtype={args.dtype} B={args.batch} H={args.heads} d={args.head_dim} "
        f"T={T} alpha={ALPHA} threads={torch.get_num_threads()} torch={torch.__version__}"
    )
    print(
        f"target: QGFD/SDPA <= {1.1 * (T + 1):.1f} (1.1 x (T+1)) at N >= 1024; "
        "naive/QGFD >= 5 at N = 1024\n"
    )
    print("| N | pass | QGFD/SDPA | QGFD fused/SDPA | naive/QGFD | path chosen |")
    print("|---|---|---|---|---|---|")
    for N in args.sizes:
        for backward in (False, True):
            names = ["sdpa", "qgfd", "qgfd_fused"] + (["naive"] if N <= args.naive_max else [])
            t = time_interleaved(args, names, N, backward)
            naive = f"{t['naive'] / t['qgfd']:.1f}" if "naive" in t else "skipped"
            chosen = "materialized" if _auto_materializes(args, N) else "fused"
            print(
                f"| {N} | {'fwd+bwd' if backward else 'fwd'} | {t['qgfd'] / t['sdpa']:.2f} | "
                f"{t['qgfd_fused'] / t['sdpa']:.2f} | {naive} | {chosen} |",
                flush=True,
            )
    M = args.memory_size
    naive_gib = (
        3
        * args.batch
        * args.heads
        * M
        * M
        * torch.finfo(getattr(torch, args.dtype)).bits
        / 8
        / 2**30
    )
    print(
        f"\npeak extra memory at N = {M} (MiB): the naive form holds p0, P and p "
        f"({naive_gib:.1f} GiB computed, not run)"
    )
    print("| pass | SDPA | QGFD fused | QGFD/SDPA |")
    print("|---|---|---|---|")
    for backward in (False, True):
        sdpa = peak_extra_memory_mib(args, "sdpa", M, backward)
        qgfd = peak_extra_memory_mib(args, "qgfd_fused", M, backward)
        print(
            f"| {'fwd+bwd' if backward else 'fwd'} | {sdpa:.1f} | {qgfd:.1f} | {qgfd / sdpa:.2f} |",
            flush=True,
        )


def _auto_materializes(args, N: int) -> bool:
    from qgfd_diffusion.attention.functional import _use_materialized, build_transition

    q, k, _ = make_inputs(args, N, requires_grad=False)
    P = build_transition(
        q, k, None, transition="keys", topk=None, temperature=1.0, graph=None, scale=1.0
    )
    return _use_materialized("auto", P, k)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--steps", type=int, default=4, help="QGFD steps T (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (median)")
    parser.add_argument("--inner", type=int, default=1, help="calls per timing sample")
    parser.add_argument("--naive-max", type=int, default=4096, help="largest N for the naive form")
    parser.add_argument("--memory-size", type=int, default=8192)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.memory_size = [64, 256], 2, 1024
    return args


if __name__ == "__main__":
    arguments = parse_args()
    torch.set_num_threads(torch.get_num_threads())
    report(arguments)
