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
        self.arena = None   # the blocks outputs are written into (``plan_arena``), once planned

    def describe(self):
        text = (f"memory: peak {self.peak_bytes} bytes of intermediates live at once (at op {self.peak_op}), "
                f"{self.total_bytes} bytes if none were freed; {len(self.owner_of)} arrays freed as they die")
        return text if self.arena is None else f"{text}\n{self.arena.describe()}"


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


class Arena:
    """Preallocated blocks that op outputs are written into (``out=``), each reused by later outputs
    of its shape and dtype once the buffer in it has died.

    ``block_of`` maps a buffer to its block; ``blocks`` are the arrays (allocated once per program and
    kept between replays, so a replay allocates nothing for these outputs)."""

    def __init__(self, block_of, blocks):
        self.block_of, self.blocks = block_of, blocks

    @property
    def nbytes(self):
        return sum(block.nbytes for block in self.blocks)

    def describe(self):
        return (f"arena: {len(self.block_of)} outputs written into {len(self.blocks)} reused blocks "
                f"({self.nbytes} bytes, kept between calls)")


def plan_arena(program, plan, forms):
    """Give a block to every output that may have one, walking the ops in order (greedy): a block of
    the output's shape and dtype that is free (its buffer died at an earlier op) or else a new one.

    An output may have a block if its op can write into a given array (``forms[k]``, one per op, is not None),
    it owns its memory and dies inside the program (``plan.owner_of``: not an input, parameter,
    gradient bound to ``.grad`` or returned value), and it was a C-contiguous array when captured
    (a block is one: a later reshape views it exactly as it viewed the captured array)."""
    buffers, free, block_of, shapes = program.buffers, {}, {}, []
    for k, op in enumerate(program.ops):
        if len(op.writes) == 1 and forms[k] is not None and _may_have_block(buffers[op.writes[0]], plan):
            buffer = buffers[op.writes[0]]
            key = (buffer.shape, np.dtype(buffer.dtype))
            spare = free.get(key)
            block_of[buffer.index] = spare.pop() if spare else _new_block(shapes, key)
        for index in plan.dead_after[k]:
            if index in block_of:
                buffer = buffers[index]
                free.setdefault((buffer.shape, np.dtype(buffer.dtype)), []).append(block_of[index])
    return Arena(block_of, [np.empty(shape, dtype) for shape, dtype in shapes])


def _may_have_block(buffer, plan):
    return buffer.index in plan.owner_of and buffer.contiguous and not buffer.is_scalar and buffer.shape != ()


def _new_block(shapes, key):
    shapes.append(key)
    return len(shapes) - 1
