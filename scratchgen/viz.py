"""Pictures of the machinery: the autograd graph behind a tensor, and gradient flow through layers.

    g = scratchgen.viz.graph(loss, params=model)     # Graphviz DOT text of the graph
    g.render("step.svg")                             # needs Graphviz's `dot` program

    with scratchgen.viz.module_scopes(model):        # remember which module made each op...
        loss = model(x).sum()
    scratchgen.viz.graph(loss, params=model, collapse_modules=True)   # ...to draw one box per layer

    flow = scratchgen.viz.GradientFlow(model)        # per-parameter gradient norms, every backward
    ...train...
    flow.plot("gradient_flow.png")

The graph is read from the engine's own structure: each ``Function`` node keeps ``next_edges``
(``(creator, output_index)`` for computed inputs, the leaf Tensor itself for leaves), its outputs'
shapes (``output_meta``) and the arrays it saved for backward. Arrows point the way data flows on
the forward pass (inputs to outputs); backward walks them in reverse.
"""
import contextlib
import itertools
import os
import shutil
import subprocess
import weakref

from .autograd import observe, topological_order
from .tensor import Tensor

_STYLE = {
    "op": 'shape=box, style="rounded,filled", fillcolor="#fff2cc"',
    "module": 'shape=box3d, style=filled, fillcolor="#e1d5e7"',
    "parameter": 'shape=box, style=filled, fillcolor="#dae8fc"',
    "leaf": 'shape=box, style=filled, fillcolor="#eeeeee"',
    "output": 'shape=ellipse, style=filled, fillcolor="#d5e8d4"',
}


class Graph:
    """DOT text (``.source``, or ``str(graph)``) that can be saved or rendered by Graphviz."""

    def __init__(self, source):
        self.source = source

    def __str__(self):
        return self.source

    def save(self, path):
        """Write the DOT text (open it with any Graphviz viewer, or ``dot -Tsvg``)."""
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.source)
        return path

    def render(self, path, format=None):  # noqa: A002 (graphviz's name)
        """Draw the graph into ``path``; the format comes from its extension (svg, png, pdf...)."""
        format = format or os.path.splitext(path)[1].lstrip(".").lower()
        if not format:
            raise ValueError(f"graph.render: expected a file name with an extension (.svg, .png), "
                             f"got {path!r}")
        dot = shutil.which("dot")
        if dot is None:
            raise RuntimeError("graph.render: expected the Graphviz program `dot` on PATH, got none; "
                               "install Graphviz (apt install graphviz, brew install graphviz) or write "
                               "the DOT text with .save('graph.dot') and render it elsewhere")
        subprocess.run([dot, f"-T{format}", "-o", os.fspath(path)], input=self.source, text=True, check=True,
                       capture_output=True)
        return path

    def _repr_svg_(self):  # Jupyter shows the picture when Graphviz is installed
        dot = shutil.which("dot")
        if dot is None:
            return None
        return subprocess.run([dot, "-Tsvg"], input=self.source, text=True, check=True,
                              capture_output=True).stdout


# ---- reading the graph ---------------------------------------------------------------------------
def graph(tensor, params=None, collapse_modules=False):
    """The autograd graph behind ``tensor`` as a ``Graph``.

    ``params``: a Module (its ``named_parameters`` name the leaves), a dict name -> Tensor, or None.
    ``collapse_modules``: draw each module's ops as one box — True for the model's direct children,
    an int for that depth of the module tree. It needs the forward pass to have run inside
    ``module_scopes(model)``, which records the module behind each op.
    """
    builder = _DotBuilder(_parameter_names(params), int(collapse_modules))
    builder.add_graph(tensor.creator, tensor.shape, tensor.dtype)
    return Graph(_digraph(builder.lines()))


class StepGraph:
    """The graph of every backward pass run inside the block — for a training step whose loss
    tensor you never see (``recipe.train_step``): each graph is drawn as its backward begins,
    before the pass frees the saved arrays. ``.graph`` draws them side by side.

        with StepGraph(model) as step:
            train_step(batch)
        step.graph.render("step.svg")
    """

    def __init__(self, model, collapse_modules=False):
        self.model, self.depth = model, int(collapse_modules)
        self.names = _parameter_names(model)
        self.passes = []            # DOT lines of each backward pass's graph
        self._covered = weakref.WeakSet()   # nodes of the graphs drawn so far (not ids: those get reused)
        self._exit = contextlib.ExitStack()

    def __enter__(self):
        self._exit.enter_context(module_scopes(self.model))
        self._exit.enter_context(observe(self))
        return self

    def __exit__(self, *exc):
        self._exit.close()
        return False

    def on_forward(self, node, inputs, outputs, seconds):
        pass

    def on_backward(self, node, grads_out, grads_in, seconds):
        pass

    def on_backward_begin(self, node):
        if node in self._covered:
            return  # a node of a pass already drawn
        number = len(self.passes) + 1
        builder = _DotBuilder(self.names, self.depth, prefix=f"p{number}_")
        nodes = builder.add_graph(node, *node.output_meta[0], title=f"loss of backward pass {number}")
        self._covered.update(nodes)
        self.passes.append(builder.lines())

    @property
    def graph(self):
        if not self.passes:
            raise ValueError("StepGraph: no backward pass ran inside the block")
        if len(self.passes) == 1:
            return Graph(_digraph(self.passes[0]))
        clusters = []
        for number, lines in enumerate(self.passes, 1):
            clusters += [f"  subgraph cluster_{number} {{", f"    label={_quote(f'backward pass {number}')};"]
            clusters += ["  " + line for line in lines] + ["  }"]
        return Graph(_digraph(clusters))


def _digraph(lines):
    header = ["digraph autograd {", "  rankdir=TB;",
              '  node [fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=8];']
    return "\n".join(header + lines + ["}"]) + "\n"


def _parameter_names(params):
    if params is None:
        return {}
    pairs = params.named_parameters() if hasattr(params, "named_parameters") else dict(params).items()
    return {id(tensor): name for name, tensor in pairs}


def saved_nbytes(node):
    """Bytes of the arrays a node keeps for its backward (0 once a backward has freed them)."""
    total = 0
    for item in getattr(node, "_saved", ()):
        array = item[0].data if isinstance(item[0], Tensor) else item[0]  # (leaf, version) or (array, node, i)
        total += int(getattr(array, "nbytes", 0))
    return total


def _shape(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _DotBuilder:
    """Collects DOT statements; with a collapse depth, ops inside a module at that depth merge."""

    def __init__(self, names, depth, prefix=""):
        self.names, self.depth, self.prefix = names, depth, prefix
        self.keys = {}                 # id(node or leaf) -> DOT node name
        self.statements, self.edges = [], {}
        self.groups = {}               # group label -> {"key", "ops", "params"}
        self.counter = itertools.count()

    def add_graph(self, root, shape, dtype, title="output"):
        """Draw every node behind ``root`` (None: a leaf) and an output of ``shape``; returns the nodes."""
        nodes = [] if root is None else topological_order([root])[::-1]  # producers first
        if self.depth and not any(getattr(node, "module_scope", None) for node in nodes):
            raise ValueError("graph: collapse_modules needs to know which module made each op; run the "
                             "forward pass inside `with scratchgen.viz.module_scopes(model):`")
        for node in nodes:
            self._add_op(node)
        key = f"{self.prefix}output{next(self.counter)}"
        self.statements.append(f"  {key} [label={_quote(f'{title}{chr(10)}{_shape(shape)} {dtype}')}, "
                               f"{_STYLE['output']}];")
        if root is not None:
            self.edges.setdefault((self.keys[id(root)], key, None), "")
        return nodes

    def _new_key(self, obj, kind):
        key = self.keys[id(obj)] = f"{self.prefix}{kind}{next(self.counter)}"
        return key

    def _group_of(self, node):
        """The box of the module at ``depth`` of the module tree that ``node`` ran in, if any."""
        for path, kind, call in getattr(node, "module_scope", None) or () if self.depth else ():
            if path and path.count(".") + 1 == self.depth:
                return f"{path} ({kind})" + (f" call {call}" if call > 1 else "")
        return None

    def _add_op(self, node):
        group = self._group_of(node)
        if group is None:
            key = self._new_key(node, "op")
            saved = f"saved {saved_nbytes(node):,} B" if saved_nbytes(node) else ""
            saved = "saved: freed" if getattr(node, "released", False) else saved
            shapes = " ".join(_shape(s) for s, _ in getattr(node, "output_meta", ()))
            label = "\n".join(filter(None, [node.name, _layer_of(node), shapes, saved]))
            self.statements.append(f"  {key} [label={_quote(label)}, {_STYLE['op']}];")
        else:
            info = self.groups.setdefault(group, {"key": f"{self.prefix}module{len(self.groups)}", "ops": 0,
                                                  "params": {}})
            key = self.keys[id(node)] = info["key"]
            info["ops"] += 1
        for index, edge in enumerate(node.next_edges):
            if edge is None:
                continue  # an input that needs no gradient is a constant here: not drawn
            source = self.keys[id(edge[0])] if isinstance(edge, tuple) else self._leaf(edge, group)
            if source is not None and source != key:
                label = _shape(edge[0].output_meta[edge[1]][0]) if isinstance(edge, tuple) else ""
                # one arrow per input slot (x * x has two); between module boxes, one per pair
                self.edges.setdefault((source, key, index if group is None else None), label)

    def _leaf(self, tensor, group):
        """The DOT name of a leaf; None when it is a parameter folded into its module's box."""
        name = self.names.get(id(tensor))
        prefix = None if group is None else group.split(" ")[0] + "."
        if prefix is not None and name is not None and name.startswith(prefix):
            self.groups[group]["params"].setdefault(name[len(prefix):], tensor.numel())
            return None
        if id(tensor) in self.keys:
            return self.keys[id(tensor)]
        key = self._new_key(tensor, "leaf")
        kind = "parameter" if name is not None else "leaf"
        label = f"{name or 'leaf'}\n{_shape(tensor.shape)} {tensor.dtype}"
        self.statements.append(f"  {key} [label={_quote(label)}, {_STYLE[kind]}];")
        return key

    def lines(self):
        """The node statements, then the edges."""
        groups = []
        for group, info in self.groups.items():
            parts = [group, f"{info['ops']} op" + ("s" if info["ops"] > 1 else "")]
            params = info["params"]
            if 0 < len(params) <= 4:
                parts.append(f"params: {', '.join(params)}")
            elif params:
                parts.append(f"{len(params)} parameters, {sum(params.values()):,} values")
            groups.append(f"  {info['key']} [label={_quote(chr(10).join(parts))}, {_STYLE['module']}];")
        edges = [f"  {a} -> {b}" + (f" [label={_quote(label)}]" if label else "") + ";"
                 for (a, b, _), label in self.edges.items()]
        return self.statements + groups + edges


def _layer_of(node):
    """"in encoder.0 (Conv2d)": the innermost layer that ran the op (when module scopes were
    recorded), so a picture names both the op (Conv2dOp) and the layer it belongs to."""
    scope = getattr(node, "module_scope", None)
    if not scope:
        return ""
    path, kind, _ = scope[-1]
    return f"in {path or 'model'} ({kind})"


# ---- which module made each op -------------------------------------------------------------------------
@contextlib.contextmanager
def module_scopes(model):
    """Inside the block, each op created during ``model``'s forward is tagged with the stack of modules
    it ran in: ``node.module_scope = ((path, type name, call number), ...)``, outermost first
    (paths as ``named_modules`` gives them: "" for ``model`` itself, "encoder.0"...).

    Forward pre-hooks push a module onto a stack and forward hooks pop it; an autograd observer tags
    each new node with the stack as it stands. Ops run inside a backward are not tagged."""
    stack, calls, handles = [], {}, []

    def enter(path):
        def pre_hook(module, args):
            calls[path] = calls.get(path, 0) + 1
            stack.append((path, type(module).__name__, calls[path]))
        return pre_hook

    def leave(module, args, output):
        stack.pop()

    for path, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(path)))
        handles.append(module.register_forward_hook(leave))
    try:
        with observe(_ScopeTagger(stack)):
            yield
    finally:
        for handle in handles:
            handle.remove()


class _ScopeTagger:
    def __init__(self, stack):
        self.stack, self.backwards = stack, 0

    def on_forward(self, node, inputs, outputs, seconds):
        if self.stack and not self.backwards:
            node.module_scope = tuple(self.stack)

    def on_backward_begin(self, node):
        self.backwards += 1

    def on_backward(self, node, grads_out, grads_in, seconds):
        self.backwards = max(0, self.backwards - 1)


# ---- gradient flow ---------------------------------------------------------------------------------------
class GradientFlow:
    """Records the L2 norm of every parameter's gradient at each backward pass (through tensor hooks),
    so vanishing or exploding gradients show up layer by layer.

        flow = GradientFlow(model)     # or: with GradientFlow(model) as flow:
        for batch in data: ...loss.backward()...
        flow.norms["0.weight"]          # one float per backward
        flow.plot("gradient_flow.png")
        flow.remove()                   # unhook
    """

    def __init__(self, model, include_biases=True):
        self.norms = {}
        self._handles = []
        for name, param in model.named_parameters():
            if not param.requires_grad or (not include_biases and name.endswith("bias")):
                continue
            self.norms[name] = []
            self._handles.append(param.register_hook(self._recorder(name)))

    def _recorder(self, name):
        def record(grad):
            array = grad.data.reshape(-1)
            xp = grad.xp
            self.norms[name].append(float(xp.sqrt(xp.vdot(array, array).real)))
        return record

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    def plot(self, path, steps=5):
        """Two panels: the norm of each layer (x: parameters, input to output) at ``steps`` moments of
        training, and each layer's norm over training; log scale. Returns ``path``.

        Drawn on a bare ``Figure`` (Agg, off-screen), so pyplot's backend and state — a notebook's,
        say — are left alone."""
        from matplotlib import colormaps
        from matplotlib.figure import Figure

        names = [name for name, values in self.norms.items() if values]
        if not names:
            raise ValueError("GradientFlow.plot: no gradients recorded yet; run a backward pass first")
        count = min(len(self.norms[name]) for name in names)
        moments = sorted({round(i * (count - 1) / max(steps - 1, 1)) for i in range(steps)})
        figure = Figure(figsize=(12, 4.5))
        by_layer, over_time = figure.subplots(1, 2)
        colors = colormaps["viridis"]([i / max(len(moments) - 1, 1) for i in range(len(moments))])
        for color, step in zip(colors, moments):
            by_layer.plot(range(len(names)), [self.norms[name][step] for name in names], "o-", color=color,
                          label=f"backward {step + 1}")
        by_layer.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        by_layer.set(yscale="log", ylabel="gradient L2 norm", title="gradient norm by layer")
        by_layer.legend(fontsize=7)
        for name in names:
            over_time.plot(range(1, len(self.norms[name]) + 1), self.norms[name], label=name)
        over_time.set(yscale="log", xlabel="backward pass", title="gradient norm over training")
        over_time.legend(fontsize=6, ncol=2)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        return path
