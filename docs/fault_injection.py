"""The fault-injection harness: train a small model, SIGKILL it again and again at deterministic
points, resume each time, and compare the end with an uninterrupted run's, bit for bit.

    python docs/fault_injection.py        # runs the harness, draws docs/figures/fault_injection.png

The kill points are ``scratchgen._faults``' named points: ``step`` (mid-step: a training step
done, its bookkeeping not), ``temp-written`` (a checkpoint's temporary file complete, not yet
renamed), ``before-rename``, ``after-rename`` (the new last.npz in place, the folder not yet
fsynced) and ``log`` (the checkpoint saved, the epoch's metrics record not yet written). The
plan is drawn from a seeded generator, so every run of the harness kills at the same places.
tests/release/test_fault_injection.py runs it (CI too) and asserts what it returns.
"""
import json
import os
import signal

import numpy as np

POINTS = ("step", "temp-written", "before-rename", "after-rename", "log")
MODEL, OPTIONS = "mlp", {"epochs": 40, "hidden": 8, "features": 8}  # dry run: 3 batches an epoch


def _train_in_child(folder, kill_at=None):
    """Run (or resume) the small training in a forked child; returns how it ended: "killed",
    "completed" or "failed (status)"."""
    child = os.fork()
    if child == 0:  # the child: arm the kill point, train, and leave without running any cleanup
        status = 1
        try:
            from scratchgen import _faults, runner
            if kill_at:
                _faults.arm(*kill_at)
            resume = folder if os.path.exists(os.path.join(folder, "last.npz")) else None
            runner.train(MODEL, dict(OPTIONS), out=folder, resume=resume, dry_run=True, plots=False,
                         echo=lambda *args: None)
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return "killed"
    return "completed" if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else \
        f"failed ({status})"


def _progress(folder):
    """(step, epoch) of the run's checkpoint, (0, 0) before the first."""
    from scratchgen import serialize
    path = os.path.join(folder, "last.npz")
    if not os.path.exists(path):
        return 0, 0
    meta = serialize.load(path)["meta"]
    return meta["step"], meta["epoch"]


def run_harness(workdir, kills=24, seed=2026):
    """Kill the training ``kills`` times (cycling through every point, the n-th arrival at it
    drawn from 1..2), resume until done, train the same without faults; returns a dict with the
    plan, where each kill left the checkpoint, and the comparison."""
    interrupted, straight = os.path.join(workdir, "interrupted"), os.path.join(workdir, "straight")
    from scratchgen.data import load_images
    load_images("digits")  # loaded (and cached) once here, so that each forked child starts at once
    rng = np.random.default_rng(seed)
    events = []
    while len([e for e in events if e["outcome"] == "killed"]) < kills:
        point = POINTS[len(events) % len(POINTS)]
        count = int(rng.integers(1, 3))
        outcome = _train_in_child(interrupted, (point, count))
        if outcome == "completed":
            raise RuntimeError(f"the run finished before {kills} kills: give it more epochs")
        step, epoch = _progress(interrupted)
        events.append({"point": point, "count": count, "outcome": outcome, "checkpoint_step": step,
                       "checkpoint_epoch": epoch})
        if outcome != "killed":
            raise RuntimeError(f"training failed under fault injection: {outcome}")
    final = _train_in_child(interrupted)
    if final != "completed" or _train_in_child(straight) != "completed":
        raise RuntimeError("a run without faults did not complete")
    return {"events": events, **compare_runs(interrupted, straight),
            "leftover_temporaries": [name for name in os.listdir(interrupted) if name.endswith(".tmp")]}


def compare_runs(folder_a, folder_b):
    """Whether two run folders end bit-identical: every array of last.npz (weights, optimizer
    state), the meta that defines the state, and metrics.jsonl with its time fields left out."""
    from scratchgen import serialize
    from scratchgen.runner import read_metrics
    a, b = serialize.load(os.path.join(folder_a, "last.npz")), serialize.load(os.path.join(folder_b, "last.npz"))
    differing = [name for name in _array_paths(a) if not _same_array(_at(a, name), _at(b, name))]
    if _array_paths(a) != _array_paths(b):
        differing.append("(different arrays)")
    for key in ("step", "epoch", "rng_state", "loader", "epoch_sums", "epoch_batches", "config"):
        if json.dumps(a["meta"][key], sort_keys=True) != json.dumps(b["meta"][key], sort_keys=True):
            differing.append(f"meta/{key}")
    strip = lambda records: [{k: v for k, v in r.items() if k != "time_s"} for r in records]  # noqa: E731
    metrics_a, metrics_b = strip(read_metrics(folder_a)), strip(read_metrics(folder_b))
    return {"differing": differing, "metrics_equal": metrics_a == metrics_b, "records": len(metrics_a)}


def _array_paths(node, path=""):
    if isinstance(node, dict):
        return sorted(p for key, value in node.items() if key != "meta" for p in _array_paths(value, f"{path}{key}/"))
    if isinstance(node, (list, tuple)):
        return sorted(p for i, value in enumerate(node) for p in _array_paths(value, f"{path}{i}/"))
    return [path.rstrip("/")] if isinstance(node, np.ndarray) else []


def _at(node, path):
    for key in path.split("/"):
        node = node[int(key)] if isinstance(node, (list, tuple)) else node[key if key in node else int(key)]
    return node


def _same_array(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def draw(result, path):
    """Where each kill struck (x: the kill's order, y: the checkpoint's step after it), by point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 3.2))
    for marker, point in zip("o^sDv", POINTS):
        shown = [(i, e["checkpoint_step"]) for i, e in enumerate(result["events"]) if e["point"] == point]
        axes.scatter([i + 1 for i, _ in shown], [s for _, s in shown], marker=marker, label=point)
    axes.set_xlabel("kill (SIGKILL), in order")
    axes.set_ylabel("checkpoint step after it")
    verdict = "bit-identical to the uninterrupted run" if not result["differing"] and result["metrics_equal"] \
        else "DIFFERS from the uninterrupted run"
    axes.set_title(f"{len(result['events'])} kills, resumed each time: {verdict}", fontsize=10)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as workdir:
        result = run_harness(workdir)
    here = os.path.dirname(os.path.abspath(__file__))
    draw(result, os.path.join(here, "figures", "fault_injection.png"))
    print(json.dumps({k: v for k, v in result.items() if k != "events"}, indent=2))
