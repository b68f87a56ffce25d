"""CUDA tensors end to end, and the errors that say why ``cuda`` cannot be used and how to fix it.

The error tests run everywhere. The ``gpu``-marked tests need CuPy and a CUDA GPU and skip without
them; on a GPU machine the whole folder runs with ``python -m pytest tests/gpu`` (see docs/gpu.md).
"""
import numpy as np
import pytest
from gpu_target import cupy_with_gpu, simulating

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn
from scratchgen.backend import cupy_or_none
from scratchgen.kernels import implementation
from scratchgen.kernels._checks import check_float_arrays

CUPY = cupy_with_gpu()
needs_gpu = pytest.mark.skipif(CUPY is None, reason="needs CuPy and a CUDA GPU: see docs/gpu.md")
without_cupy = pytest.mark.skipif(cupy_or_none() is not None, reason="CuPy is installed here")


class FakeCupyArray:
    """Just enough of a CuPy array for the device checks, on machines without CuPy."""

    __module__ = "cupy._core.core"

    def __init__(self, shape, dtype=np.float32):
        self.shape, self.ndim, self.dtype = shape, len(shape), np.dtype(dtype)
        self.device = type("Device", (), {"id": 0})()


# ---- errors that name the problem and the fix ----------------------------------------------------
@without_cupy
@pytest.mark.parametrize("make_cuda_tensor", [
    lambda: sg.zeros(2).to("cuda"),
    lambda: sg.zeros(2, device="cuda"),
    lambda: sg.randn(2, 3, device="cuda"),
    lambda: sg.tensor([1.0], device="cuda:0"),
    lambda: sg.ones(1).cuda(),
    lambda: nn.Linear(2, 3).to("cuda"),
], ids=["to", "zeros", "randn", "tensor", "cuda()", "Module.to"])
def test_cuda_without_cupy_says_how_to_install_it(make_cuda_tensor):
    expected = r"needs CuPy, which is not installed.*pip install 'scratchgen\[gpu\]"
    with pytest.raises(RuntimeError, match=expected):
        make_cuda_tensor()


@without_cupy
def test_loading_a_checkpoint_onto_cuda_without_cupy(tmp_path):
    sg.save({"model": nn.Linear(2, 2).state_dict()}, tmp_path / "c.npz")
    with pytest.raises(RuntimeError, match="needs CuPy"):
        sg.load(tmp_path / "c.npz", device="cuda")
    assert sg.load(tmp_path / "c.npz", device="cpu")["model"]["weight"].shape == (2, 2)


def test_unknown_device_is_rejected():
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        sg.zeros(1, device="gpu")


@pytest.mark.skipif(simulating(), reason="the simulator runs gpu kernels on NumPy arrays by design")
def test_gpu_kernels_refuse_host_arrays_outside_the_simulator():
    with sg.use_kernels("gpu"), pytest.raises(ValueError, match="'gpu' cannot run on NumPy"):
        implementation("conv", np.zeros(3, np.float32))


def test_mixed_devices_in_a_kernel_name_both_arrays():
    x, weight = np.zeros((1, 1, 2, 2), np.float32), FakeCupyArray((1, 1, 1, 1))
    expected = r"conv2d_forward: expected all arrays on one device, got x on cpu and weight on cuda:0; move"
    with pytest.raises(ValueError, match=expected):
        check_float_arrays("conv2d_forward", x=x, weight=weight)


def test_mixed_devices_in_an_elementwise_op():
    cuda_tensor = sg.Tensor(FakeCupyArray((2,)))
    with pytest.raises(RuntimeError, match=r"add: expected both tensors on one device, got cpu and cuda:0"):
        sg.ones(2) + cuda_tensor


# ---- on a real GPU --------------------------------------------------------------------------------
@needs_gpu
@pytest.mark.gpu
def test_to_cuda_and_back_keeps_values_and_gradients():
    x = sg.randn(3, 4, dtype=sg.float64, requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda:0" and isinstance(y.data, CUPY.ndarray)
    (y * y).sum().backward()  # the gradient crosses back over the device boundary
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())
    np.testing.assert_array_equal(y.cpu().numpy(), x.numpy())


@needs_gpu
@pytest.mark.gpu
def test_random_tensors_on_cuda_repeat_the_cpu_stream():
    sg.manual_seed(3)
    on_cpu = sg.randn(5)
    sg.manual_seed(3)
    on_gpu = sg.randn(5, device="cuda")
    np.testing.assert_array_equal(on_gpu.cpu().numpy(), on_cpu.numpy())


class TinyModel(nn.Module):
    """One of each kernel family: conv, attention, LSTM."""

    def __init__(self):
        super().__init__()
        self.conv_weight = nn.Parameter(sg.randn(4, 1, 3, 3) * 0.3)
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.head = nn.Linear(6, 10)

    def forward(self, images):                                   # (B, 1, 8, 8)
        features = F.relu(F.conv2d(images, self.conv_weight, padding=1)).mean(dim=2)         # (B, 4, 8)
        sequence = features.transpose(1, 2)                      # (B, 8, 4)
        attended = F.scaled_dot_product_attention(sequence, sequence, sequence, is_causal=True)
        return self.head(self.lstm(attended)[0][:, -1])          # (B, 10)


def train_steps(device, steps=2):
    sg.manual_seed(0)
    model = TinyModel().double()
    optimizer = sg.optim.Adam(model.parameters(), lr=1e-2)
    images, labels = sg.randn(4, 1, 8, 8, dtype=sg.float64), sg.tensor([0, 3, 5, 9])
    model.to(device)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images.to(device)), labels.to(device))
        loss.backward()
        optimizer.step()
    return model, optimizer, loss.item()


@needs_gpu
@pytest.mark.gpu
def test_training_steps_on_cuda_match_the_cpu():
    cpu_model, _, cpu_loss = train_steps("cpu")
    gpu_model, _, gpu_loss = train_steps("cuda")
    assert abs(gpu_loss - cpu_loss) < 1e-8
    for (name, expected), actual in zip(cpu_model.state_dict().items(), gpu_model.state_dict().values()):
        np.testing.assert_allclose(actual, expected, rtol=1e-7, atol=1e-9, err_msg=name)


@needs_gpu
@pytest.mark.gpu
def test_optimizer_state_and_ema_follow_the_model_between_devices():
    model, optimizer, _ = train_steps("cpu", steps=1)
    ema = sg.optim.ExponentialMovingAverage(model)
    model.to("cuda")
    model(sg.randn(2, 1, 8, 8, dtype=sg.float64, device="cuda")).sum().backward()
    optimizer.step()
    ema.update()
    for state in optimizer.state.values():
        assert isinstance(state["exp_avg"], CUPY.ndarray)
    assert all(isinstance(shadow, CUPY.ndarray) for shadow in ema.shadow.values())


@needs_gpu
@pytest.mark.gpu
def test_checkpoint_written_on_cuda_loads_onto_either_device(tmp_path):
    model, optimizer, _ = train_steps("cuda", steps=1)
    sg.save({"model": model.state_dict(), "optim": optimizer.state_dict()}, tmp_path / "c.npz")
    for device, array_type in (("cuda", CUPY.ndarray), ("cpu", np.ndarray)):
        loaded = sg.load(tmp_path / "c.npz", device=device)
        assert all(isinstance(a, array_type) for a in loaded["model"].values())
        fresh = TinyModel().double().to(device)
        fresh.load_state_dict(loaded["model"])
        np.testing.assert_array_equal(fresh.state_dict()["head.weight"], model.state_dict()["head.weight"])


@needs_gpu
@pytest.mark.gpu
def test_mixed_devices_on_a_real_gpu():
    with pytest.raises(RuntimeError, match="expected both tensors on one device"):
        sg.ones(2) + sg.ones(2, device="cuda")
    with pytest.raises(ValueError, match="expected all arrays on one device"):
        F.conv2d(sg.ones(1, 1, 3, 3, device="cuda"), sg.ones(1, 1, 2, 2))
