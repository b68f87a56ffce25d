"""Convolution benchmark: the DESIGN workloads (conv2d 3x3 same, conv_transpose2d 8x8 -> 16x16)
forward and forward+backward, ``reference`` vs ``cpu`` vs PyTorch CPU, interleaved, 1 thread.

    python -m benchmarks.conv                 # the table
    python -m benchmarks.conv --threads 2
    python -m benchmarks.conv --startup       # Numba compile time (cold cache) and cached start-up

``reference`` and ``cpu`` call the kernels directly; ``autograd`` is the user's path
(``scratchgen.functional`` on Tensors, cpu kernels underneath); PyTorch goes through its autograd.
Every input requires a gradient, so all compute the data, weight and bias gradients. The ``gemm``
row times only the matrix products the ``cpu`` kernels make (same shapes and batching): the gap
between it and ``cpu`` is im2col / col2im and the other data movement.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from scratchgen.kernels.conv import cpu, reference

from .attention import pin_threads
from .timing import time_interleaved


@dataclass(frozen=True)
class ConvWorkload:
    """One convolution; for conv_transpose2d the channels are the transposed op's (in -> out)."""
    op: str
    batch: int
    in_channels: int
    out_channels: int
    input_hw: tuple
    kernel: int
    stride: int
    padding: int

    @property
    def window(self):
        """``(stride, padding, dilation, groups)`` as the kernels take them."""
        return (self.stride,) * 2, (self.padding,) * 2, (1, 1), 1

    @property
    def output_hw(self):
        k, s, p = self.kernel, self.stride, self.padding
        if self.op == "conv2d":
            return tuple((n + 2 * p - k) // s + 1 for n in self.input_hw)
        return tuple((n - 1) * s - 2 * p + k for n in self.input_hw)


WORKLOADS = (ConvWorkload("conv2d", 32, 32, 64, (16, 16), 3, 1, 1),
             ConvWorkload("conv_transpose2d", 32, 64, 32, (8, 8), 4, 2, 1))


def make_inputs(workload, seed=0):
    """x, weight (PyTorch's layout for the op), bias and an output gradient, float32."""
    rng = np.random.default_rng(seed)
    w = workload
    weight_shape = ((w.out_channels, w.in_channels) if w.op == "conv2d" else (w.in_channels, w.out_channels))
    shapes = ((w.batch, w.in_channels) + w.input_hw, weight_shape + (w.kernel,) * 2, (w.out_channels,),
              (w.batch, w.out_channels) + w.output_hw)
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


def kernel_calls(kernels, workload, inputs):
    """``(forward, forward_backward)`` for one kernel module; conv_transpose2d as conv2d's adjoint."""
    x, weight, bias, grad_y = inputs
    window, kernel_hw = workload.window, weight.shape[2:]
    if workload.op == "conv2d":
        def forward():
            return kernels.conv2d_forward(x, weight, bias, *window)

        def backward():
            kernels.conv2d_backward_data(grad_y, weight, x.shape[2:], *window)
            kernels.conv2d_backward_weight(grad_y, x, kernel_hw, *window)
    else:
        def forward():
            return kernels.conv2d_backward_data(x, weight, grad_y.shape[2:], *window) + bias[:, None, None]

        def backward():
            kernels.conv2d_forward(grad_y, weight, None, *window)
            kernels.conv2d_backward_weight(x, grad_y, kernel_hw, *window)

    def forward_backward():
        forward()
        backward()
        grad_y.sum(axis=(0, 2, 3))
    return forward, forward_backward


def gemm_calls(workload, inputs):
    """Only the sgemm calls of the ``cpu`` kernels, with their shapes, as ``(forward, forward_backward)``."""
    x, weight, _, grad_y = inputs
    if workload.op == "conv_transpose2d":  # the same three products, in the other order
        x, grad_y = grad_y, x
    n, positions = x.shape[0], grad_y.shape[2] * grad_y.shape[3]
    weight_matrix = weight.reshape(weight.shape[0], -1)  # (C_out, K) of the conv2d view
    cols = np.ones((n, weight_matrix.shape[1], positions), np.float32)
    grad_matrix = grad_y.reshape(n, -1, positions)
    # the weight gradient's operands in the (channel, sample * position) order the kernel builds
    cols_by_row = np.ones((weight_matrix.shape[1], n * positions), np.float32)
    grad_by_channel = np.ascontiguousarray(grad_matrix.transpose(1, 0, 2)).reshape(weight_matrix.shape[0], -1)
    products = {"conv": lambda: weight_matrix @ cols,
                "data": lambda: weight_matrix.T @ grad_matrix,
                "weight": lambda: grad_by_channel @ cols_by_row.T}
    first, *rest = ("conv", "data", "weight") if workload.op == "conv2d" else ("data", "conv", "weight")
    return products[first], lambda: [products[name]() for name in (first, *rest)]


def autograd_calls(workload, inputs):
    """The same two passes through scratchgen's autograd (``F.conv2d`` / ``F.conv_transpose2d`` on the
    cpu kernels): what a user gets, kernel time plus graph bookkeeping."""
    import scratchgen as sg
    import scratchgen.functional as F
    x, weight, bias = (sg.Tensor(a, requires_grad=True) for a in inputs[:3])
    grad_y = sg.Tensor(inputs[3])
    op = F.conv2d if workload.op == "conv2d" else F.conv_transpose2d

    def forward():
        with sg.no_grad():
            op(x, weight, bias, workload.stride, workload.padding)

    def forward_backward():
        for tensor in (x, weight, bias):
            tensor.grad = None
        op(x, weight, bias, workload.stride, workload.padding).backward(grad_y)
    return forward, forward_backward


def torch_calls(workload, inputs):
    """The same two passes through PyTorch autograd, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    x, weight, bias = (torch.from_numpy(a).requires_grad_() for a in inputs[:3])
    grad_y = torch.from_numpy(inputs[3])
    op = torch.nn.functional.conv2d if workload.op == "conv2d" else torch.nn.functional.conv_transpose2d

    def forward():
        with torch.no_grad():
            op(x, weight, bias, workload.stride, workload.padding)

    def forward_backward():
        for tensor in (x, weight, bias):
            tensor.grad = None
        op(x, weight, bias, workload.stride, workload.padding).backward(grad_y)
    return forward, forward_backward


def benchmark(workload, repeats):
    """Rows ``{workload, pass, contender, median_s, q25_s, q75_s, runs, first_call_s}``."""
    inputs = make_inputs(workload)
    calls = {"reference": kernel_calls(reference, workload, inputs),
             "cpu": kernel_calls(cpu, workload, inputs), "autograd": autograd_calls(workload, inputs),
             "gemm": gemm_calls(workload, inputs)}
    peer = torch_calls(workload, inputs)
    if peer is not None:
        calls["torch"] = peer
    rows = []
    for index, pass_name in enumerate(("forward", "forward+backward")):
        timings = time_interleaved({name: pair[index] for name, pair in calls.items()}, repeats=repeats)
        rows += [{"workload": workload.op, "pass": pass_name, "contender": name, **timing}
                 for name, timing in timings.items()]
    return rows


def format_table(rows):
    """Markdown: one line per (workload, pass, contender); ratio = median / PyTorch's median."""
    torch_median = {(r["workload"], r["pass"]): r["median_s"] for r in rows if r["contender"] == "torch"}
    lines = ["| workload | pass | contender | median ms | IQR ms | vs PyTorch |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        peer = torch_median.get((r["workload"], r["pass"]))
        ratio = f"{r['median_s'] / peer:.2f}" if peer else "-"
        lines.append(f"| {r['workload']} | {r['pass']} | {r['contender']} | {r['median_s'] * 1e3:.2f} | "
                     f"{(r['q75_s'] - r['q25_s']) * 1e3:.2f} | {ratio} |")
    return "\n".join(lines)


STARTUP_SNIPPET = """
import time
import numpy as np
start = time.perf_counter()
from scratchgen.benchmarks.conv import WORKLOADS, kernel_calls, make_inputs
from scratchgen.kernels.conv import cpu
imported = time.perf_counter()
kernel_calls(cpu, WORKLOADS[0], make_inputs(WORKLOADS[0]))[1]()
print(imported - start, time.perf_counter() - imported)
"""


def startup_times():
    """``{cold, cached}``: (import s, first forward+backward s) in fresh processes, the first with an
    empty Numba cache (compiles), the second loading what the first cached."""
    times = {}
    with tempfile.TemporaryDirectory() as cache:
        environment = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "cached"):
            output = subprocess.run([sys.executable, "-c", STARTUP_SNIPPET], env=environment, check=True,
                                    capture_output=True, text=True).stdout
            times[label] = tuple(float(v) for v in output.split())
    return times


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--startup", action="store_true", help="time Numba compilation and cached start-up")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    if args.startup:
        for label, (imported, first_call) in startup_times().items():
            print(f"{label} Numba cache: import {imported:.2f} s, "
                  f"first conv2d forward+backward {first_call:.2f} s")
        return None
    with pin_threads(args.threads):
        rows = [row for workload in WORKLOADS for row in benchmark(workload, args.repeats)]
    print(f"convolution: float32, {args.threads} thread(s); gemm = the cpu kernels' matrix products alone")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
