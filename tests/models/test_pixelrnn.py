"""PixelRNN: each pixel's distribution depends only on earlier pixels, sampling one LSTM step at a
time gives the same distributions as reading the whole image at once, and one training step
equals the PyTorch twin's."""
import numpy as np
import pytest

import scratchgen as sg
from scratchgen.data import load_digits_split
from scratchgen.models.pixelrnn import PixelRNN, PixelRNNConfig, PixelRNNRecipe
from pixel_twin_checks import assert_training_step_equals_the_twins

DIGITS = load_digits_split()
LEVELS = np.rint(np.array(DIGITS.train_images[:6]) * 16).astype(np.int64)


def small_config(**changes):
    """A tiny model; no dropout, whose random masks the twin cannot share."""
    return PixelRNNConfig(embedding_dim=5, hidden=7, dropout=0.0, **changes)


def test_changing_a_pixel_changes_only_the_distributions_after_it():
    sg.manual_seed(0)
    model = PixelRNN(64, embedding_dim=5, hidden=7).double()
    before = model.logits(sg.tensor(LEVELS[:1])).numpy().reshape(17, 64)
    for pixel in (0, 27, 63):
        changed = LEVELS[:1].copy()
        changed.reshape(-1)[pixel] = (changed.reshape(-1)[pixel] + 5) % 17
        after = model.logits(sg.tensor(changed)).numpy().reshape(17, 64)
        np.testing.assert_array_equal(after[:, :pixel + 1], before[:, :pixel + 1])
        if pixel < 63:
            assert not np.allclose(after[:, pixel + 1], before[:, pixel + 1])


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_stepping_the_lstm_pixel_by_pixel_equals_reading_the_whole_image(conditional):
    sg.manual_seed(0)
    model = PixelRNN(64, embedding_dim=5, hidden=7, conditional=conditional).double()
    labels = sg.tensor(np.array(DIGITS.train_labels[:6])) if conditional else None
    whole = model.logits(sg.tensor(LEVELS), labels).numpy()                          # (6, 17, 8, 8)
    next_logits = model.next_pixel(6, labels)
    for row in range(8):
        for col in range(8):
            np.testing.assert_allclose(next_logits(LEVELS, row, col), whole[:, :, row, col], rtol=1e-10,
                                       atol=1e-12, err_msg=f"pixel ({row}, {col})")


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_training_step_loss_gradients_and_update_equal_the_pytorch_twin(torch, conditional):
    from scratchgen.benchmarks.peers.pixelrnn import TorchPixelRNN
    config = small_config(conditional=conditional, clip_norm=0.5 if conditional else 0.0)
    sg.manual_seed(0)
    images, labels = np.array(DIGITS.train_images[:6]), np.array(DIGITS.train_labels[:6])
    twin = TorchPixelRNN.from_config(config, (8, 8))
    assert_training_step_equals_the_twins(PixelRNNRecipe(config, DIGITS), twin, images, labels, torch)


def test_samples_are_17_level_images():
    sg.manual_seed(0)
    samples = PixelRNNRecipe(small_config(), DIGITS).sample(4)
    assert samples.shape == (4, 8, 8) and samples.dtype == np.float32
    np.testing.assert_array_equal(samples * 16, np.rint(samples * 16))


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="hidden >= 1"):
        PixelRNNConfig(hidden=0)
