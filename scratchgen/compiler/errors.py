"""``UncapturableError`` and how messages name the user's source line."""
import linecache
import os
import sys

from .. import kernels

_LIBRARY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MODELS = os.path.join(_LIBRARY, "models")
_KERNELS = os.path.dirname(os.path.abspath(kernels.__file__))


class UncapturableError(RuntimeError):
    """What a compiled function did cannot be replayed as a program (the message says what and where)."""


def _is_library(filename):
    path = os.path.abspath(filename)
    if path.startswith(_MODELS):
        return False  # a model's step is user code as far as messages go
    return path.startswith(_LIBRARY) or path.startswith(_KERNELS) or "contextlib" in path


def user_line():
    """``file:line: source`` of the innermost caller outside the engine (the line a user wrote)."""
    frame = sys._getframe(1)
    while frame is not None and _is_library(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return "an unknown line"
    line = _line_of(frame)
    source = linecache.getline(frame.f_code.co_filename, line).strip()
    return f"{os.path.relpath(frame.f_code.co_filename)}:{line}: {source}"


def _line_of(frame):
    """The line of the instruction running in ``frame``. (``f_lineno`` can already name the next line
    while a tracer, such as Hypothesis's, is installed.)"""
    positions = list(frame.f_code.co_positions())
    index = frame.f_lasti // 2   # f_lasti counts bytes; instructions are two bytes wide
    if 0 <= index < len(positions) and positions[index][0] is not None:
        return positions[index][0]
    return frame.f_lineno
