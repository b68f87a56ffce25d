"""The autograd ops and layers through the GPU kernels, forward and backward, against the reference kernels.

This checks the glue between ``scratchgen.ops`` and the ``gpu`` modules (layouts handed over,
contiguity, saved state), not the kernels alone. In Numba's CUDA simulator the tensors stay NumPy
and ``use_kernels("gpu")`` routes them through the GPU kernels; on a real GPU the same computation
runs on CUDA tensors, where "gpu" is the default (see gpu_target.py).
"""
import numpy as np
import pytest
from gpu_target import array_module_or_skip, assert_close, simulating

array_module_or_skip()

import scratchgen as sg  # noqa: E402
import scratchgen.functional as F  # noqa: E402
from scratchgen import kernels as sg_kernels  # noqa: E402


def outputs_and_gradients(compute, inputs, device, kernels):
    """``compute``'s outputs and the gradient of a fixed random projection of them for each input
    (host arrays), with ``inputs`` (host Tensors) copied to ``device`` and the named kernels; also
    the set of kernel implementations that ran."""
    leaves = [x.detach().to(device).requires_grad_() for x in inputs]
    picked = set()
    record = lambda family, name: picked.add(name)  # noqa: E731
    sg_kernels.implementation_listeners.append(record)
    try:
        with sg.use_kernels(kernels):
            outputs = compute(*leaves)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            rng = np.random.default_rng(1)
            loss = sum((out * sg.tensor(rng.standard_normal(out.shape), dtype=out.dtype, device=device)).sum()
                       for out in outputs)
            loss.backward()
    finally:
        sg_kernels.implementation_listeners.remove(record)
    return [out.detach().cpu().numpy() for out in outputs], [x.grad.cpu().numpy() for x in leaves], picked


def check_against_reference(compute, *inputs):
    device, kernels = ("cpu", "gpu") if simulating() else ("cuda", None)
    outputs, grads, picked = outputs_and_gradients(compute, inputs, device, kernels)
    assert picked == {"gpu"}, f"expected the gpu kernels to run, got {picked}"
    expected_outputs, expected_grads, _ = outputs_and_gradients(compute, inputs, "cpu", "reference")
    for i, (actual, wanted) in enumerate(zip(outputs + grads, expected_outputs + expected_grads)):
        assert_close(actual, wanted, f"output or gradient {i}")


def randn(*shape):
    return sg.randn(*shape, dtype=sg.float64)


@pytest.fixture(autouse=True)
def seed():
    sg.manual_seed(0)


def test_conv2d_and_its_transpose():
    check_against_reference(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=2),
                            randn(2, 4, 7, 6), randn(6, 2, 3, 3), randn(6))
    check_against_reference(lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                            randn(2, 3, 4, 5), randn(3, 2, 4, 4))


@pytest.mark.parametrize("is_causal", [False, True])
def test_scaled_dot_product_attention(is_causal):
    mask = sg.rand(1, 9, 11) > 0.2  # boolean, True = attend; broadcast over batch and heads
    check_against_reference(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=None if is_causal else mask,
                                                       is_causal=is_causal),
        randn(2, 3, 9, 4), randn(2, 3, 11, 4), randn(2, 3, 11, 5))


def test_lstm_two_layers_batch_first():
    def layer(inputs, hidden=5):
        return randn(4 * hidden, inputs), randn(4 * hidden, hidden), randn(4 * hidden), randn(4 * hidden)

    def two_layers(x, *weights):
        out, (h_n, c_n) = F.lstm(x, [weights[:4], weights[4:]], batch_first=True)
        return out, h_n, c_n

    check_against_reference(two_layers, randn(2, 4, 3), *layer(3), *layer(5))


def test_the_norms():
    """LayerNorm's, GroupNorm's and BatchNorm's layouts through kernels.normalization's gpu module."""
    check_against_reference(lambda x: (F.layer_norm(x, x.shape[1:]), F.group_norm(x, 2),
                                       F.batch_norm(x, None, None, training=True)), randn(3, 4, 5))



def test_the_fused_group_norm():
    """GroupNorm with its weight and bias: one GroupNormAffine op, the gpu module's affine pair."""
    check_against_reference(lambda x, weight, bias: F.group_norm(x, 2, weight, bias), randn(3, 4, 5, 2),
                            randn(4), randn(4))
