"""The benchmark suite: every kernel and every model's training step against PyTorch, how far each
is from the machine's ceilings, and how time and memory scale with size.

    python -m benchmarks                          # everything at 1 thread -> bench-out/REPORT.md
    python -m benchmarks --quick                  # smoke run: toy sizes, one round (CI; < 60 s on 2 cores)
    python -m benchmarks --only attention --threads 1,2 --impl cpu --peers torch
    python -m benchmarks --list                   # the workloads, without running them
    python -m benchmarks --only model/ --compare benchmarks/baseline/results.json   # ratio changes
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks --baseline   # benchmarks/BASELINE.md
    python -m benchmarks --only 'model/train (ae|vae)$' --torch-compile 'ae|vae'   # + torch.compile rows
    scratchgen bench ...                          # the same, wherever scratchgen is installed

Writes ``results.json``, ``REPORT.md`` and the scaling plots into ``--out``. Exit status 0, or 1
when a workload failed (everything else still ran and was written), 2 on a usage error.
"""
import argparse
import os
import re
import shlex
import sys

from .compare import comparison_markdown, load_results
from .machine import SLOWING_ENVIRONMENT
from .models import TORCH_COMPILE_SWITCH
from .report import ratio_section, write_outputs
from .suite import all_workloads, run_suite, select, worker
from .workload import IMPLEMENTATIONS, PEERS, Options

BASELINE_THREADS = "1,2"
# The models whose step the baseline also times through torch.compile (at 1 thread): issue #25's six.
BASELINE_TORCH_COMPILE = "ae|vae|gan|charlstm|gpt|seq2seq"
BASELINE_HEADER = f"""# Baseline: the full benchmark suite on a 2-core machine

Regenerate it (from the repository root, on an otherwise idle machine; under 30 minutes, plus
torch.compile's compilation below):

    env -u {' -u '.join(SLOWING_ENVIRONMENT)} python -m benchmarks --baseline

That runs every workload at {BASELINE_THREADS.replace(',', ' and ')} threads into `benchmarks/baseline/`
(`results.json`, `REPORT.md`, the plots) and rewrites this file from the report, keeping the
hand-written analysis below (between its markers): re-read it against the new figures. At 1 thread
the training steps of {BASELINE_TORCH_COMPILE.replace('|', ', ')} also run through `torch.compile`
(inductor); their compilation is timed apart (the Compilation section). It is cached on disk
(`TORCHINDUCTOR_CACHE_DIR`, by default `/tmp/torchinductor_$USER`): for all of them together about
2 minutes warm and 16 minutes cold (the first run after a change of torch or of a twin), upper bounds
measured on this machine under load by running
`python -m benchmarks --only 'model/train ({BASELINE_TORCH_COMPILE})$' --torch-compile '.*'` twice.
"""
ANALYSIS_BEGIN, ANALYSIS_END = "<!-- analysis:begin -->", "<!-- analysis:end -->"


def comma_list(kind, allowed=None, convert=str):
    """An argparse type: ``a,b,c`` -> a tuple, each item converted and checked against ``allowed``."""
    def parse(text):
        try:
            items = tuple(convert(item.strip()) for item in text.split(",") if item.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind}, got {text!r}")
        wrong = [item for item in items if (allowed is not None and item not in allowed)
                 or (convert is int and item < 1)]
        if not items or wrong:
            expected = ", ".join(allowed) if allowed else ">= 1"
            raise argparse.ArgumentTypeError(f"expected {kind} ({expected}), got {text!r}")
        return items
    return parse


def regular_expression(text):
    """An argparse type: ``text`` if it compiles as a regular expression."""
    try:
        re.compile(text)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"expected a regular expression, got {text!r} ({error})")
    return text


def parse_arguments(argv, prog="python -m benchmarks"):
    summary, _, usage = __doc__.partition("\n\n")  # the first paragraph whole, never cut mid-sentence
    parser = argparse.ArgumentParser(prog=prog, description=summary,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=usage.replace("python -m benchmarks", prog))
    parser.add_argument("--only", metavar="PATTERN",
                        help="run the workloads whose family/name matches this regular expression, e.g. "
                             "'attention', 'kernel/conv', 'model/' (the ceilings always run)")
    parser.add_argument("--impl", type=comma_list("implementations", IMPLEMENTATIONS), default=Options.impls,
                        help="scratchgen kernel implementations (default: reference,cpu)")
    parser.add_argument("--peers", type=comma_list("peers", PEERS), default=PEERS,
                        help="peers to time when installed (default: torch,numpy,sklearn)")
    parser.add_argument("--threads", type=comma_list("thread counts", convert=int), default=(1,),
                        help="thread counts, a fresh process each (default: 1; e.g. 1,2)")
    parser.add_argument("--quick", action="store_true", help="toy sizes, one timed round: a smoke run")
    parser.add_argument("--out", default="bench-out", help="folder for results.json, REPORT.md and the plots "
                        "(default: bench-out)")
    parser.add_argument("--baseline", action="store_true",
                        help=f"the full suite at threads {BASELINE_THREADS} into benchmarks/baseline/, and "
                             "benchmarks/BASELINE.md rewritten from its report")
    parser.add_argument("--reference-max-length", type=int, default=Options.reference_max_length, metavar="T",
                        help="attention: skip the reference kernels above this T (default: %(default)s; "
                             "at 4096 each score matrix takes 2 GiB)")
    parser.add_argument("--budget", type=float, default=Options.budget_s, metavar="SECONDS",
                        help="timed seconds to aim for per workload and pass (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=Options.repeats,
                        help="timed rounds at most (default: %(default)s)")
    parser.add_argument("--torch-compile", type=regular_expression, metavar="MODELS",
                        default=".*" if os.environ.get(TORCH_COMPILE_SWITCH) == "1" else "",
                        help="also time these models' twin steps through torch.compile (a regular expression "
                             "of model names, e.g. 'ae|vae' or '.*'; first thread count only, never with "
                             f"--quick; {TORCH_COMPILE_SWITCH}=1 means '.*'); its compilation is the first "
                             "call: minutes per model with cold caches")
    parser.add_argument("--list", action="store_true", help="list the selected workloads and exit")
    parser.add_argument("--in-process", action="store_true", help="run every thread count in this process "
                        "(debugging; pinned by threadpoolctl alone)")
    parser.add_argument("--compare", metavar="BASELINE_JSON",
                        help="print each row's scratchgen/PyTorch ratio change against a saved results.json "
                             "(also written to compare.md in --out)")
    parser.add_argument("--compare-tolerance", type=float, default=0.05, metavar="FRACTION",
                        help="flag rows whose ratio grew by more than this (default: %(default)s)")
    parser.add_argument("--worker", nargs=2, metavar=("REQUEST", "ANSWER"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def options_from(args):
    if args.quick:
        return Options.for_quick_run(impls=args.impl, peers=args.peers,
                                     reference_max_length=args.reference_max_length)
    return Options(impls=args.impl, peers=args.peers, reference_max_length=args.reference_max_length,
                   repeats=args.repeats, budget_s=args.budget, torch_compile=args.torch_compile)


def baseline_paths(out="bench-out"):
    """benchmarks/baseline/ and BASELINE.md in a checkout; installed (no pyproject.toml beside the
    package), under ``out`` instead: nothing is ever written into site-packages."""
    here = os.path.dirname(os.path.abspath(__file__))
    if not os.path.exists(os.path.join(here, os.pardir, "pyproject.toml")):
        here = out
    return os.path.join(here, "baseline"), os.path.join(here, "BASELINE.md")


def write_baseline(markdown, path):
    """BASELINE.md: how to regenerate it, the analysis already in the file (if any), then the
    report without its title (plots in baseline/)."""
    body = markdown.split("\n", 1)[1].replace("](scaling-", "](baseline/scaling-")
    analysis = kept_analysis(path)
    with open(path, "w") as file:
        file.write(BASELINE_HEADER + "\n" + (analysis + "\n" if analysis else "") + body)


def kept_analysis(path):
    """The hand-written section of an existing BASELINE.md, markers included ('' if none)."""
    try:
        with open(path) as file:
            text = file.read()
    except FileNotFoundError:
        return ""
    start, end = text.find(ANALYSIS_BEGIN), text.find(ANALYSIS_END)
    return text[start:end + len(ANALYSIS_END)] + "\n" if 0 <= start < end else ""


def selected_or_none(workloads, pattern):
    """The workloads ``--only`` selects, or None (after saying why on stderr) when the pattern is
    not a regular expression or matches no workload: running just the ceilings would look like a
    run that measured something."""
    try:
        chosen = select(workloads, pattern)
    except re.error as error:
        print(f"benchmarks: --only expected a regular expression, got {pattern!r} ({error})", file=sys.stderr)
        return None
    if pattern and all(w.family == "ceiling" for w in chosen):
        print(f"benchmarks: --only {pattern!r} matches no workload (the names are family/name, e.g. "
              "'kernel/conv2d', 'model/train vae'; --list shows them all)", file=sys.stderr)
        return None
    return chosen


def main(argv=None, prog="python -m benchmarks"):
    args = parse_arguments(argv, prog)
    if args.worker:
        return worker(*args.worker)
    if args.baseline:
        args.quick, args.only = False, None
        args.threads = comma_list("thread counts", convert=int)(BASELINE_THREADS)
        args.torch_compile = BASELINE_TORCH_COMPILE
        args.out, baseline_file = baseline_paths(args.out)
    options = options_from(args)
    compared = None
    if args.compare:
        try:
            compared = load_results(args.compare)  # before the run: a bad path fails in a second
        except ValueError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
    chosen = selected_or_none(all_workloads(options), args.only)
    if chosen is None:
        return 2
    if args.list:
        for workload in chosen:
            print(f"{workload.key:40s} {workload.description}")
        return 0
    command = shlex.join([*prog.split(), *(sys.argv[1:] if argv is None else argv)])
    results = run_suite(options, args.threads, args.only, in_process=args.in_process, command=command)
    markdown = write_outputs(results, args.out)
    if args.baseline:
        write_baseline(markdown, baseline_file)
    print(ratio_section(results) or "no scratchgen / PyTorch pairs were timed")
    print(f"\nwrote {os.path.join(args.out, 'REPORT.md')} and results.json ({results['elapsed_s']:.0f} s)")
    if compared is not None:
        comparison = comparison_markdown(compared, results, args.compare_tolerance, old_name=args.compare)
        with open(os.path.join(args.out, "compare.md"), "w") as file:
            file.write(comparison + "\n")
        print("\n" + comparison)
    failed = any("error" in row for run in results["runs"] for row in run["rows"]) or \
        any("error" in run for run in results["runs"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
