"""Attention workloads: the DESIGN shape (causal, B=8, heads=4, head_dim=32) against the sequence
length T = 256 ... 4096, forward and forward+backward, time and peak memory, for the suite.

    python -m benchmarks --only kernel/attention        # these workloads (or: python -m benchmarks.attention)
    python -m benchmarks --reference-max-length 4096    # include the 2 GiB-a-matrix reference at T=4096
    python -m benchmarks.attention --sweep-tiles        # how cpu.FORWARD/BACKWARD_TILES were chosen

``kernel[IMPL]`` calls the kernels directly (no autograd), ``scratchgen[IMPL]`` runs
``F.scaled_dot_product_attention``, PyTorch ``torch.nn.functional.scaled_dot_product_attention``.
Peak memory is tracemalloc's: it sees NumPy's allocations (the cpu kernels take all their scratch
from NumPy), not PyTorch's.
"""
import argparse
import sys
from dataclasses import dataclass

import numpy as np

from scratchgen.kernels.attention import cpu

from .machine import pin_threads
from .timing import time_interleaved
from .workload import Skip, Work, Workload, as_passes, implementation_contenders, peer_contender


@dataclass(frozen=True)
class AttentionWorkload:
    batch: int = 8
    heads: int = 4
    head_dim: int = 32
    lengths: tuple = (256, 1024, 4096)
    causal: bool = True

    def forward_flops(self, length):
        """2 x the multiply-adds of S = Q K^T and O = P V, counting only the causal half of the
        (T, T) scores when causal (what a causal kernel needs to compute)."""
        full = 4.0 * self.batch * self.heads * length * length * self.head_dim
        return full / 2 if self.causal else full

    def describe(self, length):
        return (f"{'causal' if self.causal else 'full'}, B={self.batch} heads={self.heads} T={length} "
                f"head_dim={self.head_dim}")


WORKLOAD = AttentionWorkload()
SERIES_LENGTHS = (256, 512, 1024, 2048, 4096)   # the scaling series; DESIGN's lengths among them
QUICK = AttentionWorkload(batch=1, heads=2, head_dim=8, lengths=(16, 32))
BACKWARD_FLOPS_RATIO = 2.5  # backward: dV, dP, dS -> dQ, dK: five products to the forward's two
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


def autograd_calls(workload, inputs):
    """The same two calls through ``F.scaled_dot_product_attention`` on Tensors: the user's path."""
    import scratchgen as sg
    import scratchgen.functional as F
    q, k, v = (sg.Tensor(a, requires_grad=True) for a in inputs[:3])
    grad_out = sg.Tensor(inputs[3])

    def forward():
        with sg.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=workload.causal)

    def forward_backward():
        for x in (q, k, v):
            x.grad = None
        F.scaled_dot_product_attention(q, k, v, is_causal=workload.causal).backward(grad_out)
    return forward, forward_backward


def torch_calls(workload, inputs):
    """The same two calls through PyTorch (ImportError when it is not installed)."""
    import torch
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


def workloads(options):
    """Attention against T for the suite (DESIGN's T = 256, 1024, 4096 among them)."""
    shape, lengths = (QUICK, QUICK.lengths) if options.quick else (WORKLOAD, SERIES_LENGTHS)
    return [suite_workload(shape, length, design=not options.quick and length in shape.lengths)
            for length in lengths]


def suite_workload(shape, length, design):
    flops = shape.forward_flops(length)
    note = "causal half of the T^2 work" if shape.causal else ""
    return Workload(name=f"attention T={length}", family="kernel", description=shape.describe(length),
                    setup=lambda options: contenders(shape, length, options), series="attention vs T",
                    x=length, design=design, memory=True,
                    work={"forward": Work(flops, "flop", note),
                          "forward+backward": Work((1 + BACKWARD_FLOPS_RATIO) * flops, "flop", note)})


def contenders(workload, length, options):
    inputs = make_inputs(workload, length)

    def passes(place, calls):
        if place.impl == "reference" and length > options.reference_max_length:
            return Skip(f"the reference holds (B, H, T, T) scores: skipped above T="
                        f"{options.reference_max_length} (--reference-max-length)")
        return as_passes(calls([place.array(a) for a in inputs]))
    found = implementation_contenders(options, "kernel", lambda place: passes(
        place, lambda arrays: kernel_calls(place.kernels("attention"), workload, arrays)))
    found |= implementation_contenders(options, "scratchgen", lambda place: passes(
        place, lambda arrays: autograd_calls(workload, arrays)))
    return found | peer_contender(options, "torch", lambda: as_passes(torch_calls(workload, inputs)))


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


def format_sweep(rows):
    """Markdown: one line per (length, pass, tile candidate)."""
    lines = ["| T | pass | tiles | median ms | IQR ms |", "| ---: | --- | --- | ---: | ---: |"]
    lines += [f"| {r['length']} | {r['pass']} | {r['contender']} | {r['median_s'] * 1e3:.2f} | "
              f"{(r['q75_s'] - r['q25_s']) * 1e3:.2f} |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    """``--sweep-tiles``: time the cpu kernels' tile candidates; otherwise the suite's attention
    workloads (other arguments go to ``python -m benchmarks``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attention",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--sweep-tiles", action="store_true", help="time the cpu kernels' tile candidates")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024], help="T of --sweep-tiles")
    parser.add_argument("--repeats", type=int, default=10, help="rounds of --sweep-tiles")
    parser.add_argument("--threads", default="1", help="thread count (the suite takes a list: 1,2)")
    args, suite_arguments = parser.parse_known_args(argv)
    if not args.sweep_tiles:
        from .__main__ import main as suite_main
        return suite_main(["--only", "kernel/attention", "--threads", args.threads, *suite_arguments])
    with pin_threads(int(args.threads)):
        rows = sweep_tiles(WORKLOAD, args.lengths, args.repeats)
    print(f"attention tiles: causal B={WORKLOAD.batch} heads={WORKLOAD.heads} head_dim={WORKLOAD.head_dim}, "
          f"float32, {args.threads} thread(s)")
    print(format_sweep(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
