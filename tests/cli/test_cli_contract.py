"""The command line's contract: --version, exit codes in --help, no traceback for user errors,
output folders created, a closed pipe is quiet, `sample` finds the newest run, FID needs enough samples."""
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchgen import __version__, cli
from scratchgen.eval.metrics import MIN_FID_SAMPLES, digits_metrics


def scratchgen(*args, cwd=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "scratchgen.cli", *args], capture_output=True, text=True,
                          cwd=cwd, **kwargs)


def test_version_and_exit_codes_in_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"scratchgen {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = capsys.readouterr().out
    for code in ("0 ", "1 ", "2 ", "130", "143"):
        assert f"\n  {code}" in shown, code


def test_a_closed_pipe_is_quiet():
    reader = subprocess.Popen([sys.executable, "-m", "scratchgen.cli", "models"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader.stdout.close()   # as `| head -0` would
    error = reader.stderr.read().decode()
    reader.wait()
    assert "Traceback" not in error and "BrokenPipe" not in error, error


def test_sample_creates_its_folder_and_uses_the_newest_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert cli.main(["train", "vae", "--dry-run", "--hidden", "8", "--latent-dim", "2",
                         "--iwae-samples", "2"]) == 0
    runs = sorted(os.listdir("runs"))
    os.utime(os.path.join("runs", runs[0], "last.npz"))   # the first run's checkpoint is now the newest
    capsys.readouterr()
    assert cli.main(["sample", "vae", "--n", "4", "--out", "new/folder/s.npy"]) == 0
    assert np.load("new/folder/s.npy").shape == (4, 8, 8)
    assert f"the newest vae run: {os.path.join('runs', runs[0])}" in capsys.readouterr().err
    assert cli.main(["sample", "mlp", "--out", "x.npy"]) == 2


def test_unwritable_output_is_a_usage_error_without_traceback(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = scratchgen("train", "mlp", "--dry-run", "--out", str(blocker / "run"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr


def test_fid_is_null_with_a_reason_below_the_minimum():
    samples = np.random.default_rng(0).uniform(size=(MIN_FID_SAMPLES - 1, 8, 8)).astype(np.float32)
    report = digits_metrics(samples)
    assert report["fid"] is None and report["fid_ratio"] is None
    assert str(MIN_FID_SAMPLES) in report["fid_unavailable"]
    assert report["classes_covered"] >= 0 and report["n_samples"] == MIN_FID_SAMPLES - 1
    assert digits_metrics(np.concatenate([samples, samples[:1]]))["fid"] > 0


def test_bench_help_names_commands_that_exist(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--help"])
    shown = capsys.readouterr().out
    assert "python -m benchmarks" not in shown and "scratchgen bench --quick" in shown


def test_installed_bench_baseline_writes_under_out_not_the_package(tmp_path, monkeypatch):
    from scratchgen.benchmarks import __main__ as bench
    monkeypatch.setattr(bench, "__file__", str(tmp_path / "site-packages" / "scratchgen" / "benchmarks" / "x.py"))
    folder, page = bench.baseline_paths(str(tmp_path / "out"))
    assert folder.startswith(str(tmp_path / "out")) and page.startswith(str(tmp_path / "out"))


def test_dry_runs_sample_at_least_the_fid_minimum():
    from scratchgen import runner
    assert runner.DRY_RUN_SAMPLES >= MIN_FID_SAMPLES
