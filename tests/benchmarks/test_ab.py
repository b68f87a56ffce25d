"""``python -m benchmarks.ab``: interleaved thread-CPU-time A/B runs (tiny repeats: a smoke test of the
command and of the ratio bookkeeping, not a timing)."""
import pytest

from scratchgen.benchmarks import ab


def test_ratios_alternate_the_order_and_compare_b_to_a():
    calls = []
    ratios = ab.interleaved_ratios(lambda: calls.append("a"), lambda: calls.append("b"), repeats=4, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"] and len(ratios) == 4


def test_conv_and_optim_comparisons_run(capsys, monkeypatch):
    monkeypatch.setattr(ab, "CONV_SHAPES", [((2, 64, 4, 4), (8, 64, 3, 3), 1, 1)])
    assert ab.main(["conv", "--repeats", "2"]) == 0
    assert ab.main(["optim", "mlp", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "[batched] forward: batched/per-sample median" in out
    assert "fused/per-parameter optimizer step" in out
    with pytest.raises(SystemExit):
        ab.main(["optim"])
