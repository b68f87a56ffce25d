"""The training runner: everything ``scratchgen train`` does around a model's own step.

    train("vae", {"epochs": 30}, out="runs/vae")     # the function behind `scratchgen train vae --epochs 30`

A run folder (``runs/<model>-<timestamp>/`` unless ``out``) receives, as DESIGN's contract says:

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
import itertools
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time

import numpy as np

from . import serialize
from .eval.classifier import weights_path
from .eval.metrics import digits_metrics
from .models import Clock, get_recipe, make_config
from .progress import ProgressBar
from .random import get_rng_state, manual_seed, set_rng_state

RUNS_FOLDER = "runs"
CHECKPOINT = "last.npz"
SAMPLES = 1000                  # samples scored at the end of training (digits FID uses N = 1000)
DRY_RUN_BATCHES, DRY_RUN_TEST, DRY_RUN_SAMPLES = 3, 64, 64
DATA_ORDER_STREAM = 1           # the data order's generator: PCG64((seed, 1)), apart from the model's
EVALUATION_STREAM = 2           # evaluation and sampling: PCG64 seeded (seed, 2), forked


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


def _config(recipe_class, values):
    try:
        return make_config(recipe_class.Config, values)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{recipe_class.name}: {error}") from error


def _fitting(restore, path, model):
    """Run ``restore``; a checkpoint that does not fit the model built from its config (e.g. an
    option that changes the architecture was given on resume) becomes a clear error."""
    try:
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
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder, suffix = os.path.join(RUNS_FOLDER, f"{model}-{stamp}"), 1
    while os.path.exists(folder):
        suffix += 1
        folder = os.path.join(RUNS_FOLDER, f"{model}-{stamp}-{suffix}")
    return folder


def _write_json(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.write("\n")


def read_metrics(run_folder):
    """The records of a run's ``metrics.jsonl`` (empty when there is none yet)."""
    path = os.path.join(run_folder, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class StopOnInterrupt:
    """First Ctrl-C: finish the current step, checkpoint, stop. A second one aborts at once.
    (Signals can be caught only in the main thread; elsewhere Ctrl-C behaves as usual.)"""

    def __enter__(self):
        self.requested, self.previous = False, None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nCtrl-C: stopping after this step and saving {CHECKPOINT} (press again to abort)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


# ---- a training run --------------------------------------------------------------------------------
class Run:
    """One run folder: the recipe, its data and loader, and where training stands."""

    def __init__(self, recipe, data, folder, dry_run=False, plots=True, echo=print):
        self.recipe, self.data, self.folder = recipe, data, folder
        self.config = recipe.config
        self.dry_run, self.plots, self.echo = dry_run, plots, echo
        self.loader = recipe.make_loader(data, seed=(self.config.seed, DATA_ORDER_STREAM))
        self.step, self.epoch, self.time_s = 0, 0, 0.0
        self.epoch_sums, self.epoch_batches = {}, 0  # this epoch's loss sums so far (Ctrl-C may split it)
        self.saved_at = None  # where the last checkpoint was taken, in words

    @property
    def checkpoint_path(self):
        return os.path.join(self.folder, CHECKPOINT)

    # ---- state ------------------------------------------------------------------------------------
    def save(self):
        meta = {"kind": self.recipe.name, "config": _config_dict(self.config), "step": self.step,
                "epoch": self.epoch, "time_s": self.time_s, "rng_state": get_rng_state(),
                "loader": self.loader.state_dict(), "epoch_sums": self.epoch_sums,
                "epoch_batches": self.epoch_batches}
        serialize.save({**self.recipe.state_dict(), "meta": meta}, self.checkpoint_path)
        self.saved_at = self._where()

    def _where(self):
        batches = self.loader.position
        return f"end of epoch {self.epoch}" if batches == 0 else f"epoch {self.epoch} + {batches} batches"

    def restore(self, checkpoint):
        meta = checkpoint["meta"]
        self.recipe.load_state_dict(checkpoint)
        set_rng_state(meta["rng_state"])
        self.loader.load_state_dict(meta["loader"])
        self.step, self.epoch, self.time_s = meta["step"], meta["epoch"], meta["time_s"]
        self.epoch_sums, self.epoch_batches = dict(meta["epoch_sums"]), meta["epoch_batches"]
        self.saved_at = self._where()

    def log(self, record):
        with open(os.path.join(self.folder, "metrics.jsonl"), "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": self.step, "epoch": self.epoch, "time_s": round(self.time_s, 3),
                                     **record}) + "\n")

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
                    self.save()
                    self.echo(f"stopped at {self.saved_at} (step {self.step}); saved {self.checkpoint_path}; "
                              f"resume with --resume {self.folder}")
                    return False
        return True

    def _train_epoch(self, interrupt):
        recipe, batches = self.recipe, len(self.loader)
        bar = ProgressBar(self.epoch + 1, self.config.epochs, batches)
        recipe.model.train()
        for batch in self.loader:
            clock = Clock(self.step, self.epoch, self.loader.position - 1, batches)
            losses = recipe.train_step(recipe.to_tensors(batch), clock)
            self._check_finite(losses)
            self.step += 1
            for name, value in losses.items():
                self.epoch_sums[name] = self.epoch_sums.get(name, 0.0) + float(value)
            self.epoch_batches += 1
            bar.update(self.loader.position, losses, len(batch[0]))
            if interrupt.requested:
                bar.close()
                return False
        bar.close()
        return True

    def _check_finite(self, losses):
        bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
        if not bad:
            return
        where = f"epoch {self.epoch + 1}, step {self.step + 1}"
        kept = (f"the last good checkpoint {self.checkpoint_path} ({self.saved_at}) is kept"
                if self.saved_at else "no checkpoint was written (no epoch finished)")
        raise TrainingStopped(f"training stopped: non-finite loss {bad} at {where}; {kept}. "
                              "Try a lower --lr.")

    def _end_epoch(self, started):
        batches = max(self.epoch_batches, 1)
        record = {name: total / batches for name, total in self.epoch_sums.items()}
        self.epoch, self.epoch_sums, self.epoch_batches = self.epoch + 1, {}, 0
        self.recipe.model.eval()
        with forked_rng(self.config.seed, EVALUATION_STREAM):
            record.update(self.recipe.validate(self.data))
            figures = self.recipe.epoch_figures(self.data, self.epoch) if self.plots else {}
        self._draw_grids({f"{stem}_epoch{self.epoch:03d}": images for stem, images in figures.items()})
        seconds = time.perf_counter() - started
        self.time_s += seconds
        self.log(record)
        self.save()
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


def _config_dict(config):
    import dataclasses
    return dataclasses.asdict(config)


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


# ---- the three entry points ------------------------------------------------------------------------
def train(model, overrides=None, out=None, resume=None, device="cpu", dry_run=False, plots=True, echo=print):
    """Train ``model`` (a registered name) and return a summary dict (see the module docstring).

    ``overrides`` sets config fields (on ``resume``, over the checkpoint's config: e.g. more
    epochs). ``dry_run`` trains on 3 batches, evaluates on 64 test examples and 64 samples, and
    runs 1 epoch unless ``epochs`` is given.
    """
    recipe_class = get_recipe(model)
    overrides = dict(overrides or {})
    checkpoint = None
    if resume is not None:
        resume = resolve_checkpoint(resume)
        checkpoint = serialize.load(resume, expected_kind=model)
    elif dry_run:
        overrides.setdefault("epochs", 1)
    config = _config(recipe_class, {**(checkpoint["meta"]["config"] if checkpoint else {}), **overrides})
    check_device(device)
    folder = out or (os.path.dirname(resume) if checkpoint else new_run_folder(model))
    os.makedirs(folder, exist_ok=True)

    manual_seed(config.seed)
    data = recipe_class.load_data(config)
    if dry_run:
        data = data.subset(train=DRY_RUN_BATCHES * config.batch_size, test=DRY_RUN_TEST)
    recipe = _build(recipe_class, config, data, device)
    recipe.dry_run = dry_run
    run = Run(recipe, data, folder, dry_run=dry_run, plots=plots, echo=echo)
    if checkpoint:
        _fitting(lambda: run.restore(checkpoint), resume, model)
        echo(f"resumed {resume} at epoch {run.epoch} (step {run.step})")
    provenance = {"data_provenance": data.provenance} if getattr(data, "provenance", None) else {}
    _write_json(os.path.join(folder, "config.json"), {"model": model, "config": _config_dict(config),
                                                      "device": str(run.recipe.device), "dry_run": dry_run,
                                                      **provenance})
    echo(f"training {model} in {folder}: {_config_dict(config)}")
    completed = run.train()
    summary = {"run_folder": folder, "step": run.step, "epoch": run.epoch, "time_s": run.time_s,
               "interrupted": not completed}
    if completed:
        summary["final"] = run.finish()
        echo(f"trained {model} for {run.epoch} epochs in {run.time_s:.1f} s")
        echo(json.dumps(summary["final"], indent=2))
    return summary


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


def load_recipe(model, checkpoint, device="cpu"):
    """A recipe rebuilt from ``checkpoint`` (file or run folder) with its weights, in eval mode,
    and the data it was trained on; the checkpoint must hold ``model``."""
    recipe_class = get_recipe(model)
    path = resolve_checkpoint(checkpoint)
    state = serialize.load(path, expected_kind=model)
    config = _config(recipe_class, state["meta"]["config"])
    check_device(device)
    data = recipe_class.load_data(config)
    recipe = _build(recipe_class, config, data, device)
    _fitting(lambda: recipe.load_state_dict(state, weights_only=True), path, model)
    recipe.model.eval()
    return recipe, data, state["meta"]


def sample(model, checkpoint, n, out, seed=0, device="cpu", options=None):
    """Write ``n`` samples to ``out``: a grid for ``.png``, float32 (n, H, W) in [0, 1] for ``.npy``.
    ``options``: keyword arguments of the recipe's ``sample`` (its ``SampleOptions`` fields)."""
    extension = os.path.splitext(out)[1].lower()
    if extension not in (".png", ".npy"):
        raise UsageError(f"sample: expected an output file ending in .png or .npy, got {out!r}")
    recipe, _, _ = load_recipe(model, checkpoint, device)
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
