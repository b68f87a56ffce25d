"""``Optimizer``: parameter groups, per-parameter state, and PyTorch's state_dict format.

An optimizer holds ``param_groups`` (a list of dicts: ``"params"`` plus hyperparameters such as
``"lr"``, so one model can train its parts at different rates) and ``state`` (a dict from each
parameter to its running buffers, e.g. Adam's moments). A subclass names its state arrays
(``state_names``) and writes its update once, as a call of a ``kernels.optim`` function
(``kernel_update``); ``step()`` runs it under ``no_grad`` in one of two ways:

    per parameter (default)   for every parameter with a gradient, the ``reference`` kernel (NumPy
                              or CuPy operators, in place) on that parameter's arrays;
    fused (``fused=True``)    the parameters laid out in flat buffers (``optim.flat``), the state
                              arrays likewise, and one ``cpu``/``gpu`` kernel call per buffer and
                              group (``optim.fused``). The results are bit-identical.

``state_dict()`` is PyTorch's layout: state keyed by the parameter's position across all groups,
and each group's ``"params"`` as a list of those positions — so it saves without the parameters and
loads into a fresh optimizer built over the same model.
"""
import copy

import numpy as np

from .. import backend
from ..autograd import enable_grad, host_operation, no_grad
from ..kernels.optim import reference as reference_kernels
from ..nn.module import _HookHandle, zero_grads  # nn and optim are one layer: a sideways import
from ..tensor import Tensor
from .fused import FusedUpdates


class Optimizer:
    counts_steps = True  # whether the state holds a "step" count (torch's SGD keeps none)

    def __init__(self, params, defaults, fused=False):
        self.defaults = dict(defaults)
        self._step_pre_hooks = {}
        self.state = {}
        self.param_groups = []
        # Not a group entry: it would change the state_dict (and checkpoints) for no one's benefit.
        self.fused = FusedUpdates(self) if fused else None
        groups = [params] if isinstance(params, Tensor) else list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        if self.fused is not None:
            # Lay the parameters out now, not at the first step: their arrays then stay the same from
            # the first step on (a compiled step's guards and the gradient homes see one layout).
            self.fused.flat_parameters()

    def add_param_group(self, param_group):
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        group = dict(param_group)
        params = group.get("params")
        group["params"] = [params] if isinstance(params, Tensor) else list(params or [])
        for i, param in enumerate(group["params"]):
            if not isinstance(param, Tensor) or not param.requires_grad or not param.is_leaf:
                raise ValueError(f"{type(self).__name__}: expected leaf tensors that require grad, got "
                                 f"{type(param).__name__} at position {i} of the group")
        taken = {id(p) for existing in self.param_groups for p in existing["params"]}
        if len({id(p) for p in group["params"]}) != len(group["params"]) or \
                any(id(p) in taken for p in group["params"]):
            raise ValueError(f"{type(self).__name__}: a parameter appears twice (in one group or in two)")
        for name, value in self.defaults.items():
            group.setdefault(name, value)
        self.param_groups.append(group)
        if self.fused is not None:
            self.fused.forget_layout()

    @host_operation  # (the compiler replays the call: see autograd.host_operation)
    def zero_grad(self, set_to_none=True):
        if self.fused is not None:
            self.fused.flat_parameters().zero_grad(set_to_none)
            return
        for group in self.param_groups:
            zero_grads(group["params"], set_to_none)

    def register_step_pre_hook(self, hook):
        """Call ``hook(optimizer, args, kwargs)`` at the start of every ``step`` (PyTorch's name and
        signature; e.g. data-parallel training averages the gradients there). Returns a handle
        with ``remove()``."""
        return _HookHandle(self._step_pre_hooks, hook)

    @host_operation
    def step(self, closure=None):
        """One update of every parameter that has a gradient. ``closure`` (re-evaluates the model
        and returns the loss) is called first, with gradients on, and its loss returned."""
        for hook in tuple(self._step_pre_hooks.values()):
            hook(self, (closure,), {})
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            if self.fused is not None:
                self.fused.step()
                return loss
            for group in self.param_groups:
                for param in group["params"]:
                    if param.grad is not None:
                        grad = param.grad.data
                        self.update(param.data, -grad if group.get("maximize") else grad,
                                    self._state_beside(param), group)
                        param._version += 1  # written in place: a graph that saved it is stale
        return loss

    def _state_beside(self, param):
        """``param``'s state, first moved to ``param``'s device if ``Module.to`` has moved the
        parameter since the state was made: optimizer state follows its parameter."""
        state = self.state.setdefault(param, {})
        array_type = type(param.data)
        for name, value in state.items():
            if hasattr(value, "shape") and type(value) is not array_type:
                state[name] = backend.to_device(value, param.device)
        return state

    def update(self, param, grad, state, group):
        """Update the array ``param`` in place from ``grad`` with the reference kernel; ``state`` is
        this parameter's dict, filled with zeros (and step 0) on its first update."""
        fresh = not state
        if fresh:
            state.update(self.initial_state(group, lambda: backend.get_array_module(param).zeros_like(param)))
        if self.counts_steps:
            state["step"] += 1
        self.kernel_update(reference_kernels, param, grad, state, group, state.get("step", 0), fresh)

    def initial_state(self, group, zeros):
        """A parameter's state before its first update: step 0 and ``zeros()`` for each array."""
        arrays = {name: zeros() for name in self.state_names(group)}
        return {"step": 0, **arrays} if self.counts_steps else arrays

    def state_names(self, group):
        """The state arrays this optimizer keeps per parameter with ``group``'s options."""
        raise NotImplementedError(f"{type(self).__name__} must implement state_names")

    def kernel_update(self, kernels, param, grad, state, group, step, fresh):
        """Call ``kernels``' update (a ``kernels.optim`` module) on ``param``, ``grad`` and the
        ``state`` arrays (one parameter's, or a flat run of several); ``step`` is the count after
        this update, ``fresh`` whether the state is new."""
        raise NotImplementedError(f"{type(self).__name__} must implement kernel_update")

    # ---- state_dict ------------------------------------------------------------------------------
    def _all_params(self):
        return [param for group in self.param_groups for param in group["params"]]

    def state_dict(self):
        """``{"state": {index: {name: array or number}}, "param_groups": [{..., "params": [index]}]}``
        with NumPy copies of every array."""
        index = {id(param): i for i, param in enumerate(self._all_params())}
        groups = [{**{k: copy.deepcopy(v) for k, v in group.items() if k != "params"},
                   "params": [index[id(p)] for p in group["params"]]} for group in self.param_groups]
        state = {index[id(param)]: {name: _host_copy(value) for name, value in entries.items()}
                 for param, entries in self.state.items() if id(param) in index}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and buffers saved by ``state_dict`` (from an optimizer over the
        same parameters, in the same groups); arrays take each parameter's dtype and device."""
        saved_groups = state_dict["param_groups"]
        sizes = [len(group["params"]) for group in self.param_groups]
        saved_sizes = [len(group["params"]) for group in saved_groups]
        if sizes != saved_sizes:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected groups of sizes {sizes}, "
                             f"got {saved_sizes}")
        params = self._all_params()
        self.state = {}
        for key, entries in state_dict["state"].items():
            param = params[int(key)]
            self.state[param] = {name: _like_param(value, param) for name, value in entries.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        if self.fused is not None:
            self.fused.forget_state_binding()

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines + [")"])


def _host_copy(value):
    if hasattr(value, "dtype") and hasattr(value, "shape"):
        return np.array(backend.to_device(value, "cpu"), copy=True)
    return copy.deepcopy(value)


def _like_param(value, param):
    """A saved state entry as an array beside ``param`` (floating arrays take its dtype)."""
    if not hasattr(value, "dtype") or not hasattr(value, "shape"):
        return copy.deepcopy(value)
    value = value.data if isinstance(value, Tensor) else value
    array = backend.to_device(np.asarray(value) if not backend.is_cupy_array(value) else value, param.device)
    dtype = param.dtype if backend.is_floating(array.dtype) else array.dtype
    return array.astype(dtype, copy=True)
