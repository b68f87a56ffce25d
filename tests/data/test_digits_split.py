"""The embedded digits split and the image resamplings."""
import numpy as np
import pytest

from scratchgen.data import average_pool, load_digits_split, load_images, resize_bilinear


def test_split_is_the_documented_stratified_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    _, expected_test, _, expected_labels = train_test_split(digits.images / 16, digits.target, test_size=0.25,
                                                            random_state=0, stratify=digits.target)
    data = load_digits_split()
    assert data.train_images.shape == (1347, 8, 8) and data.test_images.shape == (450, 8, 8)
    assert data.train_images.dtype == np.float32 and data.train_labels.dtype == np.int64
    np.testing.assert_array_equal(data.test_images, expected_test.astype(np.float32))
    np.testing.assert_array_equal(data.test_labels, expected_labels)
    assert 0 <= data.train_images.min() and data.train_images.max() == 1
    assert set(np.bincount(data.test_labels)) <= {43, 44, 45, 46}  # stratified: ~45 of each digit


def test_split_arrays_are_read_only_because_they_are_shared():
    with pytest.raises(ValueError):
        load_digits_split().train_images[0, 0, 0] = 1


def test_upsampled_digits_match_pytorch_bilinear_interpolation(torch):
    data = load_images("digits", image_size=16)
    assert data.image_shape == (16, 16) and data.test_images.shape == (450, 16, 16)
    small = torch.from_numpy(np.array(load_digits_split().test_images[:20]))[:, None]
    expected = torch.nn.functional.interpolate(small, size=16, mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(data.test_images[:20], expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", [3, 5, 11, 28])
def test_resize_bilinear_matches_pytorch_up_and_down(torch, size):
    images = np.random.default_rng(size).random((4, 7, 7))
    expected = torch.nn.functional.interpolate(torch.from_numpy(images)[:, None], size=size, mode="bilinear",
                                               align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(resize_bilinear(images, size), expected, rtol=1e-12, atol=1e-12)


def test_average_pool_averages_blocks_and_rejects_other_sizes():
    images = np.arange(2 * 16 * 16, dtype=np.float64).reshape(2, 16, 16)
    pooled = average_pool(images, 8)
    assert pooled.shape == (2, 8, 8)
    assert pooled[1, 2, 3] == images[1, 4:6, 6:8].mean()
    with pytest.raises(ValueError, match="multiple of 8"):
        average_pool(np.zeros((1, 12, 12)), 8)


def test_unknown_data_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="expected 'digits' or 'idx:FOLDER', got 'mnist'"):
        load_images("mnist")
