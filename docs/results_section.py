"""The pieces shared by the docs scripts that train models at their defaults and write a results
section into a page (``docs/likelihood.py``, ``docs/language_models.py``): a run's final and
last-epoch records, a trained model's parameter count, and replacing the page's text between
its two ``results`` markers (so the prose around the table is never touched)."""
import pathlib

from scratchgen import runner

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def final_and_last_epoch(run):
    """(the run's final record, its last per-epoch record) from ``metrics.jsonl``."""
    records = runner.read_metrics(run)
    final = [record for record in records if record.get("final")][-1]
    last_epoch = [record for record in records if not record.get("final")][-1]
    return final, last_epoch


def parameter_count(model, run):
    recipe, _, _ = runner.load_recipe(model, run)
    return sum(int(p.data.size) for p in recipe.model.parameters())


def write_results(document, body):
    """Replace what lies between ``BEGIN`` and ``END`` in the page at ``document`` with ``body``."""
    document = pathlib.Path(document)
    text = document.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    document.write_text(text[:start] + f"{BEGIN}\n{body}\n{END}" + text[end:], encoding="utf-8")
