"""QGFD attention cost, measured side by side with SDPA and the naive seed formula in one run.

    python benchmarks/attention.py                       # CPU, float32, N = 256, 1024, 4096
    python benchmarks/attention.py --device cuda --dtype bfloat16 --sizes 1024 4096 16384
    python benchmarks/attention.py --fixed-point         # steps=None: iterative / PPR / dense

Prints, per N, forward and forward+backward time ratios
    QGFD(T, keys) / SDPA     (the value recursion's limit is T + 1 fused calls)
    naive / QGFD             (seed formula: materialise p0 and P, loop p @ P)
and the peak extra memory of QGFD vs SDPA at --memory-size: on CPU the peak of the allocator's
running total from the PyTorch profiler's memory records, on CUDA max_memory_allocated, both
above the memory that existed before the call (the inputs). Ratios are the figures: absolute
times on shared machines are noise.

--fixed-point measures the T = inf limit (steps=None, ``keys``) at --fixed-point-sizes and
a in {0.5, 0.9, 0.99}: the iterative solve (solver="auto": Chebyshev here), the PPR iteration
run to the same tolerance (solver="ppr") and the dense LU solve (solver="dense", up to
--dense-max): products with P used (forward; forward + adjoint), time over one SDPA call
(forward) and over SDPA's forward + backward, and the output's relative error
||out - out_dense|| / ||out_dense|| against the dense solve in float64. Then peak memory at
--fixed-point-memory-sizes, forward and forward + backward, next to SDPA's: the peak resident
set of the process (VmHWM, reset through /proc/self/clear_refs right before the call; glibc
told to serve every block of 64 KiB or more by mmap, and trimmed first, so that freed memory
leaves the resident set at once) above the resident set before the call. It sees every
allocation, torch's or a library's (tracemalloc sees none of torch's). The profiler's figure
above is not used here: it places each op's net allocation at the op's start or end, which is
exact for one SDPA call but overcounts a loop of many small ops (4x the RSS figure, which
matches the count of live [N, dv] vectors, at N = 4096).
"""

from __future__ import annotations

import os

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the profiler's own chatter, before torch loads

import argparse
import ctypes
import re
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F

from qgfd_diffusion.attention import naive_qgfd_attention, qgfd_attention
from qgfd_diffusion.attention.fixed_point import record_solves

ALPHA = 0.5
FIXED_POINT_ALPHAS = (0.5, 0.9, 0.99)
MMAP_THRESHOLD = 64 * 1024  # glibc M_MMAP_THRESHOLD for the RSS measure


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


def time_interleaved(
    args, names, N: int, backward: bool, table=None, repeats=None, sdpa_samples=1
) -> dict[str, float]:
    """Median seconds per call; methods alternate inside each repeat so drift hits all alike.
    ``sdpa_samples``: SDPA timings per repeat (the cheap denominator of every ratio)."""
    inputs = make_inputs(args, N, requires_grad=backward)
    table = table or methods(args.steps)
    times = {name: [] for name in names}
    for name in names:  # warm-up
        run_once(table[name], inputs, backward)
    for _ in range(repeats or args.repeats):
        for name in names:
            for _ in range(sdpa_samples if name == "sdpa" else 1):
                times[name].append(time_call(args, table[name], inputs, backward, name, N))
    return {name: statistics.median(ts) for name, ts in times.items()}


def time_call(args, fn, inputs, backward: bool, name: str, N: int) -> float:
    inner = 1 if name in ("naive", "dense", "ppr") and N > 1024 else args.inner
    synchronize(args.device)
    start = time.perf_counter()
    for _ in range(inner):
        run_once(fn, inputs, backward)
    synchronize(args.device)
    return (time.perf_counter() - start) / inner


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


def rss_peak_bytes(call) -> int:
    """Peak resident set during ``call`` above the resident set before it (module docstring)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD: fixed, so frees unmap at once
    libc.malloc_trim(0)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM := VmRSS
    call()
    return (_status_kib("VmHWM") - before) * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return int(re.search(rf"{field}:\s+(\d+)", status.read()).group(1))


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


def fixed_point_methods(a: float, tol: float) -> dict:
    common = dict(alpha=a, steps=None, tol=tol, max_applications=5000)
    return {
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        "iterative": lambda q, k, v: qgfd_attention(q, k, v, **common),
        "ppr": lambda q, k, v: qgfd_attention(q, k, v, solver="ppr", **common),
        "dense": lambda q, k, v: qgfd_attention(q, k, v, solver="dense", **common),
    }


def count_applications(fn, inputs) -> tuple[int, int, str]:
    """Products with P of one call: (forward, forward + adjoint), and the method used."""
    with record_solves() as solves:
        fn(*inputs).sum().backward()
    for t in inputs:
        t.grad = None
    forward = sum(s.applications for s in solves if s.direction == "forward")
    return forward, sum(s.applications for s in solves), solves[0].method


def relative_error(fn, inputs, reference) -> float:
    with torch.no_grad():
        out = fn(*inputs).double()
    return float((out - reference).norm() / reference.norm())


def dense_reference(args, N: int, a: float):
    """The dense float64 solve's output (the error reference)."""
    q, k, v = (t.double() for t in make_inputs(args, N, requires_grad=False))
    with torch.no_grad():
        return qgfd_attention(q, k, v, alpha=a, steps=None, solver="dense")


def fixed_point_row(args, N: int, a: float) -> list[str]:
    table = fixed_point_methods(a, args.tol)
    skip_ppr = a >= args.ppr_skip_alpha and N >= args.ppr_skip_size
    names = ["sdpa", "iterative"] + ([] if skip_ppr else ["ppr"])
    names += ["dense"] if N <= args.dense_max else []
    repeats = args.repeats if N <= 1024 else (3 if N <= 4096 else 1)
    fwd = time_interleaved(args, names, N, False, table, repeats, sdpa_samples=5)
    fb = time_interleaved(args, ["sdpa", "iterative"], N, True, table, repeats, sdpa_samples=5)
    inputs = make_inputs(args, N, requires_grad=True)
    reference = dense_reference(args, N, a) if N <= args.dense_max else None
    cells = []
    for name in ("iterative", "ppr", "dense"):
        if name not in names:
            cells.append(f"| {N} | {a} | {name} | skipped | | | | |")
            continue
        forward, total, method = (
            count_applications(table[name], inputs) if name != "dense" else (0, 0, "lu")
        )
        error = (
            "-" if reference is None else f"{relative_error(table[name], inputs, reference):.1e}"
        )
        bound = f"{1.1 * (forward + 1):.1f}" if name != "dense" else ""
        both = f"{fb['iterative'] / fb['sdpa']:.1f}" if name == "iterative" else ""
        counts = f"{forward} / {total}" if name != "dense" else ""
        cells.append(
            f"| {N} | {a} | {name} ({method}) | {counts} | {fwd[name] / fwd['sdpa']:.1f} | "
            f"{bound} | {both} | {error} |"
        )
    return cells


def fixed_point_memory(args) -> None:
    a = 0.9
    table = fixed_point_methods(a, args.tol)
    print(f"\npeak memory, a = {a} (MiB): peak resident set above the resident set at the start")
    print("| N | pass | SDPA | iterative | iterative / SDPA |\n|---|---|---|---|---|")
    for N in args.fixed_point_memory_sizes:
        for backward in (False, True):
            inputs = make_inputs(args, N, requires_grad=backward)
            sdpa, iterative = (
                rss_peak_bytes(partial(run_once, table[name], inputs, backward)) / 2**20
                for name in ("sdpa", "iterative")
            )
            print(
                f"| {N} | {'fwd+bwd' if backward else 'fwd'} | {sdpa:.1f} | {iterative:.1f} | "
                f"{iterative / sdpa:.2f} |",
                flush=True,
            )


def fixed_point_report(args) -> None:
    print(
        f"device={args.device} dtype={args.dtype} B={args.batch} H={args.heads} d={args.head_dim} "
        f"transition=keys steps=None tol={args.tol} threads={torch.get_num_threads()} "
        f"torch={torch.__version__}"
    )
    print(
        "targets (a = 0.9, N >= 1024): iterative <= 20 products to 1e-4 relative error; forward "
        "time <= 1.1 x (products + 1) x SDPA; forward + backward peak memory at N = 8192 <= 4 x "
        "SDPA's; N = 16384 forward + backward runs\n"
    )
    print(
        "| N | a | method | products with P: fwd / fwd+adjoint | fwd time / SDPA | "
        "1.1 x (fwd products + 1) | fwd+bwd time / SDPA fwd+bwd | rel. error vs dense |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for N in args.fixed_point_sizes:
        for a in FIXED_POINT_ALPHAS:
            for line in fixed_point_row(args, N, a):
                print(line, flush=True)
    fixed_point_memory(args)


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
    fixed = parser.add_argument_group("fixed point (--fixed-point)")
    fixed.add_argument("--fixed-point", action="store_true", help="measure steps=None instead")
    fixed.add_argument(
        "--fixed-point-sizes", type=int, nargs="+", default=[256, 1024, 4096, 8192, 16384]
    )
    fixed.add_argument("--fixed-point-memory-sizes", type=int, nargs="+", default=[8192, 16384])
    fixed.add_argument("--tol", type=float, default=1e-4, help="relative residual of the solves")
    fixed.add_argument("--dense-max", type=int, default=4096, help="largest N for the LU solve")
    fixed.add_argument(
        "--ppr-skip-alpha",
        type=float,
        default=0.99,
        help="skip the PPR iteration at this alpha and above from --ppr-skip-size on "
        "(hundreds of products per call)",
    )
    fixed.add_argument("--ppr-skip-size", type=int, default=8192)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.memory_size = [64, 256], 2, 1024
        args.fixed_point_sizes, args.fixed_point_memory_sizes = [64, 256], [256]
        args.dense_max = args.ppr_skip_size = 256
    return args


if __name__ == "__main__":
    arguments = parse_args()
    torch.set_num_threads(torch.get_num_threads())
    (fixed_point_report if arguments.fixed_point else report)(arguments)
