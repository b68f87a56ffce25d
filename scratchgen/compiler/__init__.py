"""``scratchgen.compile``: capture a step once, then replay it as a flat program without per-op Python.

    step = scratchgen.compile(train_step)
    for x, y in batches:
        metrics = step(x, y)          # calls 1-2 run eagerly and capture; later calls replay

How it works, stage by stage (each one printable with ``step.explain()``; docs/compile.md is the tour):

    capture   the first calls with a signature run ``fn`` eagerly under a ``Recorder`` (an autograd
              observer) that writes every array operation into a ``Program`` (capture.py)
    verify    a program is trusted once two captures agree (same ops, same constants): a constant
              that changed was data the program could not know, reported with its line
    guard     a call replays a program only if its signature matches: argument shapes, dtypes,
              devices and requires_grad, plain argument values, grad mode, the kernel choice, every
              module's ``training`` flag and the parameters (identity and array) of the modules
              ``fn`` reaches; a new signature captures again (an LRU cache of ``cache_size``)
    replay    ``Program.run``: one call per op on the captured buffers, each freed after its last
              use (arena.py; ``poisoning=True`` fills freed memory with NaN, for tests)

What is returned is rebuilt from the program's buffers: tensors as fresh detached copies, numbers read
with ``.item()`` by replaying their arithmetic (scalars.py). What cannot be captured raises
``UncapturableError`` naming the line: reading a traced value into Python to decide something
(``numpy()``, ``bool()``, comparing an ``item()``), or data that changes without passing through an op.
Objects other than tensors and plain values (numbers, strings) among the arguments are not guarded.
"""
import collections
import time

import numpy as np

from .. import kernels
from ..autograd import is_grad_enabled
from ..nn.module import Module
from ..tensor import Tensor
from . import fusion
from .capture import Recorder, is_array
from .errors import UncapturableError
from .scalars import TracedFloat

__all__ = ["compile", "CompiledFunction", "UncapturableError"]

PLAIN = (int, float, str, bool, type(None))
CAPTURES_BEFORE_GIVING_UP = 3


def compile(fn=None, *, modules=(), cache_size=4, poisoning=False, fuse=True):  # noqa: A001 (torch's name)
    """A ``CompiledFunction`` of ``fn`` (also usable as ``@compile`` or ``@compile(...)``).

    ``modules``: modules whose flags and parameters guard the program, beside those found through
    ``fn`` (its bound object's attributes and its closure); ``poisoning``: fill every freed buffer
    with NaN during replays (a use after free then shows as NaN); ``fuse``: generate one Numba kernel
    per run of elementwise ops once a program is trusted (fusion.py): ``"exact"`` (or True) fuses
    only correctly rounded operations (eager's bits), ``"fast"`` also exp, log, tanh, sigmoid,
    softplus and powers (within docs/compile.md's tolerance), False nothing."""
    if fuse not in (True, False, *fusion.MODES):
        raise ValueError(f"compile: expected fuse to be True, False, 'exact' or 'fast', got {fuse!r}")
    if fn is None:
        return lambda function: CompiledFunction(function, modules, cache_size, poisoning, fuse)
    return CompiledFunction(fn, modules, cache_size, poisoning, fuse)


class Entry:
    """One signature's program, and whether two captures have agreed on it yet."""

    def __init__(self, program, capture_seconds):
        self.program, self.trusted, self.captures = program, False, 1
        self.capture_seconds = capture_seconds


class CompiledFunction:
    def __init__(self, fn, modules, cache_size, poisoning, fuse):
        if not callable(fn):
            raise TypeError(f"compile: expected a callable, got {type(fn).__name__}")
        self.fn, self.cache_size, self.poisoning, self.fuse = fn, cache_size, poisoning, fuse
        found = reachable(fn)
        self.modules = list(modules) + [m for m in found if isinstance(m, Module)
                                        and all(m is not given for given in modules)]
        self.optimizers = [o for o in found if hasattr(o, "param_groups")]
        self.cache = collections.OrderedDict()
        self.captures = self.replays = 0

    # ---- calling -------------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        tensors, plain = [], []
        _flatten((args, kwargs), tensors, plain)
        key = (tuple(_tensor_signature(t) for t in tensors), tuple(plain), self._state_signature())
        entry = self.cache.get(key)
        if entry is not None and entry.trusted:
            self.cache.move_to_end(key)
            self.replays += 1
            slots = entry.program.run([t.data for t in tensors] + tensors, self.poisoning)
            return _unpack(entry.program.outputs, slots)
        return self._capture(key, entry, tensors, args, kwargs)

    def _capture(self, key, entry, tensors, args, kwargs):
        started = time.perf_counter()
        recorder = Recorder([named for m in self.modules for named in m.named_parameters()], self.optimizers)
        recorder.add_inputs(tensors)
        with recorder.recording():
            result = self.fn(*args, **kwargs)
        recorder.check_constants("after it was read")
        program = recorder.program
        program.outputs = _pack(result, recorder)
        protected = _buffers_of(program.outputs)
        program.finish(protected)
        seconds = time.perf_counter() - started
        self.captures += 1
        if entry is None:
            self.cache[key] = Entry(program, seconds)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        else:
            difference = differences(entry.program, program)
            entry.captures += 1
            entry.program, entry.capture_seconds = program, seconds
            entry.trusted = difference is None
            if entry.trusted and self.fuse:
                program.fused_sources = fusion.fuse(program, protected, "exact" if self.fuse is True else self.fuse)
                program.finish(protected)
            if difference is not None and entry.captures >= CAPTURES_BEFORE_GIVING_UP:
                del self.cache[key]
                raise UncapturableError(f"{_name(self.fn)}: {entry.captures} captures with one signature "
                                        f"disagree, so no program can stand for the function: {difference}")
        return _fresh(result)

    def _state_signature(self):
        """What besides the arguments a program assumes: grad mode, kernel choice, module flags and
        the parameters (each tensor, and the array it holds: ``Module.to`` rebinds it)."""
        flags, params = [], []
        for module in self.modules:
            flags.extend(m.training for m in module.modules())
            params.extend((id(p), id(p.data), p.requires_grad) for p in module.parameters())
        return (is_grad_enabled(), kernels.current_choice(), tuple(flags), tuple(params))

    # ---- explaining --------------------------------------------------------------------------------------
    def explain(self):
        """Every cached program: its signature, listing, memory plan and fused kernels, as text."""
        if not self.cache:
            return f"{_name(self.fn)}: nothing captured yet (call it first)"
        parts = []
        for number, (key, entry) in enumerate(self.cache.items()):
            state = "trusted" if entry.trusted else f"captured {entry.captures}x, not yet verified"
            inputs = ", ".join(f"{list(shape)} {dtype} {device}{' grad' if grad else ''}"
                               for shape, dtype, device, grad, _ in key[0])
            program = entry.program
            seconds = f"capture {entry.capture_seconds:.3f} s"
            title = f"== program {number} of {_name(self.fn)} ({state}; {seconds})"
            parts += [title,
                      f"signature: ({inputs}) plain args {key[1]}",
                      f"{len(program.ops)} ops over {len(program.buffers)} buffers",
                      program.listing(), program.plan.describe(),
                      f"fused kernels: {len(program.fused_sources)}", *program.fused_sources,
                      f"returns: {_describe_outputs(program.outputs)}"]
        return "\n".join(parts)


def _name(fn):
    return getattr(fn, "__qualname__", repr(fn))


# ---- finding what guards the program -------------------------------------------------------------------
def reachable(fn):
    """Modules and optimizers ``fn`` can reach: its bound object, closure cells, and their attributes
    (one level, dict values included: a recipe's ``model``, its ``{"model": Adam}``)."""
    cells = getattr(fn, "__closure__", None) or ()
    roots = [getattr(fn, "__self__", None)] + [cell.cell_contents for cell in cells if _cell_is_set(cell)]
    found = []

    def add(value):
        wanted = isinstance(value, Module) or hasattr(value, "param_groups")
        if wanted and all(value is not m for m in found):
            found.append(value)

    for root in roots:
        add(root)
        for value in getattr(root, "__dict__", {}).values():
            add(value)
            if isinstance(value, dict):
                for item in value.values():
                    add(item)
    return found


def _cell_is_set(cell):
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _tensor_signature(tensor):
    """Shape, dtype, device, requires_grad; and strides, since a view op assumes the captured layout."""
    return (tuple(tensor.shape), str(tensor.dtype), str(tensor.device), tensor.requires_grad,
            tuple(getattr(tensor.data, "strides", ())))


def _flatten(value, tensors, plain):
    """Collect the Tensors (in order) and the plain values of a nest of tuples, lists and dicts."""
    if isinstance(value, Tensor):
        tensors.append(value)
    elif isinstance(value, (tuple, list)):
        plain.append((type(value).__name__, len(value)))
        for item in value:
            _flatten(item, tensors, plain)
    elif isinstance(value, dict):
        plain.append(("dict", tuple(value)))
        for item in value.values():
            _flatten(item, tensors, plain)
    elif isinstance(value, PLAIN):
        plain.append(value)
    else:
        plain.append(type(value).__name__)  # not guarded: see the module docstring


# ---- what the step returns ---------------------------------------------------------------------------------
def _pack(value, recorder):
    """A template of ``value``: ("tensor", buffer), ("scalar", expression), ("value", object) leaves."""
    if isinstance(value, Tensor):
        if recorder.kind(value.data) in ("input", "op"):
            return ("tensor", recorder.buffer_of[id(value.data)])
        return ("value", value)
    if isinstance(value, TracedFloat):
        return ("scalar", value.expression)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, [_pack(item, recorder) for item in value])
    if isinstance(value, dict):
        return ("dict", [(key, _pack(item, recorder)) for key, item in value.items()])
    return ("value", value)


def _buffers_of(template):
    kind, content = template
    if kind == "tensor":
        return [content]
    if kind == "scalar":
        return content.buffers()
    if kind == "dict":
        return [i for _, item in content for i in _buffers_of(item)]
    if kind in ("list", "tuple"):
        return [i for item in content for i in _buffers_of(item)]
    return []


def _unpack(template, slots):
    kind, content = template
    if kind == "tensor":
        return Tensor(slots[content].copy())
    if kind == "scalar":
        return content.evaluate(slots)
    if kind == "dict":
        return {key: _unpack(item, slots) for key, item in content}
    if kind in ("list", "tuple"):
        items = [_unpack(item, slots) for item in content]
        return items if kind == "list" else tuple(items)
    return content


def _fresh(value):
    """What a capture call returns: the eager result with tensors copied and traced floats plain."""
    if isinstance(value, Tensor):
        return Tensor(value.data.copy())
    if isinstance(value, TracedFloat):
        return float(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_fresh(item) for item in value)
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    return value


def _describe_outputs(template):
    kind, content = template
    if kind == "tensor":
        return f"tensor %{content}"
    if kind == "scalar":
        return str(content)
    if kind == "dict":
        return "{" + ", ".join(f"{key!r}: {_describe_outputs(item)}" for key, item in content) + "}"
    if kind in ("list", "tuple"):
        return "[" + ", ".join(_describe_outputs(item) for item in content) + "]"
    return repr(content)


# ---- comparing two captures ---------------------------------------------------------------------------
def differences(old, new):
    """None if two programs are the same; otherwise what differs first, with its line."""
    if len(old.ops) != len(new.ops):
        return (f"the step ran {len(old.ops)} operations once and {len(new.ops)} the next time"
                f"{_first_op_change(old, new)}")
    for a, b in zip(old.ops, new.ops):
        if (a.name, a.reads, a.writes, a.detail) != (b.name, b.reads, b.writes, b.detail):
            return f"operation {a.name} became {b.name} at {b.line}"
    for index, value in old.constants.items():
        other = new.constants.get(index)
        if not _same_value(value, other):
            reader = next((op for op in new.ops if index in op.reads), None)
            where = f"read by {reader.name} at {reader.line}" if reader else "unused"
            return (f"an array no recorded operation made (constant %{index}, {where}) changed between "
                    "calls: "
                    "data made outside the engine's ops (NumPy on .data, Python state) cannot be replayed")
    if not _same_template(old.outputs, new.outputs):
        return ("the values returned differ between calls in a part not computed from tensors "
                "(Python state such as a step counter cannot be replayed)")
    return None


def _first_op_change(old, new):
    for a, b in zip(old.ops, new.ops):
        if a.name != b.name:
            return f"; first change: {a.name} became {b.name} at {b.line}"
    return ""


def _same_value(a, b):
    if a is b:
        return True
    if is_array(a) and is_array(b):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(
            np.asarray(a.get() if hasattr(a, "get") else a), np.asarray(b.get() if hasattr(b, "get") else b),
            equal_nan=a.dtype.kind in "fc"))
    if is_array(a) or is_array(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 (values without a usable ==: different unless identical)
        return False


def _same_template(a, b):
    if a[0] != b[0]:
        return False
    kind = a[0]
    if kind == "value":
        return _same_value(a[1], b[1])
    if kind == "tensor":
        return a[1] == b[1]
    if kind == "scalar":
        return str(a[1]) == str(b[1])
    if kind == "dict":
        return [k for k, _ in a[1]] == [k for k, _ in b[1]] and all(
            _same_template(x, y) for (_, x), (_, y) in zip(a[1], b[1]))
    return len(a[1]) == len(b[1]) and all(_same_template(x, y) for x, y in zip(a[1], b[1]))
