"""Anomaly mode: stop at the first op whose output or gradient is NaN or infinite, and say where.

    with scratchgen.detect_anomaly():
        loss = model(x)
        loss.backward()     # AnomalyError: Log.backward produced inf in gradient 0 ... created at
                            #   train.py:42 in step: loss = -y.log().mean()

While the mode is on, every op remembers the stack it was created from (that costs a traceback per
op, which is why it is a mode); its outputs are checked after each forward, and the gradients its
backward returns after each backward. A backward formula is made of ops, so an op that fails
inside a backward is reported as part of that backward, with the creation site of the op being
differentiated — the line the user wrote.

When is a value an anomaly
    NaN is always one. An infinity is one when the op *made* it: inputs all finite, output not
    (``log(0)``, ``1/0``, ``exp(1000)``). An op that merely passes along an infinity it was given
    (a ``where(mask, scores, -inf)`` attention mask, and the softmax after it) is left alone.
"""
import contextlib
import os
import traceback

import numpy as np

from .autograd import observe
from .backend import get_array_module

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
# The engine's own frames say nothing about the user's code; nn layers and models do, so they stay.
_ENGINE_FILES = tuple(os.path.join(_PACKAGE, name) for name in ("autograd.py", "tensor.py", "functional.py",
                                                                  "anomaly.py", "profiler.py", "ops" + os.sep))


class AnomalyError(RuntimeError):
    """An op produced a NaN or infinity inside ``detect_anomaly``; the message says which and where."""


class detect_anomaly:
    """Context manager (see the module docstring); ``check_forward=False`` checks only gradients."""

    def __init__(self, check_forward=True):
        self.check_forward = check_forward
        self._backwards = []   # nodes whose backward is running (innermost last)

    def __enter__(self):
        self._exit = contextlib.ExitStack()
        self._exit.enter_context(observe(self))
        # NumPy's "divide by zero" warnings would say the same thing without the op or the line.
        self._exit.enter_context(np.errstate(divide="ignore", over="ignore", invalid="ignore"))
        return self

    def __exit__(self, *exc):
        self._exit.close()
        return False

    # ---- observer callbacks ---------------------------------------------------------------------------
    def on_forward(self, node, inputs, outputs, seconds):
        node.creation_stack = _user_stack()
        problem = self.check_forward and _anomaly(inputs, outputs)
        if problem:
            message = self._forward_message(node, inputs, problem)
            self._backwards.clear()  # the error ends any backward pass in progress
            raise AnomalyError(message)

    def on_backward_begin(self, node):
        self._backwards.append(node)

    def on_backward(self, node, grads_out, grads_in, seconds):
        if self._backwards and self._backwards[-1] is node:
            self._backwards.pop()
        problem = _anomaly([g.data for g in grads_out if g is not None],
                           [None if g is None else g.data for g in grads_in], what="gradient")
        if problem:
            shapes = ", ".join(str(shape) for shape, _ in node.input_meta)
            raise AnomalyError(f"{node.name}.backward produced {problem}; the op's inputs had shapes "
                               f"({shapes}).\n{_where(node)}")

    # ---- messages ---------------------------------------------------------------------------------------
    def _forward_message(self, node, inputs, problem):
        shapes = ", ".join(str(getattr(x, "shape", type(x).__name__)) for x in inputs)
        message = f"{node.name} produced {problem} from inputs of shapes ({shapes})"
        if not self._backwards:
            return f"{message}.\n{_where(node)}"
        differentiated = self._backwards[-1]
        return (f"{message}, inside the backward of {differentiated.name}.\n"
                f"{_where(differentiated)}")


def _user_stack():
    """The current stack without the engine's frames (source lines are read only if printed)."""
    stack = traceback.StackSummary.extract(traceback.walk_stack(None), lookup_lines=False)
    return [frame for frame in reversed(stack) if not frame.filename.startswith(_ENGINE_FILES)]


def _where(node):
    stack = getattr(node, "creation_stack", None)
    if not stack:
        return (f"{node.name} was created before anomaly mode was on, so where is unknown; "
                "build the graph inside detect_anomaly()")
    innermost = stack[-1]
    # the user's own line first: the innermost frame outside scratchgen (an op made inside
    # nn/layers.py was asked for by a line of the user's model), then the library line under it
    user = next((frame for frame in reversed(stack) if not frame.filename.startswith(_PACKAGE + os.sep)),
                innermost)
    text = f"{node.name} was created at {_site(user)}\n"
    if user is not innermost:
        text += f"  through scratchgen code at {_site(innermost)}\n"
    lines = "".join(traceback.format_list(stack[-8:]))
    return text + f"Traceback of its creation (most recent call last):\n{lines}"


def _site(frame):
    return f"{frame.filename}:{frame.lineno} in {frame.name}: {frame.line}"


def _anomaly(inputs, outputs, what="output"):
    """A description of the first NaN, or infinity not present in ``inputs``, among ``outputs``."""
    for index, out in enumerate(outputs):
        if out is None or getattr(out, "dtype", None) is None or out.dtype.kind not in "fc":
            continue
        xp = get_array_module(out)
        if bool(xp.isfinite(out).all()):
            continue
        if bool(xp.isnan(out).any()):
            given = " (its inputs already held NaN)" if _any(inputs, "isnan") else ""
            return f"NaN in {what} {index}{given}"
        if not _any(inputs, "isinf"):
            return f"inf in {what} {index}"
    return None


def _any(arrays, test):
    return any(bool(getattr(get_array_module(a), test)(a).any()) for a in arrays
               if getattr(a, "dtype", None) is not None and a.dtype.kind in "fc")
