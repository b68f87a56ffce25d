"""Fusion: runs of elementwise ops become one generated Numba kernel (one pass over memory, one call).

A group is a run of *adjacent* ops of the program, each an elementwise op whose result only later
ops of the run read, once (so no intermediate is needed elsewhere, and nothing runs in between that
could write an input in place), optionally headed by a ``MatMul`` whose product the run then finishes in
place (an *epilogue*: bias add, activation mask). Every array in it has the output's shape and dtype,
is a single element, or broadcasts to the output's shape (a bias read at ``i % n``, a per-channel
scale at ``(i // HW) % C``); a ``Where``'s condition is a bool array of such a shape; plain Python
numbers are cast to the dtype first, as NumPy does with them. A ReLU joins a group once its kept mask
is recomputed from its output (``_relu_masks_from_outputs``); a lone op without an ``out=`` form
(``Where``) becomes a group of one, so that it writes into an arena block.

Two modes. ``exact`` (the default) fuses only operations that are correctly rounded both in NumPy
and in the kernel — ``+ - * /``, negation, ``where``, ``sqrt``, squaring — so a fused program gives
the unfused one's bits. ``fast`` also fuses ``exp``, ``log``, ``tanh``, sigmoid, softplus and powers
by a constant: the kernel then calls libm through Numba, which is not NumPy's SIMD code to the last
bit (docs/compile.md states the measured difference and the tolerance the tests use).

The kernel's source is generated from the group, written to the cache folder
(``$SCRATCHGEN_CACHE/compiled``, default ``~/.cache/scratchgen``) under a name that is the hash of
the source, and imported from there: a second process loads Numba's cached machine code. On the GPU
(cuda.py) the same loop body becomes a ``numba.cuda`` kernel instead; ``kernel_body`` is shared, each
target supplying its formulas. A GPU group fuses only the exact arithmetic (its ``_rn`` sums and
products) of operands of the output's shape or single elements: not ``Where``, ``Sqrt``, the fast
mode's libm calls or a broadcast operand yet, no ReLU, no ``MatMul`` head, no arena block (host
NumPy arrays only).

    # fused by scratchgen.compile (exact): Mul, Sub, Mul
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
from .calls import OUT_FORMS, matmul_into, relu_call, relu_mask_call
from .program import Op

# The IEEE operations NumPy performs, each correctly rounded: a kernel made of them gives NumPy's bits.
EXACT = {"Add": "{0} + {1}", "Sub": "{0} - {1}", "Mul": "{0} * {1}", "Div": "{0} / {1}", "Neg": "-{0}",
         "Where": "{0} if {2} else {1}",   # (a, b, condition)
         "Sqrt": "math.sqrt({0})",
         "Relu": "T(0) if {0} <= T(0) else {0}"}   # np.maximum(x, 0): NaN stays NaN, -0 becomes +0
# libm's functions through Numba: within a few ulp of NumPy's, not equal to them (``fuse="fast"``).
FAST = {"Exp": "math.exp({0})", "Log": "math.log({0})", "TanhOp": "math.tanh({0})",
        "SigmoidOp": "T(1) / (T(1) + math.exp(-{0}))",
        "SoftplusOp": "max({0}, T(0)) + math.log1p(math.exp(-abs({0})))",   # log(1 + e^x), no overflow
        "Pow": "{0} ** {1}"}
MODES = ("exact", "fast")
SIDE_EFFECT_FREE = ("forward", "forward+", "attr", "view")   # op kinds that write only their outputs
MIN_GROUP = 2


def cache_folder():
    root = os.environ.get("SCRATCHGEN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "scratchgen")
    return os.path.join(root, "compiled")


def fuse(program, protected, mode="exact"):
    """Replace every fusible run of ``program.ops`` by one ``fused`` op; returns the groups' sources."""
    if mode not in MODES:
        raise ValueError(f"fuse: expected one of {MODES}, got {mode!r}")
    _relu_masks_from_outputs(program)
    readers = {}
    for op in program.ops:
        for index in op.reads + op.extra_uses:
            readers[index] = readers.get(index, 0) + 1
    _sink_producers(program, mode, readers, protected)
    fused, run, sources = [], [], []

    def close_run():
        while run:   # the longest group at the run's start, then the same for what is left
            group = run[:_longest_group(run, readers, protected)]
            del run[:len(group)]
            if len(group) >= MIN_GROUP or (len(group) == 1 and group[0].name not in OUT_FORMS):
                # a lone op with no out= form (Where) still gains: its kernel writes into an arena block
                op, source = _fused_op(program, group, mode)
                fused.append(op)
                sources.append(source)
            else:
                fused.extend(group)

    for op in program.ops:
        if _formula(program, op, mode) is not None:
            if run and not _same_kind(program, run[0], op):
                close_run()
            run.append(op)
        else:
            close_run()
            (run if _may_head(program, op) else fused).append(op)
    close_run()
    program.ops = fused
    return sources


def _longest_group(run, readers, protected):
    """How many ops at the start of ``run`` (adjacent elementwise ops of one shape) make one group:
    every output but the last must be read once in the whole program, by a later op of the group, so
    that nothing outside needs it. The ops need not form a chain: a ``Where`` and a ``Mul`` that an
    ``Add`` combines (a leaky ReLU's backward) are one group."""
    longest = 1
    for end in range(2, len(run) + 1):
        read = {index for op in run[1:end] for index in op.reads}
        if all(op.writes[0] in read and readers.get(op.writes[0]) == 1 and op.writes[0] not in protected
               for op in run[:end - 1]):
            longest = end
    return longest


def _relu_masks_from_outputs(program):
    """Let a ReLU's forward fuse (host arrays only; on the GPU it stays as it is). Its node was kept
    for one thing, the mask ``x > 0`` that its backward reads; the output ``y = max(x, 0)`` gives the
    same mask as ``y > 0`` (NaN and -0 give False both ways). So the forward becomes a plain
    elementwise op, and each read of the mask compares the output instead (at that point of the
    backward, which keeps ``y`` live until then)."""
    node_readers = {}
    for op in program.ops:
        for index in op.reads:
            node_readers.setdefault(index, []).append(op)
    for op in program.ops:
        if op.kind != "forward+" or op.name != "Relu":
            continue
        out, node = op.writes
        buffer, masks = program.buffers[out], node_readers.get(node, [])
        if not buffer.on_host or cuda.wanted(buffer) or np.dtype(buffer.dtype).kind != "f" \
                or any(mask.kind != "attr" or mask.name != "Relu.positive" for mask in masks):
            continue
        op.kind, op.writes, op.call = "forward", [out], relu_call
        for mask in masks:
            mask.kind, mask.reads, mask.call, mask.extra_uses = "forward", [out], relu_mask_call, []
            mask.slots = []   # no array parameters, as a forward op's record says
            mask.detail = "the mask from the output: y > 0"


def _sink_producers(program, mode, readers, protected):
    """Move each op that could start or extend a group down to just before the one op that reads its
    result, when that reader could extend a group and only side-effect-free ops lie between (no host
    operation or gradient binding: nothing that writes an array in place). The backward's
    ``MatMul, Permute, MatMul, attr, Where`` becomes ``Permute, MatMul, attr, MatMul, Where``: the
    product and its mask now meet. Walking from the end lets a sunk op's own producer follow it."""
    ops = program.ops
    for k in range(len(ops) - 1, -1, -1):
        op = ops[k]
        if len(op.writes) != 1 or readers.get(op.writes[0]) != 1 or op.writes[0] in protected \
                or (_formula(program, op, mode) is None and not _may_head(program, op)):
            continue
        reader = next((j for j in range(k + 1, len(ops)) if op.writes[0] in ops[j].reads), None)
        if reader is not None and reader > k + 1 and _formula(program, ops[reader], mode) is not None \
                and all(ops[m].kind in SIDE_EFFECT_FREE for m in range(k + 1, reader)):
            ops.insert(reader - 1, ops.pop(k))


def _formula(program, op, mode):
    """The kernel expression of ``op`` (``{k}`` for its k-th input) in its target's formulas for
    ``mode`` (a GPU group's are fewer: cuda.py), or None if it cannot be fused."""
    if op.kind != "forward" or len(op.writes) != 1 or (op.slots and op.name != "Where"):
        return None
    out = program.buffers[op.writes[0]]
    if not out.is_array or np.dtype(out.dtype).kind != "f" or (out.on_host and not out.contiguous):
        return None   # a kernel writes C order; NumPy kept a permuted input's order, which later ops see
    target = _target(out)
    formulas = target.formulas(mode, out.dtype)
    if op.name == "Pow" and _constant_of(program, op.reads[1]) == 2:
        formula = formulas["Mul"].format("{0}", "{0}")   # NumPy squares for an exponent of 2: same rounding
    else:
        formula = formulas.get(op.name)
    if formula is None:
        return None
    for position, index in enumerate(op.reads):
        buffer = program.buffers[index]
        if buffer.is_array:
            wanted = np.bool_ if op.name == "Where" and position == 2 else out.dtype
            if buffer.on_host != out.on_host or buffer.dtype != wanted \
                    or _indexing(buffer.shape, out.shape, target.broadcasts) is None:
                return None
        elif not isinstance(program.constants.get(index), (int, float)):
            return None
    return formula


def _may_head(program, op):
    """A ``MatMul`` into a float NumPy array may head a run of a CPU group: the run then works on its
    product in place (not on the GPU: epilogues, like arena blocks, are for host arrays only)."""
    if op.kind != "forward" or op.name != "MatMul" or len(op.writes) != 1:
        return False
    out = program.buffers[op.writes[0]]
    return out.on_host and not cuda.wanted(out) and np.dtype(out.dtype).kind == "f" and all(
        program.buffers[i].on_host and program.buffers[i].dtype == out.dtype for i in op.reads)


def _constant_of(program, index):
    """The number a constant buffer holds (a Python number or a single-element array), else None."""
    value = program.constants.get(index)
    if isinstance(value, (int, float)):
        return value
    if getattr(value, "size", 0) == 1:
        return value.reshape(-1)[0].item()
    return None


def _indexing(shape, out_shape, broadcasts=True):
    """How a kernel reads an input of ``shape`` at the output's flat index ``i``: ``[0]`` (a single
    element), ``[i]`` (the output's shape), or, where the target ``broadcasts``, any shape NumPy
    broadcasts to the output's: a bias over the trailing axes is read at ``[i % n]``, a batch norm's
    ``(1, C, 1, 1)`` scale at ``[(i // HW) % C]`` (``_broadcast_index``); None if it cannot be read."""
    if int(np.prod(shape)) == 1:
        return "[0]"
    if tuple(shape) == tuple(out_shape):
        return "[i]"
    padded = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    if not broadcasts or len(shape) > len(out_shape) \
            or any(size not in (1, out) for size, out in zip(padded, out_shape)):
        return None
    return f"[{_broadcast_index(padded, out_shape)}]"


def _broadcast_index(padded, out_shape):
    """The flat index into a C-contiguous input of shape ``padded`` (``out_shape``'s rank, a 1 where
    it is broadcast) at the output's flat index ``i``. Neighbouring axes that are both kept or both
    broadcast act as one; each kept group ``g`` adds its coordinate ``(i // stride_out) % size`` times
    its stride in the input (no ``//`` for the innermost group, no ``%`` for the outermost)."""
    groups = []   # [kept?, size], innermost first
    for size, out in zip(reversed(padded), reversed(out_shape)):
        if out == 1:
            continue
        if groups and groups[-1][0] == (size == out):
            groups[-1][1] *= out
        else:
            groups.append([size == out, out])
    terms, out_stride, in_stride = [], 1, 1
    for position, (kept, size) in enumerate(groups):
        if kept:
            term = "i" if out_stride == 1 else f"(i // {out_stride})"
            term += f" % {size}" if position < len(groups) - 1 else ""
            terms.append(term + (f" * {in_stride}" if in_stride != 1 else ""))
            in_stride *= size
        out_stride *= size
    return " + ".join(reversed(terms))


def _same_kind(program, first, op):
    a, b = program.buffers[first.writes[0]], program.buffers[op.writes[0]]
    return a.shape == b.shape and a.dtype == b.dtype


def _target(buffer):
    """The kernel target of the group writing ``buffer``: ``cuda.CudaKernels`` when ``cuda.wanted``, else
    ``CpuKernels``."""
    return cuda.CudaKernels() if cuda.wanted(buffer) else CpuKernels()


def _fused_op(program, run, mode):
    """One op for ``run``: its outside inputs in, the last op's output out. A ``MatMul`` head's
    product is the kernel's first input, and the kernel then writes over it (each element is read
    before it is written, and by that element's iteration only)."""
    head = run[0] if run[0].name == "MatMul" else None
    out = program.buffers[run[-1].writes[0]]
    target = _target(out)
    inputs, body = kernel_body(program, run[1:] if head else run, mode, [head.writes[0]] if head else [])
    arguments = ", ".join([f"in{k}" for k in range(len(inputs))] + ["out"])
    header = target.header(mode, ", ".join(op.name for op in run))
    if head:
        header += "# in0 is the MatMul's product, made by NumPy in out before this runs (in place)\n"
    name, source = target.source(header, arguments, body, out.dtype)
    kernel = _load(source, name)
    scalar = [not program.buffers[i].is_array for i in inputs]
    if head:
        call, out_call = epilogue_calls(kernel, out.shape, out.dtype, scalar[1:])
    else:
        call, out_call = target.calls(kernel, out, scalar)
    label = f"{name}[{'+'.join(op.name for op in run)}]"
    reads = (head.reads if head else []) + inputs[1 if head else 0:]
    op = Op("fused", label, call, reads, [out.index], run[-1].line, f"{len(run)} ops")
    op.out_call = out_call   # None on the GPU: the arena holds NumPy arrays only
    op.kernel = kernel   # the compiled function itself (the PTX test compiles the CUDA ones)
    return op, source


def kernel_body(program, run, mode, inputs):
    """``(inputs, body)`` of ``run``'s kernel: the buffers it reads from outside (kernel arguments
    ``in0``, ``in1``, ..., after the given ``inputs``), and the lines inside the loop over ``i``, one
    per op, its target's formula in ``mode`` (``_formula``) of its operands (a previous op's
    ``v<buffer>``, ``in<k>[i]``, a single element's ``in<k>[0]``, a bias's ``in<k>[i % n]``, a
    number's ``in<k>``); the last one writes ``out[i]``. Shared by the CPU and the CUDA kernels."""
    made = {op.writes[0] for op in run}
    inputs = list(inputs)
    for op in run:
        inputs.extend(i for i in op.reads if i not in made and i not in inputs)
    names = {index: f"in{k}" for k, index in enumerate(inputs)}
    out_shape = program.buffers[run[-1].writes[0]].shape
    lines = []
    for k, op in enumerate(run):
        operands = [_operand(program, index, names, made, out_shape) for index in op.reads]
        assigned = "out[i]" if k == len(run) - 1 else f"v{op.writes[0]}"
        lines.append(f"        {assigned} = {_formula(program, op, mode).format(*operands)}")
    return inputs, "\n".join(lines)


class CpuKernels:
    """The ``@njit`` kernel of a fusion group: one loop over the flat arrays, cached by Numba."""

    broadcasts = True   # reads a bias at ``[i % n]``

    def header(self, mode, names):
        return f"# fused by scratchgen.compile ({mode}): {names}\n"

    def formulas(self, mode, dtype):
        return {**EXACT, **FAST} if mode == "fast" else EXACT

    def source(self, header, arguments, body, dtype):
        """``(name, module text)``: the name is the hash of the text, dtype included (typed constants)."""
        imports = ("import math\n\n" if "math." in body else "") + "import numba\n"
        if "T(" in body:   # typed constants: a bare 1.0 would make the arithmetic float64
            imports += f"import numpy\n\nT = numpy.{np.dtype(dtype).name}\n"
        name = f"fused_{hashlib.sha1((header + imports + body).encode()).hexdigest()[:10]}"
        return name, (f"{header}{imports}\n\n@numba.njit(cache=True, error_model=\"numpy\")\n"
                      f"def {name}({arguments}):\n    for i in range(out.size):\n{body}\n")

    def calls(self, kernel, out, scalar):
        return fused_calls(kernel, out.shape, out.dtype, scalar, out.is_scalar)


def _operand(program, index, names, made, out_shape):
    if index in made:
        return f"v{index}"
    buffer = program.buffers[index]
    if not buffer.is_array:
        return names[index]                      # a number, cast to the dtype by the call
    return names[index] + _indexing(buffer.shape, out_shape)


def _flat(values, scalar, number):
    return [number(v) if is_number else np.ascontiguousarray(v).reshape(-1)
            for v, is_number in zip(values, scalar)]


def fused_calls(kernel, shape, dtype, scalar, returns_scalar):
    """Two ways to run ``kernel`` on flattened inputs (numbers cast to ``dtype``): ``call`` into a fresh
    output, a NumPy scalar where the last op made one (a 0-d array instead would be viewed, not copied,
    by a later reshape: the program's memory plan assumes what the capture saw); ``out_call`` into a
    given C-contiguous array (an arena block)."""
    number = np.dtype(dtype).type

    def out_call(*values, out):
        kernel(*_flat(values, scalar, number), out.reshape(-1))
        return out

    def call(*values):
        out = out_call(*values, out=np.empty(shape, dtype))
        return out[()] if returns_scalar else out
    return call, out_call


def epilogue_calls(kernel, shape, dtype, scalar):
    """``call(a, b, *others)`` and ``out_call(..., out)`` for a MatMul-headed group: the product into
    the output, then ``kernel`` over it in place with the ``others``."""
    number = np.dtype(dtype).type

    def out_call(a, b, *others, out):
        flat = matmul_into(a, b, out=out).reshape(-1)
        kernel(flat, *_flat(others, scalar, number), flat)
        return out

    def call(a, b, *others):
        return out_call(a, b, *others, out=np.empty(shape, dtype))
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
