"""Real training steps of a registered model, drawn or timed: what ``scratchgen graph MODEL`` and
``scratchgen profile MODEL`` run.

    graph_step("vae").render("step.svg")        # the autograd graph(s) of one training step
    print(profile_steps("vae", steps=20).table())
    print(compile_steps("mlp").explain())       # the step as scratchgen.compile captured it

Both build the model as ``scratchgen train`` does (same config defaults, same seeding, same data
order) and call its recipe's own ``train_step`` — the optimizer update included — so what you see
is exactly what training runs.
"""
import gc
import itertools
import time

from . import compiler, viz
from .models import Clock, get_recipe
from .profiler import profile, synchronized_timer
from .runner import DATA_ORDER_STREAM, UsageError, build_recipe, check_device, make_recipe_config


def prepare(model, overrides=None, device="cpu", dry_run=False):
    """A freshly initialised recipe of ``model`` and an endless iterator of its (batch, Clock) steps,
    each step's schedules set (``recipe.before_step``) as it is handed out; ``dry_run`` shrinks the
    data and sets the recipe's flag as ``scratchgen train --dry-run`` does."""
    recipe_class = get_recipe(model)
    config = make_recipe_config(recipe_class, dict(overrides or {}))
    check_device(device)
    recipe, data = build_recipe(recipe_class, config, device, dry_run)
    recipe.model.train()
    loader = recipe.make_loader(data, seed=(config.seed, DATA_ORDER_STREAM))  # `scratchgen train`'s order
    return recipe, _steps(recipe, loader)


def _steps(recipe, loader):
    """(batch as Tensors, Clock) for every training step, epoch after epoch, ``before_step`` done."""
    step = 0
    for epoch in itertools.count():
        for batch in loader:
            clock = Clock(step, epoch, loader.position - 1, len(loader))
            recipe.before_step(clock)
            yield recipe.to_tensors(batch), clock
            step += 1


def graph_step(model, collapse_modules=False, overrides=None, device="cpu"):
    """The ``viz.Graph`` of one training step of ``model`` (one cluster per backward pass)."""
    recipe, steps = prepare(model, overrides, device)
    batch, position = next(steps)
    with viz.StepGraph(recipe.model, collapse_modules) as step:
        recipe.train_step(batch, position)
    return step.graph


def profile_steps(model, steps=20, warmup=1, overrides=None, device="cpu", timer=time.perf_counter):
    """A ``Profiler`` over ``steps`` training steps of ``model``, after ``warmup`` unprofiled ones
    (the first steps pay for JIT compilation and first-touch allocations)."""
    if steps < 1 or warmup < 0:
        raise UsageError(f"profile: expected steps >= 1 and warmup >= 0, got {steps} and {warmup}")
    recipe, batches = prepare(model, overrides, device)
    if recipe.device.type == "cuda":  # GPU kernels run asynchronously: wait for them at every reading
        import cupy
        timer = synchronized_timer(cupy.cuda.Device().synchronize, timer)
    for batch, position in itertools.islice(batches, warmup):
        recipe.train_step(batch, position)
    # A full collection walks every object the imports left (torch, Numba, SciPy): 350-500 ms here.
    # One left pending by the imports and warm-up would land inside whichever op was running (it
    # once showed as 19% of the U-Net step in Moments); collecting now starts the block with none.
    gc.collect()
    with profile(timer) as profiler:
        for batch, position in itertools.islice(batches, steps):
            recipe.train_step(batch, position)
    return profiler


def compile_steps(model, steps=3, overrides=None, device="cpu"):
    """``model``'s training step through ``scratchgen.compile``, after ``steps`` calls (two capture,
    the rest replay); its ``explain()`` prints the program. A step that cannot be captured is a
    usage error naming why."""
    return _compiled(model, steps, overrides, device)[0]


def _compiled(model, steps, overrides, device):
    """(the compiled step after ``steps`` calls, the iterator of the steps after them)."""
    if steps < 1:
        raise UsageError(f"compile: expected steps >= 1, got {steps}")
    recipe, batches = prepare(model, overrides, device)
    step = compiler.compile(recipe.train_step)
    try:
        for batch, position in itertools.islice(batches, steps):
            step(batch, position)
    except compiler.UncapturableError as error:
        raise UsageError(f"compile: the {model} training step cannot be compiled: {error}") from None
    return step, batches


def profile_compiled(model, steps=20, overrides=None, device="cpu"):
    """``(seconds per step, rows)``: ``steps`` replays of ``model``'s compiled training step, each op
    of the program timed (``Program.timed``); rows ``(label, calls, seconds)``, slowest first."""
    step, batches = _compiled(model, 3, overrides, device)
    (entry,) = [entry for entry in step.cache.values() if entry.trusted][:1]
    started = time.perf_counter()
    with entry.program.timed() as totals:
        for batch, position in itertools.islice(batches, steps):
            step(batch, position)
    seconds = (time.perf_counter() - started) / steps
    rows = [(label, calls, total) for label, (calls, total) in totals.items()]
    return seconds, sorted(rows, key=lambda row: -row[2])
