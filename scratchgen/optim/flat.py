"""``FlatParameters``: parameters as views into one contiguous buffer per dtype and device.

    buffer.data = [ p0.ravel() | p1.ravel() | ... ]      each ``p.data`` becomes a view of its slice
    buffer.grad = [ g0.ravel() | g1.ravel() | ... ]      each gathered ``p.grad.data`` a view of its slice

Why: whatever touches every parameter once per step (the optimizer's update, ``zero_grad``, gradient
clipping, the EMA, later an MPI allreduce of the gradients or a compiled step) becomes one operation
on one array instead of one per parameter, each with its own Python and dispatch cost.

The invariants, and what keeps them:
    * ``param.data`` is its view into ``buffer.data`` for every parameter, as long as nobody rebinds
      ``param.data`` (``Module.to`` does, to move or cast). ``is_current()`` checks exactly that;
      its owner (an optimizer) builds a new ``FlatParameters`` when it is False. Writing *into*
      ``param.data`` (``load_state_dict``, ``init``) keeps the view.
    * Each parameter's grad view is its gradient's *home* (``param._grad_home``): a backward pass
      writes the gradient there and binds ``param.grad`` to the view, or adds into it in place when
      ``param.grad`` already is the view (``Tensor._accumulate_grad``). A gradient that arrived any
      other way (assigned by hand, a second-order backward) is copied in by ``gather_grads()``, which
      then binds ``param.grad`` to its view; for one already there it does nothing. After it,
      ``buffer.grad`` holds every gradient, zeros where ``param.grad`` is None (those keep None).
    * Buffers are grouped by (dtype, device) in the order parameters are first seen, and parameters
      keep the order they were given in: the layout is a pure function of the parameter list, so two
      processes with the same model agree on it (what an allreduce of ``buffer.grad`` needs).
"""
import numpy as np

from .. import backend
from ..nn.utils import scale_to_norm_
from ..tensor import Tensor


class FlatBuffer:
    """One dtype and device: ``data`` and ``grad`` (1-D, same layout), the parameters in it, and
    each one's ``(start, stop)`` in the buffer."""

    def __init__(self, params):
        self.params = params
        sizes = [int(param.data.size) for param in params]
        stops = np.cumsum(sizes).tolist()
        self.slices = list(zip([0] + stops[:-1], stops))
        xp = backend.get_array_module(params[0].data)
        self.data = xp.empty(stops[-1], dtype=params[0].dtype)
        self.grad = xp.zeros(stops[-1], dtype=params[0].dtype)
        self.data_views = self.views(self.data)
        self.grad_views = self.views(self.grad)
        for param, view, grad_view in zip(params, self.data_views, self.grad_views):
            view[...] = param.data
            param.data = view
            param._grad_home = grad_view

    @property
    def dtype(self):
        return self.data.dtype

    def views(self, flat):
        """Each parameter's slice of ``flat`` (any 1-D array of this layout), in its shape."""
        return [flat[start:stop].reshape(param.shape)
                for param, (start, stop) in zip(self.params, self.slices)]


class FlatParameters:
    """Lay ``params`` (leaf floating-point tensors, each once) out in flat buffers; see the module
    docstring for the invariants. ``buffers`` lists one ``FlatBuffer`` per (dtype, device)."""

    def __init__(self, params):
        params = [params] if isinstance(params, Tensor) else list(params)
        if len({id(param) for param in params}) != len(params):
            raise ValueError("FlatParameters: expected each parameter once, got one twice")
        by_kind = {}
        for i, param in enumerate(params):
            if not isinstance(param, Tensor) or not param.is_leaf or not backend.is_floating(param.dtype):
                raise TypeError(f"FlatParameters: expected leaf floating-point tensors, got "
                                f"{type(param).__name__} at position {i}")
            by_kind.setdefault((param.dtype, param.device), []).append(param)
        self.params = params
        self.buffers = [FlatBuffer(group) for group in by_kind.values()]
        self._location = {id(param): (index, slot) for index, buffer in enumerate(self.buffers)
                          for slot, param in enumerate(buffer.params)}

    def location(self, param):
        """``(buffer index, start, stop)`` of ``param``, or None if it is not in these buffers."""
        found = self._location.get(id(param))
        if found is None:
            return None
        index, slot = found
        return (index, *self.buffers[index].slices[slot])

    def is_current(self):
        """Whether every parameter's data is still its view (False once ``param.data`` was rebound)."""
        return all(param.data is view for buffer in self.buffers
                   for param, view in zip(buffer.params, buffer.data_views))

    def gather_grads(self):
        """Copy each gradient into ``buffer.grad`` and bind ``param.grad`` to its view (zeros where
        a parameter has no gradient; it keeps None). Returns the grad buffers."""
        for buffer in self.buffers:
            for param, view in zip(buffer.params, buffer.grad_views):
                grad = param.grad
                if grad is None:
                    view[...] = 0
                elif grad.data is not view:
                    view[...] = grad.data
                    param.grad = Tensor(view)
        return [buffer.grad for buffer in self.buffers]

    def zero_grad(self, set_to_none=True):
        """``set_to_none``: every ``param.grad`` None (the engine then binds fresh arrays); otherwise
        one fill per buffer, each ``param.grad`` its zeroed view."""
        if set_to_none:
            for param in self.params:
                param.grad = None
            return
        for buffer in self.buffers:
            buffer.grad.fill(0)
            for param, view in zip(buffer.params, buffer.grad_views):
                if param.grad is None or param.grad.data is not view:
                    param.grad = Tensor(view)

    def clip_grad_norm_(self, max_norm, norm_type=2.0, error_if_nonfinite=False):
        """``nn.utils.clip_grad_norm_`` over the gathered buffers: one norm and one scaling per
        buffer. The total is the norm of all gradients as one vector, as there; it is summed in a
        different order, so it may differ from the per-parameter one in the last bits."""
        return scale_to_norm_(self.gather_grads(), max_norm, norm_type, error_if_nonfinite)
