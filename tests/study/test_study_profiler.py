"""The profiler: op counts of a known step, attribution of backward-formula ops, timing arithmetic
on an injected timer, FLOPs, bytes, kernel labels and the JSON / Chrome-trace outputs."""
import itertools
import json

import numpy as np

import scratchgen as sg
from scratchgen import kernels, profiler
from scratchgen.autograd import Function


class Double(Function):
    """y = 2x; dx = 2 dy — a backward that calls exactly one op (Mul)."""

    def forward(self, x):
        return 2 * x

    def backward(self, grad):
        return grad * 2


def ticking_timer():
    """A fake timer that reads 0, 1, 2, ... : every reading is one tick later."""
    return itertools.count().__next__


def test_a_known_step_counts_forward_ops_once_and_backward_formulas_inside_their_backward():
    x = sg.randn(4, 3, requires_grad=True)
    w = sg.randn(3, 2, requires_grad=True)
    with sg.profile() as prof:
        loss = (x @ w).tanh().sum()
        loss.backward()
    rows = {s.name: s for s in prof.ops()}
    assert set(rows) == {"MatMul", "TanhOp", "Sum"}  # Mul, Permute, Expand... ran inside backwards
    assert all((s.forward_calls, s.backward_calls) == (1, 1) for s in rows.values())
    # forward 2*4*2*3; backward dX = dY W^T and dW = X^T dY, the same count each
    assert rows["MatMul"].flops == 48 * 3
    assert rows["TanhOp"].flops == 0
    assert rows["MatMul"].nbytes >= 4 * 2 * 4 + 4 * 3 * 4 + 3 * 2 * 4  # the output and both gradients
    nested = [e for e in prof.events if e.depth == 1]
    assert nested and {e.phase for e in nested} == {"forward"}


def test_timing_arithmetic_on_an_injected_timer():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    with sg.profile(timer=ticking_timer()) as prof:   # enter: 0
        y = Double.apply(x)                            # forward: begins 1, ends 2
        y.backward(sg.ones_like(y))                    # backward 3 .. 6, its Mul 4 .. 5
    assert prof.total_seconds == 7                     # exit: 7
    (row,) = prof.ops()
    assert (row.name, row.forward_calls, row.forward_seconds) == ("Double", 1, 1)
    assert (row.backward_calls, row.backward_seconds, row.seconds) == (1, 3, 4)
    assert [(e.name, e.phase, e.start, e.end, e.depth) for e in prof.events] == [
        ("Double", "forward", 1, 2, 0), ("Mul", "forward", 4, 5, 1), ("Double", "backward", 3, 6, 0)]
    table = prof.table()
    columns = table.splitlines()[2].split()[:7]          # op, fwd calls, fwd ms, bwd calls, bwd ms, total, %
    assert columns == ["Double", "1", "1000.000", "1", "3000.000", "4000.000", "57.1"]
    assert "(outside ops)" in table and "3000.000" in table.splitlines()[-1]


def test_json_and_chrome_trace(tmp_path):
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    with sg.profile(timer=ticking_timer()) as prof:
        Double.apply(x).sum().backward()
    prof.save(tmp_path / "profile.json")
    report = json.loads((tmp_path / "profile.json").read_text())
    assert report["total_seconds"] == prof.total_seconds
    assert {op["name"] for op in report["ops"]} == {"Double", "Sum"}
    prof.chrome_trace(tmp_path / "trace.json")
    trace = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    complete = [e for e in trace if e["ph"] == "X"]
    assert len(complete) == len(prof.events)
    first = complete[0]
    assert (first["name"], first["cat"], first["ts"], first["dur"]) == ("Double", "forward", 1e6, 1e6)


def test_the_kernel_that_ran_is_recorded():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    with sg.profile() as prof:
        kernels.implementation("conv", np.zeros(1))  # as an op's wrapper does, just before its apply
        x * 2
    assert {s.name: s.kernels for s in prof.ops()} == {"Mul": ["conv:cpu"]}
    assert kernels.implementation_listeners == []  # the listener left with the profiler


def test_nothing_is_recorded_outside_the_block():
    x = sg.tensor([1.0], requires_grad=True)
    with sg.profile() as prof:
        pass
    x.exp()
    assert prof.ops() == [] and prof.events == []


def test_convolution_lstm_and_attention_flops_and_kernels():
    import scratchgen.functional as F
    x = sg.randn(2, 3, 6, 6, requires_grad=True)
    w = sg.randn(4, 3, 3, 3, requires_grad=True)
    lstm = sg.nn.LSTM(5, 7)
    with sg.use_kernels("reference"), sg.profile() as prof:
        F.conv2d(x, w, padding=1).sum().backward()
        lstm(sg.randn(4, 2, 5))[0].sum().backward()
        q, k, v = (sg.randn(2, 3, 5, 4, requires_grad=True) for _ in range(3))
        F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward()
    rows = {s.name: s for s in prof.ops()}
    conv = 2 * (2 * 4 * 6 * 6) * (3 * 3 * 3)   # 2 * output elements * weight slice
    assert rows["Conv2dOp"].flops == 3 * conv     # + its backward: ConvTranspose2dOp and Conv2dWeightGrad
    assert rows["Conv2dOp"].kernels == ["conv:reference"]
    gates = 2 * (4 * 2) * (5 + 7) * (4 * 7)     # steps * batch rows through [x, h] @ W (I + H, 4H)
    assert rows["FusedLSTM"].flops == 3 * gates  # a fused backward counts twice its forward
    assert rows["FusedLSTM"].kernels == ["recurrence:reference"]
    attention = 2 * (2 * 3) * 5 * 5 * (4 + 4)   # Q K^T and P V per head, counted dense
    assert rows["ScaledDotProductAttention"].flops == 3 * attention
    assert rows["ScaledDotProductAttention"].kernels == ["attention:reference"]


def test_a_synchronized_timer_waits_before_every_reading():
    waits = []
    timer = profiler.synchronized_timer(lambda: waits.append(len(waits)), ticking_timer())
    x = sg.tensor([1.0], requires_grad=True)
    with sg.profile(timer) as prof:
        x.exp()
    assert len(waits) == 4 and prof.total_seconds == 3  # enter, begin, end, exit
