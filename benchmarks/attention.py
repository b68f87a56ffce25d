"""Attention benchmark: the DESIGN workload (causal, B=8, heads=4, head_dim=32) forward and
forward+backward, ``reference`` vs ``cpu`` (flash) vs PyTorch CPU, interleaved, 1 thread by default.

    python -m benchmarks.attention                          # T = 256, 1024, 4096, times + memory
    python -m benchmarks.attention --reference-max-length 1024   # skip the 2 GiB-a-matrix reference
    python -m benchmarks.attention --threads 2
    python -m benchmarks.attention --sweep-tiles            # how cpu.FORWARD/BACKWARD_TILES were chosen

Kernels are called directly (no autograd), PyTorch through ``F.scaled_dot_product_attention``.
Peak memory is tracemalloc's: it sees NumPy's allocations (the cpu kernels take all their scratch
from NumPy), not PyTorch's.
"""
import argparse
import tracemalloc
from dataclasses import dataclass

import numba
import numpy as np

from scratchgen.kernels.attention import cpu, reference

from .timing import time_interleaved


@dataclass(frozen=True)
class AttentionWorkload:
    batch: int = 8
    heads: int = 4
    head_dim: int = 32
    lengths: tuple = (256, 1024, 4096)
    causal: bool = True


WORKLOAD = AttentionWorkload()
TILE_CANDIDATES = ((32, 64), (64, 64), (64, 128), (128, 64), (128, 128), (64, 256), (128, 256))


def make_inputs(workload, length, seed=0):
    """q, k, v and an output gradient, float32 (B, H, T, D)."""
    rng = np.random.default_rng(seed)
    shape = (workload.batch, workload.heads, length, workload.head_dim)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]


def kernel_calls(kernels, workload, inputs, forward_tiles=None, backward_tiles=None):
    """``(forward, forward_backward)`` zero-argument callables for one kernel module."""
    q, k, v, grad_out = inputs
    scale = workload.head_dim ** -0.5
    forward_options = {} if forward_tiles is None else {"tiles": forward_tiles}
    backward_options = {} if backward_tiles is None else {"tiles": backward_tiles}

    def forward():
        return kernels.attention_forward(q, k, v, None, workload.causal, scale, **forward_options)

    def forward_backward():
        out, logsumexp = forward()
        kernels.attention_backward(grad_out, q, k, v, out, logsumexp, None, workload.causal, scale,
                                   **backward_options)
    return forward, forward_backward


def torch_calls(workload, inputs):
    """The same two calls through PyTorch, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    q, k, v = (torch.from_numpy(a).requires_grad_() for a in inputs[:3])
    grad_out = torch.from_numpy(inputs[3])
    attend = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            attend(q, k, v, is_causal=workload.causal)

    def forward_backward():
        for x in (q, k, v):
            x.grad = None
        attend(q, k, v, is_causal=workload.causal).backward(grad_out)
    return forward, forward_backward


def peak_bytes(fn):
    """Peak memory tracemalloc saw during one call of ``fn``."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def benchmark_length(workload, length, with_reference, repeats, memory):
    """Rows ``{length, pass, contender, median_s, ..., peak_bytes}`` for one sequence length."""
    inputs = make_inputs(workload, length)
    modules = {"cpu": cpu, **({"reference": reference} if with_reference else {})}
    calls = {name: kernel_calls(module, workload, inputs) for name, module in modules.items()}
    peer = torch_calls(workload, inputs)
    if peer is not None:
        calls["torch"] = peer
    rows = []
    for index, pass_name in enumerate(("forward", "forward+backward")):
        timings = time_interleaved({name: pair[index] for name, pair in calls.items()}, repeats=repeats)
        for name, timing in timings.items():
            peak = peak_bytes(calls[name][index]) if memory and name != "torch" else None
            rows.append({"length": length, "pass": pass_name, "contender": name, **timing,
                         "peak_bytes": peak})
    return rows


def sweep_tiles(workload, lengths, repeats):
    """Rows timing the cpu forward and backward for every tile candidate, interleaved."""
    rows = []
    for length in lengths:
        inputs = make_inputs(workload, length)
        forward_calls = {tiles: kernel_calls(cpu, workload, inputs, forward_tiles=tiles)[0]
                         for tiles in TILE_CANDIDATES}
        out, logsumexp = cpu.attention_forward(*inputs[:3], None, workload.causal, workload.head_dim ** -0.5)

        def backward_call(tiles):
            q, k, v, grad_out = inputs
            return lambda: cpu.attention_backward(grad_out, q, k, v, out, logsumexp, None, workload.causal,
                                                  workload.head_dim ** -0.5, tiles=tiles)
        backward_calls = {tiles: backward_call(tiles) for tiles in TILE_CANDIDATES}
        for pass_name, calls in (("forward", forward_calls), ("backward", backward_calls)):
            for tiles, timing in time_interleaved(calls, repeats=repeats).items():
                rows.append({"length": length, "pass": pass_name, "contender": f"tiles {tiles}", **timing})
    return rows


def format_table(rows):
    """Markdown: one line per (length, pass, contender); ratio = median / PyTorch's median."""
    torch_median = {(r["length"], r["pass"]): r["median_s"] for r in rows if r["contender"] == "torch"}
    lines = ["| T | pass | contender | median ms | IQR ms | vs PyTorch | peak MiB |",
             "| ---: | --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        peer = torch_median.get((r["length"], r["pass"]))
        ratio = f"{r['median_s'] / peer:.2f}" if peer else "-"
        peak = f"{r['peak_bytes'] / 2**20:.1f}" if r.get("peak_bytes") is not None else "-"
        lines.append(f"| {r['length']} | {r['pass']} | {r['contender']} | {r['median_s'] * 1e3:.2f} | "
                     f"{(r['q75_s'] - r['q25_s']) * 1e3:.2f} | {ratio} | {peak} |")
    return "\n".join(lines)


def pin_threads(threads):
    """Pin BLAS, Numba and PyTorch to ``threads``; returns the threadpoolctl context to keep."""
    import scipy.linalg.cython_blas  # noqa: F401 -- Numba's np.dot calls SciPy's OpenBLAS: load it to pin it
    from threadpoolctl import threadpool_limits
    numba.set_num_threads(threads)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass
    return threadpool_limits(limits=threads)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attention",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(WORKLOAD.lengths))
    parser.add_argument("--reference-max-length", type=int, default=None,
                        help="skip the reference above this T (at 4096 it holds 2 GiB per score matrix)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per contender (default: by T)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc peaks")
    parser.add_argument("--sweep-tiles", action="store_true", help="time the cpu kernels' tile candidates")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    with pin_threads(args.threads):
        if args.sweep_tiles:
            rows = sweep_tiles(WORKLOAD, [t for t in args.lengths if t <= 1024], args.repeats or 10)
        else:
            rows = []
            for length in args.lengths:
                with_reference = args.reference_max_length is None or length <= args.reference_max_length
                repeats = args.repeats or (20 if length <= 1024 else 3)
                rows += benchmark_length(WORKLOAD, length, with_reference, repeats, not args.no_memory)
    print(f"attention: causal B={WORKLOAD.batch} heads={WORKLOAD.heads} head_dim={WORKLOAD.head_dim}, "
          f"float32, {args.threads} thread(s)")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
