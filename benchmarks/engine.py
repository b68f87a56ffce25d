"""Engine overhead, measured as HIPS autograd's benchmarks do: not big kernels but the cost the
engine adds to every op — one tiny op, a long chain of tiny ops, and a wide fan-out/fan-in —
recorded (forward) and differentiated (forward+backward), against PyTorch's autograd and against
NumPy doing the same arithmetic with no graph at all (forward only: the floor).

The arrays are tiny (16 floats), so the arithmetic is free and the figure (microseconds per op)
is the price of a Tensor, a graph node and a backward step.
"""
import numpy as np

from .workload import Work, Workload, peer_contender

ELEMENTS = 16
CHAIN_LENGTH, QUICK_CHAIN_LENGTH = 1000, 20
FAN_WIDTH, QUICK_FAN_WIDTH = 1000, 20


def one_op(x, _, stack):
    return x * x


def chain(x, length, stack):
    """``length`` steps of x <- x * a + b: 2 ops each, every one depending on the last."""
    for _ in range(length):
        x = x * 1.0001 + 1e-4
    return x


def fan_out_fan_in(x, width, stack):
    """``width`` ops all reading x (its gradient accumulates ``width`` times), then one op gathering them."""
    return stack([x * (1 + i / width) for i in range(width)])


GRAPHS = (  # name, function, size, quick size, ops in the forward
    ("one tiny op", one_op, 1, 1, lambda size: 1),
    ("chain of tiny ops", chain, CHAIN_LENGTH, QUICK_CHAIN_LENGTH, lambda size: 2 * size),
    ("fan-out/fan-in", fan_out_fan_in, FAN_WIDTH, QUICK_FAN_WIDTH, lambda size: size + 1),
)


def workloads(options):
    found = []
    for name, graph, size, quick_size, forward_ops in GRAPHS:
        size = quick_size if options.quick else size
        ops = forward_ops(size)
        found.append(Workload(
            name=name if size == 1 else f"{name} x{size}", family="engine",
            description=f"{ops} op(s) on {ELEMENTS}-float arrays; backward from .sum()",
            setup=lambda options, graph=graph, size=size: contenders(graph, size, options),
            work={"forward": Work(ops, "op"), "forward+backward": Work(ops + 1, "op", "+ the sum")}))
    return found


def contenders(graph, size, options):
    values = np.linspace(-1, 1, ELEMENTS, dtype=np.float32)
    found = {"scratchgen": differentiated(graph, size, *scratchgen_leaf(values))}
    found |= peer_contender(options, "numpy",
                            lambda: {"forward": lambda: graph(values.copy(), size, np.stack)})
    return found | peer_contender(options, "torch", lambda: differentiated(graph, size, *torch_leaf(values)))


def scratchgen_leaf(values):
    import scratchgen as sg
    return sg.tensor(values, requires_grad=True), sg.stack


def torch_leaf(values):
    import torch
    return torch.tensor(values, requires_grad=True), torch.stack


def differentiated(graph, size, leaf, stack):
    """``{pass: callable}``: the graph recorded, and recorded then differentiated."""
    def forward_backward():
        leaf.grad = None
        graph(leaf, size, stack).sum().backward()
    return {"forward": lambda: graph(leaf, size, stack), "forward+backward": forward_backward}
