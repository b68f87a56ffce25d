"""Weights interchange: scratchgen.save/load of a plain state dict (the second checkpoint layout),
sample/eval refusing one with the reason, safetensors both ways, and weights moved torch ->
scratchgen -> torch with the same outputs."""
import numpy as np
import pytest

import scratchgen as sg
from conftest import require_optional, require_torch
from scratchgen import cli, nn
from scratchgen.serialize import CheckpointError, load_safetensors, save_safetensors


def require_safetensors():
    return require_optional("safetensors.numpy", "safetensors", "pip install -e '.[safetensors]'")


def small_cnn(nn):
    """One architecture in either library (``nn`` is scratchgen.nn or torch.nn)."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 3))


def test_a_plain_state_dict_round_trips_and_loads_into_the_model(tmp_path):
    model = small_cnn(nn)
    model(sg.randn(6, 1, 5, 5))  # running statistics move off their initial values
    path = tmp_path / "weights.npz"
    sg.save(model.state_dict(), path)
    loaded = sg.load(path)
    assert list(loaded) == list(model.state_dict())  # the same names in the same order, no "meta"
    for name, array in model.state_dict().items():
        assert loaded[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded[name], array)
    fresh = small_cnn(nn)
    fresh.load_state_dict(sg.load(path))
    x = sg.randn(2, 1, 5, 5)
    fresh.eval(), model.eval()
    np.testing.assert_array_equal(fresh(x).data, model(x).data)


def test_a_state_dict_of_tensors_saves_too_and_a_truncated_one_is_refused(tmp_path):
    path = tmp_path / "tensors.npz"
    sg.save({"w": sg.ones(2, 3), "b": sg.zeros(3)}, path)
    assert set(sg.load(path)) == {"w", "b"}
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        sg.load(path)


def test_a_training_checkpoint_keeps_its_layout():
    import scratchgen.serialize as serialize
    assert not serialize.is_state_dict({"model": {"w": np.ones(2)}, "meta": {"kind": "mlp"}})
    assert serialize.is_state_dict({"w": np.ones(2)})


def test_sample_and_eval_say_a_plain_state_dict_is_not_a_training_checkpoint(tmp_path, capsys):
    path = tmp_path / "weights.npz"
    sg.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match="plain state dict"):
        sg.load(path, expected_kind="vae")
    assert cli.main(["sample", "vae", "--checkpoint", str(path), "--out", str(tmp_path / "x.npy")]) == 2
    assert "is a plain state dict" in capsys.readouterr().err
    assert cli.main(["eval", "vae", "--checkpoint", str(path)]) == 2
    assert "model.load_state_dict(scratchgen.load(path))" in capsys.readouterr().err


def test_safetensors_round_trip_and_a_corrupt_file(tmp_path):
    numpy_api = require_safetensors()
    model = nn.Linear(3, 2)
    path = tmp_path / "model.safetensors"
    save_safetensors(model.state_dict(), path, metadata={"format": "np"})
    loaded = load_safetensors(path)
    assert set(loaded) == {"weight", "bias"}
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded[name], array)
    # a standard file: the safetensors package reads it itself
    np.testing.assert_array_equal(numpy_api.load_file(str(path))["weight"], model.weight.data)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a valid .safetensors file"):
        load_safetensors(tmp_path / "bad.safetensors")
    with pytest.raises(TypeError, match="expected a state dict"):
        save_safetensors({"model": {"w": 1}}, path)


@pytest.mark.torch
def test_weights_move_torch_to_scratchgen_to_torch_with_the_same_outputs(tmp_path):
    torch = require_torch()
    require_safetensors()
    from safetensors.torch import load_file

    torch.manual_seed(0)
    theirs = small_cnn(torch.nn)
    theirs(torch.randn(8, 1, 5, 5))  # running statistics away from (0, 1)
    theirs.eval()
    ours = small_cnn(nn)
    nn.utils.load_torch_state_dict(ours, theirs.state_dict())
    ours.eval()
    x = np.random.default_rng(0).standard_normal((4, 1, 5, 5)).astype(np.float32)
    expected = theirs(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(ours(sg.from_numpy(x)).data, expected, rtol=1e-5, atol=1e-6)

    path = tmp_path / "exported.safetensors"
    save_safetensors(ours.state_dict(), path)
    back = small_cnn(torch.nn)
    back.load_state_dict(load_file(str(path)))  # every name, shape and dtype as PyTorch wants them
    back.eval()
    np.testing.assert_array_equal(back(torch.from_numpy(x)).detach().numpy(), expected)


@pytest.mark.torch
def test_load_torch_state_dict_reports_wrong_names():
    torch = require_torch()
    with pytest.raises(RuntimeError, match="missing keys"):
        nn.utils.load_torch_state_dict(nn.Linear(2, 2), {"weight": torch.zeros(2, 2)})
