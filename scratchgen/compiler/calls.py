"""The calls a replay makes: each recorded op becomes one of these closures over what it captured.

    forward_call       ``cls().forward(*inputs, **params)`` on a fresh node (array params from buffers)
    keeping_call       the same, also returning the node (its attributes, or its graph for a raw backward)
    attribute_call     an attribute of a kept node (ReLU's mask)
    backward_call      a kept node's backward kernel on this replay's gradients
    accumulate_call    a gradient accumulated into a leaf's ``.grad``; ``assign_call``: assigned to it
    host_call          a host operation (optimizer step...) called again, traced arguments replaced
    view_call          a NumPy (or CuPy) view of a traced array, made again from this replay's array
"""
import numpy as np

from ..autograd import enable_grad, no_grad
from ..backend import is_cupy_array
from ..tensor import Tensor


def is_array(value):
    return hasattr(value, "__array_interface__") or is_cupy_array(value)


def memory_root(array):
    """The array that owns ``array``'s memory (itself unless it is a view)."""
    while getattr(array, "base", None) is not None and is_array(array.base):
        array = array.base
    return array


def array_slots(params):
    """Where ``params`` hold arrays: ``(name, None)`` for an array value, ``(name, i)`` for an array at
    position i of a tuple or list (an index such as ``(rows, labels)``). They are read as buffers, so
    a replay passes this call's arrays rather than the captured ones."""
    slots = []
    for name, value in params.items():
        if is_array(value):
            slots.append((name, None))
        elif isinstance(value, (tuple, list)):
            slots.extend((name, i) for i, item in enumerate(value) if is_array(item))
    return slots


def value_at(params, slot):
    name, position = slot
    return params[name] if position is None else params[name][position]


def with_arrays(params, slots, arrays):
    """``params`` with the arrays at ``slots`` replaced by ``arrays``."""
    params = dict(params)
    for (name, position), array in zip(slots, arrays):
        if position is None:
            params[name] = array
        else:
            items = list(params[name])
            items[position] = array
            params[name] = type(params[name])(items)
    return params


def forward_call(cls, params, slots, input_count):
    """``cls().forward(*inputs, **params)`` on a fresh node; array params come after the inputs."""
    if not slots:
        def call(*arrays):
            return cls().forward(*arrays, **params)
        return call

    def call_with_arrays(*arrays):
        return cls().forward(*arrays[:input_count], **with_arrays(params, slots, arrays[input_count:]))
    return call_with_arrays


def keeping_call(op, with_graph):
    """The forward of ``op`` that also returns its node: a fresh node's forward (its attributes are
    what later ops read) or, ``with_graph``, the op applied to leaves that require grad, so that its
    saved tensors are in place for a raw backward kernel."""
    cls, count = op.node_class, op.input_count
    needs = op.needs_input_grad or (False,) * count

    def call(*arrays):
        params = with_arrays(op.params, op.slots, arrays[count:])
        if with_graph:
            with enable_grad():
                out = cls.apply(*[Tensor(a, requires_grad=True) if need else a
                                  for a, need in zip(arrays[:count], needs)], **params)
            outs = out if isinstance(out, tuple) else (out,)
            return (*[o.data for o in outs], outs[0].creator)
        node = cls()
        out = node.forward(*arrays[:count], **params)
        return (*(out if isinstance(out, tuple) else (out,)), node)
    return call


def _address(array):
    """Where ``array``'s first element lies: in host memory (NumPy) or on the GPU (CuPy)."""
    if is_cupy_array(array):
        return array.data.ptr
    return array.__array_interface__["data"][0]


def view_call(source, array):
    """A call making, from this replay's ``source``, the view ``array`` is of the captured one (same
    offset from the start of the source, shape and strides); None if it cannot (arrays of two kinds,
    a root that exports no buffer)."""
    if not (is_array(source) and is_array(array)) or is_cupy_array(source) != is_cupy_array(array):
        return None
    offset = _address(array) - _address(source)
    shape, strides, dtype = array.shape, array.strides, array.dtype

    def call(base):
        root = memory_root(base)
        start = _address(base) - _address(root) + offset
        return _view_of(root, start, shape, dtype, strides)
    try:
        made = call(source)
    except (TypeError, ValueError):  # a root that exports no buffer (not contiguous)
        return None
    return call if _address(made) == _address(array) else None


def _view_of(root, start, shape, dtype, strides):
    """The array of ``shape``, ``dtype`` and ``strides`` at byte ``start`` of ``root``'s memory."""
    if is_cupy_array(root):
        import cupy
        return cupy.ndarray(shape, dtype, memptr=root.data + start, strides=strides)
    return np.ndarray(shape, dtype, buffer=root, offset=start, strides=strides)


def attribute_call(name, position):
    if position is None:
        return lambda node: getattr(node, name)
    return lambda node: getattr(node, name)[position]


def backward_call(present):
    """A kept node's backward on the replay's gradients; the gradients that were there when captured."""
    def call(node, *grads):
        with no_grad():
            result = node.backward(*[Tensor(g) for g in grads])
        node.release()
        result = result if isinstance(result, tuple) else (result,)
        arrays = tuple(g.data for g, there in zip(result, present) if there)
        return arrays if len(arrays) != 1 else arrays[0]
    return call


def assign_call(param):
    def call(grad):
        param.grad = Tensor(grad.copy())
    return call


def accumulate_call(leaf):
    """Accumulate into ``leaf`` (a parameter), or, when None, into the argument tensor read second."""
    def call(grad, argument=None):
        target = leaf if leaf is not None else argument
        with no_grad():
            target._accumulate_grad(Tensor(grad))
        return target.grad.data
    return call


def host_call(method, args, kwargs, traced, returns):
    """``method(*args, **kwargs)`` again, traced arguments replaced by this replay's arrays."""
    positions = [position for position, _ in traced]
    wraps = [isinstance(value, Tensor) for _, value in traced]

    def call(*arrays):
        current = list(args)
        for position, wrap, array in zip(positions, wraps, arrays):
            current[position] = Tensor(array) if wrap else array
        result = method(*current, **kwargs)
        return result.data if returns else None
    return call


# ---- writing into a given output (the arena's blocks) ---------------------------------------------------
def matmul_into(a, b, out):
    """``MatMul.forward`` into ``out``: the same BLAS product (rows stacked when a 2-D weight is shared
    by a batch), so the same bits."""
    if b.ndim == 2 and a.ndim > 2:
        np.matmul(a.reshape(-1, a.shape[-1]), b, out=out.reshape(-1, b.shape[-1]))
    else:
        np.matmul(a, b, out=out)
    return out


def relu_call(x, out=None):
    """``Relu.forward`` without the mask it keeps (fusion recomputes the mask from the output)."""
    return np.maximum(x, 0, out=out)


def relu_mask_call(y):
    """The mask ``x > 0`` of a ReLU, from its output ``y = max(x, 0)``: the same bools."""
    return y > 0


# Ops whose forward is one NumPy call that accepts ``out=`` (the same loop, so the same bits).
OUT_FORMS = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Neg": np.negative,
             "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt, "TanhOp": np.tanh, "MatMul": matmul_into,
             "Relu": relu_call}


def out_form(op, buffers):
    """``function(*inputs, out=array)`` computing ``op``'s single output into ``out``, or None where the
    op has none: another op, array parameters, or an input that is not a NumPy array of the output's
    dtype (a mixed-dtype ufunc could pick another loop)."""
    if op.kind == "fused":
        return op.out_call
    if op.kind != "forward" or op.name not in OUT_FORMS or len(op.writes) != 1 or op.slots:
        return None
    dtype = buffers[op.writes[0]].dtype
    if any(not buffers[i].on_host or buffers[i].dtype != dtype for i in op.reads):
        return None
    return OUT_FORMS[op.name]


def writing_into(form, block):
    """The op's call for the replay: ``form`` writing into the preallocated ``block``."""
    def call(*arrays):
        return form(*arrays, out=block)
    return call
