"""Convolution workloads: the DESIGN shapes (conv2d 3x3 same, conv_transpose2d 8x8 -> 16x16) and
both against the batch size, forward and forward+backward, for the suite (``python -m benchmarks``).

    python -m benchmarks --only kernel/conv   # these workloads (also: python -m benchmarks.conv)
    python -m benchmarks.conv --startup       # Numba compile time (cold cache) and cached start-up

``kernel[IMPL]`` calls the kernels directly; ``scratchgen[IMPL]`` is the user's path
(``scratchgen.functional`` on Tensors); PyTorch goes through its autograd. Every input requires a
gradient, so all compute the data, weight and bias gradients. The ``gemm-only[cpu]`` contender
times only the matrix products the ``cpu`` kernels make (same shapes and batching): the gap
between it and ``kernel[cpu]`` is im2col / col2im and the other data movement.
"""
import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from .workload import Work, Workload, as_passes, implementation_contenders, peer_contender


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

    @property
    def forward_flops(self):
        """Multiply-adds x 2 of the forward pass: every output of the conv2d view sums C_in k^2
        products (for conv_transpose2d, every *input* pixel scatters to C_out k^2 outputs)."""
        k2 = self.kernel * self.kernel
        if self.op == "conv2d":
            positions = self.batch * self.out_channels * int(np.prod(self.output_hw))
            return 2.0 * positions * self.in_channels * k2
        return 2.0 * self.batch * self.in_channels * int(np.prod(self.input_hw)) * self.out_channels * k2

    def describe(self):
        return (f"{self.op} N={self.batch} Cin={self.in_channels} Cout={self.out_channels} "
                f"{self.input_hw[0]}x{self.input_hw[1]} -> {self.output_hw[0]}x{self.output_hw[1]} "
                f"k={self.kernel} stride={self.stride} pad={self.padding}")


WORKLOADS = (ConvWorkload("conv2d", 32, 32, 64, (16, 16), 3, 1, 1),
             ConvWorkload("conv_transpose2d", 32, 64, 32, (8, 8), 4, 2, 1))
BATCHES = (8, 16, 32, 64)      # the scaling series: time and memory against the batch size
QUICK_BATCHES = (2, 4)         # --quick: the same ops at toy channel counts


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
    kernels in use): what a user gets, kernel time plus graph bookkeeping."""
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
    """The same two passes through PyTorch autograd (ImportError when it is not installed)."""
    import torch
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


def workloads(options):
    """Both ops against the batch size (the DESIGN batch of 32 among them) for the suite; --quick
    keeps the ops and shrinks them to toy channel counts."""
    if options.quick:
        return [suite_workload(dataclasses.replace(shape, in_channels=4, out_channels=8, batch=batch), False)
                for shape in WORKLOADS for batch in QUICK_BATCHES]
    return [suite_workload(dataclasses.replace(shape, batch=batch), batch == shape.batch)
            for shape in WORKLOADS for batch in BATCHES]


def suite_workload(shape, design):
    flops = shape.forward_flops  # forward+backward: the data and weight gradients cost one forward each
    return Workload(name=f"{shape.op} N={shape.batch}", family="kernel", description=shape.describe(),
                    setup=lambda options: contenders(shape, options), series=f"{shape.op} vs batch",
                    x=shape.batch, design=design, memory=True,
                    work={"forward": Work(flops, "flop"), "forward+backward": Work(3 * flops, "flop")})


def contenders(workload, options):
    inputs = make_inputs(workload)

    def on(place):
        return [place.array(a) for a in inputs]
    calls = implementation_contenders(options, "kernel", lambda place: as_passes(
        kernel_calls(place.kernels("conv"), workload, on(place))))
    calls |= implementation_contenders(options, "scratchgen", lambda place: as_passes(
        autograd_calls(workload, on(place))))
    if "cpu" in options.impls:
        calls["gemm-only[cpu]"] = as_passes(gemm_calls(workload, inputs))
    return calls | peer_contender(options, "torch", lambda: as_passes(torch_calls(workload, inputs)))


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


def main(argv=None):
    """``--startup``: Numba compile and cached start-up times; otherwise the suite's conv workloads
    (other arguments go to ``python -m benchmarks``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv", description=__doc__.split("\n")[0])
    parser.add_argument("--startup", action="store_true", help="time Numba compilation and cached start-up")
    args, suite_arguments = parser.parse_known_args(argv)
    if not args.startup:
        from .__main__ import main as suite_main
        return suite_main(["--only", "kernel/conv", *suite_arguments])
    for label, (imported, first_call) in startup_times().items():
        print(f"{label} Numba cache: import {imported:.2f} s, "
              f"first conv2d forward+backward {first_call:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
