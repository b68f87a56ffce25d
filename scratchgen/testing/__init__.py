"""Gradient property testing as a feature: ``gradcheck``, ``gradgradcheck`` and hypothesis
strategies for users' own ops (see README, "Testing your own op")."""
from .gradcheck import GradcheckError, gradcheck, gradgradcheck


def functions_in_graph(*tensors):
    """The set of ``Function`` classes in the graph behind ``tensors`` (for coverage checks)."""
    from ..autograd import topological_order
    roots = [t.creator for t in tensors if t.creator is not None]
    return {type(node) for node in topological_order(roots)}


def all_function_classes():
    """Every ``Function`` subclass loaded so far that represents an op (markers excluded)."""
    from ..autograd import Function
    found, stack = set(), [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    return {cls for cls in found if getattr(cls, "check_gradients", True)}


__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "functions_in_graph", "all_function_classes"]
