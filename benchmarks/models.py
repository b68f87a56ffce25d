"""Models: one training step of every registered model against its PyTorch twin, and the sampling
throughput of the generators.

Our side is exactly what ``scratchgen train MODEL`` runs: the recipe built with the model's
default config (``scratchgen.study.prepare``: same seeding, same first batch) and its own
``train_step``, optimizer update included. The twin comes from ``benchmarks/peers/FAMILY.py``
(FAMILY: the module in ``scratchgen/models`` that defines the model) through the functions that
``benchmarks/peers/__init__.py`` describes; a model without a twin, or whose twin lacks the
function, is reported as such rather than timed.
"""
import dataclasses
import importlib
import re

from .timing import describe
from .workload import Skip, Work, Workload, compile_ahead, guarded, implementation_contenders, peer_contender

SAMPLES, QUICK_SAMPLES = 32, 2                    # images: one batch of this many
TEXT_LENGTH, QUICK_TEXT_LENGTH = 64, 8            # text: one sample of this many characters (sample_length)
# --quick: a dry run's data (``study.prepare(dry_run=True)``) and these config fields, where a
# model has them, so that every model's step is a smoke test of seconds at most.
QUICK_OVERRIDES = {"batch_size": 4, "block_size": 32}


def workloads(options):
    from scratchgen.models import get_recipe, recipe_names
    found = []
    for name in recipe_names():
        recipe_class = get_recipe(name)
        batch = overrides_for(recipe_class, options).get("batch_size", recipe_class.Config.batch_size)
        found.append(Workload(name=f"train {name}", family="model", memory=True,
                              description=f"one training step, batch {batch}, default config",
                              setup=lambda options, name=name: training_contenders(name, options),
                              work={"training step": Work(batch, "example")}))
        if recipe_class.generative:
            n, sample_options, work, what = sampling_size(recipe_class, options)
            found.append(Workload(name=f"sample {name}", family="sampling",
                                  description=f"{what}, the model's default sampler, untrained weights",
                                  setup=lambda options, name=name, n=n, sample_options=sample_options:
                                  sampling_contenders(name, n, sample_options, options),
                                  work={"sample": work}))
    return found


def sampling_size(recipe_class, options):
    """``(n, sample() options, Work, description)`` of one sampling call: a batch of images, or
    one text of a fixed number of characters (text models draw one character per forward pass).
    The options go to both contenders, ``recipe.sample(n, **options)`` and the twin's sampler."""
    if recipe_class.samples_are_images:
        n = QUICK_SAMPLES if options.quick else SAMPLES
        return n, {}, Work(n, "example"), f"{n} samples"
    if "sample_length" not in config_field_names(recipe_class):
        return 1, {}, Work(1, "example"), "one text sample"
    length = QUICK_TEXT_LENGTH if options.quick else TEXT_LENGTH
    return 1, {"length": length}, Work(length, "token"), f"one text of {length} characters"


def config_field_names(recipe_class):
    return {field.name for field in dataclasses.fields(recipe_class.Config)}


def overrides_for(recipe_class, options):
    if not options.quick:
        return {}
    fields = config_field_names(recipe_class)
    return {name: value for name, value in QUICK_OVERRIDES.items() if name in fields}


def prepared(name, options, device="cpu", extra_overrides=None):
    """A fresh recipe of ``name`` as training builds it, its first batch (Tensors) and Clock."""
    from scratchgen import study
    from scratchgen.models import get_recipe
    overrides = overrides_for(get_recipe(name), options) | (extra_overrides or {})
    recipe, steps = study.prepare(name, overrides, device, dry_run=options.quick)
    batch, clock = next(steps)
    return recipe, batch, clock


def device_of(place):
    return "cuda" if place.impl == "gpu" else "cpu"


def training_contenders(name, options):
    def ours(place):  # one recipe per implementation: each trains its own copy of the model
        recipe, batch, clock = prepared(name, options, device_of(place))
        return {"training step": lambda: recipe.train_step(batch, clock)}

    def twin():
        build = twin_function(name, "twin_training_step")
        if isinstance(build, Skip):
            return build
        recipe, batch, _ = prepared(name, options)
        return {"training step": build(recipe, tuple(part.numpy() for part in batch))}
    return implementation_contenders(options, "scratchgen", ours) | peer_contender(options, "torch", twin) \
        | other_peer_contenders(name, options) | compiled_contender(name, options) \
        | torch_compile_contender(name, options)


def compiled_contender(name, options):
    """``scratchgen compiled``: the same step through ``scratchgen.compile`` with the cpu kernels,
    captured (two calls) before the timing starts; a step it cannot capture is a ``Skip`` saying why.
    Beside it (not in a --quick smoke run: more kernels to compile) ``compiled fast``, with
    ``fuse="fast"`` (exp, tanh, ... fused too; docs/compile.md)."""
    if "cpu" not in options.impls:
        return {}
    import scratchgen
    from scratchgen.kernels import use_kernels

    def build(fuse=True):
        with use_kernels("cpu"):
            recipe, batch, clock = prepared(name, options)
            step = scratchgen.compile(recipe.train_step, fuse=fuse)
            try:
                for _ in range(2):
                    step(batch, clock)
            except scratchgen.UncapturableError as error:
                return Skip(f"not capturable: {str(error)[:160]}")

        def compiled_step():
            with use_kernels("cpu"):
                return step(batch, clock)
        return {"training step": compiled_step}
    fast = {} if options.quick else {"scratchgen compiled fast[cpu]": guarded(lambda: build("fast"))}
    return {"scratchgen compiled[cpu]": guarded(build)} | fast


TORCH_COMPILE_SWITCH = "SCRATCHGEN_BENCH_TORCH_COMPILE"  # =1: every model, as --torch-compile '.*'
TORCH_COMPILE_BACKEND = "inductor"                       # tests set "eager": dynamo without code generation


def torch_compile_contender(name, options):
    """``torch.compile``: the twin's step through ``torch.compile`` (inductor, CPU), for the models
    ``options.torch_compile`` names (``--torch-compile``; ``--baseline`` names some, at 1 thread).
    Its first call compiles: minutes per model with cold caches, so it runs in setup, timed there
    (``compile_ahead``), and the row's first call says how long it took and how many compiled graphs
    came from inductor's on-disk caches. A step it cannot compile is a ``Skip`` with the error."""
    if "torch" not in options.peers or options.quick or not options.torch_compile \
            or not re.fullmatch(options.torch_compile, name):
        return {}
    try:
        import torch
    except ImportError as error:
        return {"torch.compile": Skip(f"torch is not installed ({error})")}

    def build():
        make = twin_function(name, "twin_training_step")
        if isinstance(make, Skip):
            return make
        recipe, batch, _ = prepared(name, options)
        torch._dynamo.reset()  # each model compiles on its own (the on-disk caches stay)
        before = compile_cache_counts()
        step = torch.compile(make(recipe, tuple(part.numpy() for part in batch)), backend=TORCH_COMPILE_BACKEND)
        try:
            ahead = compile_ahead(step)
        except Exception as error:  # noqa: BLE001 -- the row says what failed; the suite goes on
            return Skip(f"torch.compile could not compile this step here: {describe(error)[:300]}")
        return {"training step": dataclasses.replace(ahead, note=cache_note(before, compile_cache_counts()))}
    return {"torch.compile": guarded(build)}


COMPILE_CACHES = {"FX graph cache": ("inductor", "fxgraph_cache"),
                  "AOTAutograd cache": ("aot_autograd", "autograd_cache")}


def compile_cache_counts():
    """``{cache: (hits, misses)}`` of inductor's on-disk caches (in ``TORCHINDUCTOR_CACHE_DIR``,
    by default ``/tmp/torchinductor_USER``), counted since the process started."""
    from torch._dynamo.utils import counters
    return {cache: (counters[group][f"{prefix}_hit"], counters[group][f"{prefix}_miss"])
            for cache, (group, prefix) in COMPILE_CACHES.items()}


def cache_note(before, after):
    """``"FX graph cache 3 hits / 0 misses, ..."``: what one compilation found on disk."""
    return ", ".join(f"{cache} {after[cache][0] - before[cache][0]} hits / {after[cache][1] - before[cache][1]} "
                     "misses" for cache in COMPILE_CACHES)


def sampling_contenders(name, n, sample_options, options):
    """Both sides draw ``n`` samples with the same ``sample_options``; where an option is left
    to its default, the twin reads it from the recipe (as ``recipe.sample`` resolves it), so the
    two never do different work (``tests/benchmarks/test_same_work.py`` counts it)."""
    def ours(place):
        recipe, _, _ = prepared(name, options, device_of(place))
        return {"sample": lambda: recipe.sample(n, **sample_options)}

    def twin():
        build = twin_function(name, "twin_sampler")
        if isinstance(build, Skip):
            return build
        return {"sample": build(prepared(name, options, "cpu")[0], n, **sample_options)}
    return implementation_contenders(options, "scratchgen", ours) | peer_contender(options, "torch", twin)


def twin_function(name, function):
    """The twin's ``function``, or a ``Skip`` saying what is missing. The twin of a model defined in
    ``scratchgen/models/FAMILY.py`` is ``benchmarks/peers/FAMILY.py`` (or ``peers/NAME.py``)."""
    module = twin_module(name)
    if module is None:
        return Skip(f"no PyTorch twin (benchmarks/peers/{family_of(name)}.py)")
    if not hasattr(module, function):
        return Skip(f"benchmarks/peers/{module.__name__.rsplit('.', 1)[-1]}.py has no {function}() "
                    f"(see benchmarks/peers/__init__.py)")
    return getattr(module, function)


def family_of(name):
    """The stem of the module that registers model ``name`` (``ae`` -> ``autoencoder``)."""
    from scratchgen.models import get_recipe
    return get_recipe(name).__module__.rsplit(".", 1)[-1]


def twin_module(name):
    for stem in dict.fromkeys((family_of(name), name)):
        module_name = f"{__package__}.peers.{stem}"
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise  # torch itself (peer_contender reports it) or a broken import inside the twin
    return None


# ---- peers beside the PyTorch twins --------------------------------------------------------------------
def other_peer_contenders(name, options):
    """Another library's own model beside ours, where one exists: scikit-learn's ``BernoulliRBM``
    (one ``partial_fit``, its PCD-1 update, on the same batch) beside ``train rbm``."""
    if name != "rbm":
        return {}

    def build():
        from .peers.sklearn_rbm import partial_fit_step
        recipe, batch, _ = prepared(name, options)
        return {"training step": partial_fit_step(recipe, tuple(part.numpy() for part in batch))}
    return peer_contender(options, "sklearn", build)
