"""PixelCNN: masked convolutions keep the raster order (checked with the engine's own autograd),
one training step equals the PyTorch twin's, and sampling draws valid 17-level images."""
import numpy as np
import pytest

import scratchgen as sg
from scratchgen.data import load_digits_split
from scratchgen.models import Clock
from scratchgen.models.pixelcnn import MaskedConv2d, PixelCNN, PixelCNNConfig, PixelCNNRecipe, raster_mask
from pixel_twin_checks import START, assert_training_step_equals_the_twins

DIGITS = load_digits_split()


def small_config(**changes):
    return PixelCNNConfig(channels=6, blocks=2, first_kernel=3, **changes)


def input_gradients(network, pixel, side=8):
    """d(sum of the outputs at ``pixel``, raster index)/d input, (side * side,), float64."""
    x = sg.tensor(np.random.default_rng(pixel).random((1, 1, side, side)), requires_grad=True)
    row, col = divmod(pixel, side)
    network(x)[0, :, row, col].sum().backward()
    return x.grad.numpy().reshape(-1)


@pytest.mark.parametrize("layer", ["type A", "stack"])
def test_each_pixel_reads_only_the_pixels_before_it(layer):
    sg.manual_seed(0)
    network = (MaskedConv2d(1, 4, 5, "A") if layer == "type A" else PixelCNN(channels=8, blocks=3)).double()
    for pixel in range(64):
        gradients = input_gradients(network, pixel)
        assert (gradients[pixel:] == 0).all(), f"pixel {pixel} reads pixels at or after itself"
        if pixel:  # and it does read something: the pixel to its left, or the one above
            assert gradients[pixel - 1] != 0 or gradients[pixel - 8] != 0


def test_the_stack_sees_far_back_but_type_a_only_its_window():
    sg.manual_seed(0)
    network = PixelCNN(channels=8, blocks=3).double()
    stack, window = input_gradients(network, 63), input_gradients(MaskedConv2d(1, 4, 5, "A").double(), 36)
    assert np.count_nonzero(window) == 12          # pixel (4, 4): the 12 taps a 5 x 5 type-A mask keeps
    assert np.count_nonzero(stack) > 30            # residual blocks widen what the last pixel reads


def test_masks_and_the_masked_weight_gradient():
    np.testing.assert_array_equal(raster_mask(3, "A"), [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(raster_mask(3, "B"), [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    layer = MaskedConv2d(2, 3, 3, "B")
    layer(sg.randn(2, 2, 5, 5)).sum().backward()
    assert (layer.weight.grad.numpy() * (1 - layer.mask.numpy()) == 0).all()  # masked taps get no gradient
    with pytest.raises(ValueError, match="mask type 'A' or 'B'"):
        raster_mask(3, "C")


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_training_step_loss_gradients_and_update_equal_the_pytorch_twin(torch, conditional):
    from scratchgen.benchmarks.peers.pixelcnn import TorchPixelCNN
    config = small_config(conditional=conditional, clip_norm=0.5 if conditional else 0.0)
    sg.manual_seed(0)
    images, labels = np.array(DIGITS.train_images[:12]), np.array(DIGITS.train_labels[:12])
    assert_training_step_equals_the_twins(PixelCNNRecipe(config, DIGITS), TorchPixelCNN.from_config(config),
                                          images, labels, torch)


def test_samples_are_17_level_images_and_validation_reports_bits_per_dim():
    sg.manual_seed(0)
    recipe = PixelCNNRecipe(small_config(conditional=True), DIGITS.subset(test=20))
    samples = recipe.sample(5)
    assert samples.shape == (5, 8, 8) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples * 16, np.rint(samples * 16))
    bits = recipe.validate(DIGITS.subset(test=20))["test_bits_per_dim"]
    assert 3 < bits < 5  # an untrained model: near the uniform log2 17 = 4.09


def test_the_learning_rate_falls_linearly_to_its_final_fraction():
    recipe = PixelCNNRecipe(small_config(epochs=4, lr=1e-2, final_lr_fraction=0.2), DIGITS)
    assert recipe.learning_rate(START) == pytest.approx(1e-2)
    halfway = Clock(step=25, epoch=2, batch=5, batches_per_epoch=10)       # 2.5 of 4 epochs done
    assert recipe.learning_rate(halfway) == pytest.approx(1e-2 * (1 - 0.8 * 2.5 / 4))
    assert recipe.learning_rate(Clock(step=40, epoch=4, batch=0, batches_per_epoch=10)) == pytest.approx(2e-3)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="odd first_kernel"):
        PixelCNNConfig(first_kernel=4)
    with pytest.raises(ValueError, match="clip_norm >= 0"):
        PixelCNNConfig(clip_norm=-1.0)
    with pytest.raises(ValueError, match="final_lr_fraction in"):
        PixelCNNConfig(final_lr_fraction=1.5)


def test_draws_follow_the_softmax_of_the_logits():
    from scratchgen.models.autoregressive import draw_categorical
    probabilities = np.array([0.5, 0.0, 0.2, 0.3])
    logits = np.log(np.maximum(probabilities, 1e-300))[None].repeat(40_000, axis=0) + 7.0  # shift-invariant
    draws = draw_categorical(logits, np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / len(draws), probabilities, atol=0.01)
