"""The embedded default data set: scikit-learn's 8x8 digits, split once for everything.

    images = digits.data / 16                       (1,797 grey images in [0, 1], 10 classes)
    train, test = train_test_split(..., test_size=0.25, random_state=0, stratify=labels)

gives 1,347 training and 450 test images, the same for every model, metric and test (docs/design.md,
"Data"). Nothing is downloaded: the data ships with scikit-learn.

``image_size=16`` upsamples every image bilinearly (PyTorch's ``interpolate(mode="bilinear",
align_corners=False)``) for the convolutional models, which need room for a few stride-2 layers.
"""
import functools

import numpy as np

from .images import ImageData, resize_bilinear

SPLIT_SEED = 0
TEST_SHARE = 0.25
DIGITS_SIZE = 8


@functools.lru_cache(maxsize=None)
def _digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # (1797, 8, 8) in [0, 1]
    labels = digits.target.astype(np.int64)
    train_images, test_images, train_labels, test_labels = train_test_split(
        images, labels, test_size=TEST_SHARE, random_state=SPLIT_SEED, stratify=labels)
    split = (train_images, train_labels, test_images, test_labels)
    for array in split:
        array.flags.writeable = False  # shared by every caller through the cache
    return split


def load_digits_split(image_size=DIGITS_SIZE):
    """The digits split as ``ImageData`` (read-only arrays; copy before writing into them)."""
    train_images, train_labels, test_images, test_labels = _digits_split()
    if image_size != DIGITS_SIZE:
        train_images = resize_bilinear(train_images, image_size)
        test_images = resize_bilinear(test_images, image_size)
    return ImageData("digits", train_images, train_labels, test_images, test_labels)
