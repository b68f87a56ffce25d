"""An op-level profiler: where a training step spends its time, op by op.

    with scratchgen.profile() as prof:
        loss = model(x).sum()
        loss.backward()
    print(prof.table())              # one row per op, slowest first
    prof.save("profile.json")        # the rows as JSON
    prof.chrome_trace("trace.json")  # a timeline for chrome://tracing or https://ui.perfetto.dev

How ops are attributed
    The profiler is an autograd observer (``scratchgen.autograd.observe``): the engine tells it when
    each op's forward and each node's backward begins and ends. A backward formula is made of ops
    (``Mul.backward`` multiplies), so forward calls arrive *while a backward is open*; they are
    counted inside that backward — its time, FLOPs and bytes include them — and not as forward
    calls. A row's forward columns therefore count exactly the ops of the forward pass.

What is counted
    time       from the profiler's timer (``time.perf_counter`` unless one is injected), inclusive
    FLOPs      for ops with a known count (``FLOP_COUNTERS``: matrix products, convolutions,
               attention, the LSTM); a fused backward that runs a raw kernel counts ``2 x`` its
               forward, the usual estimate; other backwards add up the ops they call
    bytes      the ``nbytes`` of every array an op returns (what it allocated)
    kernel     which implementation ran, e.g. ``conv:cpu`` (from ``kernels.implementation``)
"""
import contextlib
import json
import math
import time
import weakref
from dataclasses import asdict, dataclass, field

from . import kernels
from .autograd import observe

# ---- FLOP counts: op class name -> f(input_arrays, output_arrays) --------------------------------


def _size(array):
    return int(math.prod(array.shape))


def matmul_flops(inputs, outputs):
    """A (.., n, k) @ B (.., k, m): one multiply and one add per output element and inner index."""
    return 2 * _size(outputs[0]) * inputs[0].shape[-1]


def conv_flops(inputs, outputs):
    """Each output element (N, Cout, *spatial) is a dot product over a weight slice
    (Cin/groups, *kernel): 2 * out.size * weight[0].size."""
    weight = inputs[1]
    return 2 * _size(outputs[0]) * _size(weight[0])


def conv_transpose_flops(inputs, outputs):
    """Each input element (N, Cin, *spatial) scatters into a weight slice (Cout/groups, *kernel)."""
    x, weight = inputs[0], inputs[1]
    return 2 * _size(x) * _size(weight[0])


def conv_weight_grad_flops(inputs, outputs):
    """The weight gradient (Cout, Cin/groups, *kernel) sums, for each output-gradient element,
    a product with an input window: 2 * grad_y.size * grad_weight[0].size."""
    return 2 * _size(inputs[0]) * _size(outputs[0][0])


def attention_flops(inputs, outputs):
    """Q (.., T, d) K^T (.., S, d) and P (.., T, S) V (.., S, dv): 2 T S (d + dv) per head
    (counted dense, as is usual; a causal mask skips about half)."""
    q, k, v = inputs[:3]
    heads = _size(q) // (q.shape[-2] * q.shape[-1])
    return 2 * heads * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def lstm_flops(inputs, outputs):
    """Per time step and batch row, the gates are [x, h] (I + H) @ W (I + H, 4H)."""
    x = inputs[0]  # (T, B, I) or (B, T, I): the product T * B is what counts
    hidden = outputs[0].shape[-1]
    return 2 * _size(x[..., 0]) * (x.shape[-1] + hidden) * 4 * hidden


FLOP_COUNTERS = {
    "MatMul": matmul_flops,
    "Conv2dOp": conv_flops,
    "ConvTranspose2dOp": conv_transpose_flops,
    "Conv2dWeightGrad": conv_weight_grad_flops,
    "FusedLSTM": lstm_flops,
    "ScaledDotProductAttention": attention_flops,
}


def forward_flops(node, inputs, outputs):
    """FLOPs of one forward call, or 0 where no count is known for the op."""
    counter = FLOP_COUNTERS.get(node.name)
    return counter(inputs, outputs) if counter is not None else 0


# ---- records -------------------------------------------------------------------------------------
@dataclass
class Event:
    """One forward or backward call, on the profiler's timer (seconds since it started)."""
    name: str
    phase: str        # "forward" or "backward"
    start: float
    end: float
    depth: int        # 0 for calls of the step itself, 1 for ops inside a backward, ...
    flops: int
    nbytes: int
    kernels: list

    @property
    def seconds(self):
        return self.end - self.start


@dataclass
class OpSummary:
    """Totals of one op over the profiled block (its backward includes the ops it called)."""
    name: str
    forward_calls: int = 0
    forward_seconds: float = 0.0
    backward_calls: int = 0
    backward_seconds: float = 0.0
    flops: int = 0
    nbytes: int = 0
    kernels: list = field(default_factory=list)

    @property
    def seconds(self):
        return self.forward_seconds + self.backward_seconds


class _Frame:
    """A call in progress; what its nested calls add up to is collected here."""
    __slots__ = ("node", "phase", "start", "end", "flops", "nbytes", "kernels", "child_arrays")

    def __init__(self, node, phase, start, kernels_seen):
        self.node, self.phase, self.start, self.end = node, phase, start, None
        self.flops = self.nbytes = 0
        self.kernels = list(kernels_seen)
        self.child_arrays = set()


class Profiler:
    """Records every op's forward and backward inside ``with``; see the module docstring.

    ``timer`` is any function returning seconds as a float (tests inject a fake one)."""

    def __init__(self, timer=time.perf_counter):
        self.timer = timer
        self.events = []
        self.summaries = {}
        self.started = self.stopped = None
        self._open = []
        self._pending_kernels = []   # a kernel picked before its op began (by the op's wrapper)
        self._forward_flops = weakref.WeakKeyDictionary()
        self._exit = contextlib.ExitStack()

    # ---- the with block ----------------------------------------------------------------------------
    def __enter__(self):
        self._exit.enter_context(observe(self))
        kernels.implementation_listeners.append(self._on_kernel)
        self._exit.callback(kernels.implementation_listeners.remove, self._on_kernel)
        self.started = self.timer()
        return self

    def __exit__(self, *exc):
        self.stopped = self.timer()
        self._exit.close()
        return False

    @property
    def total_seconds(self):
        """Wall time of the ``with`` block (ops, Python around them, the optimizer...)."""
        end = self.stopped if self.stopped is not None else self.timer()
        return end - self.started

    # ---- observer callbacks (called by the engine) -----------------------------------------------
    def on_forward_begin(self, node):
        self._begin(node, "forward")

    def on_forward(self, node, inputs, outputs, seconds):
        frame = self._close(node)
        if frame is None:
            return
        frame.flops += forward_flops(node, inputs, outputs)
        if node.once_differentiable:
            self._forward_flops[node] = frame.flops
        frame.nbytes += sum(int(getattr(out, "nbytes", 0)) for out in outputs)
        self._finish(frame, outputs)

    def on_backward_begin(self, node):
        self._begin(node, "backward")

    def on_backward(self, node, grads_out, grads_in, seconds):
        frame = self._close(node)
        if frame is None:
            return
        # A fused backward allocates its gradients in a raw kernel, unseen by the ops it called.
        given = {id(g.data) for g in grads_out if g is not None} | frame.child_arrays
        frame.nbytes += sum(int(g.data.nbytes) for g in grads_in if g is not None and id(g.data) not in given)
        frame.flops += 2 * self._forward_flops.pop(node, 0)
        self._finish(frame, [g.data for g in grads_in if g is not None])

    def _on_kernel(self, family, name):
        label = f"{family}:{name}"
        target = self._open[-1].kernels if self._open else self._pending_kernels
        if label not in target:
            target.append(label)

    # ---- bookkeeping -----------------------------------------------------------------------------------
    def _begin(self, node, phase):
        self._open.append(_Frame(node, phase, self.timer(), self._pending_kernels))
        self._pending_kernels = []

    def _close(self, node):
        """Stop ``node``'s timing and pop its frame (and any left open above it by an op that raised);
        None for a call that began before the profiler did (it was entered inside a hook, say)."""
        for depth in range(len(self._open) - 1, -1, -1):
            if self._open[depth].node is node:
                frame = self._open[depth]
                frame.end = self.timer()  # before the bookkeeping below, which is the profiler's cost
                del self._open[depth:]
                return frame
        return None

    def _finish(self, frame, arrays):
        depth, start, end = len(self._open), frame.start, frame.end
        self.events.append(Event(frame.node.name, frame.phase, start - self.started, end - self.started,
                                 depth, frame.flops, frame.nbytes, frame.kernels))
        if depth:  # inside another call (a backward): it pays for this one
            parent = self._open[-1]
            parent.flops += frame.flops
            parent.nbytes += frame.nbytes
            parent.child_arrays.update(id(a) for a in arrays)
            parent.kernels.extend(k for k in frame.kernels if k not in parent.kernels)
            return
        summary = self.summaries.setdefault(frame.node.name, OpSummary(frame.node.name))
        if frame.phase == "forward":
            summary.forward_calls += 1
            summary.forward_seconds += end - start
        else:
            summary.backward_calls += 1
            summary.backward_seconds += end - start
        summary.flops += frame.flops
        summary.nbytes += frame.nbytes
        summary.kernels.extend(k for k in frame.kernels if k not in summary.kernels)

    # ---- reports ----------------------------------------------------------------------------------------
    def ops(self, sort_by="seconds"):
        """One ``OpSummary`` per op, largest ``sort_by`` first (any OpSummary field or property)."""
        return sorted(self.summaries.values(), key=lambda s: (-getattr(s, sort_by), s.name))

    def table(self, sort_by="seconds", limit=None):
        """The summaries as a fixed-width text table (print it), with a total line."""
        rows = self.ops(sort_by)[:limit]
        total = self.total_seconds
        op_seconds = sum(s.seconds for s in self.summaries.values())
        header = ["op", "fwd calls", "fwd ms", "bwd calls", "bwd ms", "total ms", "% of block", "FLOPs",
                  "GFLOP/s", "allocated", "kernels"]
        body = [[s.name, s.forward_calls, _ms(s.forward_seconds), s.backward_calls, _ms(s.backward_seconds),
                 _ms(s.seconds), _percent(s.seconds, total), _si(s.flops), _rate(s.flops, s.seconds),
                 _si(s.nbytes, "B"), ",".join(s.kernels) or "-"] for s in rows]
        everything = self.summaries.values()
        body.append(["(all ops)", sum(s.forward_calls for s in everything), "",
                     sum(s.backward_calls for s in everything), "", _ms(op_seconds),
                     _percent(op_seconds, total), _si(sum(s.flops for s in everything)), "",
                     _si(sum(s.nbytes for s in everything), "B"), ""])
        outside = total - op_seconds
        body.append(["(outside ops)", "", "", "", "", _ms(outside), _percent(outside, total), "", "", "", ""])
        return _format_table(header, body)

    def save(self, path):
        """The summaries and the block's wall time as JSON."""
        report = {"total_seconds": self.total_seconds,
                  "ops": [dict(asdict(s), seconds=s.seconds) for s in self.ops()]}
        with open(path, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=1)

    def chrome_trace(self, path):
        """Every call as a complete event ("ph": "X") in the Trace Event format; ops inside a backward
        nest under it on the timeline. Open in chrome://tracing or https://ui.perfetto.dev."""
        events = [{"name": e.name, "cat": e.phase, "ph": "X", "ts": e.start * 1e6, "dur": e.seconds * 1e6,
                   "pid": 1, "tid": 1, "args": {"flops": e.flops, "bytes": e.nbytes, "kernels": e.kernels}}
                  for e in self.events]
        process = {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "scratchgen"}}
        trace = {"traceEvents": [process, *events], "displayTimeUnit": "ms"}
        with open(path, "w", encoding="utf-8") as file:
            json.dump(trace, file)


def profile(timer=time.perf_counter):
    """``with scratchgen.profile() as prof:`` records every op inside the block (see ``Profiler``).

    On a GPU pass ``timer=synchronized_timer(device_synchronize)``: CuPy launches are
    asynchronous, so an unsynchronised timer bills a kernel's time to whichever later op waits."""
    return Profiler(timer)


def synchronized_timer(synchronize, timer=time.perf_counter):
    """A timer that calls ``synchronize()`` (e.g. ``cupy.cuda.Device().synchronize``) before reading."""
    def read():
        synchronize()
        return timer()
    return read


# ---- table formatting ------------------------------------------------------------------------------------
def _ms(seconds):
    return f"{seconds * 1e3:.3f}"


def _percent(part, whole):
    return f"{100 * part / whole:.1f}" if whole > 0 else "-"


def _si(value, unit=""):
    """``value`` with an SI prefix: 27.6 k, 1.25 M, 3.4 G (``-`` for zero)."""
    if not value:
        return "-"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value} {unit}".rstrip()


def _rate(flops, seconds):
    return f"{flops / seconds / 1e9:.2f}" if flops and seconds > 0 else "-"


def _format_table(header, body):
    """Columns padded to their widest cell; the first (names) left-aligned, numbers right-aligned."""
    cells = [header] + [[str(c) for c in row] for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row):
        return "  ".join(c.ljust(w) if i in (0, len(row) - 1) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])
