"""Train the three language models at their defaults and write their comparison into
docs/language_models.md (between the ``results`` markers): ``python docs/language_models.py``.

    python docs/language_models.py                   # trains ngram, charlstm, gpt into runs/lm-*/ (~10 min)
    python docs/language_models.py --reuse           # only re-reads those runs and redraws the samples

Each model trains exactly as ``scratchgen train MODEL --out runs/lm-MODEL`` would (one thread
recommended: ``OMP_NUM_THREADS=1``); the samples are ``scratchgen sample MODEL --checkpoint
runs/lm-MODEL --prompt PROMPT --temperature T --top-k K --length L --seed 0``.
"""
import argparse
import io
import json
import os
import pathlib

from scratchgen import runner
from scratchgen.memory import keep_freed_memory
from results_section import final_and_last_epoch, parameter_count, write_results

MODELS = ("ngram", "charlstm", "gpt")
DOCUMENT = pathlib.Path(__file__).resolve().parent / "language_models.md"
SAMPLES = ({"prompt": "def ", "temperature": 0.8, "top_k": 20, "length": 400},
           {"prompt": "class ", "temperature": 1.0, "top_k": 0, "length": 400})


def train_all(folder, reuse):
    """{model: (final metrics, run record)}, training the models whose run is missing (or all)."""
    results = {}
    for model in MODELS:
        run = os.path.join(folder, f"lm-{model}")
        if not (reuse and os.path.exists(os.path.join(run, "last.npz"))):
            runner.train(model, out=run)
        results[model] = (*final_and_last_epoch(run), run)
    return results


def table(results):
    lines = ["| model | validation bits per character | parameters | training steps | training time |",
             "| --- | --- | --- | --- | --- |"]
    for model, (final, last, run) in results.items():
        size = "counts of 5 orders" if model == "ngram" else f"{parameter_count(model, run):,}"
        lines.append(f"| `{model}` | **{final['valid_bpc']:.3f}** | {size} | {last['step']:,} | "
                     f"{last['time_s']:.0f} s |")
    return "\n".join(lines)


def samples(results):
    blocks = []
    for options in SAMPLES:
        flags = (f"--prompt {json.dumps(options['prompt'])} --temperature {options['temperature']} "
                 f"--top-k {options['top_k']} --length {options['length']} --seed 0")
        blocks.append(f"Sampled with `scratchgen sample MODEL --checkpoint runs/lm-MODEL {flags}`:")
        for model, (_, _, run) in results.items():
            text = runner.sample_text(model, run, seed=0, options=options, stream=io.StringIO())[0]
            blocks.append(f"`{model}`:\n\n```text\n{text.rstrip()}\n```")
    return "\n\n".join(blocks)


def main():
    keep_freed_memory()  # as the command line does (scratchgen/memory.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs", help="where the run folders go (default: runs)")
    parser.add_argument("--reuse", action="store_true", help="keep runs that already have a checkpoint")
    args = parser.parse_args()
    results = train_all(args.runs, args.reuse)
    write_results(DOCUMENT, f"{table(results)}\n\n{samples(results)}")
    print(f"wrote the results of {', '.join(MODELS)} into {DOCUMENT}")


if __name__ == "__main__":
    main()
