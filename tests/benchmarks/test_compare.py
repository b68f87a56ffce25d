"""``--compare``: each row's scratchgen/PyTorch ratio change against a saved results.json, slower rows
flagged, rows of one run only listed; a bad baseline path is a usage error before anything runs."""
import json

from scratchgen.benchmarks import compare
from scratchgen.benchmarks.__main__ import main


def results(rows_by_threads):
    """A minimal results.json: ``{threads: [(workload, pass, contender, median_s), ...]}``."""
    return {"runs": [{"threads": threads, "rows": [
        {"workload": workload, "family": "kernel", "pass": pass_name, "contender": contender,
         "median_s": median}
        for workload, pass_name, contender, median in rows]} for threads, rows in rows_by_threads.items()]}


OLD = results({1: [("conv2d", "forward", "torch", 1.0), ("conv2d", "forward", "scratchgen[cpu]", 1.2),
                   ("lstm", "forward", "torch", 2.0), ("lstm", "forward", "scratchgen[cpu]", 2.0),
                   ("gone", "forward", "torch", 1.0), ("gone", "forward", "scratchgen[cpu]", 1.0)]})
# conv2d: the machine got 2x slower for both sides and ours 10% more: +10%; lstm: 20% faster.
NEW = results({1: [("conv2d", "forward", "torch", 2.0), ("conv2d", "forward", "scratchgen[cpu]", 2.64),
                   ("lstm", "forward", "torch", 2.0), ("lstm", "forward", "scratchgen[cpu]", 1.6),
                   ("new", "forward", "torch", 1.0), ("new", "forward", "scratchgen[cpu]", 3.0)]})


def test_ratio_changes_cancel_the_machine_and_flag_slower_rows():
    lines, slower, only_old, only_new = compare.compare(OLD, NEW)
    by_workload = {line[2]: line for line in lines}
    assert by_workload["conv2d"][5:] == ["1.20", "1.32", "+10.0%", "slower"]
    assert by_workload["lstm"][5:] == ["1.00", "0.80", "-20.0%", "faster"]
    assert slower == [(1, "kernel", "conv2d", "forward", "scratchgen[cpu]")]
    assert [key[2] for key in only_old] == ["gone"] and [key[2] for key in only_new] == ["new"]
    assert compare.compare(OLD, NEW, tolerance=0.15)[1] == []  # within tolerance: not flagged


def test_markdown_names_the_count_of_slower_rows_and_the_unmatched_ones():
    text = compare.comparison_markdown(OLD, NEW)
    assert "**1 row(s) slower by more than 5%.**" in text
    assert "Only in the baseline (1 rows): gone forward scratchgen[cpu] (1 thread)" in text
    assert "Warning" not in text
    assert "| 1 thread | kernel | conv2d | forward | scratchgen[cpu] | 1.20 | 1.32 | +10.0% | slower |" \
        in text


def test_long_unmatched_lists_are_counted_and_quick_runs_warned_about():
    many = [(1, "kernel", f"w{i}", "forward", "scratchgen[cpu]") for i in range(10)]
    line = compare.unmatched_line("Only in the baseline", many)
    assert line.endswith("w7 forward scratchgen[cpu] (1 thread) and 2 more")
    assert compare.unmatched_line("Only in this run", []) == ""
    quick = dict(NEW, options={"quick": True})
    text = compare.comparison_markdown(dict(OLD, options={}), quick)
    assert "**Warning:** one run is a --quick run" in text


def test_two_saved_runs_compare_without_timing(tmp_path, capsys):
    old_path, new_path = tmp_path / "old.json", tmp_path / "new.json"
    old_path.write_text(json.dumps(OLD))
    new_path.write_text(json.dumps(NEW))
    assert compare.main([str(old_path), str(new_path)]) == 0
    assert "+10.0%" in capsys.readouterr().out
    assert compare.main([str(old_path)]) == 2


def test_a_bad_baseline_is_a_usage_error_before_the_run(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["--quick", "--compare", str(tmp_path / "missing.json")]) == 2
    assert "expected a results.json" in capsys.readouterr().err
    assert main(["--quick", "--compare", str(tmp_path / "broken.json")]) == 2
    (tmp_path / "other.json").write_text("[1, 2]")
    assert main(["--quick", "--compare", str(tmp_path / "other.json")]) == 2
    assert "'runs' list" in capsys.readouterr().err
