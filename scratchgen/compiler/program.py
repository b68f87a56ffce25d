"""A captured step as a flat program over numbered buffers, and its replay.

    buffer  one array (or, for a few ops, a Function node) the step reads or makes, numbered in the
            order it first appears. Kinds: ``input`` (an argument's array), ``constant`` (an array the
            step read but no recorded op made: a parameter, a mask built once, a Python number), ``op``
            (made by a recorded op).
    op      one call that reads buffers and writes new ones: a Function's forward (from the forward
            pass, from a backward formula, a random draw), the backward of a fused node, a gradient
            accumulated into a leaf, or a host operation (an optimizer step) called again as it was.

Replay is a loop over ``steps``, each ``(call, input buffers, output buffers, buffers dead after)``::

    for call, reads, writes, dead in steps:
        results = call(*[slots[i] for i in reads])
        slots[writes...] = results
        slots[dead...] = None          (poisoned with NaN first in poisoning mode)

so no node, edge or topological sort is made: what is left per op is one Python call and the array
work itself. ``explain()`` prints the program, the liveness plan and the fusion groups.
"""
import contextlib
import time

import numpy as np

from .. import backend
from .arena import plan_arena, plan_memory, poison
from .calls import out_form, writing_into


class Buffer:
    """What the program knows of one buffer: where it came from, shape and dtype when an array."""

    def __init__(self, index, kind, value):
        self.index, self.kind = index, kind
        self.on_gpu = backend.is_cupy_array(value)   # a CuPy array: fused kernels for numba.cuda (cuda.py)
        self.is_array = hasattr(value, "__array_interface__") or self.on_gpu
        self.shape = value.shape if self.is_array else None
        self.dtype = value.dtype if self.is_array else None
        self.nbytes = int(value.nbytes) if self.is_array else 0
        self.is_scalar = isinstance(value, np.generic)   # NumPy's 0-d results are scalars, not arrays
        self.on_host = hasattr(value, "__array_interface__")   # a NumPy array (the arena holds only these)
        # C-contiguous as captured: an arena block is, so a later reshape views it as it viewed this
        self.contiguous = self.on_host and bool(getattr(getattr(value, "flags", None), "c_contiguous", False))
        self.escapes = False   # held by Python state after the op (a leaf's .grad): never freed or poisoned

    def describe(self):
        if not self.is_array:
            return "object"
        return f"{np.dtype(self.dtype).name}{list(self.shape)}"


class Op:
    """One recorded call. ``call(*arrays)`` returns one value per output buffer (a tuple when there
    are several); ``line`` is the user's source line that made it (for messages and explain)."""

    def __init__(self, kind, name, call, reads, writes, line="", detail=""):
        self.kind, self.name, self.call = kind, name, call
        self.reads, self.writes = list(reads), list(writes)
        self.line, self.detail = line, detail
        self.extra_uses = []   # buffers that must stay live while this op runs (a kept node's arrays)
        self.out_call = None   # a fused op's ``call(*arrays, out=array)`` writing into a given array

    def describe(self):
        reads = ", ".join(f"%{i}" for i in self.reads)
        writes = ", ".join(f"%{i}" for i in self.writes) or "-"
        detail = f" {{{self.detail}}}" if self.detail else ""
        return f"{writes} = {self.name}({reads}){detail}"


class Program:
    """Buffers, ops, and what the step returns (``outputs``: a template rebuilt by ``unpack``)."""

    def __init__(self):
        self.buffers = []
        self.constants = {}   # buffer index -> the value it holds on every replay
        self.inputs = []      # buffer indices of the step's array arguments, in order
        self.ops = []
        self.outputs = None
        self.steps = None
        self.plan = None
        self.fused_sources = []   # the generated kernels' source, one per fused group (fusion.py)

    def add_buffer(self, kind, value):
        buffer = Buffer(len(self.buffers), kind, value)
        self.buffers.append(buffer)
        if kind == "constant":
            self.constants[buffer.index] = value
        elif kind == "input":
            self.inputs.append(buffer.index)
        return buffer.index

    # ---- replay ------------------------------------------------------------------------------------
    def finish(self, protected=()):
        """Plan memory (liveness: which buffers die after which op) once the program is complete.
        ``protected`` buffers (those the step returns) are never freed."""
        self.plan = plan_memory(self, protected)
        forms = [out_form(op, self.buffers) for op in self.ops]
        self.arena = self.plan.arena = plan_arena(self, self.plan, forms)
        self.steps = [(self._replay_call(op, form), op.reads, op.writes, dead)
                      for op, form, dead in zip(self.ops, forms, self.plan.dead_after)]

    def _replay_call(self, op, form):
        """What a replay calls for ``op``: its form writing into its arena block if it has one; a
        NumPy ufunc directly (no node made) where it has no block; else the recorded call."""
        block = self.arena.block_of.get(op.writes[0]) if op.writes else None
        if block is not None:
            return writing_into(form, self.arena.blocks[block])
        return form if isinstance(form, np.ufunc) else op.call

    def run(self, input_arrays, poisoning=False):
        """Replay on ``input_arrays`` (one per input buffer); returns the slots of returned buffers
        as a dict {buffer: value} (everything else is freed as it dies)."""
        slots = [None] * len(self.buffers)
        for index, value in self.constants.items():
            slots[index] = value
        for index, value in zip(self.inputs, input_arrays):
            slots[index] = value
        owners = self.plan.owner_of
        for call, reads, writes, dead in self.steps:
            results = call(*[slots[i] for i in reads])
            if len(writes) == 1:
                slots[writes[0]] = results
            elif writes:
                for index, value in zip(writes, results):
                    slots[index] = value
            for index in dead:
                if poisoning and index in owners:
                    poison(slots[index])
                slots[index] = None
        return slots

    @contextlib.contextmanager
    def timed(self, timer=time.perf_counter):
        """Time every op of the replays run inside the ``with`` block; yields ``{label: [calls,
        seconds]}``, one label per kind of op (``forward MatMul``, ``fused Mul+Neg``, ``host
        Optimizer.step``). The replay loop itself is untouched: each call is wrapped for the block."""
        totals = {}
        original = self.steps
        self.steps = [(_timing(call, _label(op), totals, timer), reads, writes, dead)
                      for op, (call, reads, writes, dead) in zip(self.ops, original)]
        try:
            yield totals
        finally:
            self.steps = original

    # ---- explain -------------------------------------------------------------------------------------
    def listing(self):
        """The program as text: buffers by kind, then one line per op with its user line."""
        lines = [f"inputs: {', '.join(f'%{i}: {self.buffers[i].describe()}' for i in self.inputs) or '-'}",
                 f"constants: {len(self.constants)} "
                 f"({sum(self.buffers[i].nbytes for i in self.constants)} bytes, parameters included)"]
        for number, op in enumerate(self.ops):
            shapes = ", ".join(self.buffers[i].describe() for i in op.writes)
            where = f"    # {op.line}" if op.line else ""
            lines.append(f"{number:4d} {op.kind:8s} {op.describe()}  -> {shapes or '-'}{where}")
        return "\n".join(lines)


def _label(op):
    name = op.name.split("[", 1)[1].rstrip("]") if op.kind == "fused" else op.name
    return f"{op.kind} {name}"


def _timing(call, label, totals, timer):
    entry = totals.setdefault(label, [0, 0.0])

    def timed_call(*arrays):
        started = timer()
        result = call(*arrays)
        entry[0] += 1
        entry[1] += timer() - started
        return result
    return timed_call
