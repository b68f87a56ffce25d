"""Containers: ``Sequential`` (a pipeline), ``ModuleList`` and ``ModuleDict`` (registered collections).

Children are registered under their index or key, so their parameters get PyTorch's names:
``Sequential(Linear(2, 3))`` has ``0.weight``; ``ModuleDict({"enc": ...})`` has ``enc.weight``.
"""
import operator
from collections import OrderedDict

from .module import Module


def _index(op, index, length):
    """An int index (possibly negative) as a position in [0, length), or an IndexError."""
    index = operator.index(index)
    if not -length <= index < length:
        raise IndexError(f"{op}: index {index} is out of range for {length} modules")
    return index % length


class _ModuleSequence(Module):
    """The list mechanics shared by ``ModuleList`` and ``Sequential``."""

    def _keys(self):
        return list(self._modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return type(self)(list(self._modules.values())[index])
        return self._modules[self._keys()[_index(type(self).__name__, index, len(self))]]

    def __setitem__(self, index, module):
        self.add_module(self._keys()[_index(type(self).__name__, index, len(self))], module)

    def __delitem__(self, index):
        position = _index(type(self).__name__, index, len(self))
        survivors = [m for i, m in enumerate(self._modules.values()) if i != position]
        self._modules.clear()
        self.extend(survivors)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules):
        return self.extend(modules)

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        self.extend(modules)


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters belong to the owner (a plain list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is a container: call its modules, not it")


class Sequential(_ModuleSequence):
    """Modules applied one after the other: ``Sequential(a, b)(x) == b(a(x))``. Takes modules, or
    one ``OrderedDict`` of name -> module to choose the children's names."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            self.extend(modules)

    def __getitem__(self, index):
        if isinstance(index, slice):
            keys = self._keys()[index]
            return Sequential(OrderedDict((key, self._modules[key]) for key in keys))
        return super().__getitem__(index)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleDict(Module):
    """A dict of modules, registered under their keys (insertion order is kept)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        module = self._modules[key]
        del self[key]
        return module

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for key, module in items:
            self[key] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict is a container: call its modules, not it")
