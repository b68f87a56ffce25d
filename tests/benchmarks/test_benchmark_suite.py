"""The benchmark harness, run in-process on a tiny subset: the structure of results.json and
REPORT.md, and that a failing workload or contender is reported while the rest still run.
No timing is asserted — only that figures exist and are consistent."""
import io
import json

import pytest

from conftest import require_torch
from scratchgen import cli
from scratchgen.benchmarks import suite
from scratchgen.benchmarks.report import write_outputs
from scratchgen.benchmarks.timing import planned_rounds, time_interleaved
from scratchgen.benchmarks.workload import Options, Skip, Work, Workload
from scratchgen.models import recipe_names


def raise_error(message):
    raise RuntimeError(message)


def failing_workloads():
    """A workload whose setup raises, and one with a contender that raises, one that is skipped
    and one that works."""
    setup_fails = Workload(name="setup fails", family="engine", description="its setup raises",
                           setup=lambda options: raise_error("no setup for you"))
    mixed = Workload(name="mixed contenders", family="engine", description="one fails, one skips, one works",
                     setup=lambda options: {"scratchgen": {"forward": lambda: raise_error("contender broke")},
                                            "torch": Skip("left out on purpose"),
                                            "numpy": {"forward": lambda: sum(range(10))}},
                     work={"forward": Work(1, "op")})
    return [setup_fails, mixed]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    require_torch()
    options = Options.for_quick_run(impls=("cpu",))
    chosen = suite.select(suite.all_workloads(options), "engine/one tiny op|model/train vae")
    chosen = chosen[:2] + failing_workloads() + chosen[2:]  # the good ones after the failures must still run
    results = suite.run_suite(options, threads=(1,), in_process=True, stream=io.StringIO(), workloads=chosen)
    folder = tmp_path_factory.mktemp("bench")
    write_outputs(results, folder)
    with open(folder / "results.json") as file:
        return json.load(file), (folder / "REPORT.md").read_text()


def rows_of(results, workload):
    return [row for row in results["runs"][0]["rows"] if row["workload"] == workload]


def test_results_record_the_machine_and_conditions(results):
    document, _ = results
    assert document["schema"] == suite.SCHEMA_VERSION and document["threads"] == [1]
    machine = document["machine"]
    assert machine["versions"]["numpy"] and machine["versions"]["scratchgen"]
    assert {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"} <= set(machine["environment"])
    assert any(library["user_api"] == "blas" for library in machine["blas"])
    ceilings = document["runs"][0]["ceilings"]
    assert ceilings["gemm_gflops"] > 0 and ceilings["bandwidth_gbs"] > 0


def test_every_timed_row_has_consistent_figures(results):
    document, _ = results
    timed = [row for row in document["runs"][0]["rows"] if "median_s" in row]
    assert {row["contender"] for row in rows_of(document, "one tiny op")} == {"scratchgen", "torch", "numpy"}
    for row in timed:
        assert 0 < row["q25_s"] <= row["median_s"] <= row["q75_s"]
        assert row["runs"] >= 1 and row["first_call_s"] > 0
        assert row["rate"] == pytest.approx(row["work"] / row["median_s"])
    matmul = [row for row in timed if row["workload"] == "matmul"]
    assert all("fraction_of_ceiling" in row for row in matmul)


def test_a_model_step_races_its_twin(results):
    document, report = results
    contenders = {row["contender"]: row for row in rows_of(document, "train vae")}
    assert {"scratchgen[cpu]", "torch"} <= set(contenders)
    assert contenders["scratchgen[cpu]"]["peak_bytes"] > 0
    assert "| model | train vae | training step |" in report


def test_failures_are_reported_and_the_rest_still_runs(results):
    document, report = results
    (setup_error,) = rows_of(document, "setup fails")
    assert "no setup for you" in setup_error["error"] and "Traceback" in setup_error["traceback"]
    mixed = {row["contender"]: row for row in rows_of(document, "mixed contenders")}
    assert "contender broke" in mixed["scratchgen"]["error"]
    assert mixed["torch"]["skipped"] == "left out on purpose"
    assert mixed["numpy"]["median_s"] > 0
    assert any("median_s" in row for row in rows_of(document, "train vae"))  # after the failures
    assert "## Errors" in report and "no setup for you" in report and "left out on purpose" in report


def test_the_registry_holds_the_design_workloads_and_every_model():
    keys = {w.key: w for w in suite.all_workloads(Options())}
    design = {"ceiling/matmul", "kernel/conv2d N=32", "kernel/conv_transpose2d N=32", "kernel/lstm T=64",
              "kernel/attention T=256", "kernel/attention T=1024", "kernel/attention T=4096"}
    assert design <= {key for key, workload in keys.items() if workload.design}
    assert {f"model/train {name}" for name in recipe_names()} <= set(keys)
    assert all(workload.work for workload in keys.values())


def test_selection_keeps_the_ceilings():
    chosen = suite.select(suite.all_workloads(Options.for_quick_run()), "kernel/lstm")
    assert {w.family for w in chosen} == {"ceiling", "kernel"} and all("lstm" in w.name for w in chosen[2:])


def test_a_contender_failing_its_first_call_sits_out():
    timings = time_interleaved({"ok": lambda: None, "bad": lambda: raise_error("boom")}, repeats=2, warmup=1)
    assert timings["bad"] == {"error": "RuntimeError: boom"} and timings["ok"]["runs"] == 2


def test_the_budget_bounds_the_rounds():
    assert planned_rounds(1.0, repeats=20, budget_s=5.0, min_repeats=3) == 5
    assert planned_rounds(10.0, repeats=20, budget_s=5.0, min_repeats=3) == 3
    assert planned_rounds(0.001, repeats=20, budget_s=5.0, min_repeats=3) == 20
    assert planned_rounds(1.0, repeats=20, budget_s=None, min_repeats=3) == 20


def test_baseline_keeps_its_regeneration_command(tmp_path):
    from scratchgen.benchmarks.__main__ import BASELINE_HEADER, baseline_paths, write_baseline
    with open(baseline_paths()[1]) as file:
        assert file.read().startswith(BASELINE_HEADER)     # the template says how to regenerate it
    report = "# scratchgen benchmarks\n\n![attention vs T](scaling-attention-vs-t.png)\n"
    write_baseline(report, tmp_path / "B.md")
    written = (tmp_path / "B.md").read_text()
    assert written.startswith(BASELINE_HEADER) and "](baseline/scaling-attention-vs-t.png)" in written


def test_regenerating_the_baseline_keeps_its_analysis(tmp_path):
    from scratchgen.benchmarks.__main__ import ANALYSIS_BEGIN, ANALYSIS_END, write_baseline
    path = tmp_path / "B.md"
    write_baseline("# old\n\nfigures of run A\n", path)
    analysis = f"{ANALYSIS_BEGIN}\n## Where the time goes\n\nconvolution.\n{ANALYSIS_END}"
    path.write_text(path.read_text().replace("figures of run A", analysis + "\n\nfigures of run A"))
    write_baseline("# new\n\nfigures of run B\n", path)
    written = path.read_text()
    assert written.count(analysis) == 1 and "figures of run B" in written and "figures of run A" not in written
    assert written.index(analysis) < written.index("figures of run B")


def test_scratchgen_bench_forwards_its_arguments(capsys):
    assert cli.main(["bench", "--quick", "--list", "--only", "engine/"]) == 0
    listed = capsys.readouterr().out
    assert "engine/one tiny op" in listed and "ceiling/matmul" in listed and "kernel/" not in listed


@pytest.mark.parametrize("pattern, said", [("no such workload", "matches no workload"),
                                           ("(", "expected a regular expression")])
def test_only_matching_nothing_is_a_usage_error(capsys, pattern, said):
    """Not a silent ceilings-only run that looks like a measurement: exit 2, and say why."""
    from scratchgen.benchmarks.__main__ import main
    assert main(["--quick", "--only", pattern]) == 2
    assert said in capsys.readouterr().err
    assert cli.main(["bench", "--quick", "--list", "--only", pattern]) == 2


def test_help_keeps_its_first_paragraph_whole(capsys):
    from scratchgen.benchmarks.__main__ import main
    with pytest.raises(SystemExit):
        main(["--help"])
    description = capsys.readouterr().out.split("\n\n")[1]
    assert description.startswith("The benchmark suite:") and description.rstrip().endswith("scale with size.")


def _row(runs, q25, median, q75, **more):
    return {"runs": runs, "q25_s": q25, "median_s": median, "q75_s": q75, **more}


def test_noisy_rows_are_named_by_why():
    from scratchgen.benchmarks.report import noise
    assert noise(_row(20, 0.99, 1.0, 1.01)) == ""
    assert noise(_row(3, 0.99, 1.0, 1.01)) == "3 runs"
    assert noise(_row(20, 0.8, 1.0, 1.3)) == "IQR 50% of the median"
    assert noise(_row(1, 0.5, 1.0, 1.5)) == "1 run, IQR 100% of the median"


def test_the_report_flags_noisy_figures(results):
    _, report = results  # a quick run: one round per row, every figure noisy
    assert "| model | train vae | training step | " in report and " ~ |" in report
    assert "`~`: a noisy figure" in report and "| 1 run |" in report


def test_a_missing_peer_is_reported_once_with_its_install_line():
    from scratchgen.benchmarks.report import grouped_by_reason
    from scratchgen.benchmarks.workload import peer_contender

    def needs_a_missing_module():
        raise ImportError("No module named 'torch'")

    reason = peer_contender(Options(), "torch", needs_a_missing_module)["torch"].reason
    assert "pip install torch==2.13.0" in reason
    skipped = {f"kernel / conv2d N={n} / forward / torch": reason for n in range(27)}
    skipped["model / sample gpt / sample / torch"] = "no twin_sampler()"
    lines = grouped_by_reason(skipped)
    assert len(lines) == 2 and "27 rows left out" in lines[0] and lines[0].count("pip install") == 1


def test_quick_run_plots_say_they_are_smoke_runs_and_carry_iqr_bars():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib import pyplot

    from scratchgen.benchmarks.report import SMOKE_RUN_LABEL, plot_series
    rows = [_row(1, 0.9e-3 * x, 1e-3 * x, 1.2e-3 * x, x=x, contender=c, **{"pass": "forward"})
            for x in (16, 32) for c in ("scratchgen[cpu]", "torch")]
    for quick in (True, False):
        figure = plot_series(pyplot, "conv2d vs batch", rows, {"options": {"quick": quick}, "runs": [{"threads": 1}]})
        title = figure._suptitle.get_text()
        assert (SMOKE_RUN_LABEL in title) == quick
        times = figure.axes[0]
        assert len(times.containers) == 2  # one errorbar container (IQR) per contender
        placed = [tuple(container.lines[0].get_xdata()) for container in times.containers]
        assert len(set(placed)) == len(placed)  # the two contenders' points do not sit on each other
        pyplot.close(figure)
