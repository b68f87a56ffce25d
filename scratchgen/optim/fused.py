"""``FusedUpdates``: an optimizer's step as one kernel call per flat buffer (``Optimizer(fused=True)``).

The optimizer's parameters are laid out in ``FlatParameters`` (``optim.flat``) and each state array
(Adam's ``exp_avg``, ...) in a flat buffer of the same layout, so ``optimizer.state[param]["exp_avg"]``
is a view of its slice: ``state_dict`` and checkpoints see exactly what the per-parameter path keeps.
A step::

    gather the gradients into the flat grad buffers
    for each group, each run of parameters that sit side by side in one buffer, all with a
    gradient and the same step count:
        kernel_update(kernels, data[run], grad[run], {name: state_buffer[run]}, group, step, fresh)

With one group and every gradient present (the usual training step) that is one call per buffer.
What breaks the layout is noticed and repaired before the next step:
    * a parameter's data rebound (``Module.to``): the flat buffers are rebuilt (``is_current``);
    * ``add_param_group``: rebuilt, the new parameters included;
    * ``load_state_dict`` (fresh arrays in ``state``) or a rebuild: the state arrays are copied into
      the flat state buffers and rebound to their views.
"""
from .. import backend
from ..kernels import implementation
from .flat import FlatParameters


class FusedUpdates:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.forget_layout()

    def forget_layout(self):
        self._flat = None
        self._state_buffers = {}   # (state name, buffer index) -> flat array of that buffer's layout
        self._state_bound = False

    def forget_state_binding(self):
        self._state_bound = False

    def flat_parameters(self):
        """The optimizer's parameters as ``FlatParameters``, rebuilt if anything rebound them."""
        if self._flat is None or not self._flat.is_current():
            params = self.optimizer._all_params()
            self.forget_layout()
            self._flat = FlatParameters(params)
        return self._flat

    def step(self):
        flat = self.flat_parameters()
        if not self._state_bound:
            self._bind_state(flat)
        flat.gather_grads()
        for group in self.optimizer.param_groups:
            for run in self._runs(flat, group):
                self._update_run(flat, group, *run)

    # ---- state in flat buffers ---------------------------------------------------------------------
    def _state_buffer(self, flat, name, index):
        key = (name, index)
        if key not in self._state_buffers:
            data = flat.buffers[index].data
            self._state_buffers[key] = backend.get_array_module(data).zeros_like(data)
        return self._state_buffers[key]

    def _bind_state(self, flat):
        """Copy every state array into its flat buffer's slice and keep the view in its place."""
        for param, state in self.optimizer.state.items():
            where = flat.location(param)
            if where is None:
                continue
            index, start, stop = where
            for name, value in state.items():
                if hasattr(value, "shape"):
                    view = self._state_buffer(flat, name, index)[start:stop].reshape(param.shape)
                    view[...] = backend.to_device(value, param.device)
                    state[name] = view
        self._state_bound = True

    # ---- runs ----------------------------------------------------------------------------------------
    def _runs(self, flat, group):
        """``(buffer index, start, stop, params)`` for each maximal run of ``group``'s parameters
        that are adjacent in one buffer, all with a gradient and in the same state (fresh or at the
        same step count), so one kernel call with one step count serves them. One run is open per
        buffer, since a group's parameters of two dtypes alternate between two buffers."""
        states = self.optimizer.state
        open_runs = {}   # buffer index -> [index, start, stop, params, state key]
        for param in group["params"]:
            if param.grad is None:
                continue
            index, start, stop = flat.location(param)
            state = states.get(param)
            key = (bool(state), state.get("step") if state else None)
            run = open_runs.get(index)
            if run is not None and run[4] == key and run[2] == start:
                run[2] = stop
                run[3].append(param)
                continue
            if run is not None:
                yield run[:4]
            open_runs[index] = [index, start, stop, [param], key]
        for run in open_runs.values():
            yield run[:4]

    def _update_run(self, flat, group, index, start, stop, params):
        optimizer, states = self.optimizer, self.optimizer.state
        names = optimizer.state_names(group)
        arrays = {name: self._state_buffer(flat, name, index)[start:stop] for name in names}
        fresh = not states.get(params[0])
        if fresh:  # zeros, as the per-parameter path's first state; then each parameter's views
            for array in arrays.values():
                array.fill(0)
            for param in params:
                _, param_start, param_stop = flat.location(param)
                views = iter([self._state_buffer(flat, name, index)[param_start:param_stop]
                              .reshape(param.shape) for name in names])
                states[param] = optimizer.initial_state(group, lambda: next(views))
        if optimizer.counts_steps:
            for param in params:
                states[param]["step"] += 1
        buffer = flat.buffers[index]
        grad = buffer.grad[start:stop]
        kernels = implementation("optim", buffer.data)
        optimizer.kernel_update(kernels, buffer.data[start:stop], -grad if group.get("maximize") else grad,
                                arrays, group, states[params[0]].get("step", 0), fresh)
