"""The training runner: everything ``scratchgen train`` does around a model's own step.

    train("vae", {"epochs": 30}, out="runs/vae")     # the function behind `scratchgen train vae --epochs 30`

A run folder (``runs/<model>-<timestamp>/`` unless ``out``) receives, as docs/design.md promises:

    config.json     the model, its full config, the device (and the data's provenance, if it has one)
    metrics.jsonl   one JSON object per epoch (step, epoch, time_s, mean training losses,
                    validation metrics), then one with "final": true (the final evaluation)
    last.npz        the checkpoint (``scratchgen.serialize``), after every epoch and on Ctrl-C
    samples.png     a grid of samples (and samples.npy: the samples the metrics scored)
    loss.png        the loss curves, from metrics.jsonl (the whole history of a resumed run)

Resuming is bit-identical: the checkpoint holds the weights, the optimizer and EMA state, the
global generator's state, the data loader's position (mid-epoch after a Ctrl-C) and the running
sums of the epoch's losses, so 1 epoch + resume 1 epoch gives the very bits of 2 epochs straight.
Evaluation and sampling draw from a forked generator (``forked_rng``), so they never shift the
training stream either.
"""
import contextlib
import dataclasses
import itertools
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
import typing

import numpy as np

from . import compiler, serialize
from ._faults import fault_point
from .distributed import SingleProcess
from .eval.classifier import weights_path
from .eval.metrics import MIN_FID_SAMPLES, digits_metrics
from .models import Clock, config_fields, get_recipe, make_config
from .progress import ProgressBar
from .random import get_rng_state, manual_seed, set_rng_state

RUNS_FOLDER = "runs"
CHECKPOINT = "last.npz"
SAMPLES = 1000                  # samples scored at the end of training (digits FID uses N = 1000)
DRY_RUN_BATCHES, DRY_RUN_TEST, DRY_RUN_SAMPLES = 3, 64, MIN_FID_SAMPLES
DATA_ORDER_STREAM = 1           # the data order's generator: PCG64((seed, 1)), apart from the model's
EVALUATION_STREAM = 2           # evaluation and sampling: PCG64 seeded (seed, 2), forked
RANK_NOISE_STREAM = 3           # under --distributed, rank r's model noise: (seed, 3, r, epoch)


class UsageError(ValueError):
    """A request that cannot be carried out as given (missing checkpoint, bad output name...)."""


class TrainingStopped(RuntimeError):
    """Training stopped on a non-finite loss; the message names the last good checkpoint."""


# ---- small helpers ---------------------------------------------------------------------------------
@contextlib.contextmanager
def forked_rng(*seed):
    """Draw from a generator seeded with ``seed`` inside the block, then restore the global one."""
    saved = get_rng_state()
    manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
    try:
        yield
    finally:
        set_rng_state(saved)


def check_device(device):
    """Fail early, and clearly, on a device that cannot be used (e.g. 'cuda' without CuPy)."""
    from .backend import to_device
    try:
        to_device(np.zeros(1), device)
    except (RuntimeError, ValueError) as error:
        raise UsageError(str(error)) from error


def make_recipe_config(recipe_class, values):
    """``recipe_class.Config(**values)``; a bad name or value is a usage error naming the model."""
    try:
        check_config_values(recipe_class.Config, values)
        return make_config(recipe_class.Config, values)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{recipe_class.name}: {error}") from error


# ---- config values: checked before anything is written ---------------------------------------------
# Integer fields must be >= 1 (epochs, sizes, widths, counts) except these, which may be 0.
_MAY_BE_ZERO = {"seed", "data_seed", "image_size", "holdout_class", "warmup_steps", "grid_every",
                "sample_steps", "steps"}
# Float fields must be finite and >= 0; these must also lie in [0, 1], and lr must be > 0.
_FRACTIONS = {"dropout", "label_dropout", "ema_decay", "beta1", "beta2", "teacher_forcing_start",
              "teacher_forcing_end", "final_lr_fraction", "decay_from"}


def flag_name(field):
    """The command-line flag of a config field: ``class_`` -> ``--class``, ``batch_size`` -> ``--batch-size``."""
    return "--" + field.rstrip("_").replace("_", "-")


def check_config_values(config_class, values):
    """Refuse (ValueError naming the flag and what it accepts) any value of ``values`` that the
    field of ``config_class`` cannot take; names the class lacks are left to ``make_config``."""
    for name, kind, _ in config_fields(config_class):
        if name in values:
            expected = _field_expectation(name, kind, values[name])
            if expected:
                raise ValueError(f"{flag_name(name)}: expected {expected}, got {values[name]!r}")


def _field_expectation(name, kind, value):
    """What ``value`` should have been for field ``name`` of type ``kind`` ('' when it is fine)."""
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        return "" if value in choices else f"one of {', '.join(map(str, choices))}"
    if kind is bool:
        return "" if isinstance(value, bool) else "true or false"
    if kind is int:
        low = 0 if name in _MAY_BE_ZERO else 1
        return "" if isinstance(value, int) and not isinstance(value, bool) and value >= low \
            else f"an integer >= {low}"
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "a finite number"
        if name == "lr" and value <= 0:
            return "a learning rate > 0"
        if name in _FRACTIONS and not 0 <= value <= 1:
            return "a number in [0, 1]"
        return "" if value >= 0 else "a number >= 0"
    if kind is str:
        return "" if isinstance(value, str) and value else "a non-empty string"
    return ""


def read_config_file(path, model):
    """The config fields of a JSON file: ``{"lr": 0.01, ...}``, or a run's ``config.json``
    (``{"model": ..., "config": {...}}``, which must be of ``model``)."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except (OSError, ValueError) as error:
        raise UsageError(f"--config: cannot read {path} as JSON ({error})") from error
    if isinstance(values, dict) and isinstance(values.get("config"), dict) and "model" in values:
        if values["model"] != model:
            raise UsageError(f"--config: {path} is the config of a {values['model']!r} run, expected {model!r}")
        values = values["config"]
    if not isinstance(values, dict):
        raise UsageError(f"--config: expected a JSON object of config fields in {path}, "
                         f"got {type(values).__name__}")
    return values


def _fitting(restore, path, model, recipe=None, state=None):
    """Run ``restore``; a checkpoint that does not fit the model built from its config (e.g. an
    option that changes the architecture was given on resume, or a weight that is not floating
    point where the model's is) becomes a clear error."""
    try:
        if recipe is not None:
            check_weight_dtypes(recipe, state)
        restore()
    except (RuntimeError, ValueError, KeyError) as error:
        raise UsageError(f"checkpoint {path} does not fit the {model} model built from its config "
                         f"and the given options: {error}") from error


def _build(recipe_class, config, data, device):
    """The recipe for ``data``; data it cannot model (size, grey levels) is a usage error."""
    try:
        return recipe_class(config, data, device)
    except ValueError as error:
        raise UsageError(str(error)) from error


def check_weight_dtypes(recipe, state):
    """A checkpoint weight of another float dtype is cast on loading; any other dtype in place
    of a floating-point weight is refused (ValueError naming it)."""
    expected = recipe.model.state_dict()
    for group in ("model", "ema"):
        for name, array in (state.get(group) or {}).items():
            wanted = getattr(expected.get(name), "dtype", None)
            if wanted is not None and np.dtype(wanted).kind == "f" and np.asarray(array).dtype.kind != "f":
                raise ValueError(f"{group}/{name}: expected a floating-point array, got dtype {array.dtype}")


def resolve_checkpoint(path):
    """A checkpoint file given as itself or as the run folder holding ``last.npz``."""
    if os.path.isdir(path):
        path = os.path.join(path, CHECKPOINT)
        if not os.path.exists(path):
            raise UsageError(f"checkpoint: no {CHECKPOINT} in the run folder {os.path.dirname(path)}")
    elif not os.path.exists(path):
        raise UsageError(f"checkpoint: no such file or run folder: {path}")
    return path


def new_run_folder(model):
    """Create and return ``runs/<model>-<timestamp>[-N]``. ``os.mkdir`` fails when the folder
    exists, so two runs started in the same second never share one: the second takes the next N."""
    os.makedirs(RUNS_FOLDER, exist_ok=True)
    stamp, suffix = time.strftime("%Y%m%d-%H%M%S"), 1
    while True:
        folder = os.path.join(RUNS_FOLDER, f"{model}-{stamp}" + (f"-{suffix}" if suffix > 1 else ""))
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            suffix += 1


RUN_FILES = ("config.json", "metrics.jsonl", CHECKPOINT)


def run_files_in(folder):
    """The files of a run that ``folder`` already holds (none: it is free for a new run)."""
    return [name for name in RUN_FILES if os.path.exists(os.path.join(folder, name))]


def claim_out_folder(out, overwrite):
    """Make ``out`` ready for a new run: refuse one holding a run unless ``overwrite``, in which
    case the old run's files are removed first (a fresh metrics.jsonl, no stale checkpoint).
    A config.json alone (a run stopped before its first checkpoint) holds nothing to lose."""
    found = run_files_in(out)
    if found and found != ["config.json"] and not overwrite:
        raise UsageError(f"--out {out} already holds a run ({', '.join(found)}); continue it with "
                         f"--resume {out}, or replace it with --overwrite")
    for name in found:
        os.remove(os.path.join(out, name))
    os.makedirs(out, exist_ok=True)


def newest_run(model):
    """The run folder under ``runs/`` of ``model`` with the newest checkpoint, or a usage error."""
    candidates = []
    if os.path.isdir(RUNS_FOLDER):
        for name in os.listdir(RUNS_FOLDER):
            folder = os.path.join(RUNS_FOLDER, name)
            checkpoint = os.path.join(folder, CHECKPOINT)
            if os.path.exists(checkpoint) and _run_model(folder) == model:
                candidates.append((os.path.getmtime(checkpoint), folder))
    if not candidates:
        raise UsageError(f"no {model} run with a {CHECKPOINT} under {os.path.abspath(RUNS_FOLDER)}; "
                         f"train one (scratchgen train {model}) or give --checkpoint")
    return max(candidates)[1]


def _run_model(folder):
    try:
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
            return json.load(handle).get("model")
    except (OSError, ValueError, AttributeError):
        return None


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.write("\n")


def read_metrics(run_folder):
    """The records of a run's ``metrics.jsonl`` (empty when there is none yet); a last line cut
    short by a killed process is left out."""
    path = os.path.join(run_folder, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def metrics_line(record):
    """One line of ``metrics.jsonl``: strict JSON. A non-finite number (which ``json`` would write
    as a bare NaN, not JSON) becomes null, and its key is listed under ``"nonfinite"``."""
    bad = [key for key, value in record.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        record = {**{key: (None if key in bad else value) for key, value in record.items()},
                  "nonfinite": {key: str(record[key]) for key in bad}}
    return json.dumps(record, allow_nan=False) + "\n"


def write_metrics(run_folder, records):
    """Replace ``metrics.jsonl`` with ``records``, atomically."""
    path = os.path.join(run_folder, "metrics.jsonl")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.writelines(metrics_line(record) for record in records)
    os.replace(path + ".tmp", path)


class StopOnInterrupt:
    """First Ctrl-C (SIGINT) or SIGTERM: finish the current step, checkpoint, stop; ``signal``
    says which came. A second one aborts at once. (Signals can be caught only in the main
    thread; elsewhere they behave as usual.)"""
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.requested, self.signal, self.previous = False, None, {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal = True, signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n{name}: stopping after this step and saving {CHECKPOINT} (once more to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for number, previous in self.previous.items():
            signal.signal(number, previous)
        return False


# ---- a training run --------------------------------------------------------------------------------
class Run:
    """One run folder: the recipe, its data and loader, and where training stands."""

    def __init__(self, recipe, data, folder, dry_run=False, plots=True, echo=print, world=None,
                 compiled=False):
        self.recipe, self.data, self.folder = recipe, data, folder
        self.train_step = compiled_step(recipe) if compiled else recipe.train_step
        self.config = recipe.config
        # data-parallel: every rank trains; rank 0 alone writes, logs and shows progress
        self.world = world or SingleProcess()
        self.primary = self.world.rank == 0
        self.dry_run, self.plots, self.echo = dry_run, plots and self.primary, echo if self.primary else _silent
        self.loader = recipe.make_loader(data, seed=(self.config.seed, DATA_ORDER_STREAM))
        self.step, self.epoch, self.time_s = 0, 0, 0.0
        self.epoch_sums, self.epoch_batches = {}, 0  # this epoch's loss sums so far (Ctrl-C may split it)
        self.saved_at = None  # where the last checkpoint was taken, in words
        self.last_record = None  # metrics.jsonl's line for the last finished epoch (kept in the checkpoint)
        self.stopped_by = None   # the signal that stopped training early (SIGINT or SIGTERM)

    @property
    def checkpoint_path(self):
        return os.path.join(self.folder, CHECKPOINT)

    # ---- state ------------------------------------------------------------------------------------
    def save(self):
        """Checkpoint, unless some weight or optimizer value is not finite: then the previous
        checkpoint stays and training stops (``TrainingStopped``)."""
        state = self._finite_state()
        meta = {"kind": self.recipe.name, "config": _config_dict(self.config), "step": self.step,
                "epoch": self.epoch, "time_s": self.time_s, "rng_state": get_rng_state(),
                "loader": self.loader.state_dict(), "epoch_sums": self.epoch_sums,
                "epoch_batches": self.epoch_batches, "last_record": self.last_record,
                "world_size": self.world.size}
        if self.primary:
            serialize.save({**state, "meta": meta}, self.checkpoint_path)
        self.saved_at = self._where()

    def _finite_state(self):
        """The recipe's state dict, or ``TrainingStopped`` naming its non-finite arrays."""
        state = self.recipe.state_dict()
        bad = non_finite_arrays(state)
        if bad:
            raise TrainingStopped(f"training stopped: non-finite values in {', '.join(bad[:5])}"
                                  f"{' ...' if len(bad) > 5 else ''} at {self._where()} (step {self.step}); "
                                  f"{self._kept()}. Try a lower --lr.")
        return state

    def _kept(self):
        return (f"the last good checkpoint {self.checkpoint_path} ({self.saved_at}) is kept"
                if self.saved_at else "no checkpoint was written (no epoch finished)")

    def _where(self):
        batches = self.loader.position
        return f"end of epoch {self.epoch}" if batches == 0 else f"epoch {self.epoch} + {batches} batches"

    def restore(self, checkpoint):
        meta = checkpoint["meta"]
        configured = optimizer_settings(self.recipe)   # as this run's config sets them
        self.recipe.load_state_dict(checkpoint)
        if meta["config"] != _config_dict(self.config):  # options given on resume win over saved values
            apply_optimizer_settings(self.recipe, configured)
        set_rng_state(meta["rng_state"])
        self.loader.load_state_dict(meta["loader"])
        self.step, self.epoch, self.time_s = meta["step"], meta["epoch"], meta["time_s"]
        self.epoch_sums, self.epoch_batches = dict(meta["epoch_sums"]), meta["epoch_batches"]
        self.last_record = meta.get("last_record")
        self.saved_at = self._where()

    def seed_rank_noise(self):
        """With several ranks, each draws its model noise (dropout, latent samples...) from its own
        stream, reseeded at the start of every epoch from (seed, RANK_NOISE_STREAM, rank, epoch)
        (and the batch, when a resumed run starts mid-epoch): the shards of one global batch get
        independent draws, and a run resumed at an epoch's end draws what it would have drawn.
        One rank keeps the single-process stream, so a run on one rank is bit for bit a plain run."""
        if self.world.size > 1:
            entropy = [self.config.seed, RANK_NOISE_STREAM, self.world.rank, self.epoch, self.loader.position]
            manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    def reconcile_metrics(self):
        """Make ``metrics.jsonl`` agree with the checkpoint just restored: records of epochs after
        it (written by a run killed before its next checkpoint) go, the checkpoint's own epoch
        record is there exactly once (a run killed between checkpoint and log lacked it), and a
        final record of this epoch goes if the final evaluation is about to run again."""
        finishing = self.epoch >= self.config.epochs
        kept = [record for record in read_metrics(self.folder)
                if record.get("epoch", 0) < self.epoch and not (record.get("final") and finishing)
                or record.get("epoch") == self.epoch and record.get("final") and not finishing]
        earlier = [record for record in kept if record.get("epoch", 0) < self.epoch]
        later = kept[len(earlier):]
        last = [json.loads(self.last_record)] if self.last_record else []
        write_metrics(self.folder, earlier + last + later)

    def _record(self, record):
        return {"step": self.step, "epoch": self.epoch, "time_s": round(self.time_s, 3), **record}

    def log(self, record):
        self._append_line(metrics_line(self._record(record)))

    def _append_line(self, line):
        if not self.primary:
            return
        with open(os.path.join(self.folder, "metrics.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(line)

    # ---- training ---------------------------------------------------------------------------------
    def train(self):
        """Train until ``config.epochs``; returns False when stopped early by Ctrl-C."""
        with StopOnInterrupt() as interrupt:
            while self.epoch < self.config.epochs:
                started = time.perf_counter()
                if self._train_epoch(interrupt):
                    self._end_epoch(started)
                else:
                    self.time_s += time.perf_counter() - started
                    self.stopped_by = interrupt.signal
                    self.save()
                    self.echo(f"stopped at {self.saved_at} (step {self.step}); saved {self.checkpoint_path}; "
                              f"resume with --resume {self.folder}")
                    return False
        return True

    def _train_epoch(self, interrupt):
        recipe, batches = self.recipe, len(self.loader)
        self.seed_rank_noise()
        bar = ProgressBar(self.epoch + 1, self.config.epochs, batches, enabled=None if self.primary else False)
        recipe.model.train()
        for batch in self.loader:
            clock = Clock(self.step, self.epoch, self.loader.position - 1, batches)
            recipe.before_step(clock)   # schedules: outside the (possibly compiled) step
            losses = self.train_step(recipe.to_tensors(batch), clock)
            fault_point("step")
            self._check_finite(losses)
            self.step += 1
            for name, value in losses.items():
                self.epoch_sums[name] = self.epoch_sums.get(name, 0.0) + float(value)
            self.epoch_batches += 1
            bar.update(self.loader.position, losses, len(batch[0]))
            if self._stop_requested(interrupt):
                bar.close()
                return False
        bar.close()
        return True

    def _stop_requested(self, interrupt):
        """Whether any rank was asked to stop (Ctrl-C, SIGTERM): all ranks stop after the same step."""
        if self.world.size == 1:
            return interrupt.requested
        return bool(self.world.allreduce_(np.array([int(interrupt.requested)], dtype=np.int64))[0])

    def _check_finite(self, losses):
        bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
        if not bad:
            return
        where = f"epoch {self.epoch + 1}, step {self.step + 1}"
        raise TrainingStopped(f"training stopped: non-finite loss {bad} at {where}; {self._kept()}. "
                              "Try a lower --lr.")

    def _end_epoch(self, started):
        batches = max(self.epoch_batches, 1)
        record = {name: total / batches for name, total in self.epoch_sums.items()}
        self._finite_state()  # weights blown up by the epoch's last step: stop before evaluating them
        self.epoch, self.epoch_sums, self.epoch_batches = self.epoch + 1, {}, 0
        self.recipe.model.eval()
        with forked_rng(self.config.seed, EVALUATION_STREAM):
            record.update(self.recipe.validate(self.data))
            figures = self.recipe.epoch_figures(self.data, self.epoch) if self.plots else {}
        self._draw_grids({f"{stem}_epoch{self.epoch:03d}": images for stem, images in figures.items()})
        seconds = time.perf_counter() - started
        self.time_s += seconds
        # the record travels inside the checkpoint and is logged after it: a run killed in
        # between gets it back on resume (reconcile_metrics), never twice
        self.last_record = metrics_line(self._record(record))
        self.save()
        fault_point("log")
        self._append_line(self.last_record)
        speed = batches * self.config.batch_size / max(seconds, 1e-9)
        shown = "  ".join(f"{name} {value:.4f}" for name, value in record.items())
        self.echo(f"epoch {self.epoch}/{self.config.epochs}  {shown}  ({seconds:.1f} s, {speed:,.0f} ex/s)")

    # ---- the end ----------------------------------------------------------------------------------
    def finish(self):
        """Final evaluation, samples and pictures; returns the final record."""
        recipe = self.recipe
        recipe.model.eval()
        count = min(recipe.final_samples or SAMPLES, DRY_RUN_SAMPLES if self.dry_run else SAMPLES)
        samples, figures = None, {}
        with forked_rng(self.config.seed, EVALUATION_STREAM):
            final = dict(recipe.evaluate(self.data))
            if recipe.generative:
                samples = recipe.sample(count)
            if self.plots:
                figures = recipe.figures(self.data)
        if samples is not None:
            final.update(score_samples(recipe, self.data, samples))
            save_samples(samples, self.folder, recipe.samples_are_images)
        if self.plots:
            self._draw(samples, figures)
        self.log({"final": True, **final})
        return final

    def _draw_grids(self, figures):
        """Each of {file stem: (N, H, W) images} as ``<stem>.png``, 10 images to a row."""
        from .plots import save_image_grid
        for stem, images in figures.items():
            save_image_grid(images, os.path.join(self.folder, f"{stem}.png"), columns=10,
                            title=stem.replace("_", " "))

    def _draw(self, samples, figures):
        from .plots import save_image_grid, save_loss_curves
        if samples is not None and self.recipe.samples_are_images:
            save_image_grid(samples[:100], os.path.join(self.folder, "samples.png"),
                            title=f"{self.recipe.name} samples")
        self._draw_grids(figures)
        save_loss_curves(read_metrics(self.folder), os.path.join(self.folder, "loss.png"),
                         self.recipe.plot_keys, title=self.recipe.name)


def _silent(*args, **kwargs):
    """The echo of ranks other than 0: they print nothing."""


def _config_dict(config):
    return dataclasses.asdict(config)


def non_finite_arrays(state, path=""):
    """The paths (``model/fc.weight``, ``optim/model/state/0/exp_avg``) of arrays in a nested
    state dict that hold NaN or infinity."""
    if isinstance(state, dict):
        return [bad for key, value in state.items() for bad in non_finite_arrays(value, f"{path}{key}/")]
    if isinstance(state, (list, tuple)):
        return [bad for i, value in enumerate(state) for bad in non_finite_arrays(value, f"{path}{i}/")]
    if isinstance(state, np.ndarray) and state.dtype.kind in "fc" and not np.isfinite(state).all():
        return [path.rstrip("/")]   # (state dicts hold NumPy copies, even of GPU tensors)
    if isinstance(state, float) and not math.isfinite(state):
        return [path.rstrip("/")]
    return []


def optimizer_settings(recipe):
    """Each optimizer's hyperparameters per group (lr, betas, weight_decay, ...), arrays aside."""
    return {name: [{key: value for key, value in group.items() if key != "params"}
                   for group in optimizer.param_groups] for name, optimizer in recipe.optimizers.items()}


def apply_optimizer_settings(recipe, settings):
    for name, groups in settings.items():
        for group, values in zip(recipe.optimizers[name].param_groups, groups):
            group.update(values)


# Changing these on resume would not continue the run but start another one: refused.
_FIXED_ON_RESUME = ("seed", "data", "image_size", "data_seed", "train_size")


def check_resume_changes(saved, config, loader_state, saved_world_size=1, world_size=1):
    """Refuse overrides a resumed run cannot honour, saying how to get what was asked."""
    changed = [name for name in _FIXED_ON_RESUME if name in saved and saved[name] != getattr(config, name)]
    if changed:
        raise UsageError(f"--resume: {', '.join(flag_name(name) for name in changed)} cannot change in the middle "
                         f"of a run (the saved run has {', '.join(f'{n}={saved[n]!r}' for n in changed)}); start "
                         "a new run with --out, or resume without it")
    if saved["batch_size"] != config.batch_size and loader_state.get("position"):
        raise UsageError(f"--resume: --batch-size cannot change in the middle of an epoch (the checkpoint is "
                         f"{loader_state['position']} batches into one); resume with --batch-size "
                         f"{saved['batch_size']} --epochs <the current epoch + 1> to finish that epoch, then resume "
                         "again with the new batch size")
    if saved_world_size != world_size and loader_state.get("position"):
        raise UsageError(f"--resume: the checkpoint is {loader_state['position']} batches into an epoch of a run "
                         f"on {saved_world_size} rank(s), resumed on {world_size}: a global batch changes size "
                         f"with the number of ranks, so only a checkpoint at the end of an epoch moves; resume on "
                         f"{saved_world_size} rank(s) with --epochs <the current epoch + 1> to finish the epoch, "
                         "then on any number")


def score_samples(recipe, data, samples):
    """The digits metrics of image samples of the digits (other data sets have no classifier)."""
    if recipe.samples_are_images and data.name == "digits":
        return digits_metrics(samples)
    return {}


def save_samples(samples, folder, are_images, stem="samples"):
    if are_images:
        np.save(os.path.join(folder, f"{stem}.npy"), np.asarray(samples, dtype=np.float32))
    else:
        with open(os.path.join(folder, f"{stem}.txt"), "w", encoding="utf-8") as handle:
            handle.write("\n\n".join(samples) + "\n")


def build_recipe(recipe_class, config, device="cpu", dry_run=False):
    """(recipe, data): a freshly initialised recipe as ``scratchgen train`` builds it — seeded by
    ``config.seed``, on the data its config names (a few batches of it in a ``dry_run``)."""
    manual_seed(config.seed)
    data = recipe_class.load_data(config)
    if dry_run:
        data = data.subset(train=DRY_RUN_BATCHES * config.batch_size, test=DRY_RUN_TEST)
    recipe = _build(recipe_class, config, data, device)
    recipe.dry_run = dry_run
    return recipe, data


def compiled_step(recipe):
    """``recipe.train_step`` through ``scratchgen.compile`` (``--compile``): the first steps run eagerly
    and capture, the rest replay. A step that cannot be captured is a usage error (exit 2) naming why."""
    if not recipe.optimizers:
        raise UsageError(f"--compile: {recipe.name} has no gradient step to compile (it trains without an "
                         "optimizer); train it without --compile")
    step = compiler.compile(recipe.train_step)

    def compiled(batch, clock):
        try:
            return step(batch, _SealedClock())
        except compiler.UncapturableError as error:
            raise UsageError(f"--compile: the {recipe.name} training step cannot be compiled: "
                             f"{error}") from None
    compiled.program = step
    return compiled


class _SealedClock:
    """The clock a compiled step is handed: reading it raises. A replay runs none of the step's Python,
    so anything the step decided from the clock would keep its value from the capture (a learning rate,
    a loss weight): such decisions belong in ``Recipe.before_step``, which sees the real clock."""

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise compiler.UncapturableError(
            f"the step reads clock.{name}; a replay would keep the value it had when the step was captured. "
            "Read the clock in the recipe's before_step(clock) instead (docs/compile.md)")


# ---- the three entry points ------------------------------------------------------------------------
def effective_config(model, overrides=None, resume=None, dry_run=False, config_file=None):
    """``(config, checkpoint or None, resolved resume path or None)``: the config ``train`` would
    run with, merged as defaults < the resumed run's config < ``config_file`` < ``overrides``
    (``scratchgen train MODEL --print-config`` prints it; ``train`` then refuses changes a resumed
    run cannot honour)."""
    overrides = {**(read_config_file(config_file, model) if config_file else {}), **(overrides or {})}
    checkpoint = None
    if resume is not None:
        resume = resolve_checkpoint(resume)
        checkpoint = serialize.load(resume, expected_kind=model)
        serialize.check_weights(checkpoint, resume)
    elif dry_run:
        overrides.setdefault("epochs", 1)
    saved = checkpoint["meta"]["config"] if checkpoint else {}
    return make_recipe_config(get_recipe(model), {**saved, **overrides}), checkpoint, resume


def train(model, overrides=None, out=None, resume=None, device="cpu", dry_run=False, plots=True, echo=print,
          config_file=None, overwrite=False, distributed=False, collective_timeout=None, compiled=False):
    """Train ``model`` (a registered name) and return a summary dict (see the module docstring).

    The config is merged as defaults < the resumed run's config < ``config_file`` (JSON) <
    ``overrides`` (the command line's flags); options given on resume win over the saved ones
    (the optimizer takes the new values too), and one that cannot be honoured is refused.
    ``out`` must not hold a run already unless it is the one resumed, or ``overwrite``.
    ``dry_run`` trains on 3 batches, evaluates on 64 test examples and ``MIN_FID_SAMPLES``
    samples, and runs 1 epoch unless ``epochs`` is given.
    ``distributed``: data-parallel over the ranks of ``mpirun`` (``join_world``); ``batch_size`` is
    then per rank, and rank 0 alone writes the run folder and prints. ``compiled``: the step through
    ``scratchgen.compile`` (``--compile``).
    """
    world = join_world(model, collective_timeout, echo) if distributed else SingleProcess()
    echo = echo if world.rank == 0 else _silent
    recipe_class = get_recipe(model)
    config, checkpoint, resume = effective_config(model, overrides, resume, dry_run, config_file)
    saved = checkpoint["meta"]["config"] if checkpoint else {}
    if checkpoint:
        check_resume_changes(saved, config, checkpoint["meta"]["loader"], checkpoint["meta"].get("world_size", 1),
                             world.size)
    check_device(device)

    gpus = None
    if distributed and world.size > 1 and device.startswith("cuda"):
        gpus = _nccl_communicator(world)
        device = f"cuda:{gpus.gpu}"
    recipe, data = build_recipe(recipe_class, config, device, dry_run)
    if distributed:
        make_recipe_data_parallel(recipe, world, gpus)
    # rank 0 alone claims or creates the folder; the others only name it in messages they never print
    folder = _run_folder(model, out, resume, overwrite) if world.rank == 0 else out or "<rank 0's run folder>"
    run = Run(recipe, data, folder, dry_run=dry_run, plots=plots, echo=echo, world=world,
              compiled=compiled)
    if checkpoint:
        _fitting(lambda: run.restore(checkpoint), resume, model, recipe, checkpoint)
        if run.primary:
            run.reconcile_metrics()
        echo(f"resumed {resume} at epoch {run.epoch} (step {run.step})")
    if run.primary:
        provenance = {"data_provenance": data.provenance} if getattr(data, "provenance", None) else {}
        _write_json(os.path.join(folder, "config.json"), {"model": model, "config": _config_dict(config),
                                                          "device": str(run.recipe.device), "dry_run": dry_run,
                                                          "world_size": world.size, **provenance})
    ranks = f" on {world.size} ranks (a global batch of {world.size} x {config.batch_size})" if world.size > 1 else ""
    echo(f"training {model} in {folder}{ranks}: {_config_dict(config)}")
    completed = run.train()
    summary = {"run_folder": folder, "step": run.step, "epoch": run.epoch, "time_s": run.time_s,
               "interrupted": not completed, "signal": run.stopped_by, "rank": world.rank, "world_size": world.size}
    if completed and run.primary:
        summary["final"] = run.finish()
        echo(f"trained {model} for {run.epoch} epochs in {run.time_s:.1f} s")
        echo(json.dumps(summary["final"], indent=2))
    return summary


def join_world(model, collective_timeout=None, echo=print):
    """The ranks of ``scratchgen train MODEL --distributed``; a model without a gradient step
    (nothing to average) is refused first, and one rank says that it trains alone."""
    recipe_class = get_recipe(model)
    if not recipe_class.has_gradient_step:
        raise UsageError(f"--distributed: {model} has no gradient step to average over ranks "
                         f"({recipe_class.__name__} fits its model by counting); train it without --distributed")
    from . import distributed
    try:
        return distributed.init(timeout=collective_timeout, echo=echo)
    except ValueError as error:   # a bad $SCRATCHGEN_COLLECTIVE_TIMEOUT
        raise UsageError(str(error)) from error


def make_recipe_data_parallel(recipe, world, gpus=None):
    """The recipe's model and optimizers made data-parallel (``distributed.make_data_parallel``:
    BatchNorm synchronised, models checked equal and broadcast, gradients averaged at every step,
    over NCCL when ``gpus``), and its loader told which shard is this rank's."""
    from . import distributed
    recipe.rank, recipe.world_size = world.rank, world.size
    if world.size > 1:
        distributed.make_data_parallel(recipe.model, recipe.optimizers.values(), world, gpus)


def _nccl_communicator(world):
    """One GPU per rank, its gradients summed by NCCL (``distributed.NCCLCommunicator``)."""
    from . import distributed
    try:
        return distributed.NCCLCommunicator(world)
    except RuntimeError as error:
        raise UsageError(f"--distributed --device cuda: {error}") from error


def retrain_classifier(destination=None):
    """Train the ``mlp`` model at its defaults and store its weights as the digits classifier that
    ``scratchgen.eval`` ships (``destination`` defaults to the packaged file); returns
    (destination, test accuracy). Same seed and thread count give the same bytes."""
    destination = destination or os.fspath(weights_path())
    with tempfile.TemporaryDirectory() as folder:
        summary = train("mlp", out=folder, plots=False)
        checkpoint = serialize.load(os.path.join(folder, "last.npz"), expected_kind="mlp")
    meta = {key: checkpoint["meta"][key] for key in ("kind", "config", "step", "epoch")}
    meta["test_accuracy"] = summary["final"]["test_accuracy"]
    serialize.save({"model": checkpoint["model"], "meta": meta}, destination)
    return destination, meta["test_accuracy"]


def _run_folder(model, out, resume, overwrite):
    """Where a run writes: ``out`` (claimed: see ``claim_out_folder``), else the resumed run's
    folder, else a new ``runs/<model>-<timestamp>``."""
    resumed = os.path.dirname(resume) if resume else None
    if out is None:
        return resumed or new_run_folder(model)
    if not (resumed and os.path.abspath(out) == os.path.abspath(resumed)):
        claim_out_folder(out, overwrite)
    return out


def load_recipe(model, checkpoint, device="cpu"):
    """A recipe rebuilt from ``checkpoint`` (file or run folder) with its weights, in eval mode,
    and the data it was trained on; the checkpoint must hold ``model``."""
    recipe_class = get_recipe(model)
    path = resolve_checkpoint(checkpoint)
    state = serialize.load(path, expected_kind=model)
    serialize.check_weights(state, path)
    config = make_recipe_config(recipe_class, state["meta"]["config"])
    check_device(device)
    data = recipe_class.load_data(config)
    recipe = _build(recipe_class, config, data, device)
    _fitting(lambda: recipe.load_state_dict(state, weights_only=True), path, model, recipe, state)
    recipe.model.eval()
    return recipe, data, state["meta"]


def sample(model, checkpoint, n, out, seed=0, device="cpu", options=None):
    """Write ``n`` samples to ``out``: a grid for ``.png``, float32 (n, H, W) in [0, 1] for ``.npy``.
    ``options``: keyword arguments of the recipe's ``sample`` (its ``SampleOptions`` fields)."""
    extension = os.path.splitext(out)[1].lower()
    if extension not in (".png", ".npy"):
        raise UsageError(f"sample: expected an output file ending in .png or .npy, got {out!r}")
    recipe, _, _ = load_recipe(model, checkpoint, device)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    if not recipe.generative:
        raise UsageError(f"sample: {model} is not a generative model; it has nothing to sample")
    if not recipe.samples_are_images:
        raise UsageError(f"sample: {model} generates text; use sample_text (the CLI does without --out)")
    with forked_rng(seed, EVALUATION_STREAM):
        samples = np.asarray(_sample_with(recipe, n, options), dtype=np.float32)
    if extension == ".npy":
        np.save(out, samples)
    else:
        from .plots import save_image_grid
        save_image_grid(samples, out, title=f"{model} samples")
    return samples


def sample_text(model, checkpoint, n=1, seed=0, device="cpu", options=None, stream=None):
    """Write ``n`` texts, each a prompt and its continuation (``options``: the recipe's
    ``SampleOptions`` fields, e.g. prompt, temperature, top_k, length), to ``stream`` (stdout)
    one character at a time as they are drawn, separated by blank lines; returns them."""
    stream = stream or sys.stdout
    recipe, _, _ = load_recipe(model, checkpoint, device)
    if recipe.samples_are_images:
        raise UsageError(f"sample: {model} generates images; give --out FILE.png or FILE.npy")
    options = {**_config_dict(recipe.SampleOptions()), **(options or {})}
    texts = []
    with forked_rng(seed, EVALUATION_STREAM):
        for index in range(n):
            stream.write(("\n\n" if index else "") + options["prompt"])
            characters = []
            try:
                for character in recipe.generate(**options):
                    stream.write(character)
                    stream.flush()
                    characters.append(character)
            except ValueError as error:
                raise UsageError(str(error)) from error
            texts.append(options["prompt"] + "".join(characters))
    stream.write("\n")
    return texts


def evaluate_from_scratch(model, seed=0, device="cpu", echo=print):
    """``scratchgen eval MODEL`` without a checkpoint, for models that define it (the autoencoder
    trains and scores one model per held-out class); a usage error for the others."""
    recipe_class = get_recipe(model)
    if recipe_class.evaluate_from_scratch is None:
        raise UsageError(f"eval {model}: expected --checkpoint (a checkpoint or a run folder)")
    check_device(device)
    with tempfile.TemporaryDirectory() as folder:
        runs = itertools.count()

        def train_one(overrides):  # each run in its own folder, quietly
            return train(model, overrides, out=os.path.join(folder, str(next(runs))), device=device,
                         plots=False, echo=lambda *_: None)
        report = recipe_class.evaluate_from_scratch({"seed": seed}, train_one, echo=echo)
    return {"model": model, **report}


def evaluate(model, checkpoint, n=SAMPLES, seed=0, device="cpu", options=None):
    """The model's own evaluation plus the digits metrics of ``n`` samples (drawn with the
    recipe's sample ``options``, if any), as a dict."""
    recipe, data, meta = load_recipe(model, checkpoint, device)
    with forked_rng(seed, EVALUATION_STREAM):
        report = dict(recipe.evaluate(data))
        # text models are scored by their own evaluation (bits per character), not by samples
        scored = recipe.generative and recipe.samples_are_images
        samples = _sample_with(recipe, n, options) if scored else None
    if samples is not None:
        report.update(score_samples(recipe, data, samples))
    return {"model": model, "checkpoint": resolve_checkpoint(checkpoint), "epoch": meta.get("epoch"),
            "step": meta.get("step"), **({"sample_options": options} if options else {}), **report}


def _sample_with(recipe, n, options):
    try:
        return recipe.sample(n, **options) if options else recipe.sample(n)
    except ValueError as error:  # e.g. an option value the model refuses
        raise UsageError(f"sample: {error}") from error


def translate(checkpoint, sentences, beam_width=None, device="cpu", model="seq2seq"):
    """The ``Translation`` of each sentence by a translation model's checkpoint (file or run folder)."""
    recipe, _, _ = load_recipe(model, checkpoint, device)
    try:
        return recipe.translate(sentences, beam_width)
    except ValueError as error:
        raise UsageError(f"translate: {error}") from error
