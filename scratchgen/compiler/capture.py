"""Capture: run a function eagerly once while an autograd observer writes down every array operation.

The ``Recorder`` is an observer (``scratchgen.autograd.observe``), so the engine pays nothing for it
outside a capture. What it sees, and what it writes into the ``Program``:

    on_forward_call / on_forward   a Function's forward (forward pass, a backward formula's ops, the
                                   engine's un-broadcasting, random draws): ``forward(*reads, **params)``
                                   on a fresh node, array-valued params read as buffers too
    on_backward_begin / _backward  a bracket; inside it an array no op made is either an attribute of
                                   the node (ReLU's mask: the forward then keeps its node, and an
                                   ``attribute`` op reads it) or, for a once-differentiable node whose
                                   backward is a raw kernel, one of the gradients of a ``backward`` op
    on_leaf_grad                   ``grad`` accumulated into a leaf's ``.grad`` (a fresh array, as eagerly)
    on_host_begin / _end           a ``host_operation`` (optimizer step, zero_grad, clipping, running
                                   statistics): one op that calls it again; the ops inside are its own

Any other array an op reads becomes a constant of the program. Whether that was right is checked by
capturing twice (see ``compiler.compile``): a constant that changes between captures is data the
program cannot know, and is reported with the line that read it.
"""
import contextlib

from ..autograd import observe
from ..tensor import Tensor
from .calls import (accumulate_call, array_slots, assign_call, attribute_call, backward_call, forward_call,
                    host_call, is_array, keeping_call, memory_root, value_at, view_call)
from .errors import UncapturableError, user_line
from .program import Op, Program
from .scalars import Item, TracedFloat


class Recorder:
    def __init__(self, named_parameters=(), optimizers=()):
        self.names = {id(param): name for name, param in named_parameters}
        self.parameters, self.optimizers = [param for _, param in named_parameters], list(optimizers)
        self.assigned = set()   # (id(parameter), id(array)): gradients assigned to .grad, recorded once
        self.snapshots = {}     # constant buffer -> a copy, to notice writes no op records
        self.hyperparameters = _hyperparameters(self.optimizers)
        self.program = Program()
        self.buffer_of = {}     # id(array) -> buffer index (the newest buffer holding that array)
        self.group_of = {}      # id(memory root) -> the buffer index that stands for that memory
        self.values = []        # buffer index -> its value in this capture (also keeps ids unique)
        self.alive = []         # memory roots seen (kept alive for the same reason)
        self.calls = {}         # id(node) -> (arrays, params, line) between on_forward_call and on_forward
        self.forward_op = {}    # id(node) -> the forward Op that made it
        self.node_buffer = {}   # id(node) -> the buffer that holds the node on a replay (kept nodes)
        self.brackets = []      # open backward brackets: [node, backward Op or None, pending {id: buffer}]
        self.host_depth = 0

    # ---- buffers -----------------------------------------------------------------------------------
    def _new(self, kind, value):
        index = self.program.add_buffer(kind, value)
        buffer = self.program.buffers[index]
        self.values.append(value)
        if is_array(value):
            self.buffer_of[id(value)] = index
            root = memory_root(value)
            self.alive.append(root)
            buffer.group = self.group_of.setdefault(id(root), index)
        else:
            buffer.group = index
        return index

    def add_inputs(self, tensors):
        """The call's tensors: their arrays, then the tensors themselves (a gradient accumulates into
        the tensor of *this* call when an argument requires grad)."""
        for tensor in tensors:
            self._new("input", tensor.data)
        self.input_tensor = {id(tensor): self._new("input", tensor) for tensor in tensors}

    def read(self, value, line=""):
        """The buffer holding ``value`` for an op to read: a known one, or a new constant."""
        if is_array(value):
            index = self.buffer_of.get(id(value))
            return index if index is not None else self._unknown(value, line)
        return self._new("constant", value)

    def write(self, value):
        return self._new("op", value)

    def kind(self, value):
        index = self.buffer_of.get(id(value)) if is_array(value) else None
        return None if index is None else self.program.buffers[index].kind

    def _unknown(self, array, line):
        if self.brackets:
            node, backward_op, pending = self.brackets[-1]
            if backward_op is not None:   # a raw kernel's gradient, claimed when its backward ends
                pending[id(array)] = index = self.write(array)
                return index
            found = _attribute_holding(node, array)
            if found is not None:
                return self._attribute_op(node, found, array, line)
        source = self.group_of.get(id(memory_root(array)))
        if source is not None and self.program.buffers[source].kind in ("input", "op"):
            view = view_call(self.values[source], array)
            if view is not None:   # NumPy on .data made a view of a traced array (target.data.reshape(-1))
                index = self.write(array)
                self._add(Op("view", "view", view, [source], [index], line,
                             f"shape={list(array.shape)}, strides={list(array.strides)}"))
                return index
        index = self._new("constant", array)
        self.snapshots[index] = (array, array.copy(), line)
        return index

    def check_constants(self, when):
        """Raise if a constant array changed since it was last seen (a write in place that no op
        and no host operation records, e.g. ``x.data[...] = ...``), or an optimizer's hyperparameters
        were changed in Python during the capture."""
        for index, (array, copy, line) in self.snapshots.items():
            if not _equal(array, copy):
                raise UncapturableError(
                    f"an array the step reads (constant %{index}, {list(array.shape)}, first read at {line}) "
                    f"was written in place {when} by code that no op records (writing into .data, NumPy on a "
                    "tensor's array); a replay would not write it. Write through a host operation (see "
                    "autograd.host_operation) or outside the step")
        if _hyperparameters(self.optimizers) != self.hyperparameters:
            raise UncapturableError("the step changes an optimizer's hyperparameters (learning rate, ...) in "
                                    "Python; a replay would keep the values of its capture. Set them outside "
                                    "the step")

    def _refresh_snapshots(self):
        for index, (array, _, line) in self.snapshots.items():
            self.snapshots[index] = (array, array.copy(), line)

    # ---- ops -----------------------------------------------------------------------------------------
    def _add(self, op):
        self.program.ops.append(op)
        return op

    def on_forward_call(self, node, arrays, params):
        if not self.host_depth:
            self.calls[id(node)] = (arrays, params, user_line())

    def on_forward(self, node, arrays, outputs, seconds):
        if self.host_depth:
            return
        arrays, params, line = self.calls.pop(id(node))
        slots = array_slots(params)
        reads = [self.read(a, line) for a in arrays]
        reads += [self.read(value_at(params, slot), line) for slot in slots]
        writes = [self.write(out) for out in outputs]
        detail = ", ".join(f"{name}={_short(value)}" for name, value in params.items()
                           if all(slot[0] != name for slot in slots))
        op = self._add(Op("forward", node.name, forward_call(type(node), params, slots, len(arrays)),
                          reads, writes, line, detail))
        op.node_class, op.params, op.slots, op.input_count = type(node), params, slots, len(arrays)
        self.forward_op[id(node)] = op

    def _keep_node(self, node, line, with_graph):
        """Make ``node``'s forward op also return a node for later ops (its attributes, its backward)."""
        if id(node) in self.node_buffer:
            return self.node_buffer[id(node)]
        op = self.forward_op.get(id(node))
        if op is None:
            raise UncapturableError(f"{node.name}: its forward ran before the compiled function was called, "
                                    f"so its backward (at {line}) cannot be replayed; build the graph inside "
                                    "it")
        index = self._new("op", node)
        op.needs_input_grad = getattr(node, "needs_input_grad", None)  # set once the node joined the graph
        op.writes.append(index)
        op.call = keeping_call(op, with_graph)
        op.kind = "forward+"  # keeps its node
        self.node_buffer[id(node)] = index
        return index

    def _attribute_op(self, node, found, array, line):
        name, position = found
        node_index = self._keep_node(node, line, with_graph=False)
        index = self.write(array)
        where = name if position is None else f"{name}[{position}]"
        call = attribute_call(name, position)
        op = self._add(Op("attr", f"{node.name}.{where}", call, [node_index], [index], line))
        op.extra_uses = self._kept_arrays(node)
        return index

    def _kept_arrays(self, node):
        """What a kept node may hold (its forward's inputs and outputs, saved or viewed): they must stay
        live, unpoisoned, until every op that reads the node has run."""
        forward = self.forward_op[id(node)]
        return [i for i in forward.reads + forward.writes if i != self.node_buffer[id(node)]]

    def on_backward_begin(self, node):
        if self.host_depth:
            return
        backward_op = None
        if node.once_differentiable:  # a raw kernel: one op, filled in when the backward ends
            backward_op = self._add(Op("backward", f"{node.name}.backward", None, [], [], user_line()))
        self.brackets.append([node, backward_op, {}])

    def on_backward(self, node, grads_out, grads_in, seconds):
        if self.host_depth:
            return
        node, op, pending = self.brackets.pop()
        if op is None:
            return
        node_index = self._keep_node(node, op.line, with_graph=True)
        op.reads = [node_index] + [self.read(g.data, op.line) for g in grads_out]
        present = [g is not None for g in grads_in]
        for g in grads_in:
            if g is not None:
                op.writes.append(pending.pop(id(g.data), None) or self.write(g.data))
        for index in pending.values():   # read in the bracket but not a gradient: a constant after all
            self.program.buffers[index].kind = "constant"
        op.call = backward_call(present)
        op.extra_uses = self._kept_arrays(node)

    def on_leaf_grad(self, leaf, grad):
        """The leaf's new ``.grad`` array is the op's output, so that the step may return it."""
        if not self.host_depth:
            argument = self.input_tensor.get(id(leaf))
            reads = [self.read(grad.data)] + ([] if argument is None else [argument])
            call = accumulate_call(None if argument is not None else leaf)
            index = self.write(leaf.grad.data)
            self.program.buffers[index].escapes = True
            self._add(Op("grad", "accumulate_grad", call, reads, [index], user_line(), self._leaf_name(leaf)))
            self.assigned.add((id(leaf), id(leaf.grad.data)))   # bound by the op above, not assigned

    def on_host_begin(self, method, args, kwargs):
        if not self.host_depth:
            self.check_constants("before it")
            self._record_assigned_gradients()
        self.host_depth += 1

    def _record_assigned_gradients(self):
        """``param.grad = gradient`` with a traced gradient (from ``scratchgen.grad``) is a Python
        assignment, invisible to observers: found here, before a host operation (the optimizer step)
        that may read it, and recorded as an op that assigns a copy."""
        for param in self.parameters:
            grad = param.grad
            if grad is None or self.kind(grad.data) != "op" or (id(param), id(grad.data)) in self.assigned:
                continue
            self.assigned.add((id(param), id(grad.data)))
            self._add(Op("grad", "assign_grad", assign_call(param), [self.read(grad.data)], [], user_line(),
                         self._leaf_name(param)))

    def on_host_end(self, method, args, kwargs, result):
        self.host_depth -= 1
        if self.host_depth:
            return
        for value in args:   # a raw array nobody recorded making: a constant, so two captures compare it
            if is_array(value) and id(value) not in self.buffer_of:
                self.read(value, user_line())
        traced = [(position, value) for position, value in enumerate(args)
                  if self.kind(value.data if isinstance(value, Tensor) else value) == "op"]
        reads = [self.buffer_of[id(value.data if isinstance(value, Tensor) else value)]
                 for _, value in traced]
        writes = [self.write(result.data)] if isinstance(result, Tensor) else []
        self._refresh_snapshots()   # what the host operation wrote is written again on a replay
        name = getattr(method, "__qualname__", repr(method))
        self._add(Op("host", name, host_call(method, args, kwargs, traced, bool(writes)), reads, writes,
                     user_line(), _pre_hooks(method, args)))

    def _leaf_name(self, leaf):
        return self.names.get(id(leaf)) or leaf.name or f"leaf{list(leaf.shape)}"

    # ---- values read into Python ---------------------------------------------------------------------
    def is_traced(self, tensor):
        return self.kind(tensor.data) in ("input", "op")

    @contextlib.contextmanager
    def recording(self):
        """Observe the engine and watch what reads tensors into Python and what writes an optimizer's
        hyperparameters, for the ``with`` block."""
        with observe(self), _reads_watched(self), _hyperparameters_watched(self):
            yield self


def _pre_hooks(method, args):
    """What a replayed ``Optimizer.step`` runs before its update besides the recorded program: its step
    pre-hooks (data-parallel training's gradient allreduce), which the replay calls again as part of
    the host operation. Named in the listing, since they do work (a collective) the program does not show."""
    hooks = getattr(args[0], "_step_pre_hooks", None) if args and method.__name__ == "step" else None
    if not hooks:
        return ""
    names = [getattr(hook, "description", None) or getattr(hook, "__qualname__", type(hook).__name__)
             for hook in hooks.values()]
    return f"runs its step pre-hooks: {'; '.join(names)}"


def _hyperparameters(optimizers):
    return [[{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
            for optimizer in optimizers]


def _equal(a, b):
    return a.shape == b.shape and bool((a == b).all() if a.dtype.kind not in "fc" else
                                       ((a == b) | ((a != a) & (b != b))).all())


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _attribute_holding(node, array):
    """``(name, position)`` of the attribute of ``node`` that is ``array`` (position: in a tuple)."""
    for name, value in vars(node).items():
        if value is array:
            return name, None
        if isinstance(value, (tuple, list)):
            for position, item in enumerate(value):
                if item is array:
                    return name, position
    return None


# ---- writing hyperparameters in Python ------------------------------------------------------------------
class _WatchedGroup(dict):
    """An optimizer's parameter group during a capture: writing an entry in the step's Python raises.
    Even a write of the value it already holds: a schedule (``group["lr"] = schedule(step)``) gives
    the same value for both captures and a different one later, when a replay no longer runs the line.
    A host operation (replayed as a call) may write."""

    def __init__(self, group, recorder):
        super().__init__(group)
        self.recorder = recorder

    def __setitem__(self, key, value):
        if not self.recorder.host_depth:
            raise UncapturableError(
                f"the step sets the optimizer hyperparameter {key!r} at {user_line()}; a replay does not run "
                "that line, so it would keep the value of its capture. Set it before the step (a recipe's "
                "before_step, or outside the compiled function)")
        super().__setitem__(key, value)

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


@contextlib.contextmanager
def _hyperparameters_watched(recorder):
    """Each optimizer's groups replaced by ``_WatchedGroup`` copies for the capture, then restored
    (with what host operations wrote into them)."""
    originals = [list(optimizer.param_groups) for optimizer in recorder.optimizers]
    for optimizer in recorder.optimizers:
        optimizer.param_groups[:] = [_WatchedGroup(group, recorder) for group in optimizer.param_groups]
    try:
        yield
    finally:
        for optimizer, groups in zip(recorder.optimizers, originals):
            for group, watched in zip(groups, optimizer.param_groups):
                group.update(watched)
            optimizer.param_groups[:] = groups


# ---- reading tensors into Python --------------------------------------------------------------------------
@contextlib.contextmanager
def _reads_watched(recorder):
    """While capturing: ``item()`` of a traced tensor gives a ``TracedFloat``; ``numpy()``, ``tolist()``,
    ``bool()``, ``float()``, ``int()`` of one raise ``UncapturableError`` naming the line. (Reading a value
    is not an op, so the engine has no observer hook for it; the methods are swapped for the capture only.)"""
    originals = {name: getattr(Tensor, name) for name in ("item", "numpy", "tolist", "__bool__", "__float__",
                                                          "__int__")}

    def item(tensor):
        value = originals["item"](tensor)
        if not recorder.is_traced(tensor):
            # a constant the step reads by reference (a schedule's 0-d tensor written in place between
            # calls, a parameter): the replay reads its value of the day, so the float does too
            known = recorder.buffer_of.get(id(tensor.data))
            return value if known is None or not isinstance(value, float) else TracedFloat(value, Item(known))
        if not isinstance(value, float):
            raise UncapturableError(f"item() of a traced {tensor.dtype} tensor gives a Python int, which "
                                    f"the compiled step cannot return or decide with; at {user_line()}")
        return TracedFloat(value, Item(recorder.buffer_of[id(tensor.data)]))

    def refusing(name, label):
        def method(tensor, *args, **kwargs):
            if recorder.is_traced(tensor):
                raise UncapturableError(
                    f"{label} reads a traced tensor's values into Python at {user_line()}; a replay does not "
                    "run Python, so what is done with them would be fixed at capture time. Keep it outside "
                    "the compiled function (return the tensor and read it after the call)")
            return originals[name](tensor, *args, **kwargs)
        return method

    try:
        Tensor.item = item
        for name in ("numpy", "tolist", "__bool__", "__float__", "__int__"):
            setattr(Tensor, name, refusing(name, name if name.startswith("_") else f"{name}()"))
        yield
    finally:
        for name, method in originals.items():
            setattr(Tensor, name, method)
