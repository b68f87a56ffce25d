"""LSTM workloads: the DESIGN shape (1 layer, batch 32, seq 64, input 64, hidden 256, float32) and
the same against the sequence length, forward and forward+backward, for the suite.

    python -m benchmarks --only kernel/lstm       # these workloads (also: python -m benchmarks.recurrence)
    python -m benchmarks.recurrence --breakdown   # where the cpu kernels' time goes

``kernel[IMPL]`` calls the kernels directly (no autograd), ``scratchgen[IMPL]`` runs ``F.lstm``.
PyTorch runs ``torch.nn.LSTM`` with the same weights and computes the same gradients (input,
initial state, weights, biases; output gradients for y, h_n and c_n).
"""
import argparse
import dataclasses
import sys
from dataclasses import dataclass

import numpy as np

from scratchgen.kernels.recurrence import cpu

from .machine import pin_threads
from .timing import time_interleaved
from .workload import Work, Workload, as_passes, implementation_contenders, peer_contender


@dataclass(frozen=True)
class LSTMWorkload:
    steps: int = 64
    batch: int = 32
    inputs: int = 64
    hidden: int = 256

    @property
    def gemm_flops(self):
        """2 x the multiply-adds of the gate pre-activations W_ih x_t + W_hh h_{t-1}, every step."""
        return 2.0 * self.steps * self.batch * 4 * self.hidden * (self.inputs + self.hidden)

    def describe(self):
        return f"1 layer, T={self.steps} B={self.batch} I={self.inputs} H={self.hidden}"


WORKLOAD = LSTMWorkload()
STEPS = (16, 32, 64, 128, 256)   # the scaling series: time and memory against the sequence length
QUICK = LSTMWorkload(steps=4, batch=2, inputs=8, hidden=16)
QUICK_STEPS = (4, 8)


def make_inputs(workload, seed=0):
    """x, h0, c0, weight_ih, weight_hh, bias and the gradients of y, h_n, c_n (float32)."""
    rng = np.random.default_rng(seed)
    t, b, i, h = workload.steps, workload.batch, workload.inputs, workload.hidden
    bound = h ** -0.5
    draw = lambda *shape, s=1.0: (s * rng.uniform(-1, 1, shape)).astype(np.float32)  # noqa: E731
    return dict(x=draw(t, b, i), h0=draw(b, h), c0=draw(b, h), weight_ih=draw(4 * h, i, s=bound),
                weight_hh=draw(4 * h, h, s=bound), bias=draw(4 * h, s=2 * bound),
                grad_y=draw(t, b, h), grad_h_n=draw(b, h), grad_c_n=draw(b, h))


def kernel_calls(kernels, a):
    """``(forward, forward_backward)`` zero-argument callables for one kernel module."""
    def forward():
        return kernels.lstm_forward(a["x"], a["h0"], a["c0"], a["weight_ih"], a["weight_hh"], a["bias"])

    def forward_backward():
        y, _, _, saved = forward()
        kernels.lstm_backward(a["grad_y"], a["grad_h_n"], a["grad_c_n"], a["x"], a["h0"], a["weight_ih"],
                              a["weight_hh"], y, saved)
    return forward, forward_backward


def autograd_calls(a):
    """The same two calls through ``F.lstm`` on Tensors: the user's path."""
    import scratchgen as sg
    import scratchgen.functional as F
    from scratchgen.autograd import run_backward
    x = sg.Tensor(a["x"], requires_grad=True)
    h0, c0 = (sg.Tensor(a[k][None], requires_grad=True) for k in ("h0", "c0"))          # (1, B, H)
    weight_ih, weight_hh, bias = (sg.Tensor(a[k], requires_grad=True)
                                  for k in ("weight_ih", "weight_hh", "bias"))
    weights = [(weight_ih, weight_hh, bias, None)]                 # one bias: the kernels' b_ih + b_hh
    grads = [sg.Tensor(a["grad_y"]), sg.Tensor(a["grad_h_n"][None]), sg.Tensor(a["grad_c_n"][None])]

    def forward():
        with sg.no_grad():
            F.lstm(x, weights, (h0, c0))

    def forward_backward():
        for tensor in (x, h0, c0, *weights[0][:3]):
            tensor.grad = None
        y, (h_n, c_n) = F.lstm(x, weights, (h0, c0))
        run_backward([y, h_n, c_n], grads)
    return forward, forward_backward


def torch_calls(a):
    """The same two calls through ``torch.nn.LSTM`` (ImportError when PyTorch is not installed)."""
    import torch
    lstm = torch.nn.LSTM(a["x"].shape[2], a["h0"].shape[1])
    with torch.no_grad():
        for name, value in (("weight_ih_l0", a["weight_ih"]), ("weight_hh_l0", a["weight_hh"]),
                            ("bias_ih_l0", a["bias"]), ("bias_hh_l0", 0 * a["bias"])):
            getattr(lstm, name).copy_(torch.from_numpy(value))
    x, h0, c0 = (torch.from_numpy(a[k]).requires_grad_() for k in ("x", "h0", "c0"))
    grads = [torch.from_numpy(a["grad_y"]), torch.from_numpy(a["grad_h_n"])[None],
             torch.from_numpy(a["grad_c_n"])[None]]

    def forward():
        with torch.no_grad():
            lstm(x, (h0[None], c0[None]))

    def forward_backward():
        for tensor in (x, h0, c0, *lstm.parameters()):
            tensor.grad = None
        y, (h_n, c_n) = lstm(x, (h0[None], c0[None]))
        torch.autograd.backward([y, h_n, c_n], grads)
    return forward, forward_backward


def forward_gemms(weight_ih, x_columns, weight_hh, state, recurrent, matmul):
    """The forward's matrix products alone, through ``matmul`` (``np.matmul`` or ``torch.matmul``):
    the input projection ``weight_ih @ x_columns`` ((T, I, B) columns), then one recurrent product
    ``weight_hh @ state`` per step into ``recurrent`` (always the same state: their cost only)."""
    def call():
        matmul(weight_ih, x_columns)
        for _ in range(len(x_columns)):
            matmul(weight_hh, state, out=recurrent)
    return call


def workloads(options):
    """The LSTM against the sequence length (the DESIGN length 64 among them), for the suite."""
    shape, steps = (QUICK, QUICK_STEPS) if options.quick else (WORKLOAD, STEPS)
    return [suite_workload(dataclasses.replace(shape, steps=length),
                           design=not options.quick and length == shape.steps) for length in steps]


def suite_workload(shape, design):
    flops = shape.gemm_flops  # forward+backward: the input and weight gradients cost one forward each
    return Workload(name=f"lstm T={shape.steps}", family="kernel", description=shape.describe(),
                    setup=lambda options: contenders(shape, options), series="lstm vs sequence length",
                    x=shape.steps, design=design, memory=True,
                    work={"forward": Work(flops, "flop", "GEMM FLOPs"),
                          "forward+backward": Work(3 * flops, "flop", "GEMM FLOPs")})


def contenders(workload, options):
    inputs = make_inputs(workload)

    def on(place):
        return {name: place.array(a) for name, a in inputs.items()}
    calls = implementation_contenders(options, "kernel", lambda place: as_passes(
        kernel_calls(place.kernels("recurrence"), on(place))))
    calls |= implementation_contenders(options, "scratchgen",
                                       lambda place: as_passes(autograd_calls(on(place))))
    return calls | peer_contender(options, "torch", lambda: as_passes(torch_calls(inputs)))


def breakdown(workload, repeats):
    """Rows timing the pieces of the cpu kernels, each scaled to its share of one call."""
    a = make_inputs(workload)
    t, b, h = workload.steps, workload.batch, workload.hidden
    y, _, _, saved = cpu.lstm_forward(a["x"], a["h0"], a["c0"], a["weight_ih"], a["weight_hh"], a["bias"])
    projected = np.matmul(a["weight_ih"], a["x"].transpose(0, 2, 1))
    bias_columns = np.repeat(a["bias"][:, None], b, axis=1)
    state, cell_grad, recurrent = np.zeros((h, b), np.float32), np.zeros((h, b), np.float32), \
        np.empty((4 * h, b), np.float32)
    # filled, not np.empty: leftover bytes may read as subnormal floats, which slow a GEMM down many times
    grad_z = np.random.default_rng(1).uniform(-0.1, 0.1, (4 * h, t * b)).astype(np.float32)
    gates, cells = saved.gates, saved.cells.copy()
    pieces = {  # name: (call, how many times one forward+backward makes it)
        "input projection GEMM": (lambda: np.matmul(a["weight_ih"], a["x"].transpose(0, 2, 1)), 1),
        "recurrent GEMM (forward)": (lambda: np.matmul(a["weight_hh"], state, out=recurrent), t),
        "forward_step kernel": (lambda: cpu.forward_step(projected[0], recurrent, bias_columns, cells[0],
                                                         gates[0], cells[1], state), t),
        "backward_step kernel": (lambda: cpu.backward_step(gates[0], cells[0], cells[1], state, cell_grad,
                                                           recurrent), t),
        "per-step transposes and copies": (lambda: per_step_copies(y, a["grad_y"], state, recurrent, grad_z),
                                           t),
        "recurrent GEMM (backward)": (lambda: np.matmul(a["weight_hh"].T, recurrent, out=state), t),
        "grad_weight_hh GEMM": (lambda: grad_z @ y.reshape(t * b, h), 1),
        "grad_weight_ih GEMM": (lambda: grad_z @ a["x"].reshape(t * b, -1), 1),
        "grad_x GEMM": (lambda: grad_z.T @ a["weight_ih"], 1),
    }
    timings = time_interleaved({name: call for name, (call, _) in pieces.items()}, repeats=repeats)
    return [{"piece": name, "count": count, "total_s": timings[name]["median_s"] * count}
            for name, (_, count) in pieces.items()]


def per_step_copies(y, grad_y, state, recurrent, grad_z):
    """The layout moves one forward+backward step makes besides its kernels and GEMMs."""
    y[1] = state.T
    state += grad_y[1].T
    grad_z[:, :recurrent.shape[1]] = recurrent


def format_breakdown(rows):
    total = sum(r["total_s"] for r in rows)
    lines = ["| piece (cpu, forward+backward) | calls | ms | share |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['piece']} | {r['count']} | {r['total_s'] * 1e3:.2f} | {r['total_s'] / total:.0%} |"
              for r in rows]
    return "\n".join(lines + [f"| sum | | {total * 1e3:.2f} | |"])


def main(argv=None):
    """``--breakdown``: the cpu kernels' pieces; otherwise the suite's lstm workloads (other
    arguments go to ``python -m benchmarks``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recurrence",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--breakdown", action="store_true", help="time the pieces of the cpu kernels")
    parser.add_argument("--repeats", type=int, default=20, help="rounds of --breakdown")
    parser.add_argument("--threads", default="1", help="thread count (the suite takes a list: 1,2)")
    args, suite_arguments = parser.parse_known_args(argv)
    if not args.breakdown:
        from .__main__ import main as suite_main
        return suite_main(["--only", "kernel/lstm", "--threads", args.threads, *suite_arguments])
    w = WORKLOAD
    print(f"lstm: {w.describe()}, float32, {args.threads} thread(s)")
    with pin_threads(int(args.threads)):
        print(format_breakdown(breakdown(w, args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
