"""Fusion: runs of elementwise ops become one generated Numba kernel (one pass over memory, one call).

A group is a run of *adjacent* ops of the program, each an elementwise arithmetic op whose result
only the next op of the run reads (so no intermediate is needed elsewhere, and nothing runs in
between that could write an input in place). Every array in it has the output's shape and dtype, or
is a single element; plain Python numbers are cast to that dtype first, as NumPy does with them. Only
the four exact IEEE operations (and negation) are fused, so a fused program gives the same bits
as the unfused one. The kernel's source is generated from the group, written to the cache folder
(``$SCRATCHGEN_CACHE/compiled``, default ``~/.cache/scratchgen``) under a name that is the hash of
the source, and imported from there: a second process loads Numba's cached machine code. On the GPU
(cuda.py) the same loop body becomes a ``numba.cuda`` kernel instead; ``kernel_body`` is shared.

    # fused by scratchgen.compile: Mul, Sub, Mul
    @numba.njit(cache=True, error_model="numpy")
    def fused_1f0c3a(in0, in1, in2, out):
        for i in range(out.size):
            v0 = in0[i] * in1[i]
            v1 = in2[0] - v0
            out[i] = v1 * in0[i]
"""
import hashlib
import importlib.util
import os
import sys

import numpy as np

from . import cuda
from .program import Op

FORMULAS = {"Add": "{} + {}", "Sub": "{} - {}", "Mul": "{} * {}", "Div": "{} / {}", "Neg": "-{}"}
MIN_GROUP = 2


def cache_folder():
    root = os.environ.get("SCRATCHGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "scratchgen")
    return os.path.join(root, "compiled")


def fuse(program, protected):
    """Replace every fusible run of ``program.ops`` by one ``fused`` op; returns the groups' sources."""
    readers = {}
    for op in program.ops:
        for index in op.reads + op.extra_uses:
            readers[index] = readers.get(index, 0) + 1
    fused, run, sources = [], [], []

    def close_run():
        if len(run) >= MIN_GROUP:
            on_gpu = cuda.wanted(program.buffers[run[-1].writes[0]])
            op, source = _fused_op(program, run, cuda.CudaKernels() if on_gpu else CpuKernels())
            fused.append(op)
            sources.append(source)
        else:
            fused.extend(run)
        run.clear()

    for op in program.ops:
        if _fusible(program, op):
            tail = run[-1].writes[0] if run else None
            if run and (tail not in op.reads or readers.get(tail) != 1 or tail in protected
                        or not _same_kind(program, run[0], op)):
                close_run()
            run.append(op)
        else:
            close_run()
            fused.append(op)
    close_run()
    program.ops = fused
    return sources


def _fusible(program, op):
    if op.kind != "forward" or op.name not in FORMULAS or len(op.writes) != 1 or op.slots:
        return False
    out = program.buffers[op.writes[0]]
    if not out.is_array or np.dtype(out.dtype).kind != "f":
        return False
    for index in op.reads:
        buffer = program.buffers[index]
        if buffer.is_array:
            if buffer.dtype != out.dtype or (buffer.shape != out.shape and int(np.prod(buffer.shape)) != 1):
                return False
        elif not isinstance(program.constants.get(index), (int, float)):
            return False
    return True


def _same_kind(program, first, op):
    a, b = program.buffers[first.writes[0]], program.buffers[op.writes[0]]
    return a.shape == b.shape and a.dtype == b.dtype


def _fused_op(program, run, target):
    """One op for ``run``: its outside inputs in, the last op's output out; ``target`` writes the kernel
    around the shared loop body (``CpuKernels`` here, ``cuda.CudaKernels`` for the GPU)."""
    out = program.buffers[run[-1].writes[0]]
    inputs, body = kernel_body(program, run, target.formulas(out.dtype))
    arguments = ", ".join([f"in{k}" for k in range(len(inputs))] + ["out"])
    header = target.header(", ".join(op.name for op in run))
    name = f"{target.prefix}_{hashlib.sha1((header + body).encode()).hexdigest()[:10]}"
    source = target.source(name, header, arguments, body, out.dtype)
    kernel = _load(source, name)
    scalar = [not program.buffers[i].is_array for i in inputs]
    call = target.call(kernel, out, scalar)
    label = f"{name}[{'+'.join(op.name for op in run)}]"
    op = Op("fused", label, call, inputs, [out.index], run[-1].line, f"{len(run)} ops")
    op.kernel = kernel   # the compiled function itself (the PTX test compiles the CUDA ones)
    return op, source


def kernel_body(program, run, formulas):
    """``(inputs, body)`` of ``run``'s kernel: the buffers it reads from outside (kernel arguments
    ``in0``, ``in1``, ...), and the lines inside the loop over ``i``, one per op, each ``formulas[op]``
    of its operands (a previous op's ``v<buffer>``, ``in<k>[i]``, a single element's ``in<k>[0]``, a
    number's ``in<k>``); the last one writes ``out[i]``. Shared by the CPU and the CUDA kernels."""
    made = {op.writes[0] for op in run}
    inputs = []
    for op in run:
        inputs.extend(i for i in op.reads if i not in made and i not in inputs)
    names = {index: f"in{k}" for k, index in enumerate(inputs)}
    lines = []
    for k, op in enumerate(run):
        operands = [_operand(program, index, names, made) for index in op.reads]
        assigned = "out[i]" if k == len(run) - 1 else f"v{op.writes[0]}"
        lines.append(f"        {assigned} = {formulas[op.name].format(*operands)}")
    return inputs, "\n".join(lines)


class CpuKernels:
    """The ``@njit`` kernel of a fusion group: one loop over the flat arrays, cached by Numba."""

    prefix = "fused"

    def header(self, names):
        return f"# fused by scratchgen.compile: {names}\n"

    def formulas(self, dtype):
        return FORMULAS

    def source(self, name, header, arguments, body, dtype):
        return (f"{header}import numba\n\n\n@numba.njit(cache=True, error_model=\"numpy\")\n"
                f"def {name}({arguments}):\n    for i in range(out.size):\n{body}\n")

    def call(self, kernel, out, scalar):
        return fused_call(kernel, out.shape, out.dtype, scalar, out.is_scalar)


def _operand(program, index, names, made):
    if index in made:
        return f"v{index}"
    buffer = program.buffers[index]
    if not buffer.is_array:
        return names[index]                      # a number, cast to the dtype by the call
    if int(np.prod(buffer.shape)) == 1:
        return f"{names[index]}[0]"              # a single element, broadcast
    return f"{names[index]}[i]"


def fused_call(kernel, shape, dtype, scalar, returns_scalar):
    """Flatten the inputs (numbers to ``dtype``), run ``kernel`` into a fresh output; a NumPy scalar
    where the last op made one (a 0-d array instead would be viewed, not copied, by a later reshape:
    the program's memory plan assumes what the capture saw)."""
    number = np.dtype(dtype).type

    def call(*values):
        out = np.empty(shape, dtype)
        flat = [number(v) if is_number else np.ascontiguousarray(v).reshape(-1)
                for v, is_number in zip(values, scalar)]
        kernel(*flat, out.reshape(-1))
        return out[()] if returns_scalar else out
    return call


def _load(source, name):
    """Write ``source`` to the cache folder (once) and import its function ``name``."""
    folder = cache_folder()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.py")
    if not os.path.exists(path):
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(source)
        os.replace(temporary, path)   # atomic: another process never imports half a file
    module_name = f"scratchgen_{name}"
    if module_name not in sys.modules:   # registered: Numba's disk cache imports it by name
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return getattr(sys.modules[module_name], name)
