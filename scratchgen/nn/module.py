"""``Module`` and ``Parameter``: the containers that give a model its named, savable state.

A module keeps three ordered registries, filled automatically by attribute assignment:

    self.weight = Parameter(...)    -> _parameters["weight"]   (trained; in state_dict)
    self.register_buffer("running_mean", t)  -> _buffers   (not trained; in state_dict if persistent)
    self.encoder = Linear(...)      -> _modules["encoder"]     (a child; its names get "encoder." in front)

Walking those registries gives PyTorch's dotted names (``encoder.0.weight``), so a ``state_dict`` of
NumPy arrays moves between scratchgen and PyTorch unchanged.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from .. import backend
from ..autograd import host_operation
from ..backend import Device, as_dtype
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a ``Module`` registers as trainable (``requires_grad=True`` by default)."""

    __slots__ = ()  # Tensor uses __slots__; a Parameter adds no state of its own

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty(0, dtype=backend.DEFAULT_DTYPE)
        super().__init__(data.detach() if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def new_parameter(*shape, device=None, dtype=None):
    """A zero-filled Parameter of ``shape`` (the default float dtype unless ``dtype``), for layers
    to fill in their ``reset_parameters``."""
    dtype = as_dtype(dtype) or backend.DEFAULT_DTYPE
    if not backend.is_floating(dtype):
        raise TypeError(f"Parameter: expected a floating-point dtype, got {dtype}")
    return Parameter(backend.to_device(np.zeros(shape, dtype=dtype), device or "cpu"))


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def zero_grads(params, set_to_none=True):
    """Forget each parameter's gradient (``None``: the next backward allocates afresh) or fill it
    with zeros in place (keeps the buffer). Module.zero_grad and Optimizer.zero_grad both call it."""
    for param in params:
        if param.grad is None:
            continue
        if set_to_none:
            param.grad = None
        else:
            param.grad.data[...] = 0


class Module:
    """Base class of every layer and model: subclasses set attributes in ``__init__`` (after
    ``super().__init__()``) and define ``forward``; calling the module calls ``forward``."""

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks):  # the usual case: no hook to copy out
            return self.forward(*args, **kwargs)
        for hook in tuple(self._forward_pre_hooks.values()):
            replaced = hook(self, args)
            if replaced is not None:
                args = replaced if isinstance(replaced, tuple) else (replaced,)
        output = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            replaced = hook(self, args, output)
            output = output if replaced is None else replaced
        return output

    # ---- forward hooks (as PyTorch's: for inspection, profiling, graph pictures) ---------------------
    def register_forward_pre_hook(self, hook):
        """Call ``hook(module, args)`` before every ``forward``; a returned value (a tuple, or a
        single value) replaces the positional arguments. Returns a handle with ``remove()``."""
        return _HookHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """Call ``hook(module, args, output)`` after every ``forward``; a returned value replaces
        the output. Returns a handle with ``remove()``."""
        return _HookHandle(self._forward_hooks, hook)

    # ---- registration ----------------------------------------------------------------------------
    def _check_initialised(self, name):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called "
                                 "(call super().__init__() first)")

    def __setattr__(self, name, value):
        if isinstance(value, (Parameter, Module)):
            self._check_initialised(name)
            registry = self._parameters if isinstance(value, Parameter) else self._modules
            self._forget(name, keep=registry)
            registry[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name}: expected a Parameter or None for a "
                                f"registered parameter, got {type(value).__name__}")
            self._parameters[name] = None
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(f"{type(self).__name__}.{name}: expected a Module or None for a "
                                f"registered submodule, got {type(value).__name__}")
            self._modules[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"{type(self).__name__}.{name}: expected a Tensor or None for a "
                                f"registered buffer, got {type(value).__name__}")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        """Drop ``name`` from every registry but ``keep``, the one it is about to be (re)set in —
        so replacing an entry keeps its position, and with it the order of ``state_dict``."""
        self.__dict__.pop(name, None)
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name):  # only called when ordinary lookup fails
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")

    def __delattr__(self, name):
        if any(name in registry for registry in (self._parameters, self._buffers, self._modules)):
            self._forget(name)
        else:
            object.__delattr__(self, name)

    def register_parameter(self, name, param):
        self._check_initialised(name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: expected a Parameter or None for {name!r}, "
                            f"got {type(param).__name__}")
        self._check_name("register_parameter", name)
        self._forget(name, keep=self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that is part of the module's state but not trained (e.g. running statistics);
        ``persistent=False`` keeps it out of ``state_dict``."""
        self._check_initialised(name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: expected a Tensor or None for {name!r}, "
                            f"got {type(tensor).__name__}")
        self._check_name("register_buffer", name)
        self._forget(name, keep=self._buffers)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name, module):
        self._check_initialised(name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: expected a Module or None for {name!r}, "
                            f"got {type(module).__name__}")
        self._check_name("add_module", name)
        self._forget(name, keep=self._modules)
        self._modules[name] = module

    register_module = add_module

    def _check_name(self, op, name):
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{op}: expected a non-empty name without '.', got {name!r}")
        if hasattr(type(self), name):
            raise KeyError(f"{op}: {name!r} is already a method or class attribute of {type(self).__name__}")

    # ---- traversal ---------------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for this module and every descendant, parents first."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        return (child for _, child in self.named_children())

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        owners = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        for owner_name, owner in owners:
            for name, member in getattr(owner, registry).items():
                if member is None or (remove_duplicate and id(member) in seen):
                    continue
                seen.add(id(member))
                yield (f"{owner_name}.{name}" if owner_name else name), member

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, parameter) pairs; a parameter shared by two modules is listed once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        return (param for _, param in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        return (buffer for _, buffer in self.named_buffers(recurse=recurse))

    def get_submodule(self, target):
        module = self
        for name in target.split(".") if target else []:
            if name not in module._modules:
                raise AttributeError(f"get_submodule: {type(module).__name__} has no submodule {name!r} "
                                     f"(looking for {target!r})")
            module = module._modules[name]
        return module

    def apply(self, fn):
        """Call ``fn`` on every descendant, then on this module (e.g. a custom initialisation)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients -------------------------------------------------------------------------
    def train(self, mode=True):
        """Set ``training`` on this module and all descendants (Dropout and BatchNorm read it)."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: expected a bool mode, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    @host_operation  # (the compiler replays the call: see autograd.host_operation)
    def zero_grad(self, set_to_none=True):
        zero_grads(self.parameters(), set_to_none)

    # ---- device and dtype --------------------------------------------------------------------------
    def to(self, *args, device=None, dtype=None):
        """Move (``to("cuda")``) and/or cast (``to(sg.float64)``) parameters and buffers *in place*;
        casts touch only floating-point tensors, as in PyTorch. Returns ``self``."""
        for arg in args:
            try:
                device = Device(arg)
            except ValueError:
                dtype = arg
        dtype = as_dtype(dtype)
        if dtype is not None and not backend.is_floating(dtype):
            raise TypeError(f"Module.to: expected a floating-point dtype, got {dtype}")

        def convert(array):
            if device is not None:
                array = backend.to_device(array, device)
            if dtype is not None and backend.is_floating(array.dtype):
                array = array.astype(dtype, copy=False)
            return array

        for tensor in list(self.parameters()) + list(self.buffers()):
            tensor.data = convert(tensor.data)
            if tensor.grad is not None:
                tensor.grad.data = convert(tensor.grad.data)
        return self

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def half(self):
        return self.to(dtype=np.float16)

    def cpu(self):
        return self.to(device="cpu")

    def cuda(self, device=None):
        return self.to(device="cuda" if device is None else f"cuda:{device}")

    # ---- state -----------------------------------------------------------------------------------------
    def _state_tensors(self, prefix=""):
        """(name, tensor) of everything ``state_dict`` saves, in PyTorch's order: a module's own
        parameters, then its persistent buffers, then each child's entries."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                yield prefix + name, buffer
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_tensors(f"{prefix}{name}.")

    def state_dict(self):
        """An ordered dict of dotted name -> NumPy array copy (parameters and persistent buffers)."""
        return OrderedDict((name, np.array(backend.to_device(tensor.data, "cpu"), copy=True))
                           for name, tensor in self._state_tensors())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy, CuPy, Tensors, or anything ``np.asarray`` takes, e.g. torch
        tensors) into the parameters and buffers, keeping their dtype and device.

        Nothing is copied unless everything fits: one error lists every missing, unexpected and
        mis-shaped key. ``strict=False`` tolerates missing and unexpected keys (returned) but never
        a shape mismatch."""
        targets = OrderedDict(self._state_tensors())
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        arrays = {name: _host_or_device_array(value) for name, value in state_dict.items() if name in targets}
        mismatched = [f"{name}: expected shape {targets[name].shape}, got {tuple(array.shape)}"
                      for name, array in arrays.items() if tuple(array.shape) != targets[name].shape]
        problems = ([f"missing keys: {missing}"] if missing and strict else []) + \
                   ([f"unexpected keys: {unexpected}"] if unexpected and strict else []) + \
                   ([f"shape mismatches: {'; '.join(mismatched)}"] if mismatched else [])
        if problems:
            raise RuntimeError(f"load_state_dict ({type(self).__name__}): " + "\n  ".join([""] + problems))
        for name, array in arrays.items():
            target = targets[name]
            target.data[...] = backend.to_device(array, target.device).astype(target.dtype, copy=False)
            target._version += 1
        return IncompatibleKeys(missing, unexpected)

    # ---- printing ------------------------------------------------------------------------------------
    def extra_repr(self):
        """The options shown between the parentheses of this module's line (override in layers)."""
        return ""

    def __repr__(self):
        """A tree as PyTorch prints it, with the parameter count of each module that has any."""
        lines = [f"({name}): " + _indent(repr(child)) for name, child in self._modules.items()
                 if child is not None]
        count = sum(int(p.data.size) for p in self.parameters())
        note = f"  # {count:,} parameters" if count else ""
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()}){note}"
        body = "\n  ".join(([self.extra_repr()] if self.extra_repr() else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n){note}"


class _HookHandle:
    """Registers ``hook`` in ``hooks`` (in call order) until ``remove()``."""

    _next_id = 0

    def __init__(self, hooks, hook):
        self.hooks, self.id = hooks, _HookHandle._next_id
        _HookHandle._next_id += 1
        hooks[self.id] = hook

    def remove(self):
        self.hooks.pop(self.id, None)


def _indent(text):
    return text.replace("\n", "\n  ")


def _host_or_device_array(value):
    """The array behind a state-dict value: a Tensor's data, a CuPy or NumPy array kept as it is,
    anything else (lists, torch tensors) through ``np.asarray``."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray) or backend.is_cupy_array(value):
        return value
    return np.asarray(value)
