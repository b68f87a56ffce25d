"""Checkpoints: bit-exact round trips (model, optimizer, EMA, RNG, schedules), docs/design.md's key
layout, atomic replacement when a write dies midway, and one clear error per kind of bad file."""
import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchgen as sg
from scratchgen import nn, optim, serialize
from scratchgen.serialize import CheckpointError


def _trained_setup(steps=5):
    """A small model with BatchNorm, an Adam (AMSGrad) optimizer with state, an EMA and a schedule."""
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = optim.Adam(model.parameters(), lr=1e-2, amsgrad=True)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2)
    ema = optim.ExponentialMovingAverage(model, decay=0.9)
    for _ in range(steps):
        _train_step(model, optimizer, ema)
        scheduler.step()
    return model, optimizer, scheduler, ema


def _train_step(model, optimizer, ema):
    optimizer.zero_grad()
    x = sg.randn(6, 3)
    (model(x) ** 2).mean().backward()
    optimizer.step()
    ema.update()


def _checkpoint(model, optimizer, scheduler, ema):
    return {"model": model.state_dict(), "optim": optimizer.state_dict(), "sched": scheduler.state_dict(),
            "ema": ema.state_dict(), "meta": {"kind": "mlp", "config": {"hidden": 8, "sizes": (3, 2)},
                                              "step": 5, "epoch": 1}}


def _assert_same(a, b, where="obj"):
    """Equal structure, types and bits (arrays: same dtype and shape, identical values)."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}/{i}")
    else:
        assert type(a) is type(b) and (a == b or (a != a and b != b)), f"{where}: {a!r} != {b!r}"


def test_round_trip_is_bit_exact_and_training_resumes_identically(tmp_path):
    model, optimizer, scheduler, ema = _trained_setup()
    obj = _checkpoint(model, optimizer, scheduler, ema)
    path = tmp_path / "last.npz"
    sg.save(obj, path)
    rng_state = sg.get_rng_state()
    loaded = sg.load(path, expected_kind="mlp")
    for key in ("model", "optim", "sched", "ema"):
        _assert_same(obj[key], loaded[key], key)
    assert loaded["meta"]["config"] == {"hidden": 8, "sizes": (3, 2)}
    assert loaded["meta"]["rng_state"] == rng_state
    assert loaded["meta"]["format_version"] == serialize.FORMAT_VERSION
    assert loaded["meta"]["scratchgen_version"] == sg.__version__

    # Continue the original run two steps, then a restored copy two steps: same bits.
    for _ in range(2):
        _train_step(model, optimizer, ema)
    sg.manual_seed(123)  # scramble the generator; the checkpoint's state must bring it back
    restored, restored_optimizer, _, restored_ema = _trained_setup(steps=0)
    restored.load_state_dict(loaded["model"])
    restored_optimizer.load_state_dict(loaded["optim"])
    restored_ema.load_state_dict(loaded["ema"])
    sg.set_rng_state(loaded["meta"]["rng_state"])
    for _ in range(2):
        _train_step(restored, restored_optimizer, restored_ema)
    _assert_same(model.state_dict(), restored.state_dict(), "model after resume")
    _assert_same(ema.state_dict(), restored_ema.state_dict(), "ema after resume")


def test_file_layout_follows_the_design(tmp_path):
    path = tmp_path / "ckpt.npz"
    sg.save(_checkpoint(*_trained_setup(steps=1)), path)
    with np.load(path, allow_pickle=False) as archive:
        names = set(archive.files)
        header = json.loads(str(archive["__meta__"]))
    assert {"model/0.weight", "model/1.running_var", "model/1.num_batches_tracked", "optim/state/0/exp_avg",
            "optim/state/3/max_exp_avg_sq", "ema/3.bias", "__meta__"} <= names
    for field in ("format_version", "kind", "config", "step", "epoch", "rng_state", "scratchgen_version"):
        assert field in header
    assert header["kind"] == "mlp" and header["step"] == 5


STORED_DTYPES = [np.float16, np.float32, np.float64, np.int64, np.int8, np.bool_]


@settings(max_examples=25, deadline=None)
@given(arrays=st.lists(hnp.arrays(st.sampled_from(STORED_DTYPES),
                                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)),
                       min_size=1, max_size=4),
       scalars=st.lists(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=5),
                                  st.floats(allow_nan=True, allow_infinity=True)), max_size=4))
def test_any_nesting_of_arrays_and_scalars_round_trips(tmp_path_factory, arrays, scalars):
    obj = {"model": {f"layer{i}.weight": a for i, a in enumerate(arrays)},
           "optim": {"state": {i: {"buf": a, "step": i} for i, a in enumerate(arrays)},
                     "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": list(range(len(arrays)))}]},
           "extra": [tuple(scalars), {"__array__": 1, 2: "two"}]}
    path = tmp_path_factory.mktemp("ckpt") / "x.npz"
    sg.save(obj, path)
    loaded = sg.load(path)
    for key in obj:
        _assert_same(obj[key], loaded[key], key)


def test_tensors_are_saved_as_arrays(tmp_path):
    sg.save({"model": {"w": sg.tensor([1.5, 2.5], dtype=sg.float64)}}, tmp_path / "t.npz")
    loaded = sg.load(tmp_path / "t.npz", device="cpu")["model"]["w"]
    assert isinstance(loaded, np.ndarray) and loaded.dtype == np.float64


def _write_failing_midway(monkeypatch, error):
    """Make the writer raise ``error`` after the first array, with bytes already on disk."""
    original, calls = np.lib.format.write_array, []

    def write_then_fail(member, array, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            member.write(b"partial bytes")
            raise error
        original(member, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_write_killed_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch, error):
    path = tmp_path / "last.npz"
    first = {"model": {"w": np.arange(4.0)}, "meta": {"kind": "mlp", "step": 1}}
    sg.save(first, path)
    _write_failing_midway(monkeypatch, error)
    with pytest.raises(type(error)):
        sg.save({"model": {"w": np.zeros(4), "v": np.ones(3)}, "meta": {"kind": "mlp", "step": 2}}, path)
    monkeypatch.undo()
    loaded = sg.load(path)
    np.testing.assert_array_equal(loaded["model"]["w"], np.arange(4.0))
    assert loaded["meta"]["step"] == 1
    assert os.listdir(tmp_path) == ["last.npz"]  # the temporary file was removed


def test_unstorable_values_fail_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="pass model.state_dict"):
        sg.save({"model": nn.Linear(2, 2)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="object array"):
        sg.save({"model": {"w": np.array([None])}}, tmp_path / "x.npz")
    with pytest.raises(ValueError, match="meta keys"):
        sg.save({"meta": {"entries": 1}}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_truncated_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    sg.save(_checkpoint(*_trained_setup(steps=1)), path)
    data = path.read_bytes()
    for size in (len(data) // 2, 10, 0):
        path.write_bytes(data[:size])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            sg.load(path)


def test_corrupted_member(tmp_path):
    path = tmp_path / "ckpt.npz"
    sg.save({"model": {"w": np.arange(1000.0)}}, path)
    data = bytearray(path.read_bytes())
    data[400:420] = b"\xff" * 20  # inside w's array bytes: the zip CRC catches it
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        sg.load(path)


def test_foreign_npz_and_npy(tmp_path):
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a scratchgen checkpoint"):
        sg.load(tmp_path / "foreign.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="single .npy array"):
        sg.load(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError):
        sg.load(tmp_path / "missing.npz")


def test_newer_format_version(tmp_path, monkeypatch):
    monkeypatch.setattr(serialize, "FORMAT_VERSION", serialize.FORMAT_VERSION + 1)
    sg.save({"model": {"w": np.zeros(2)}}, tmp_path / "future.npz")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="format version 2, newer"):
        sg.load(tmp_path / "future.npz")


def test_model_kind_mismatch(tmp_path):
    sg.save({"model": {"w": np.zeros(2)}, "meta": {"kind": "vae"}}, tmp_path / "vae.npz")
    assert sg.load(tmp_path / "vae.npz", expected_kind="vae")["meta"]["kind"] == "vae"
    with pytest.raises(CheckpointError, match="holds a 'vae' checkpoint, expected 'gan'"):
        sg.load(tmp_path / "vae.npz", expected_kind="gan")


def test_pickled_member_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("__meta__.npy", "w") as member:
            np.lib.format.write_array(member, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        sg.load(path)
