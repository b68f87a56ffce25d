"""LSTM benchmark: the DESIGN workload (1 layer, batch 32, seq 64, input 64, hidden 256, float32)
forward and forward+backward, ``reference`` vs ``cpu`` vs PyTorch CPU, interleaved, 1 thread.

    python -m benchmarks.recurrence                 # the table
    python -m benchmarks.recurrence --threads 2
    python -m benchmarks.recurrence --breakdown     # where the cpu kernels' time goes

Kernels are called directly (no autograd). PyTorch runs ``torch.nn.LSTM`` with the same weights
and computes the same gradients (input, initial state, weights, biases; output gradients for y,
h_n and c_n).
"""
import argparse
from dataclasses import dataclass

import numpy as np

from scratchgen.kernels.recurrence import cpu, reference

from .attention import pin_threads
from .timing import time_interleaved


@dataclass(frozen=True)
class LSTMWorkload:
    steps: int = 64
    batch: int = 32
    inputs: int = 64
    hidden: int = 256


WORKLOAD = LSTMWorkload()


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


def torch_calls(a):
    """The same two calls through ``torch.nn.LSTM``, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
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


def benchmark(workload, repeats, with_reference=True):
    """Rows ``{pass, contender, median_s, q25_s, q75_s, runs, first_call_s}``."""
    inputs = make_inputs(workload)
    modules = {"cpu": cpu, **({"reference": reference} if with_reference else {})}
    calls = {name: kernel_calls(module, inputs) for name, module in modules.items()}
    peer = torch_calls(inputs)
    if peer is not None:
        calls["torch"] = peer
    rows = []
    for index, pass_name in enumerate(("forward", "forward+backward")):
        timings = time_interleaved({name: pair[index] for name, pair in calls.items()}, repeats=repeats)
        rows += [{"pass": pass_name, "contender": name, **timing} for name, timing in timings.items()]
    return rows


def breakdown(workload, repeats):
    """Rows timing the pieces of the cpu kernels, each scaled to its share of one call."""
    a = make_inputs(workload)
    t, b, h = workload.steps, workload.batch, workload.hidden
    y, _, _, saved = cpu.lstm_forward(a["x"], a["h0"], a["c0"], a["weight_ih"], a["weight_hh"], a["bias"])
    projected = np.matmul(a["weight_ih"], a["x"].transpose(0, 2, 1))
    bias_columns = np.repeat(a["bias"][:, None], b, axis=1)
    state, cell_grad, recurrent = np.zeros((h, b), np.float32), np.zeros((h, b), np.float32), \
        np.empty((4 * h, b), np.float32)
    grad_z = np.empty((4 * h, t * b), np.float32)
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


def format_table(rows):
    """Markdown: one line per (pass, contender); ratio = median / PyTorch's median."""
    torch_median = {r["pass"]: r["median_s"] for r in rows if r["contender"] == "torch"}
    lines = ["| pass | contender | median ms | IQR ms | vs PyTorch |", "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        peer = torch_median.get(r["pass"])
        ratio = f"{r['median_s'] / peer:.2f}" if peer else "-"
        lines.append(f"| {r['pass']} | {r['contender']} | {r['median_s'] * 1e3:.2f} | "
                     f"{(r['q75_s'] - r['q25_s']) * 1e3:.2f} | {ratio} |")
    return "\n".join(lines)


def format_breakdown(rows):
    total = sum(r["total_s"] for r in rows)
    lines = ["| piece (cpu, forward+backward) | calls | ms | share |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['piece']} | {r['count']} | {r['total_s'] * 1e3:.2f} | {r['total_s'] / total:.0%} |"
              for r in rows]
    return "\n".join(lines + [f"| sum | | {total * 1e3:.2f} | |"])


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recurrence",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) reference")
    parser.add_argument("--breakdown", action="store_true", help="time the pieces of the cpu kernels")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    w = WORKLOAD
    print(f"lstm: 1 layer, T={w.steps} B={w.batch} I={w.inputs} H={w.hidden}, float32, "
          f"{args.threads} thread(s)")
    with pin_threads(args.threads):
        if args.breakdown:
            rows = breakdown(w, args.repeats)
            print(format_breakdown(rows))
        else:
            rows = benchmark(w, args.repeats, with_reference=not args.no_reference)
            print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
