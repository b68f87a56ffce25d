"""RealNVP: the flow inverts exactly, its summed log-determinant equals log|det| of the Jacobian
computed by backward passes, a 2-D flow's density integrates to 1, and one training step's loss
and gradients equal the PyTorch twin's."""
import math

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import init
from scratchgen.data import load_digits_split
from scratchgen.eval.likelihood import dequantise, to_levels
from scratchgen.models import Clock
from scratchgen.models.realnvp import AffineCoupling, RealNVP, RealNVPConfig, RealNVPRecipe, logit_transform
from twin_checks import assert_parameters_equal_the_twins

DIGITS = load_digits_split()
LEVELS = to_levels(DIGITS.train_images[:8])
START = Clock(step=0, epoch=0, batch=0, batches_per_epoch=10)


def random_flow(shape=(1, 8, 8), seed=0, **sizes):
    """A flow with every parameter moved off its identity start (couplings and actnorms act)."""
    sg.manual_seed(seed)
    flow = RealNVP(shape, **{"channels": 4, "blocks": 1, "checkerboard": 2, "channelwise": 2, **sizes})
    for name, parameter in flow.named_parameters():
        if name.endswith(("last.weight", "last.bias", "log_scale", "bias")):
            init.normal_(parameter, 0.0, 0.3)
    return flow


def test_inverse_of_forward_is_the_identity():
    flow = random_flow()
    x = sg.randn(5, 1, 8, 8)
    z, log_det = flow.flow(x)
    assert z.shape == (5, 4, 4, 4) and log_det.shape == (5,)
    assert np.abs(log_det.numpy()).min() > 0.1  # the layers really scale
    np.testing.assert_allclose(flow.flow_inverse(z).numpy(), x.numpy(), rtol=1e-5, atol=1e-5)


def test_summed_log_determinant_equals_slogdet_of_the_full_jacobian():
    """The whole map y -> z (logit, couplings, actnorms, squeeze) on (1, 4, 4) images: its 16 x 16
    Jacobian row by row, each row one backward pass of the engine."""
    flow = random_flow(shape=(1, 4, 4)).double()
    y = sg.tensor(np.random.default_rng(1).random((2, 1, 4, 4)), requires_grad=True)
    x, logit_log_det = logit_transform(y)
    z, flow_log_det = flow.flow(x)
    total = (logit_log_det + flow_log_det).numpy()
    flat = z.reshape(2, 16)
    jacobians = np.zeros((2, 16, 16))
    for output in range(16):
        (gradient,) = sg.grad(flat[:, output].sum(), y, retain_graph=True)   # images are independent
        jacobians[:, output] = gradient.numpy().reshape(2, 16)
    for image in range(2):
        sign, log_abs_det = np.linalg.slogdet(jacobians[image])
        assert sign != 0 and total[image] == pytest.approx(log_abs_det, rel=1e-9, abs=1e-9)


def test_a_two_dimensional_flow_density_integrates_to_one():
    flow = random_flow(shape=(1, 1, 2), checkerboard=4, channelwise=0).double()
    step = 0.05
    axis = np.arange(-15, 15, step) + step / 2      # midpoints of a 600 x 600 grid
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 1, 1, 2)
    with sg.no_grad():
        density = np.exp(flow.flow_log_density(sg.tensor(grid)).numpy())
    assert density.sum() * step * step == pytest.approx(1.0, abs=2e-3)


def test_a_coupling_changes_only_the_unmasked_pixels():
    sg.manual_seed(0)
    mask = np.zeros((1, 4, 4), np.float32)
    mask[..., ::2] = 1
    coupling = AffineCoupling(mask, channels=3, blocks=1)
    init.normal_(coupling.net.last.weight, 0.0, 0.5)
    x = sg.randn(2, 1, 4, 4)
    out, _ = coupling(x)
    np.testing.assert_array_equal(out.numpy()[..., ::2], x.numpy()[..., ::2])
    assert not np.allclose(out.numpy()[..., 1::2], x.numpy()[..., 1::2])


def test_training_loss_and_every_gradient_equal_the_pytorch_twin(torch):
    from scratchgen.benchmarks.peers.realnvp import TorchRealNVP, training_loss
    config = RealNVPConfig(channels=4, blocks=1, checkerboard=2, channelwise=2)
    flow = random_flow().double()
    twin = TorchRealNVP.from_config(config, (8, 8)).double()
    twin.load_state_dict({name: torch.from_numpy(array) for name, array in flow.state_dict().items()})
    assert sum(p.numel() for p in flow.parameters()) == sum(p.numel() for p in twin.parameters())
    y = dequantise(LEVELS, np.random.default_rng(0).random(LEVELS.shape)).astype(np.float64)

    loss = -flow.log_density(sg.tensor(y).unsqueeze(1)).mean() / 64
    loss.backward()
    expected = training_loss(twin, torch.from_numpy(y))
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert_parameters_equal_the_twins(flow, twin, values=False)


def test_the_recipe_reports_the_discrete_bound_and_samples_17_level_images():
    sg.manual_seed(0)
    recipe = RealNVPRecipe(RealNVPConfig(channels=4, checkerboard=2, channelwise=2, test_draws=2),
                           DIGITS.subset(test=30))
    losses = recipe.train_step((sg.tensor(np.array(DIGITS.train_images[:8])),), START)
    # at the identity start the bound is the density's nats plus 64 log 17, in bits per pixel
    assert losses["bits_per_dim"] == pytest.approx((losses["loss"] + math.log(17)) / math.log(2), rel=1e-5)
    assert 2 < recipe.validate(DIGITS.subset(test=30))["test_bits_per_dim"] < 6
    samples = recipe.sample(6)
    assert samples.shape == (6, 8, 8) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples * 16, np.rint(samples * 16))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="even image side"):
        RealNVP((1, 7, 7))
    with pytest.raises(ValueError, match="test_draws >= 1"):
        RealNVPConfig(test_draws=0)
    odd_levels = DIGITS.subset(test=4)
    with pytest.raises(ValueError, match="17 grey levels"):
        RealNVPRecipe(RealNVPConfig(), type(odd_levels)("idx", odd_levels.train_images * 0.99,
                                                        odd_levels.train_labels, odd_levels.test_images,
                                                        odd_levels.test_labels))
