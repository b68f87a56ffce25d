"""Fusion: runs of elementwise ops become one generated Numba kernel (one pass over memory, one call).

A group is a run of *adjacent* ops of the program, each an elementwise arithmetic op whose result
only the next op of the run reads (so no intermediate is needed elsewhere, and nothing runs in
between that could write an input in place). Every array in it has the output's shape and dtype, or
is a single element; plain Python numbers are cast to that dtype first, as NumPy does with them. Only
the four exact IEEE operations (and negation) are fused, so a fused program gives the same bits
as the unfused one. The kernel's source is generated from the group, written to the cache folder
(``$SCRATCHGEN_CACHE/compiled``, default ``~/.cache/scratchgen``) under a name that is the hash of
the source, and imported from there: a second process loads Numba's cached machine code.

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
            op, source = _fused_op(program, run)
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


def _fused_op(program, run):
    """One op for ``run``: its outside inputs in, the last op's output out."""
    made = {op.writes[0] for op in run}
    inputs = []
    for op in run:
        inputs.extend(i for i in op.reads if i not in made and i not in inputs)
    out = program.buffers[run[-1].writes[0]]
    names = {index: f"in{k}" for k, index in enumerate(inputs)}
    lines = []
    for k, op in enumerate(run):
        operands = [_operand(program, index, names, made) for index in op.reads]
        target = "out[i]" if k == len(run) - 1 else f"v{op.writes[0]}"
        lines.append(f"        {target} = {FORMULAS[op.name].format(*operands)}")
    arguments = ", ".join([names[i] for i in inputs] + ["out"])
    body = "\n".join(lines)
    header = f"# fused by scratchgen.compile: {', '.join(op.name for op in run)}\n"
    digest = hashlib.sha1((header + body).encode()).hexdigest()[:10]
    source = (f"{header}import numba\n\n\n@numba.njit(cache=True, error_model=\"numpy\")\n"
              f"def fused_{digest}({arguments}):\n    for i in range(out.size):\n{body}\n")
    kernel = _load(source, f"fused_{digest}")
    scalar = [not program.buffers[i].is_array for i in inputs]
    call, out_call = fused_calls(kernel, out.shape, out.dtype, scalar, out.is_scalar)
    name = f"fused_{digest}[{'+'.join(op.name for op in run)}]"
    op = Op("fused", name, call, inputs, [out.index], run[-1].line, f"{len(run)} ops")
    op.out_call = out_call
    return op, source


def _operand(program, index, names, made):
    if index in made:
        return f"v{index}"
    buffer = program.buffers[index]
    if not buffer.is_array:
        return names[index]                      # a number, cast to the dtype by the call
    if int(np.prod(buffer.shape)) == 1:
        return f"{names[index]}[0]"              # a single element, broadcast
    return f"{names[index]}[i]"


def fused_calls(kernel, shape, dtype, scalar, returns_scalar):
    """Two ways to run ``kernel`` on flattened inputs (numbers cast to ``dtype``): ``call`` into a fresh
    output, a NumPy scalar where the last op made one (a 0-d array instead would be viewed, not copied,
    by a later reshape: the program's memory plan assumes what the capture saw); ``out_call`` into a
    given C-contiguous array (an arena block)."""
    number = np.dtype(dtype).type

    def out_call(*values, out):
        flat = [number(v) if is_number else np.ascontiguousarray(v).reshape(-1)
                for v, is_number in zip(values, scalar)]
        kernel(*flat, out.reshape(-1))
        return out

    def call(*values):
        out = out_call(*values, out=np.empty(shape, dtype))
        return out[()] if returns_scalar else out
    return call, out_call


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
