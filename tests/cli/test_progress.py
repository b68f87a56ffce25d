"""The progress display where it is read: on a terminal (redrawn, rate and ETA), in a pipe or log
file (plain lines, only for long work), silenced; and the benchmark suite's time left."""
import io
import types

import pytest

from scratchgen import progress
from scratchgen.benchmarks.suite import Progress
from scratchgen.progress import ProgressBar, format_duration


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    return fake


def test_durations_read_as_minutes_and_hours():
    assert [format_duration(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0:00", "1:00", "1:01", "1:01:02"]


def test_a_terminal_sees_rate_and_time_left_redrawn_in_place(clock):
    stream = io.StringIO()
    bar = ProgressBar(3, 10, total=4, stream=stream, enabled=True, interval=0.0)
    clock.now += 10
    bar.update(1, {"loss": 12.3456}, examples=64)       # 1 of 4 in 10 s: 30 s left
    assert stream.getvalue() == "\repoch 3/10 [#####...............] 1/4  loss 12.35  6 ex/s  eta 0:30"
    clock.now += 30
    bar.update(4, {"loss": 1.0}, examples=192)
    assert stream.getvalue().endswith("4/4  loss 1  6 ex/s  in 0:40")
    bar.close()
    assert stream.getvalue().endswith("\r\033[K")


def test_a_log_file_gets_plain_lines_for_long_work_only(clock):
    short = io.StringIO()   # not a terminal, as a pipe or a log file
    bar = ProgressBar(1, 1, total=2, stream=short)
    bar.update(1, {"loss": 1.0}, examples=1)
    bar.update(2, {"loss": 1.0}, examples=1)
    bar.close()
    assert short.getvalue() == ""   # seconds of work: no noise in the log
    log = io.StringIO()
    bar = ProgressBar(None, None, total=100, stream=log, label="sampling DDIM-100", unit="steps")
    for step in range(1, 101):
        clock.now += 1
        bar.update(step, {}, 1)
    bar.close()
    lines = log.getvalue().split("\n")
    assert "\r" not in log.getvalue() and lines[-1] == ""
    counts = [line.split("] ")[1].split()[0] for line in lines[:-1]]
    assert counts == ["30/100", "60/100", "90/100", "100/100"]
    assert lines[0].endswith("1 steps/s  eta 1:10") and lines[-2].endswith("in 1:40")


def test_enabled_false_is_silent(clock):
    stream = io.StringIO()
    bar = ProgressBar(1, 1, total=1, stream=stream, enabled=False)
    clock.now += 1000
    bar.update(1, {"loss": 1.0}, examples=1)
    bar.close()
    assert stream.getvalue() == ""


def test_the_benchmark_suite_says_how_long_is_left(monkeypatch):
    from scratchgen.benchmarks import suite
    fake = FakeClock()
    monkeypatch.setattr(suite, "time", types.SimpleNamespace(perf_counter=fake.perf_counter))
    stream, workload = io.StringIO(), types.SimpleNamespace(key="conv/forward")
    bar = Progress(4, 1, stream)
    fake.now += 20
    bar.done(0, workload, 20.0, [])
    fake.now += 20
    bar.done(3, workload, 20.0, [])
    assert stream.getvalue().splitlines() == ["[  1/4 | 1 thread] conv/forward: 20.0 s  (eta 1:00)",
                                              "[  4/4 | 1 thread] conv/forward: 20.0 s"]


def test_a_notebook_redraws_in_place(clock, monkeypatch):
    import sys
    notebook_stderr = io.StringIO()   # Jupyter's stderr is no terminal
    monkeypatch.setattr(sys, "stderr", notebook_stderr)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    bar = ProgressBar(1, 2, total=3)
    clock.now += 1
    bar.update(1, {}, examples=8)
    assert notebook_stderr.getvalue().startswith("\repoch 1/2 [")
