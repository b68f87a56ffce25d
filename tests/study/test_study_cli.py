"""`scratchgen graph` and `scratchgen profile` on a registered model's real training step."""
import json
import shutil

from scratchgen import cli, nn, study


def test_graph_command_writes_the_dot_text_of_one_step(tmp_path, capsys):
    out = tmp_path / "step.dot"
    assert cli.main(["graph", "mlp", "--out", str(out), "--batch-size", "4", "--collapse-modules"]) == 0
    source = out.read_text()
    assert source.startswith("digraph autograd") and "(Linear)" in source and "LogSoftmaxOp" in source
    assert "wrote the graph" in capsys.readouterr().out


def test_graph_command_without_graphviz_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert cli.main(["graph", "mlp", "--out", str(tmp_path / "step.svg"), "--batch-size", "4"]) == 2
    said = capsys.readouterr().err
    assert "needs Graphviz's `dot` program" in said and f"--out {tmp_path / 'step'}.dot" in said
    assert "Traceback" not in said and ".save(" not in said  # a command to type, not a Python method


def test_profile_counts_each_linear_layer_once_per_step(tmp_path, capsys):
    recipe, _ = study.prepare("mlp", {"batch_size": 8})
    linears = sum(isinstance(m, nn.Linear) for m in recipe.model.modules())
    assert cli.main(["profile", "mlp", "--steps", "2", "--batch-size", "8",
                     "--json", str(tmp_path / "p.json"), "--trace", str(tmp_path / "t.json")]) == 0
    printed = capsys.readouterr().out
    assert "mlp: 2 training steps after 1 warm-up" in printed and "(outside ops)" in printed
    ops = {op["name"]: op for op in json.loads((tmp_path / "p.json").read_text())["ops"]}
    assert ops["MatMul"]["forward_calls"] == ops["MatMul"]["backward_calls"] == 2 * linears
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]


def test_compile_command_takes_the_batch_size_like_train(capsys):
    assert cli.main(["compile", "mlp", "--steps", "3", "--batch-size", "16", "--explain"]) == 0
    assert "signature: ([16, 8, 8] float32 cpu, [16] int64 cpu)" in capsys.readouterr().out


def test_profile_collects_garbage_before_its_timed_block(monkeypatch):
    """A full collection pending from the imports would otherwise be timed as part of one op."""
    events = []
    monkeypatch.setattr(study.gc, "collect", lambda: events.append("collect"))
    real_profile = study.profile

    def recording_profile(timer):
        events.append("profile")
        return real_profile(timer)

    monkeypatch.setattr(study, "profile", recording_profile)
    study.profile_steps("mlp", steps=1, warmup=0, overrides={"batch_size": 4})
    assert events == ["collect", "profile"]
