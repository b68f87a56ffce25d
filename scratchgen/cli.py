"""The ``scratchgen`` command.

    scratchgen train MODEL [--epochs --batch-size --lr --seed --data --image-size] [model options]
                           [--device cpu|cuda] [--out DIR] [--resume RUN_OR_CHECKPOINT] [--dry-run]
    scratchgen sample MODEL --checkpoint PATH --n N --out FILE.png|FILE.npy [--seed S] [--device D]
                            [sample options, e.g. diffusion: --sampler --steps --eta --class --guidance]
    scratchgen sample MODEL --checkpoint PATH [--prompt "def " --temperature T --top-k K --length L]
                                                        a text model's continuation, streamed to stdout
    scratchgen eval samples FILE.npy                    digits metrics of any sample file, as JSON
    scratchgen eval MODEL --checkpoint PATH [--n N] [sample options]
                                                        the model's evaluation + digits metrics, as JSON
    scratchgen eval ae                                  the ROC-AUC of every held-out digit (trains 10 models)
    scratchgen translate --checkpoint PATH [SENTENCE ...] [--beam-width K] [--attention-map FILE.png]
                                                        number words -> digits (seq2seq), one per line;
                                                        reads stdin's lines when no sentence is given
    scratchgen models                                   the registered models
    scratchgen retrain-classifier [--out FILE.npz]      retrain the digits metrics' classifier (mlp)
    scratchgen graph MODEL [--out step.svg] [--collapse-modules [DEPTH]]
                                                        the autograd graph of one training step
    scratchgen profile MODEL [--steps 20] [--json PATH] [--trace PATH] [--compile]
                                                        where a training step spends its time, op by op
    scratchgen compile MODEL [--steps 3] [--explain]    the training step captured by scratchgen.compile
    scratchgen bench [--quick] [--only PATTERN] [--threads 1,2] [--out DIR] [...]
                                                        the benchmark suite against PyTorch
                                                        (python -m benchmarks; scratchgen bench --help)

Each model's options are the fields of its config dataclass (``--latent-dim`` sets
``latent_dim``), each declared with ``option(default, help)``, its help text the flag's help:
``scratchgen train vae --help``.
Likewise a recipe's ``SampleOptions`` fields are flags of ``sample MODEL`` and ``eval MODEL`` (a
trailing underscore is dropped: ``class_`` is ``--class``).
Exit status: see ``EXIT_STATUS`` (also shown by ``scratchgen --help``).
"""
import argparse
import dataclasses
import inspect
import json
import os
import shutil
import signal
import sys
import typing

import numpy as np

from . import distributed, runner
from ._version import __version__
from .data import IDXError
from .distributed import CollectiveTimeout, ModelMismatch
from .memory import keep_freed_memory
from .eval.metrics import digits_metrics
from .models import config_fields, config_help, get_recipe, recipe_names
from .serialize import CheckpointError

EXIT_STATUS = """exit status:
  0    done
  1    training stopped: a non-finite loss or weights (the last good checkpoint is kept), or with
       --distributed a rank that stopped answering (collective timeout)
  2    usage or input error (bad option value, unreadable file, unusable checkpoint); message on stderr
  130  stopped by Ctrl-C (SIGINT) at a step boundary, checkpoint saved: continue with --resume
  141  the output pipe was closed (e.g. | head)
  143  stopped by SIGTERM, as Ctrl-C"""
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


# ---- options from config dataclasses ---------------------------------------------------------------
def add_config_options(parser, config_class, title, unused=()):
    """One ``--field-name`` option per config field (in a help group called ``title``) but the
    ``unused`` ones; only options given on the command line reach the namespace (default
    SUPPRESS), so they can override a resumed run's config."""
    helps = config_help(config_class)
    group = parser.add_argument_group(title)
    for name, kind, default in config_fields(config_class):
        if name in unused:
            continue
        flag = "--" + name.rstrip("_").replace("_", "-")  # class_ (a Python keyword) -> --class
        # argparse %-formats help strings: a literal % must be doubled
        help_text = f"{helps[name]} (default: {default})".strip().replace("%", "%%")
        if typing.get_origin(kind) is typing.Literal:
            choices = typing.get_args(kind)
            group.add_argument(flag, dest=name, type=type(choices[0]), choices=choices, help=help_text)
        elif kind is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(flag, dest=name, type=kind, metavar=kind.__name__.upper(), help=help_text)


def add_sample_options(parser, recipe):
    """The recipe's ``SampleOptions`` fields as flags (``sample MODEL`` and ``eval MODEL``)."""
    if recipe.SampleOptions is not None:
        add_config_options(parser, recipe.SampleOptions, "sampling options")


def sample_options(args, model):
    """{field: value} of the sample options given on the command line; the recipe's own
    defaults stand for the rest."""
    options = get_recipe(model).SampleOptions
    fields = config_fields(options) if options is not None else []
    return {name: getattr(args, name) for name, _, _ in fields if hasattr(args, name)}


def _summary(recipe):
    """The opening paragraph of the model's module docstring, after its ``scratchgen train MODEL:``."""
    doc = (inspect.getmodule(recipe).__doc__ or "").strip()
    if not doc:
        return recipe.name
    return " ".join(doc.split("\n\n")[0].split()).split(": ", 1)[-1].replace("``", "")


def build_parser():
    parser = argparse.ArgumentParser(prog="scratchgen", description="Train, sample and evaluate generative "
                                     "models built on scratchgen's engine.", epilog=EXIT_STATUS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"scratchgen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model (writes runs/MODEL-<timestamp>/)")
    train_models = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name in recipe_names():
        recipe = get_recipe(name)
        # no abbreviations: `--data` must not quietly mean seq2seq's `--data-seed` (it has no --data)
        model_parser = train_models.add_parser(name, help=_summary(recipe), description=_summary(recipe),
                                               argument_default=argparse.SUPPRESS, allow_abbrev=False)
        add_config_options(model_parser, recipe.Config, f"{name} model options", recipe.unused_options)
        run = model_parser.add_argument_group("run options")
        run.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
        run.add_argument("--out", default=None, help="run folder (default: runs/MODEL-<timestamp>)")
        run.add_argument("--resume", default=None, metavar="PATH",
                         help="continue a run: its folder or a checkpoint; given options override its config")
        add_run_safety_options(run)
        add_distributed_options(run)
        run.add_argument("--dry-run", action="store_true", default=False,
                         help="a smoke test: 3 batches, 64 test examples and samples, "
                              "1 epoch unless --epochs")
        run.add_argument("--compile", action="store_true", default=False, dest="compiled",
                         help="run the training step through scratchgen.compile (capture once, replay); "
                              "the same metrics as without it (docs/compile.md)")

    sample = commands.add_parser("sample", help="draw samples from a checkpoint into a .png grid or .npy")
    sample_models = sample.add_subparsers(dest="model", required=True, metavar="MODEL")
    for name in recipe_names():
        model_parser = sample_models.add_parser(name, help=f"sample a {name} checkpoint",
                                                argument_default=argparse.SUPPRESS)
        model_parser.add_argument("--checkpoint", default=None,
                                  help=f"a checkpoint or a run folder (default: the newest {name} run under runs/)")
        images = get_recipe(name).samples_are_images   # text models stream to stdout instead
        model_parser.add_argument("--n", type=int, default=100 if images else 1,
                                  help=f"number of samples (default: {100 if images else 1})")
        if images:
            model_parser.add_argument("--out", required=True,
                                      help="FILE.png (a grid) or FILE.npy (float32 (N, H, W) in [0, 1])")
        model_parser.add_argument("--seed", type=int, default=0)
        model_parser.add_argument("--device", default="cpu")
        add_sample_options(model_parser, get_recipe(name))

    evaluate = commands.add_parser("eval", help="score a sample file or a checkpoint (prints JSON)")
    targets = evaluate.add_subparsers(dest="target", required=True, metavar="samples|MODEL")
    samples = targets.add_parser("samples", help="digits metrics of a .npy of samples")
    samples.add_argument("file", help="float32 (N, 8, 8) (or (N, 16, 16)) in [0, 1]")
    for name in recipe_names():
        target = targets.add_parser(name, help=f"evaluate a {name} checkpoint",
                                    argument_default=argparse.SUPPRESS)
        from_scratch = get_recipe(name).evaluate_from_scratch is not None  # e.g. `eval ae`: trains its own
        target.add_argument("--checkpoint", required=not from_scratch, default=None,
                            help="a checkpoint or a run folder" + (" (default: train and score afresh)"
                                                                   if from_scratch else ""))
        target.add_argument("--n", type=int, default=runner.SAMPLES, help="samples to score (default: 1000)")
        target.add_argument("--seed", type=int, default=0)
        target.add_argument("--device", default="cpu")
        add_sample_options(target, get_recipe(name))

    translate = commands.add_parser("translate", help="number words to digits with a seq2seq checkpoint")
    translate.add_argument("sentences", nargs="*", metavar="SENTENCE",
                           help='e.g. "forty two thousand seven" (default: each line of stdin)')
    translate.add_argument("--checkpoint", required=True, help="a seq2seq checkpoint or run folder")
    translate.add_argument("--beam-width", type=int, default=None,
                           help="1: greedy decoding (default: the model's beam_width)")
    translate.add_argument("--attention-map", default=None, metavar="FILE.png",
                           help="also draw each sentence's attention weights into FILE.png")
    translate.add_argument("--device", default="cpu")

    commands.add_parser("models", help="list the registered models")
    retrain = commands.add_parser("retrain-classifier", help="retrain the digits classifier behind the "
                                  "digits metrics (the mlp model at its defaults)")
    retrain.add_argument("--out", default=None, metavar="FILE.npz",
                         help="where to write it (default: the packaged digits_classifier.npz)")
    commands.add_parser("bench", add_help=False,  # every option goes to the suite's own parser
                        help="time kernels and training steps against PyTorch (scratchgen bench --help)")
    add_study_commands(commands)
    return parser


def add_run_safety_options(group):
    """``--print-config``, ``--config FILE`` and ``--overwrite`` of ``train MODEL``."""
    group.add_argument("--print-config", action="store_true", default=False,
                       help="print the config the run would use (after --resume, --config and options) as "
                            "JSON, loadable with --config, and exit")
    group.add_argument("--config", default=None, metavar="FILE.json", dest="config_file",
                       help="config fields as a JSON object (or a run's config.json); precedence: defaults < "
                            "the resumed run's config < this file < options on the command line")
    group.add_argument("--overwrite", action="store_true", default=False,
                       help="replace the run that --out already holds (default: refuse)")


def add_distributed_options(group):
    """``--distributed`` and ``--collective-timeout`` of ``train MODEL`` (docs/distributed.md)."""
    group.add_argument("--distributed", action="store_true", default=False,
                       help="data-parallel over the ranks of mpirun (mpirun -n 2 scratchgen train MODEL "
                            "--distributed): the batch size is per rank, rank 0 alone writes and prints")
    group.add_argument("--collective-timeout", type=float, default=None, metavar="SECONDS",
                       help="with --distributed: end the job when a collective waits longer than this "
                            "(a dead or stalled rank) (default: $SCRATCHGEN_COLLECTIVE_TIMEOUT or 300)")


def add_study_commands(commands):
    """``graph`` and ``profile``: look inside one training step (``scratchgen.study``)."""
    graph = commands.add_parser("graph", help="draw the autograd graph of one training step",
                                description="Draw the autograd graph of one training step of MODEL: ops with "
                                "output shapes and saved bytes, parameters by name. .svg/.png/.pdf need "
                                "Graphviz's dot; .dot writes the DOT text.")
    graph.add_argument("model", choices=recipe_names(), metavar="MODEL")
    graph.add_argument("--out", default="step.svg", help="FILE.svg, .png, .pdf or .dot (default: step.svg)")
    graph.add_argument("--collapse-modules", type=int, nargs="?", const=1, default=0, metavar="DEPTH",
                       help="one box per module at DEPTH of the module tree (default when given: 1)")
    profile = commands.add_parser("profile", help="time every op of a few training steps",
                                  description="Run MODEL's training step under scratchgen.profile() and "
                                  "print where the time goes, op by op (forward, backward, FLOPs, bytes, "
                                  "kernels).")
    profile.add_argument("model", choices=recipe_names(), metavar="MODEL")
    profile.add_argument("--steps", type=int, default=20, help="profiled steps (default: 20)")
    profile.add_argument("--warmup", type=int, default=1, help="unprofiled steps first, for JIT compilation "
                         "(default: 1)")
    profile.add_argument("--sort", default="seconds", help="the column to sort by (default: seconds)",
                         choices=["seconds", "forward_seconds", "backward_seconds", "flops", "nbytes",
                                  "forward_calls"])
    profile.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON")
    profile.add_argument("--trace", default=None, metavar="PATH",
                         help="also write a Chrome trace (open in chrome://tracing or ui.perfetto.dev)")
    profile.add_argument("--compile", action="store_true", default=False, dest="compiled",
                         help="profile the replay of the step compiled by scratchgen.compile: time "
                              "per op of the program (docs/compile.md)")
    compiled = commands.add_parser("compile", help="capture one training step with scratchgen.compile",
                                   description="Run MODEL's training step through scratchgen.compile for a "
                                   "few steps (the first capture, the rest replay) and, with --explain, "
                                   "print the captured program, its memory plan and what it returns "
                                   "(docs/compile.md).")
    compiled.add_argument("model", choices=recipe_names(), metavar="MODEL")
    compiled.add_argument("--steps", type=int, default=3, help="steps to run (default: 3)")
    compiled.add_argument("--explain", action="store_true", default=False, help="print the captured program")
    for parser in (graph, profile, compiled):
        # absent unless given, like train's config options, so _config_overrides reads both alike
        parser.add_argument("--batch-size", type=int, default=argparse.SUPPRESS,
                            help="override the model's batch size")
        parser.add_argument("--device", default="cpu")


# ---- commands --------------------------------------------------------------------------------------
def _config_overrides(args):
    """The config fields given on the command line (the others are absent from ``args``)."""
    return {name: getattr(args, name) for name, _, _ in config_fields(get_recipe(args.model).Config)
            if hasattr(args, name)}


def _print_config(args):
    config, _, _ = runner.effective_config(args.model, _config_overrides(args), args.resume, args.dry_run,
                                           args.config_file)
    print(json.dumps({"model": args.model, "config": dataclasses.asdict(config)}, indent=2))
    return 0


def _train(args):
    if args.print_config:
        return _print_config(args)
    if args.collective_timeout is not None and not args.collective_timeout > 0:
        raise runner.UsageError(f"--collective-timeout: expected a number of seconds > 0, "
                                f"got {args.collective_timeout}")
    summary = runner.train(args.model, _config_overrides(args), out=args.out, resume=args.resume, device=args.device,
                           dry_run=args.dry_run, config_file=args.config_file, overwrite=args.overwrite,
                           distributed=args.distributed, collective_timeout=args.collective_timeout,
                           compiled=args.compiled)
    return EXIT_BY_SIGNAL.get(summary["signal"], 130) if summary["interrupted"] else 0


def _sample(args):
    if args.checkpoint is None:
        args.checkpoint = runner.newest_run(args.model)
        print(f"sampling the newest {args.model} run: {args.checkpoint}", file=sys.stderr)
    if not get_recipe(args.model).samples_are_images:
        runner.sample_text(args.model, args.checkpoint, args.n, seed=args.seed, device=args.device,
                           options=sample_options(args, args.model))
        return 0
    samples = runner.sample(args.model, args.checkpoint, args.n, args.out, seed=args.seed, device=args.device,
                            options=sample_options(args, args.model))
    print(f"wrote {len(samples)} samples of shape {samples.shape[1:]} to {args.out}")
    return 0


def _eval(args):
    if args.target == "samples":
        try:
            samples = np.load(args.file, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise runner.UsageError(f"eval samples: cannot read {args.file} as a .npy array ({error})") \
                from error
        try:
            report = {"file": args.file, **digits_metrics(samples)}
        except ValueError as error:
            raise runner.UsageError(f"eval samples: {args.file}: {error}") from error
    elif args.checkpoint is None:
        report = runner.evaluate_from_scratch(args.target, seed=args.seed, device=args.device)
    else:
        report = runner.evaluate(args.target, args.checkpoint, n=args.n, seed=args.seed, device=args.device,
                                 options=sample_options(args, args.target))
    print(json.dumps(report, indent=2))
    return 0


def _translate(args):
    sentences = args.sentences or [line.strip() for line in sys.stdin]
    translations = runner.translate(args.checkpoint, sentences, args.beam_width, args.device)
    for translation in translations:
        print(translation.digits)
    if args.attention_map:
        from .plots import save_attention_maps
        shown = [t for t in translations if t.words]
        if shown:
            save_attention_maps([(t.attention, t.tokens, t.words) for t in shown], args.attention_map)
    return 0


def _models(args):
    for name in recipe_names():
        print(f"{name:10s} {_summary(get_recipe(name))}")
    return 0


def _retrain_classifier(args):
    destination, accuracy = runner.retrain_classifier(args.out)
    print(f"wrote {destination} (test accuracy {accuracy:.4f})")
    return 0


def _graph(args):
    from . import study
    if not args.out.endswith(".dot") and shutil.which("dot") is None:
        raise runner.UsageError(f"graph: drawing {args.out} needs Graphviz's `dot` program, which is not on PATH; "
                                f"write the DOT text instead with --out {os.path.splitext(args.out)[0]}.dot (no "
                                "Graphviz needed: open it in any DOT viewer), or install Graphviz "
                                "(apt install graphviz, brew install graphviz)")
    drawing = study.graph_step(args.model, args.collapse_modules, _config_overrides(args), args.device)
    try:
        if args.out.endswith(".dot"):
            drawing.save(args.out)
        else:
            drawing.render(args.out)
    except (RuntimeError, ValueError) as error:
        raise runner.UsageError(str(error)) from error
    print(f"wrote the graph of one {args.model} training step to {args.out}")
    return 0


def _profile(args):
    from . import study
    if args.compiled:
        return _profile_compiled(args)
    profiler = study.profile_steps(args.model, args.steps, args.warmup, _config_overrides(args), args.device)
    print(f"{args.model}: {args.steps} training steps after {args.warmup} warm-up, "
          f"{profiler.total_seconds / args.steps * 1e3:.1f} ms per step")
    print(profiler.table(sort_by=args.sort))
    if args.json:
        profiler.save(args.json)
    if args.trace:
        profiler.chrome_trace(args.trace)
    return 0


def _compile(args):
    from . import study
    step = study.compile_steps(args.model, args.steps, _config_overrides(args), args.device)
    counts = f"{args.model}: {step.captures} captures, {step.replays} replays; --explain prints the program"
    print(step.explain() if args.explain else counts)
    return 0


def _profile_compiled(args):
    from . import study
    seconds, rows = study.profile_compiled(args.model, args.steps, _config_overrides(args), args.device)
    print(f"{args.model}: {args.steps} replays of the compiled training step, "
          f"{seconds * 1e3:.2f} ms per step")
    print(f"{'op':40s} {'calls':>7s} {'ms':>10s}")
    for label, calls, total in rows:
        print(f"{label[:40]:40s} {calls:7d} {total * 1e3:10.3f}")
    return 0


def _bench(args):
    from .benchmarks.__main__ import main as benchmarks_main
    return benchmarks_main(args.forwarded, prog="scratchgen bench")


COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "models": _models, "graph": _graph,
            "retrain-classifier": _retrain_classifier,
            "profile": _profile, "translate": _translate, "bench": _bench, "compile": _compile}


def main(argv=None):
    parser = build_parser()
    args, forwarded = parser.parse_known_args(argv)
    if forwarded and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(forwarded)}")
    args.forwarded = forwarded
    keep_freed_memory()
    try:
        return COMMANDS[args.command](args)
    except runner.TrainingStopped as error:
        print(f"scratchgen: {error}", file=sys.stderr)
        return 1
    except ModelMismatch as error:  # every rank knows; rank 0 says it, and all end with the same status
        if distributed.rank() == 0:
            print(f"scratchgen: error: --distributed: {error}", file=sys.stderr)
        return 2
    except CollectiveTimeout as error:  # other ranks may be blocked in the collective: end them all
        print(f"scratchgen: error: --distributed: {error}; ending the job", file=sys.stderr, flush=True)
        distributed.world().abort(1)
        return 1
    except (runner.UsageError, CheckpointError, IDXError) as error:
        print(f"scratchgen: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _closed_pipe()
    except OSError as error:  # a file the user named cannot be read or written
        print(f"scratchgen: error: {error.strerror}: {error.filename}" if error.filename else
              f"scratchgen: error: {error}", file=sys.stderr)
        return 2


def _closed_pipe():
    """The reader of stdout went away (``scratchgen models | head -1``): stop quietly. stdout is
    pointed at /dev/null so that Python's own flush at exit does not complain either."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
