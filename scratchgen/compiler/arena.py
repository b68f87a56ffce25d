"""The memory plan of a program: when each buffer dies, and how much is live at the peak.

Liveness: a buffer is live from the op that writes it to the last op that reads it. Views share
memory, so buffers are grouped by the array that owns the memory (``Buffer.group``, found at capture
by following ``.base``): a group's memory is free only after its *last* member's last use, and it is
freed (and, in poisoning mode, filled with NaN) through its owner. Groups that hold an input or a
constant (a parameter and its views) are never freed: the step does not own them; nor are arrays
that escape into Python state (a gradient bound to ``.grad``, which the optimizer reads).

    dead_after[k]   buffers whose slot is dropped after op k (their last use)
    owner_of        the buffers that own an op's memory (the ones poisoning may fill)
    peak_bytes      the most bytes of op-made arrays live at once during a replay
    total_bytes     the bytes of every op-made array (what keeping all of them would cost)
"""
import numpy as np

from .. import backend


class MemoryPlan:
    def __init__(self, dead_after, owner_of, peak_bytes, total_bytes, peak_op):
        self.dead_after, self.owner_of = dead_after, owner_of
        self.peak_bytes, self.total_bytes, self.peak_op = peak_bytes, total_bytes, peak_op

    def describe(self):
        return (f"memory: peak {self.peak_bytes} bytes of intermediates live at once (at op {self.peak_op}), "
                f"{self.total_bytes} bytes if none were freed; {len(self.owner_of)} arrays freed as they die")


def plan_memory(program, protected=()):
    """Liveness over ``program.ops``; ``protected`` buffers live to the end."""
    count, end = len(program.ops), len(program.ops)
    last_use = {}
    for k, op in enumerate(program.ops):
        for index in op.writes:
            last_use.setdefault(index, k)
        for index in list(op.reads) + op.extra_uses:
            last_use[index] = k
    for index in protected:
        last_use[index] = end
    buffers = program.buffers
    pinned = {b.group for b in buffers if b.kind != "op" or b.escapes}
    group_end = {}
    for index, k in last_use.items():
        group = buffers[index].group
        group_end[group] = max(group_end.get(group, -1), k)
    dead_after = [[] for _ in range(count)]
    owners = set()
    for index, k in last_use.items():
        buffer = buffers[index]
        if buffer.kind != "op":
            continue
        if index == buffer.group and buffer.group not in pinned and buffer.is_array:
            k = group_end[buffer.group]
            if k < end:
                owners.add(index)
        if k < end:
            dead_after[k].append(index)
    produced = {}
    for k, op in enumerate(program.ops):
        for index in op.writes:
            produced.setdefault(index, k)
    born, dies = {}, {}
    for buffer in buffers:
        if buffer.kind == "op" and buffer.index == buffer.group and buffer.group not in pinned \
                and buffer.index in produced:   # (a fused group's intermediates are never made)
            born.setdefault(produced[buffer.index], []).append(buffer.nbytes)
            dies.setdefault(group_end.get(buffer.index, end), []).append(buffer.nbytes)
    peak, peak_op, live = 0, 0, 0
    for k in range(count):
        live += sum(born.get(k, ()))
        if live > peak:
            peak, peak_op = live, k
        live -= sum(dies.get(k, ()))
    total = sum(b.nbytes for b in buffers if b.kind == "op" and b.index == b.group)
    return MemoryPlan(dead_after, owners, peak, total, peak_op)


def poison(array):
    """Fill a dead buffer's memory with NaN (floating arrays; others get their maximum value), so a
    replay that still read it would produce NaN and fail its comparison with eager."""
    if (not hasattr(array, "dtype") or getattr(array, "size", 0) == 0
            or not getattr(array.flags, "writeable", True)):   # (CuPy's flags have no writeable)
        return
    if backend.is_floating(array.dtype):
        array.fill(np.nan)
    elif np.dtype(array.dtype).kind in "iu":
        array.fill(np.iinfo(array.dtype).max)
