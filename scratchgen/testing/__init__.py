"""Gradient property testing as a feature: ``gradcheck``, ``gradgradcheck`` and hypothesis
strategies for users' own ops (see README, "Testing your own op")."""
from .gradcheck import GradcheckError, gradcheck, gradgradcheck


def functions_in_graph(*tensors):
    """The set of ``Function`` classes in the graph behind ``tensors`` (for coverage checks)."""
    from ..autograd import topological_order
    roots = [t.creator for t in tensors if t.creator is not None]
    return {type(node) for node in topological_order(roots)}


def all_function_classes(package="scratchgen"):
    """Every ``Function`` subclass loaded so far that is defined in ``package``'s own modules.

    A coverage test asks for a gradcheck case for each of these; Functions defined elsewhere (a
    user's op, a test double, a documentation example) are not the package's to cover.
    """
    from ..autograd import Function
    found, stack = set(), [Function]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                stack.append(sub)
    return {cls for cls in found if cls.__module__ == package or cls.__module__.startswith(package + ".")}


__all__ = ["GradcheckError", "gradcheck", "gradgradcheck", "functions_in_graph", "all_function_classes"]
