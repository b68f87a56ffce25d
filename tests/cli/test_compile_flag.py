"""`--compile` and `scratchgen compile`: the same metrics records as eager at one seed, and usage errors
(exit 2, no traceback) where a step cannot be compiled."""
import json

import pytest

from scratchgen import cli, runner, study


def _records(folder):
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in record.items() if k != "time_s"} for record in records]


@pytest.mark.parametrize("model, options", [
    ("mlp", ["--epochs", "2"]),
    # a learning rate falling every step, the LSTM state carried between batches and zeroed each epoch
    ("charlstm", ["--epochs", "2", "--hidden", "32", "--embedding-dim", "16", "--bptt", "16"]),
])
def test_compiled_training_writes_the_eager_metrics(model, options, tmp_path):
    for name, flags in (("eager", []), ("compiled", ["--compile"])):
        arguments = ["train", model, "--dry-run", *options, "--out", str(tmp_path / name), *flags]
        assert cli.main(arguments) == 0
    assert _records(tmp_path / "compiled") == _records(tmp_path / "eager")


@pytest.mark.parametrize("args, reason", [
    (["train", "ngram", "--dry-run", "--compile"], "ngram has no gradient step"),
    (["compile", "ngram", "--steps", "3"], "numpy() reads a traced tensor"),
])
def test_a_step_that_cannot_be_compiled_is_a_usage_error(args, reason, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    error = capsys.readouterr().err
    assert reason in error and "Traceback" not in error


def test_compile_explain_prints_the_program(capsys):
    assert cli.main(["compile", "mlp", "--steps", "3", "--explain"]) == 0
    shown = capsys.readouterr().out
    for part in ("trusted", "MatMul", "accumulate_grad", "Optimizer.step", "peak", "{'loss': item(%"):
        assert part in shown, part


def test_profile_compile_times_the_replayed_ops(capsys):
    assert cli.main(["profile", "mlp", "--compile", "--steps", "3"]) == 0
    shown = capsys.readouterr().out
    assert "3 replays of the compiled training step" in shown
    for row in ("forward MatMul", "host Optimizer.step", "grad accumulate_grad", "fused "):
        assert row in shown, row


def test_a_step_that_reads_the_clock_is_refused_when_compiled():
    """The clock is read in ``before_step``: a value the step took from it would be frozen on replay."""
    recipe, batches = study.prepare("mlp", {}, dry_run=True)
    eager_step = recipe.train_step
    recipe.train_step = lambda batch, clock: eager_step(batch, clock) if clock.epoch < 5 else {}
    compiled = runner.compiled_step(recipe)
    batch, clock = next(batches)
    with pytest.raises(runner.UsageError, match=r"reads clock\.epoch.*before_step"):
        compiled(batch, clock)
