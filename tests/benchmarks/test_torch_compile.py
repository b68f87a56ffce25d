"""torch.compile rows in the suite: compiled ahead in setup with the first call timed there, only
for the models asked for (never in a quick run, only at the first thread count), a step that does not
compile reported as skipped. torch.compile runs with dynamo's ``eager`` backend on a tiny step here
(no code generation: a second, not minutes)."""
import io

import pytest

from conftest import require_torch
from scratchgen.benchmarks import models, suite
from scratchgen.benchmarks.__main__ import BASELINE_TORCH_COMPILE, options_from, parse_arguments
from scratchgen.benchmarks.report import report_markdown
from scratchgen.benchmarks.workload import Options, Precompiled, Skip, Work, Workload, compile_ahead


def test_a_precompiled_pass_reports_the_first_call_its_setup_timed():
    calls = []
    ahead = compile_ahead(lambda: calls.append("step"), calls=3)
    assert calls == ["step"] * 3 and ahead.first_call_s > 0
    jit = Precompiled(lambda: None, first_call_s=42.0, note="cache 1 hits / 0 misses")
    workload = Workload(name="jit", family="engine", description="a compiled step beside a plain one",
                        setup=lambda options: {"jit": {"forward": jit}, "plain": {"forward": lambda: None}},
                        work={"forward": Work(1, "op")})
    results = suite.run_suite(Options.for_quick_run(), in_process=True, stream=io.StringIO(), workloads=[workload])
    rows = {row["contender"]: row for row in results["runs"][0]["rows"]}
    assert rows["jit"]["first_call_s"] == 42.0 and rows["jit"]["first_call_note"] == "cache 1 hits / 0 misses"
    assert rows["plain"]["first_call_s"] < 42.0 and "first_call_note" not in rows["plain"]
    assert "| 1 thread | jit | forward | jit | 42.0 |" in report_markdown(results)


def test_torch_compile_runs_at_the_first_thread_count_only():
    seen = []
    workload = Workload(name="spy", family="engine", description="records its options",
                        setup=lambda options: seen.append(options.torch_compile) or {})
    suite.run_suite(Options.for_quick_run(torch_compile="ae"), threads=(1, 2), in_process=True,
                    stream=io.StringIO(), workloads=[workload])
    assert seen == ["ae", ""]


def test_rows_only_for_the_models_asked_for_and_never_in_a_quick_run(monkeypatch):
    require_torch()
    monkeypatch.setattr(models, "twin_function", lambda name, function: Skip("no twin in this test"))
    asked = Options(torch_compile="ae|vae")
    assert models.torch_compile_contender("ae", asked) == {"torch.compile": Skip("no twin in this test")}
    assert models.torch_compile_contender("vaegan", asked) == {}   # the whole name must match
    assert models.torch_compile_contender("ae", Options()) == {}
    assert models.torch_compile_contender("ae", Options(torch_compile="ae", peers=("numpy",))) == {}
    assert models.torch_compile_contender("ae", Options.for_quick_run(torch_compile=".*")) == {}


def test_the_command_line_and_the_baseline_choose_the_models(monkeypatch):
    monkeypatch.delenv(models.TORCH_COMPILE_SWITCH, raising=False)
    assert options_from(parse_arguments([])).torch_compile == ""
    assert options_from(parse_arguments(["--torch-compile", "ae|gpt"])).torch_compile == "ae|gpt"
    assert options_from(parse_arguments(["--quick", "--torch-compile", "ae"])).torch_compile == ""
    monkeypatch.setenv(models.TORCH_COMPILE_SWITCH, "1")
    assert options_from(parse_arguments([])).torch_compile == ".*"
    for name in ("ae", "vae", "gan", "charlstm", "gpt", "seq2seq"):  # issue #25's six
        assert models.re.fullmatch(BASELINE_TORCH_COMPILE, name)
    with pytest.raises(SystemExit) as exit_:
        parse_arguments(["--torch-compile", "(ae"])
    assert exit_.value.code == 2


def tiny_twin(torch):
    """A ``twin_training_step`` stand-in: one SGD step of a linear layer, returning the loss."""
    def make(recipe, batch):
        layer = torch.nn.Linear(3, 2)
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
        inputs = torch.ones(4, 3)

        def step():
            optimizer.zero_grad()
            loss = layer(inputs).square().mean()
            loss.backward()
            optimizer.step()
            return loss.detach()
        return step
    return make


def contender_with_backend(monkeypatch, torch, backend):
    monkeypatch.setattr(models, "twin_function", lambda name, function: tiny_twin(torch))
    monkeypatch.setattr(models, "prepared", lambda name, options: (None, (), None))
    monkeypatch.setattr(models, "TORCH_COMPILE_BACKEND", backend)
    return models.torch_compile_contender("ae", Options(torch_compile="ae"))["torch.compile"]


def test_a_compiled_twin_step_is_timed_from_its_second_call(monkeypatch):
    torch = require_torch()
    passes = contender_with_backend(monkeypatch, torch, "eager")
    step = passes["training step"]
    assert isinstance(step, Precompiled) and step.first_call_s > 0
    assert "FX graph cache 0 hits / 0 misses" in step.note   # the eager backend generates no code
    before = step.call()
    assert step.call() < before                                  # it trains: SGD lowers the loss


def test_a_step_that_does_not_compile_is_a_skip_saying_why(monkeypatch):
    torch = require_torch()

    def broken_backend(graph, example_inputs):
        raise RuntimeError("this backend compiles nothing")
    skipped = contender_with_backend(monkeypatch, torch, broken_backend)
    assert isinstance(skipped, Skip) and "torch.compile could not compile this step here" in skipped.reason
    assert "this backend compiles nothing" in skipped.reason
