"""Reverse-mode automatic differentiation: ``Function`` nodes, grad modes and the backward pass.

How a graph is made (define-by-run)
    ``SomeOp.apply(*tensors, **params)`` runs ``forward`` on the raw arrays (NumPy or CuPy, so one
    code path serves both and kernels plug straight in) and, when any input requires a gradient
    and grad mode is on, makes the ``Function`` instance the ``creator`` of its outputs. The node
    remembers *edges* to its inputs — ``(creator, output_index)`` for computed tensors, the tensor
    itself for leaves — but never the input arrays unless ``forward`` saved them.

How backward works
    ``backward(grad_outputs)`` receives gradient *Tensors* and returns gradient Tensors made of
    ordinary differentiable ops. The engine runs it under ``no_grad`` for a first-order backward
    (no graph cost) and with grad mode on when ``create_graph=True``; then the gradients are
    themselves differentiable, which gives Hessian-vector products, WGAN-GP and R1 penalties
    without writing any second derivative by hand.

Saved arrays
    ``forward`` calls ``save_for_backward(*arrays)``. ``apply`` recognises which saved arrays are
    the op's own inputs or outputs and, in ``saved_tensors``, hands them back as Tensors still
    attached to the graph (so a derivative that uses ``x`` or ``y`` is differentiable in turn);
    other arrays (masks, indices) come back as constants. After a backward without
    ``retain_graph`` the saved arrays are dropped; a second backward raises a clear error.
"""
import collections.abc
import contextlib
import functools
import threading
import time

import numpy as np

class _GradMode(threading.local):
    """Whether ops record a graph, per thread. Each thread starts with recording on (the class
    attribute): a plain ``threading.local`` would make every op before the first ``no_grad`` look
    the flag up through a failing attribute access, ~0.6 us of an op's ~5."""
    enabled = True


_mode = _GradMode()

# Objects watching every forward and backward call (the profiler, anomaly mode); see ``observe``.
_observers = []


@contextlib.contextmanager
def observe(observer):
    """Call ``observer.on_forward(node, input_arrays, output_arrays, seconds)`` after every op's
    forward and ``observer.on_backward(node, grads_out, grads_in, seconds)`` after every backward,
    inside the ``with`` block. The engine pays nothing for this when nobody watches.

    An observer may also define ``on_forward_begin(node)`` and ``on_backward_begin(node)``, called
    just before; ``on_forward_call(node, input_arrays, params)`` (what a replay of the op needs, the
    compiler's view), ``on_leaf_grad(leaf, grad)`` after the backward pass accumulates ``grad`` into
    ``leaf.grad``, and ``on_host_begin`` / ``on_host_end`` around a ``host_operation``.
    Between ``on_backward_begin`` and ``on_backward`` run the ops of the node's backward formula
    *and* the engine's un-broadcasting and accumulation of its gradients (they are forward calls
    of ``SumTo``, ``Add``...): that bracket is how the profiler and anomaly mode
    attribute them to the backward they serve rather than to the forward pass."""
    _observers.append(observer)
    try:
        yield observer
    finally:
        _observers.remove(observer)


def _notify_begin(event, node, *details):
    for observer in _observers:
        begin = getattr(observer, event, None)
        if begin is not None:
            begin(node, *details)


def host_operation(method):
    """Mark a function that changes state outside the graph, in place (an optimizer's step,
    ``zero_grad``, gradient clipping, a running statistic): observers see each call as one operation,
    ``on_host_begin(method, args, kwargs)`` before and ``on_host_end(method, args, kwargs, result)``
    after, and the ops it runs inside come between. The compiler replays such a call by calling it
    again. Iterators among the arguments (``model.parameters()``) are made lists first when someone
    watches, so a second call sees the same values. Costs one ``if`` when nobody watches."""
    @functools.wraps(method)
    def observed(*args, **kwargs):
        if not _observers:
            return method(*args, **kwargs)
        args = tuple(list(a) if isinstance(a, collections.abc.Iterator) else a for a in args)
        _notify_begin("on_host_begin", method, args, kwargs)
        result = method(*args, **kwargs)
        _notify_begin("on_host_end", method, args, kwargs, result)
        return result
    return observed


def is_grad_enabled():
    return _mode.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off inside a ``with`` block (or for a decorated function)."""

    def __init__(self, mode):
        self.mode = bool(mode)

    def __enter__(self):
        self.previous = is_grad_enabled()
        _mode.enabled = self.mode

    def __exit__(self, *exc):
        _mode.enabled = self.previous
        return False


class no_grad(set_grad_enabled):
    """Record nothing: for inference, parameter updates and first-order backward passes."""

    def __init__(self):
        super().__init__(False)


class enable_grad(set_grad_enabled):
    def __init__(self):
        super().__init__(True)


class inference_mode(set_grad_enabled):
    """``torch.inference_mode``: here ``no_grad`` (nothing is recorded; scratchgen has no separate
    inference tensors). ``inference_mode(False)`` leaves the grad mode as it is."""

    def __init__(self, mode=True):
        super().__init__(False)
        self.inference = bool(mode)

    def __enter__(self):
        if not self.inference:
            self.mode = is_grad_enabled()
        super().__enter__()


class Function:
    """One differentiable operation: ``forward`` on arrays, ``backward`` on gradient Tensors.

    Subclasses implement::

        def forward(self, *arrays, **params) -> array | tuple of arrays
        def backward(self, *grad_outputs) -> Tensor | None | tuple of (Tensor | None)

    ``backward`` returns one gradient per positional input of ``apply`` (None where there is
    none); a gradient may have the *broadcast* shape — the engine sums it down to the input's
    shape in one place (``sum_to``), and casts it to the input's dtype. ``self.needs_input_grad``
    tells which inputs want one.

    A fused kernel whose backward is itself a raw-array kernel sets ``once_differentiable =
    True``: its gradients cannot be differentiated again, and trying to raises an error that
    names the op instead of silently returning zero.
    """

    once_differentiable = False
    output_hooks = None  # {output index: [hook]} once a hook is registered on an output (Tensor.register_hook)

    def __init_subclass__(cls, **kwargs):
        """PyTorch's style is accepted too: ``@staticmethod forward(ctx, *tensors)`` and
        ``@staticmethod backward(ctx, *grads)``, ``ctx.save_for_backward(*tensors)`` and
        ``ctx.saved_tensors``; the node itself is the ``ctx`` (see ``_forward_with_ctx``)."""
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("forward"), staticmethod):
            cls._ctx_forward = staticmethod(cls.__dict__["forward"].__func__)
            cls.forward = _forward_with_ctx
        if isinstance(cls.__dict__.get("backward"), staticmethod):
            cls._ctx_backward = staticmethod(cls.__dict__["backward"].__func__)
            cls.backward = _backward_with_ctx

    # ---- building the graph -------------------------------------------------------------------
    _saved_arrays = ()  # what ``save_for_backward`` sets on the node, read once by ``_connect``
    _saved = ()         # the saved arrays with their graph positions (see ``_link``)
    released = False    # set by ``release`` once a backward without retain_graph went through

    @classmethod
    def apply(cls, *inputs, **params):
        # Every op of every step passes through here: the loops below are written out rather than
        # as comprehensions (each one a function call of its own in Python 3.11), and the clock is
        # read only when someone watches.
        node = cls()
        arrays = []
        track = False  # does any input want a gradient?
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                if x._requires_grad:
                    track = True
            else:
                arrays.append(x)
        if _observers:
            _notify_begin("on_forward_begin", node)
            _notify_begin("on_forward_call", node, arrays, params)
            started = time.perf_counter()
        outputs = node.forward(*arrays, **params)
        single = not isinstance(outputs, tuple)
        outputs = (outputs,) if single else outputs
        for observer in _observers:
            observer.on_forward(node, arrays, outputs, time.perf_counter() - started)
        if not (track and _mode.enabled):  # _mode.enabled: is_grad_enabled(), without the call
            if single:
                return Tensor._from_node(outputs[0])
            return tuple([Tensor._from_node(out) for out in outputs])
        node._connect(inputs, arrays, outputs)
        if single:
            out = Tensor._from_node(outputs[0], node, 0)
            if getattr(outputs[0], "base", None) is not None:  # a view (transpose, reshape...)
                out._view_of = _viewed_leaf(inputs, outputs[0].base)
            return out
        return tuple([Tensor._from_node(out, node, i) for i, out in enumerate(outputs)])

    def save_for_backward(self, *arrays):
        self._saved_arrays = arrays

    def _connect(self, inputs, arrays, outputs):
        """Record the edges to the inputs, their shapes and dtypes (what backward casts and
        un-broadcasts to), the outputs' (for missing gradients) and the saved arrays' origins."""
        edges, needs, input_meta = [], [], []
        for x, array in zip(inputs, arrays):
            if isinstance(x, Tensor):
                input_meta.append((array.shape, array.dtype))
                if x._requires_grad:
                    edges.append(x if x.creator is None else (x.creator, x.index))  # _edge_to(x)
                    needs.append(True)
                    continue
            else:  # a non-Tensor positional argument (a Python number, an index array)
                input_meta.append((getattr(array, "shape", ()), getattr(array, "dtype", None)))
            edges.append(None)
            needs.append(False)
        self.next_edges, self.needs_input_grad, self.input_meta = tuple(edges), tuple(needs), tuple(input_meta)
        if len(outputs) == 1:
            self.output_meta = ((outputs[0].shape, outputs[0].dtype),)
        else:
            self.output_meta = tuple([(out.shape, out.dtype) for out in outputs])
        saved = self._saved_arrays
        if saved:
            links = []
            for array in saved:
                links.append(self._link(array, inputs, arrays, outputs))
            self._saved = tuple(links)
            self._saved_arrays = ()  # now in ``_saved``; an untracked node is dropped with them

    def _link(self, saved, inputs, arrays, outputs):
        """Remember a saved array with the graph position it came from (see module docstring)."""
        for tensor, array in zip(inputs, arrays):
            if saved is array and isinstance(tensor, Tensor):
                # a leaf is kept with its version (it may be written in place later); a computed
                # tensor as its graph position (it requires grad, so it cannot be written)
                if tensor.creator is None:
                    return (tensor, tensor._version)
                if tensor._view_of is not None:
                    return (saved, tensor.creator, tensor.index, tensor._view_of, tensor._view_of._version)
                return (saved, tensor.creator, tensor.index)
        for index, output in enumerate(outputs):
            if saved is output:
                return (saved, self, index)
        return (saved, None, 0)

    @property
    def saved_tensors(self):
        """The saved arrays as Tensors, attached to the graph where they came from it."""
        if self.released:
            raise RuntimeError(self._freed_message())
        tensors = []
        for item in self._saved:
            if len(item) == 3:        # (array, node, output index): a computed tensor
                tensors.append(Tensor._from_node(*item))
            elif len(item) == 2:      # (leaf, its version when saved)
                if item[0]._version != item[1]:
                    raise RuntimeError(self._modified_message(*item))
                tensors.append(item[0])
            else:                     # a view of a leaf: (array, node, index, leaf, its version)
                if item[3]._version != item[4]:
                    raise RuntimeError(self._modified_message(item[3], item[4]))
                tensors.append(Tensor._from_node(*item[:3]))
        return tuple(tensors)

    def _modified_message(self, tensor, version):
        what = f"tensor {tensor.name!r}" if tensor.name else "tensor"
        return (f"{type(self).__name__}.backward: a {what} of shape {tuple(tensor.shape)} and dtype {tensor.dtype}"
                f" "
                f"that {type(self).__name__} saved for backward was modified in place after the forward pass "
                f"(its version is {tensor._version}, expected {version}); the gradient would be wrong. "
                "Write into a copy (x.clone()) or do the write before the forward pass")

    def release(self):
        """Drop the saved arrays (the graph's structure stays, so a reuse can be detected)."""
        self._saved = ()
        self.released = True

    def _freed_message(self):
        return (f"{type(self).__name__}.backward: the saved arrays of this graph were freed by an "
                "earlier backward(); pass retain_graph=True to the first backward() to go through "
                "the graph twice")

    @property
    def name(self):
        return type(self).__name__

    def forward(self, *arrays, **params):
        raise NotImplementedError(f"{self.name} must implement forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{self.name} must implement backward")


def _forward_with_ctx(self, *arrays, **params):
    """A PyTorch-style ``forward(ctx, *tensors)`` run as the engine's array forward: the arrays go in
    as Tensors (no graph is recorded inside), the Tensors it returns and saves come out as their
    arrays — the very arrays ``apply`` recognises as the op's inputs and outputs, so
    ``ctx.saved_tensors`` hands them back attached to the graph, version checks included."""
    tensors = [Tensor(a) if hasattr(a, "shape") and hasattr(a, "dtype") else a for a in arrays]
    with no_grad():
        outputs = type(self)._ctx_forward(self, *tensors, **params)
    self._saved_arrays = tuple(t.data if isinstance(t, Tensor) else t for t in self._saved_arrays)
    if isinstance(outputs, tuple):
        return tuple(out.data if isinstance(out, Tensor) else out for out in outputs)
    return outputs.data if isinstance(outputs, Tensor) else outputs


def _backward_with_ctx(self, *grad_outputs):
    return type(self)._ctx_backward(self, *grad_outputs)


class SecondOrderBlocked(Function):
    """Stands in for the gradient of a ``once_differentiable`` op under ``create_graph=True``.

    Its forward passes the first-order gradient through; its backward refuses, naming the op, so
    that a second derivative through a fused kernel is an error rather than a silent zero.
    """

    def forward(self, gradient, *inputs, op):
        self.op = op
        return gradient

    def backward(self, *grad_outputs):
        raise RuntimeError(f"{self.op} is differentiable only once: its backward is a fused kernel. "
                           "Use the op's reference composition (or avoid create_graph=True through it).")


def _viewed_leaf(inputs, base):
    """The leaf Tensor among ``inputs`` (or behind an input that is itself a view) whose array
    ``base`` is: what an op's output views. None when it views no leaf."""
    for x in inputs:
        if isinstance(x, Tensor):
            leaf = x if x.creator is None else x._view_of
            if leaf is not None and (leaf.data is base or leaf.data.base is base):
                return leaf
    return None


def _edge_to(tensor):
    """Where a gradient for ``tensor`` must go: its creator's output slot, or the leaf itself."""
    return tensor if tensor.creator is None else (tensor.creator, tensor.index)


# ---- the backward pass ---------------------------------------------------------------------------
def topological_order(roots):
    """Function nodes reachable from ``roots``, each listed before the nodes it depends on.

    Iterative depth-first search (a 5,000-op chain would overflow Python's recursion limit);
    reversing the post-order puts every consumer before its producers.
    """
    post_order, visited = [], set()  # nodes hash by identity (no Function defines __eq__)
    stack = [(node, False) for node in roots]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            post_order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))
        for edge in node.next_edges:
            if type(edge) is tuple and edge[0] not in visited:
                stack.append((edge[0], False))
    post_order.reverse()
    return post_order


def run_backward(roots, root_grads, retain_graph=False, create_graph=False, capture=None):
    """Propagate ``root_grads`` from ``roots`` to every leaf (or into ``capture``).

    ``capture`` maps keys — ``id(leaf)`` or ``(node, index)`` — to None; when given, gradients for
    those keys are stored there instead of being accumulated into ``leaf.grad``. Leaf gradients
    are summed over the whole pass first, so a leaf's hooks see its total gradient once.
    """
    pending = {}      # node -> list of gradient Tensors per output (None: nothing arrived yet)
    leaf_grads = {}   # id(leaf) -> [leaf, summed gradient]
    with set_grad_enabled(create_graph):
        for root, grad in zip(roots, root_grads):
            _deliver(_edge_to(root), grad, pending, leaf_grads)
        nodes = topological_order([root.creator for root in roots if root.creator is not None])
        for node in nodes:
            grads_out = pending.pop(node, None)
            if grads_out is None:
                continue  # no gradient reaches this node (e.g. it feeds only an unused output)
            if node.released:
                raise RuntimeError(node._freed_message())
            hooks = node.output_hooks
            if hooks:
                grads_out = [_run_hooks(hooks.get(i, ()), g) for i, g in enumerate(grads_out)]
            if capture is not None:
                for index, grad in enumerate(grads_out):
                    if (node, index) in capture:
                        capture[(node, index)] = grad
            _backward_step(node, _fill_missing(node, grads_out), create_graph, pending, leaf_grads)
            if not retain_graph:
                node.release()
        for leaf, grad in leaf_grads.values():
            grad = _run_hooks(leaf._hooks, grad)
            if capture is None:
                leaf._accumulate_grad(grad)
                if _observers:
                    _notify_begin("on_leaf_grad", leaf, grad)
            elif id(leaf) in capture:
                capture[id(leaf)] = grad


def _run_hooks(hooks, grad):
    """Tensor hooks see a gradient and may replace it (by returning a Tensor)."""
    for hook in hooks or ():
        if grad is not None:
            replaced = hook(grad)
            grad = grad if replaced is None else replaced
    return grad


def _backward_step(node, grads_out, create_graph, pending, leaf_grads):
    """Run one node's backward, then un-broadcast its gradients and deliver them to its inputs.
    Observers see the whole step (see ``observe``)."""
    if _observers:
        _notify_begin("on_backward_begin", node)
        started = time.perf_counter()
    grads_in = _call_backward(node, grads_out, create_graph)
    for edge, grad, meta in zip(node.next_edges, grads_in, node.input_meta):
        if edge is not None and grad is not None:
            array = grad.data
            if array.shape != meta[0] or array.dtype is not meta[1]:  # (``is``: the usual match, fast)
                grad = _match_input(grad, meta, node)
            _deliver(edge, grad, pending, leaf_grads)
    for observer in _observers:
        observer.on_backward(node, grads_out, grads_in, time.perf_counter() - started)


def _call_backward(node, grads_out, create_graph):
    grads_in = node.backward(*grads_out)
    if not isinstance(grads_in, tuple):
        grads_in = (grads_in,)
    if len(grads_in) != len(node.next_edges):
        raise RuntimeError(f"{node.name}.backward returned {len(grads_in)} gradients, "
                           f"expected {len(node.next_edges)} (one per input)")
    if node.once_differentiable and create_graph:
        inputs = [edge for edge in node.next_edges if edge is not None]
        grads_in = tuple(None if g is None else _block_second_order(g, node, inputs) for g in grads_in)
    return grads_in


def _block_second_order(grad, node, edges):
    blocked = SecondOrderBlocked()
    blocked.next_edges = tuple(edges)
    blocked.needs_input_grad = (True,) * len(edges)
    blocked.input_meta = tuple(((), None) for _ in edges)
    blocked.output_meta = ((grad.shape, grad.dtype),)
    blocked.released = False
    blocked.op = node.name
    blocked._saved = ()
    return Tensor._from_node(grad.data, blocked, 0)


def _fill_missing(node, grads_out):
    """Zeros for outputs that received no gradient (e.g. an unused output of a multi-output op)."""
    if len(grads_out) == 1:  # one output: its gradient is what made the node pending
        return grads_out
    present = [g for g in grads_out if g is not None]  # (``None in grads_out`` would call Tensor.__eq__)
    if len(present) == len(grads_out):
        return grads_out
    device = present[0].device
    return [g if g is not None else zeros(shape, dtype=dtype, device=device)
            for g, (shape, dtype) in zip(grads_out, node.output_meta)]


def _match_input(grad, meta, node):
    """Un-broadcast and cast a gradient to its input's shape and dtype — the one place it happens."""
    shape, dtype = meta
    array = grad.data
    if array.shape != shape:
        try:
            grad = sum_to(grad, shape)
        except ValueError as error:
            raise RuntimeError(f"{node.name}.backward: gradient of shape {grad.shape} does not "
                               f"reduce to the input's shape {shape}") from error
    if dtype is not None and array.dtype != dtype:
        grad = grad.to(dtype)
    return grad


def _deliver(edge, grad, pending, leaf_grads):
    if isinstance(edge, Tensor):
        entry = leaf_grads.setdefault(id(edge), [edge, None])
        entry[1] = grad if entry[1] is None else entry[1] + grad
        return
    node, index = edge
    slots = pending.get(node)
    if slots is None:
        slots = pending[node] = [None] * len(node.output_meta)
    slots[index] = grad if slots[index] is None else slots[index] + grad


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned rather than accumulated.

    Mirrors ``torch.autograd.grad``. With ``create_graph=True`` the returned gradients are part of
    the graph, so they can be differentiated again (a gradient penalty, a Hessian-vector product).
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single_input = isinstance(inputs, Tensor)
    inputs = [inputs] if single_input else list(inputs)
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad (shape {x.shape})")
    root_grads = _root_gradients(outputs, grad_outputs, "grad")
    keys = [id(x) if x.creator is None else (x.creator, x.index) for x in inputs]
    capture = dict.fromkeys(keys)
    run_backward(outputs, root_grads, retain_graph=create_graph if retain_graph is None else retain_graph,
                 create_graph=create_graph, capture=capture)
    results = []
    for i, (x, key) in enumerate(zip(inputs, keys)):
        g = capture[key]
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {x.shape}) was not used to compute the outputs; "
                               "pass allow_unused=True to get None for it")
        results.append(g)
    return tuple(results)


def _root_gradients(outputs, grad_outputs, op):
    """Seed gradients: ones for scalar outputs, the given ones otherwise (checked)."""
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    seeds = []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            raise RuntimeError(f"{op}: tensor of shape {out.shape} does not require grad and has no "
                               "creator (was it computed under no_grad, or from leaves without "
                               "requires_grad=True?)")
        if g is None:
            if out.numel() != 1:
                raise RuntimeError(f"{op}: gradient can be implicitly created only for a scalar output; "
                                   f"got shape {out.shape}, pass a gradient of that shape")
            g = _ones_like(out)
        elif not isinstance(g, Tensor):
            g = Tensor(g)
        if g.shape != out.shape:
            raise RuntimeError(f"{op}: expected a gradient of shape {out.shape}, got {g.shape}")
        seeds.append(g)
    return seeds


def _ones_like(out):
    """The seed of a scalar output's backward (a constant one of its dtype, on its device), made
    directly on the CPU: it is made once per backward, and ``ones_like`` parses its arguments. (A
    loss is mostly a NumPy scalar, ``np.generic``: what NumPy's reductions to 0-d return.)"""
    if isinstance(out.data, (np.ndarray, np.generic)):
        return Tensor._from_node(np.ones(out.data.shape, out.data.dtype))
    return ones_like(out)


# The engine checks for and makes Tensors, and tensor.py builds on this module: importing it last,
# once every name above exists, breaks the cycle (``scratchgen/__init__`` imports this module
# before ``tensor``) without a slow import statement inside each op's ``apply``.
from .tensor import Tensor, ones_like, zeros  # noqa: E402
# tensor's own last import loaded the ops; _match_input un-broadcasts with sum_to, and an import
# statement there (run for every broadcast gradient) was 1.5% of the autoencoder's step.
from .ops.shape import sum_to  # noqa: E402
