"""Regenerate docs/reliability.md: every fault and bad input below is tried for real, and the
table shows what scratchgen did (exit status and the first line it printed, or what was checked).

    python docs/reliability.py      # about a minute; also redraws docs/figures/fault_injection.png

Each case is a small function returning the observed behaviour; nothing in the table is typed by
hand. The fault-injection figure comes from docs/fault_injection.py (the harness CI's test runs).
"""
import contextlib
import io
import json
import math
import os
import signal
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fault_injection  # noqa: E402

import scratchgen as sg  # noqa: E402
import scratchgen.functional as F  # noqa: E402
from scratchgen import cli, runner, serialize  # noqa: E402
from scratchgen.kernels.attention import cpu as attention_cpu  # noqa: E402
from scratchgen.models.mlp import MLPRecipe  # noqa: E402

TINY = ["--hidden", "8", "--features", "8"]
CASES = []


def case(area, fault):
    def register(function):
        CASES.append((area, fault, function))
        return function
    return register


def scratchgen(*args):
    """``scratchgen ARGS`` in this process: 'exit N: first line of stderr'."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    first = next((line for line in errors.getvalue().splitlines() if line.strip()), "")
    if "Traceback" in errors.getvalue():
        first = "TRACEBACK " + first
    return f"exit {code}" + (f": `{first.replace('|', '/')[:150]}`" if first else "")


@contextlib.contextmanager
def patched_step(action):
    """MLPRecipe.train_step with ``action(self, clock)`` run after each step."""
    original = MLPRecipe.train_step

    def step(self, batch, clock):
        losses = original(self, batch, clock)
        action(self, clock)
        return losses
    MLPRecipe.train_step = step
    try:
        yield
    finally:
        MLPRecipe.train_step = original


def trained(name="run"):
    scratchgen("train", "mlp", "--epochs", "1", "--out", name, *TINY)
    return name


def saved_with(name, change):
    """A copy of run ``trained()``'s checkpoint with ``change(state)`` applied, saved as ``name``."""
    state = serialize.load(os.path.join(trained(), "last.npz"))
    state["meta"] = {k: v for k, v in state["meta"].items() if k not in ("format_version", "scratchgen_version")}
    change(state)
    serialize.save(state, name)
    return name


def first_weight(state):
    return next(iter(state["model"]))


# ---- checkpoints -----------------------------------------------------------------------------------
@case("checkpoints", "truncated last.npz given to `eval`")
def _():
    path = os.path.join(trained(), "last.npz")
    with open(path, "rb") as handle:
        data = handle.read()
    with open("cut.npz", "wb") as handle:
        handle.write(data[:len(data) // 2])
    return scratchgen("eval", "mlp", "--checkpoint", "cut.npz")


@case("checkpoints", "weights with NaN given to `eval` (and `--resume`)")
def _():
    name = saved_with("nan.npz", lambda s: s["model"][first_weight(s)].fill(np.nan))
    return scratchgen("eval", "mlp", "--checkpoint", name)


@case("checkpoints", "complex weights given to `sample`/`eval`")
def _():
    name = saved_with("complex.npz", lambda s: s["model"].update(
        {first_weight(s): s["model"][first_weight(s)].astype(np.complex64)}))
    return scratchgen("eval", "mlp", "--checkpoint", name)


@case("checkpoints", "integer weights")
def _():
    name = saved_with("int.npz", lambda s: s["model"].update(
        {first_weight(s): s["model"][first_weight(s)].astype(np.int32)}))
    return scratchgen("eval", "mlp", "--checkpoint", name)


@case("checkpoints", "float16 weights (another float dtype)")
def _():
    name = saved_with("half.npz", lambda s: s.update(model={k: v.astype(np.float16) for k, v in s["model"].items()}))
    return scratchgen("eval", "mlp", "--checkpoint", name) + " (cast to float32, as before)"


@case("checkpoints", "a vae checkpoint given to `eval mlp`")
def _():
    scratchgen("train", "vae", "--dry-run", "--out", "vae", "--hidden", "8", "--latent-dim", "2", "--iwae-samples", "2")
    return scratchgen("eval", "mlp", "--checkpoint", "vae")


@case("checkpoints", "weights blow up to inf on an epoch's last step (finite loss)")
def _():
    def blow_up(self, clock):
        if clock.epoch == 1 and clock.batch == clock.batches_per_epoch - 1:
            for param in self.model.parameters():
                param.data[...] = np.inf
    with patched_step(blow_up):
        shown = scratchgen("train", "mlp", "--epochs", "3", "--out", "blowup", *TINY)
    epoch = serialize.load("blowup/last.npz")["meta"]["epoch"]
    return f"{shown[:90]}...`; last.npz still holds epoch {epoch}, all finite"


# ---- interruptions ---------------------------------------------------------------------------------
def sending(signum, at_batch=4):
    """A step action sending ``signum`` to this process at batch ``at_batch`` (see patched_step)."""
    def send(self, clock):
        if clock.batch == at_batch:
            os.kill(os.getpid(), signum)
    return send


@case("interruptions", "SIGTERM in the middle of an epoch")
def _():
    with patched_step(sending(signal.SIGTERM)):
        shown = scratchgen("train", "mlp", "--epochs", "1", "--out", "term", *TINY)
    meta = serialize.load("term/last.npz")["meta"]
    return f"{shown}; checkpoint at step {meta['step']}, resumable mid-epoch"


@case("interruptions", "Ctrl-C (SIGINT) in the middle of an epoch")
def _():
    with patched_step(sending(signal.SIGINT)):
        return scratchgen("train", "mlp", "--epochs", "1", "--out", "int", *TINY)


@case("interruptions", "a save killed after writing its temporary file")
def _():
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    os.makedirs("tmpfile", exist_ok=True)
    with open(f"tmpfile/.last.npz.{child}.0.tmp", "wb") as handle:
        handle.write(b"half")
    serialize.save({"model": {"w": np.ones(2)}}, "tmpfile/last.npz")
    left = [name for name in os.listdir("tmpfile") if name.endswith(".tmp")]
    return "the next save removed it" if not left else f"LEFT {left}"


FAULT_RESULT = {}


@case("interruptions", "SIGKILL at 24 points (mid-step, temp written, around the rename, before the log)")
def _():
    result = fault_injection.run_harness(os.path.abspath("faults"))
    FAULT_RESULT.update(result)
    kills = sum(event["outcome"] == "killed" for event in result["events"])
    same = not result["differing"] and result["metrics_equal"]
    return (f"{kills} kills, resumed each time: weights, optimizer state and metrics.jsonl "
            f"{'bit-identical to' if same else 'DIFFERENT from'} an uninterrupted run (figure below)")


# ---- run folders and configs -----------------------------------------------------------------------
@case("run folders", "`--out` naming a folder that holds a run")
def _():
    return scratchgen("train", "mlp", "--epochs", "1", "--out", trained(), *TINY)


@case("run folders", "the same with `--overwrite`")
def _():
    return scratchgen("train", "mlp", "--epochs", "1", "--out", trained(), "--overwrite", *TINY)


@case("run folders", "three default run folders in the same second")
def _():
    stamp = runner.time.strftime
    runner.time.strftime = lambda *args: "20260101-000000"
    try:
        folders = [runner.new_run_folder("mlp") for _ in range(3)]
    finally:
        runner.time.strftime = stamp
    return ", ".join(f"`{os.path.basename(f)}`" for f in folders)


for _flag, _value in [("--epochs", "0"), ("--batch-size", "-3"), ("--hidden", "0"), ("--lr", "nan"),
                      ("--lr", "-1"), ("--weight-decay", "inf")]:
    case("configs", f"`train mlp {_flag} {_value}`")(
        lambda flag=_flag, value=_value: scratchgen("train", "mlp", flag, value, "--out", "never"))


@case("configs", "`--config` file that is not JSON")
def _():
    with open("bad.json", "w") as handle:
        handle.write("{lr: 1")
    return scratchgen("train", "mlp", "--config", "bad.json", "--out", "never")


@case("configs", "`--config` with a value of the wrong type")
def _():
    with open("typed.json", "w") as handle:
        json.dump({"lr": "fast"}, handle)
    return scratchgen("train", "mlp", "--config", "typed.json", "--out", "never")


@case("configs", "`--resume` with `--batch-size` changed mid-epoch")
def _():
    with patched_step(sending(signal.SIGINT)):
        scratchgen("train", "mlp", "--epochs", "1", "--out", "mid", *TINY)
    return scratchgen("train", "mlp", "--resume", "mid", "--batch-size", "16")


@case("configs", "`--resume` with `--lr 0.5 --weight-decay 0.25`")
def _():
    scratchgen("train", "mlp", "--resume", trained(), "--epochs", "2", "--lr", "0.5", "--weight-decay", "0.25")
    group = serialize.load("run/last.npz")["optim"]["model"]["param_groups"][0]
    return f"optimizer lr {group['lr']}, weight_decay {group['weight_decay']}; config.json records them"


# ---- sample files ----------------------------------------------------------------------------------
def _samples(name, array):
    np.save(name, array)
    return name


@case("sample files", "`eval samples` of 2 samples")
def _():
    samples = np.random.default_rng(0).uniform(size=(2, 8, 8)).astype(np.float32)
    report = runner.digits_metrics(samples)
    return f"fid null: \"{report['fid_unavailable']}\"; the other metrics reported"


@case("sample files", "`eval samples` with NaN values")
def _():
    return scratchgen("eval", "samples", _samples("nan.npy", np.full((200, 8, 8), np.nan, np.float32)))


@case("sample files", "`eval samples` of the wrong shape")
def _():
    return scratchgen("eval", "samples", _samples("shape.npy", np.zeros((200, 7), np.float32)))


@case("sample files", "`eval samples` of a file that is not .npy")
def _():
    with open("text.npy", "w") as handle:
        handle.write("hello")
    return scratchgen("eval", "samples", "text.npy")


# ---- API misuse ------------------------------------------------------------------------------------
@case("API misuse", "`c[...] = 5` after `y = x * c`, then `y.backward()`")
def _():
    x, c = sg.randn(3, requires_grad=True), sg.ones(3)
    y = (x * c).sum()
    c[...] = 5
    try:
        y.backward()
    except RuntimeError as error:
        return f"RuntimeError: `{str(error)[:110]}...`"
    return "NO ERROR"


@case("API misuse", "`sample vae` without --checkpoint and no run under runs/")
def _():
    return scratchgen("sample", "vae", "--out", "x.npy")


@case("API misuse", "`--out` below a file (cannot be created)")
def _():
    with open("afile", "w"):
        pass
    return scratchgen("train", "mlp", "--dry-run", "--out", "afile/run")


# ---- numerics --------------------------------------------------------------------------------------
def layer_norm_error(offset, spread):
    """Max |float32 layer_norm - float64| for rows of ``offset + spread * noise``, and the outputs' size."""
    x = (offset + spread * np.random.default_rng(0).standard_normal((4, 64))).astype(np.float32)
    exact = x.astype(np.float64) - x.astype(np.float64).mean(-1, keepdims=True)
    exact /= np.sqrt((exact ** 2).mean(-1, keepdims=True) + 1e-5)
    got = F.layer_norm(sg.tensor(x), 64).numpy()
    return f"max abs error against float64: {np.abs(got - exact).max():.1e} (outputs up to {np.abs(exact).max():.2f})"


case("numerics", "layer_norm of float32 values near 1e19")(lambda: layer_norm_error(1e19, 1e19))
case("numerics", "layer_norm of 1000 + 1e-3 noise (variance below eps)")(lambda: layer_norm_error(1000, 1e-3))


@case("numerics", "a NaN in one query row of the cpu attention kernel")
def _():
    q, k, v = (np.random.default_rng(i).standard_normal((1, 1, 5, 4)).astype(np.float32) for i in range(3))
    q[0, 0, 2, 1] = np.nan
    out, logsumexp = attention_cpu.attention_forward(q, k, v, None, False, 0.5)
    rows = [i for i in range(5) if np.isnan(out[0, 0, i]).all()]
    return f"NaN rows of the output: {rows} (as the reference); logsumexp there {logsumexp[0, 0, 2]}"


@case("numerics", "elu'(0), hardtanh'(1), clamp'(1) at the kinks")
def _():
    grads = []
    for function in (lambda t: F.elu(t), lambda t: F.hardtanh(t), lambda t: t.clamp(-1.0, 1.0)):
        x = sg.tensor([0.0, 1.0], requires_grad=True)
        function(x).sum().backward()
        grads.append(x.grad.numpy())
    return f"elu'(0) = {grads[0][0]:g}, hardtanh'(1) = {grads[1][1]:g}, clamp'(1) = {grads[2][1]:g} (PyTorch: 1, 0, 1)"


def main():
    rows = []
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        workdir = os.getcwd()
        try:
            for area, fault, function in CASES:
                print(f"{area}: {fault}", file=sys.stderr)
                rows.append(f"| {area} | {fault} | {function().replace(workdir, '.')} |")
        finally:
            os.chdir(cwd)
    fault_injection.draw(FAULT_RESULT, os.path.join(HERE, "figures", "fault_injection.png"))
    with open(os.path.join(HERE, "reliability.md"), "w") as handle:
        handle.write(PAGE.format(table="\n".join(rows)))


PAGE = """# Reliability: faults and bad inputs tried

Generated by `python docs/reliability.py` (do not edit by hand): each row was tried for real on
a small `mlp` (or `vae`) run, and the last column is what scratchgen did. Exit statuses are the
CLI's contract (`scratchgen --help`): 0 done, 1 training stopped (non-finite loss or weights),
2 usage or input error, 130/143 stopped by Ctrl-C/SIGTERM with a checkpoint saved. No user
error prints a Python traceback (a row would say TRACEBACK).

| area | fault or bad input | observed |
| --- | --- | --- |
{table}

## The fault-injection run

`docs/fault_injection.py` trains a small `mlp` (40 dry-run epochs) while it kills the process
with SIGKILL 24 times at deterministic points (`scratchgen._faults`: mid-step, after the
checkpoint's temporary file is written, just before and just after the rename over `last.npz`,
and between the checkpoint and its metrics record), resuming each time; the end is compared with
an uninterrupted run, bit for bit (weights, optimizer state, metrics.jsonl without its time
fields). `tests/release/test_fault_injection.py` runs the same harness in CI.

![where each kill struck](figures/fault_injection.png)
"""

if __name__ == "__main__":
    main()
