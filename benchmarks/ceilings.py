"""The machine's limits, measured rather than quoted: the fp32 GEMM rate (NumPy's 1024^3 matmul,
DESIGN's matmul workload) and the memory bandwidth (a copy and an add of arrays far larger than
any cache). Every kernel's rate is reported as a fraction of one of them: GFLOP/s of the GEMM
ceiling for compute, GB/s of the bandwidth ceiling for data movement.

The matmul also races the engines: ``numpy`` is the floor (forward, and the hand-written gradient
``G B^T``, ``A^T G`` for forward+backward), ``scratchgen`` and ``torch`` go through their autograd.
"""
import numpy as np

from .workload import Work, Workload, peer_contender

MATMUL_SIZE, QUICK_MATMUL_SIZE = 1024, 128
BANDWIDTH_BYTES, QUICK_BANDWIDTH_BYTES = 2 ** 27, 2 ** 20   # per array: 128 MiB, far past the last cache
MATMUL_NAME, BANDWIDTH_NAME = "matmul", "memory bandwidth"


def workloads(options):
    n = QUICK_MATMUL_SIZE if options.quick else MATMUL_SIZE
    size = QUICK_BANDWIDTH_BYTES if options.quick else BANDWIDTH_BYTES
    flops = 2.0 * n ** 3
    return [Workload(name=MATMUL_NAME, family="ceiling", description=f"fp32 {n}x{n} @ {n}x{n}",
                     setup=lambda options: matmul_contenders(n, options), design=not options.quick,
                     work={"forward": Work(flops, "flop"), "forward+backward": Work(3 * flops, "flop")}),
            Workload(name=BANDWIDTH_NAME, family="ceiling",
                     description=f"fp32 arrays of {size / 2 ** 20:g} MiB: dst[:] = a; dst[:] = a + b",
                     setup=lambda options: bandwidth_contenders(size, options),
                     work={"copy": Work(2.0 * size, "byte", "bytes read + written"),
                           "add": Work(3.0 * size, "byte", "bytes read + written")})]


def matmul_inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, n)).astype(np.float32) for _ in range(3)]  # a, b, grad of a @ b


def matmul_contenders(n, options):
    a, b, grad = matmul_inputs(n)
    contenders = {"scratchgen": scratchgen_matmul(a, b, grad)}
    contenders |= peer_contender(options, "numpy", lambda: {
        "forward": lambda: a @ b,
        "forward+backward": lambda: (a @ b, grad @ b.T, a.T @ grad)})
    return contenders | peer_contender(options, "torch", lambda: torch_matmul(a, b, grad))


def scratchgen_matmul(a, b, grad):
    import scratchgen as sg
    x, y = sg.tensor(a, requires_grad=True), sg.tensor(b, requires_grad=True)
    grad = sg.tensor(grad)

    def forward():
        with sg.no_grad():
            x @ y

    def forward_backward():
        x.grad = y.grad = None
        (x @ y).backward(grad)
    return {"forward": forward, "forward+backward": forward_backward}


def torch_matmul(a, b, grad):
    import torch
    x, y = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
    grad = torch.from_numpy(grad)

    def forward():
        with torch.no_grad():
            x @ y

    def forward_backward():
        x.grad = y.grad = None
        (x @ y).backward(grad)
    return {"forward": forward, "forward+backward": forward_backward}


def bandwidth_contenders(size, options):
    a, b, destination = (np.ones(size // 4, np.float32) for _ in range(3))  # touched: no first-use faults
    return peer_contender(options, "numpy", lambda: {"copy": lambda: np.copyto(destination, a),
                                                     "add": lambda: np.add(a, b, out=destination)})


def ceilings_from(rows):
    """``{"gemm_gflops", "bandwidth_gbs"}`` from the ceiling workloads' NumPy rows (None if not
    measured): the GEMM ceiling is NumPy's matmul forward, the bandwidth the better of copy and add."""
    def rate(name, pass_name):
        found = [row["rate"] for row in rows if "rate" in row
                 and (row["workload"], row["pass"], row["contender"]) == (name, pass_name, "numpy")]
        return found[0] if found else None
    rates = [r for r in (rate(BANDWIDTH_NAME, "copy"), rate(BANDWIDTH_NAME, "add")) if r is not None]
    gemm = rate(MATMUL_NAME, "forward")
    return {"gemm_gflops": gemm and gemm / 1e9, "bandwidth_gbs": max(rates) / 1e9 if rates else None}
