"""How a model plugs into ``scratchgen train / sample / eval``: a registered ``Recipe``.

A recipe says what is particular to one model family — its config, how to build it, one training
step, how to sample and how to score it — and the runner (``scratchgen.runner``) does the rest
for every model alike: the run folder, ``metrics.jsonl``, checkpoints every epoch and on Ctrl-C,
resuming bit for bit, plots, the progress bar, stopping on a non-finite loss, dry runs, seeding.

    @register
    class MyRecipe(Recipe):
        name = "mine"                 # scratchgen train mine
        Config = MyConfig             # a dataclass deriving from TrainConfig; fields become flags

        def __init__(self, config, data, device="cpu"):   # data: what load_data(config) gave
            super().__init__(config, data, device)
            self.model = MyModel(config, data.image_shape).to(self.device)   # one Module
            self.optimizers = {"model": optim.Adam(self.model.parameters(), config.lr, fused=True)}

        def train_step(self, batch, clock):   # batch: Tensors on the device; returns {"loss": float, ...}
        def before_step(self, clock):         # optional: schedules (learning rate, ...) for this step
        def sample(self, n):                  # (n, H, W) float32 in [0, 1] (or a list of strings)
        def validate(self, data):             # optional: {metric: float} after every epoch
        def evaluate(self, data):             # optional: the final report (defaults to validate)
        def figures(self, data):              # optional: extra image grids, {file stem: images}
        def epoch_figures(self, data, epoch): # optional: grids after an epoch, saved as <stem>_epochNNN.png

Class attributes tune the rest: ``generative = False`` (a classifier: nothing to sample),
``samples_are_images = False`` (text: ``sample`` returns strings, saved as ``samples.txt``),
``plot_keys`` (what ``loss.png`` draws), ``evaluate_from_scratch`` (a classmethod
``(overrides, device, echo) -> report``: what ``scratchgen eval MODEL`` does without a checkpoint,
e.g. the autoencoder trains one model per held-out class). A model with its own data overrides the classmethod
``load_data(config)``; the runner needs of that object only ``train_arrays`` (the arrays the
``DataLoader`` batches) and ``subset(train, test)`` (for dry runs), plus ``name`` when the
samples are images (the digits metrics apply to ``"digits"``).

Everything in ``model`` (its ``state_dict``), ``optimizers`` and the optional ``ema``
(``optim.ExponentialMovingAverage``) is checkpointed; a model made of several networks (a GAN)
holds them as children of one ``Module``.
"""
import dataclasses
import typing

from ..autograd import host_operation
from ..backend import Device
from ..data import DataLoader, TensorDataset, load_images
from ..random import Generator
from ..tensor import tensor

_RECIPES = {}


def option(default, help):
    """A config field with its ``--flag``'s help text: ``lr: float = option(1e-3, "learning rate")``.
    The CLI reads the help from the field's metadata (``config_help``)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class TrainConfig:
    """What every model's config has; a model's config derives from it and may change defaults."""
    epochs: int = option(10, "passes over the training split")
    batch_size: int = option(64, "examples per optimizer step")
    lr: float = option(1e-3, "learning rate")
    seed: int = option(0, "seeds initialisation, model noise and the order of the data")
    data: str = option("digits", '"digits" (embedded) or "idx:FOLDER" (MNIST-format IDX files)')
    image_size: int = option(0,
                             "0: the data's own size (8 for digits); 16 upsamples bilinearly (conv models)")


@dataclasses.dataclass(frozen=True)
class Clock:
    """Where training stands when a step runs: ``step`` optimizer steps and ``epoch`` full epochs
    are done, and ``batch`` batches of the current epoch (of ``batches_per_epoch``)."""
    step: int
    epoch: int
    batch: int
    batches_per_epoch: int

    @property
    def epochs_done(self):
        """Fractional epochs completed before this step (for warm-ups and schedules)."""
        return self.epoch + self.batch / self.batches_per_epoch


class Recipe:
    name = None
    Config = TrainConfig
    generative = True          # False for a classifier: nothing to sample
    samples_are_images = True  # False for text models: ``sample`` returns a list of strings
    final_samples = None       # samples drawn at the end of training (None: the runner's 1000 for FID)
    plot_keys = ("loss",)      # metrics.jsonl keys that loss.png draws against the epoch
    unused_options = ()        # config fields this model ignores (e.g. image_size of a text model):
                               # the command line does not offer them
    evaluate_from_scratch = None  # or a classmethod: what `eval MODEL` does without --checkpoint
    SampleOptions = None       # a dataclass: its fields become flags of `sample MODEL` / `eval MODEL`,
                               # passed to ``sample(n, **options)`` (e.g. the diffusion's sampler)
    dry_run = False            # set by the runner for --dry-run: a recipe may shrink costly evaluation
    has_gradient_step = True   # False for a model fitted otherwise (counting): --distributed refuses it
    rank, world_size = 0, 1    # set by the runner for --distributed: ``make_loader`` hands out this rank's shard

    def __init__(self, config, data, device="cpu"):
        self.config, self.device = config, Device(device)
        self.image_shape = getattr(data, "image_shape", None)
        self.model = None
        self.optimizers = {}
        self.ema = None

    # ---- data ----------------------------------------------------------------------------------------
    @classmethod
    def load_data(cls, config):
        """The data set named by ``config.data`` (images by default); the runner loads it before
        building the recipe, which may read sizes from it (image shape, vocabulary)."""
        return load_images(config.data, config.image_size or None)

    def make_loader(self, data, seed):
        """The training batches: shuffled examples of ``data.train_arrays``, ``batch_size`` at a time.
        A model that must read its data in order (a language model carrying its state from one
        window to the next) returns its own ``DataLoader``, and under ``--distributed`` hands each
        rank its ``rank``-th share of ``world_size`` (``batch_size`` is per rank)."""
        return DataLoader(TensorDataset(*data.train_arrays), batch_size=self.config.batch_size, shuffle=True,
                          generator=Generator(seed), rank=self.rank, world_size=self.world_size)

    def to_tensors(self, arrays):
        """A batch of NumPy arrays as Tensors on the recipe's device."""
        return tuple(tensor(array, device=self.device) for array in arrays)

    # ---- what each model defines ----------------------------------------------------------------------
    def train_step(self, batch, clock):
        raise NotImplementedError(f"{type(self).__name__} must implement train_step")

    def before_step(self, clock):
        """Set what a schedule decides for the step at ``clock`` — a learning rate, a momentum, a loss
        weight — called by every training loop just before ``train_step``. Schedules live here, not in
        ``train_step``, because ``scratchgen.compile`` replays the step without running its Python:
        a value set inside it would keep its captured value. Write values the step *reads* in place
        (``weight.data[...] = w``; ``set_hyperparameters``), so that a replay reads the new ones."""

    def sample(self, n):
        raise NotImplementedError(f"{type(self).__name__} must implement sample")

    def validate(self, data):
        return {}

    def evaluate(self, data):
        return self.validate(data)

    def figures(self, data):
        """Extra image grids to save at the end of training: {file stem: (N, H, W) images},
        drawn 10 to a row."""
        return {}

    def epoch_figures(self, data, epoch):
        """Image grids to save after epoch ``epoch`` (counted from 1) as ``<stem>_epochNNN.png``:
        {file stem: (N, H, W) images}, drawn 10 to a row (e.g. a GAN's fixed-noise samples)."""
        return {}

    # ---- state ---------------------------------------------------------------------------------------
    def state_dict(self):
        """The checkpoint's arrays: ``model/…``, ``optim/<name>/…`` and (if any) ``ema/…``."""
        state = {"model": self.model.state_dict(),
                 "optim": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state, weights_only=False):
        """Restore a checkpoint's model (and, unless ``weights_only``, optimizer and EMA) state."""
        self.model.load_state_dict(state["model"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])
        if weights_only:
            return
        saved = state.get("optim", {})
        if set(saved) != set(self.optimizers):
            raise ValueError(f"{self.name}: the checkpoint has optimizers {sorted(saved)}, expected "
                             f"{sorted(self.optimizers)}")
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(saved[name])


def set_hyperparameters(optimizer, **values):
    """Write ``values`` (``lr=...``, ``momentum=...``) into every parameter group of ``optimizer``
    (in a recipe's ``before_step``: the optimizer reads them when it steps)."""
    for group in optimizer.param_groups:
        group.update(values)


@host_operation  # a write outside the graph: the compiler replays the call (autograd.host_operation)
def overwrite(kept, value):
    """``kept``'s values become ``value``'s, in place: state a step carries to the next one (an LSTM's
    final state, persistent Markov chains), kept in one array that a compiled step reads every call."""
    kept.data[...] = value.data


def register(recipe):
    """Class decorator: make ``recipe`` available as ``scratchgen train <recipe.name>``."""
    if not isinstance(recipe.name, str) or not recipe.name or recipe.name == "samples":
        raise ValueError(f"register: expected a model name other than 'samples', got {recipe.name!r}")
    if not (dataclasses.is_dataclass(recipe.Config) and issubclass(recipe.Config, TrainConfig)):
        raise TypeError(f"register: {recipe.__name__}.Config must be a dataclass deriving from TrainConfig")
    if recipe.name in _RECIPES and _RECIPES[recipe.name] is not recipe:
        raise ValueError(f"register: a model named {recipe.name!r} is already registered "
                         f"({_RECIPES[recipe.name].__qualname__})")
    _RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name):
    if name not in _RECIPES:
        raise KeyError(f"unknown model {name!r}; expected one of {recipe_names()}")
    return _RECIPES[name]


def recipe_names():
    return sorted(_RECIPES)


def config_fields(config_class):
    """(name, type, default) of every field of a config dataclass, types resolved."""
    hints = typing.get_type_hints(config_class)
    return [(field.name, hints[field.name], field.default) for field in dataclasses.fields(config_class)]


def config_help(config_class):
    """{field: its help text} of a config dataclass (see ``option``)."""
    return {field.name: field.metadata.get("help", "") for field in dataclasses.fields(config_class)}


def make_config(config_class, values):
    """``config_class(**values)``, refusing names it does not have with a clear message."""
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{config_class.__name__}: unknown option(s) {unknown}; "
                         f"expected some of {sorted(known)}")
    return config_class(**values)
