"""SIGKILL at 24 deterministic points (mid-step, after the temporary write, around the rename,
between checkpoint and metrics record), resuming each time: the run ends bit-identical to an
uninterrupted one (weights, optimizer state, metrics.jsonl but its time fields). CI runs it."""
import importlib.util
import os

import pytest

HARNESS = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "docs", "fault_injection.py")


def load_harness():
    spec = importlib.util.spec_from_file_location("fault_injection", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    harness = load_harness()
    result = harness.run_harness(str(tmp_path), kills=24)
    killed = [event for event in result["events"] if event["outcome"] == "killed"]
    assert len(killed) >= 20
    assert {event["point"] for event in killed} == set(harness.POINTS)
    assert result["differing"] == [] and result["metrics_equal"], result
    assert result["leftover_temporaries"] == []
    assert result["records"] == harness.OPTIONS["epochs"] + 1   # one per epoch and the final one
