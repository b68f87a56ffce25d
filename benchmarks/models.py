"""Models: one training step of every registered model against its PyTorch twin, and the sampling
throughput of the generators.

Our side is exactly what ``scratchgen train MODEL`` runs: the recipe built with the model's
default config (``scratchgen.study.prepare``: same seeding, same first batch) and its own
``train_step``, optimizer update included. The twin comes from ``benchmarks/peers/MODEL.py``
through the functions that ``benchmarks/peers/__init__.py`` describes; a model without a twin,
or whose twin lacks the function, is reported as such rather than timed.
"""
import dataclasses
import importlib

from .workload import Skip, Work, Workload, implementation_contenders, peer_contender

SAMPLES, QUICK_SAMPLES = 100, 2
# --quick: a dry run's data (``study.prepare(dry_run=True)``) and these config fields, where a
# model has them, so that every model's step is a smoke test of seconds at most.
QUICK_OVERRIDES = {"batch_size": 4, "sample_length": 16, "block_size": 32}


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
            n = QUICK_SAMPLES if options.quick else SAMPLES
            found.append(Workload(name=f"sample {name}", family="sampling",
                                  description=f"{n} samples, the model's default sampler, untrained weights",
                                  setup=lambda options, name=name, n=n: sampling_contenders(name, n, options),
                                  work={"sample": Work(n, "example")}))
    return found


def overrides_for(recipe_class, options):
    if not options.quick:
        return {}
    fields = {field.name for field in dataclasses.fields(recipe_class.Config)}
    return {name: value for name, value in QUICK_OVERRIDES.items() if name in fields}


def prepared(name, options, device="cpu"):
    """A fresh recipe of ``name`` as training builds it, its first batch (Tensors) and Clock."""
    from scratchgen import study
    from scratchgen.models import get_recipe
    overrides = overrides_for(get_recipe(name), options)
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
    return implementation_contenders(options, "scratchgen", ours) | peer_contender(options, "torch", twin)


def sampling_contenders(name, n, options):
    def ours(place):
        recipe, _, _ = prepared(name, options, device_of(place))
        return {"sample": lambda: recipe.sample(n)}

    def twin():
        build = twin_function(name, "twin_sampler")
        return build if isinstance(build, Skip) else {"sample": build(prepared(name, options)[0], n)}
    return implementation_contenders(options, "scratchgen", ours) | peer_contender(options, "torch", twin)


def twin_function(name, function):
    """``benchmarks/peers/<name>.py``'s ``function``, or a ``Skip`` saying what is missing."""
    module_name = f"{__package__}.peers.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise  # torch itself (peer_contender reports it) or a broken import inside the twin
        return Skip(f"no PyTorch twin (benchmarks/peers/{name}.py)")
    if not hasattr(module, function):
        return Skip(f"benchmarks/peers/{name}.py has no {function}() (see benchmarks/peers/__init__.py)")
    return getattr(module, function)
