"""``python -m benchmarks.ab``: interleaved thread-CPU-time A/B runs (tiny repeats: a smoke test of the
command and of the ratio bookkeeping, not a timing)."""
import pytest
from conftest import require_torch

from scratchgen.benchmarks import ab


def test_ratios_alternate_the_order_and_compare_b_to_a():
    calls = []
    ratios = ab.interleaved_ratios(lambda: calls.append("a"), lambda: calls.append("b"), repeats=4, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"] and len(ratios) == 4


def test_conv_and_optim_comparisons_run(capsys, monkeypatch):
    monkeypatch.setattr(ab, "CONV_SHAPES", [((2, 64, 4, 4), (8, 64, 3, 3), 1, 1)])
    monkeypatch.setattr(ab, "ACTIVATION_SHAPES", [("gelu", (3, 5)), ("gelu_tanh", (4,)), ("silu", (2, 3))])
    assert ab.main(["conv", "--repeats", "2"]) == 0
    assert ab.main(["optim", "mlp", "--repeats", "2"]) == 0
    assert ab.main(["step", "mlp", "--repeats", "2"]) == 0
    assert ab.main(["elementwise", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "[channels-last] forward: channels-last/per-sample median" in out
    assert "[channels-last] backward_weight: channels-last/per-sample median" in out
    assert "sigmoid_float32/expit median" in out and "add_rows/np.add.at median" in out
    for line in ("gelu (3, 5) float32 forward: op/composition median",
                 "gelu_tanh (4,) float32 forward+backward",
                 "silu (2, 3) float32 forward+backward: op/composition median"):
        assert line in out
    assert "fused/per-parameter optimizer step" in out and "mlp: fused/per-parameter training step" in out
    with pytest.raises(SystemExit):
        ab.main(["optim"])


def test_model_conv_comparison_records_each_convolution_once(capsys):
    require_torch()
    calls = ab.model_conv_calls("diffusion")
    head = calls[((64, 32, 8, 8), (1, 32, 3, 3), (1, 1), (1, 1), (1, 1), 1)]
    assert head == {"conv2d_forward": 1, "conv2d_backward_data": 1, "conv2d_backward_weight": 1}
    # the head's flipped data gradient runs a forward of the stem's shape inside its own pass: not counted
    stem = calls[((64, 1, 8, 8), (32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1)]
    assert stem == {"conv2d_forward": 1, "conv2d_backward_weight": 1}
    assert ab.main(["conv", "--model", "gan", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "gan: each convolution of one training step" in out and "per step: ours" in out


def test_lstm_comparison_runs(capsys):
    require_torch()
    assert ab.main(["lstm", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("kernel[cpu] forward / torch forward", "our forward GEMMs / torch forward",
                  "our forward GEMMs / the same through torch.matmul"):
        assert f"{label} median" in out


def test_revisions_alternate_the_processes_and_report_b_over_a(monkeypatch, capsys):
    from scratchgen.benchmarks import revisions
    started = []

    def fake_time(path, pattern, batches, batch_seconds, contender=None):
        assert contender == "scratchgen compiled[cpu]"   # --contender reaches each timing process
        started.append(path)
        return {"engine/x forward": 2.0 if path is None else 1.0}
    monkeypatch.setattr(revisions, "time_revision", fake_time)
    ratios = revisions.compare_revisions("HEAD", revisions.WORKTREE, "engine/", rounds=2,
                                         contender="scratchgen compiled[cpu]")
    exported = started[0]
    assert exported is not None and started == [exported, None, None, exported]  # A B, then B A
    assert ratios == {"engine/x forward": [2.0, 2.0]}
    assert "engine/x forward: 2.000" in capsys.readouterr().out


def test_an_exported_revision_is_laid_out_as_installed_and_times_its_workloads(tmp_path):
    from scratchgen.benchmarks import revisions
    path = revisions.export("HEAD", str(tmp_path))
    for part in ("kernels/conv/__init__.py", "benchmarks/suite.py", "autograd.py"):
        assert (tmp_path / "scratchgen" / part).is_file()
    times = revisions.time_revision(path, "engine/one tiny op", batches=1, batch_seconds=0.0)  # checks its import
    assert set(times) == {"engine/one tiny op forward", "engine/one tiny op forward+backward"}
    assert all(seconds > 0 for seconds in times.values())


def test_norms_comparison_runs(capsys, monkeypatch):
    monkeypatch.setattr(ab, "NORM_SHAPES", [(2, 3, 5)])
    monkeypatch.setattr(ab, "GROUP_NORM_SHAPES", [(2, 16, 3, 3)])
    assert ab.main(["norms", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "norm (2, 3, 5) float32 forward: cpu/reference median" in out
    assert "norm (2, 3, 5) float32 backward: cpu/reference median" in out
    assert "group_norm (2, 16, 3, 3) float32 forward+backward: op/composition median" in out
