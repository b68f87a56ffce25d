"""Image data sets as NumPy arrays, and the two resamplings the models and metrics need.

Every image data set is an ``ImageData``: float32 images of shape (N, H, W) in [0, 1] and int64
labels, split into train and test. The sources (``digits``, ``idx``) build on this module;
``scratchgen.data.sources.load_images`` picks one of them by name.
"""
import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageData:
    name: str
    train_images: np.ndarray  # (N_train, H, W) float32 in [0, 1]
    train_labels: np.ndarray  # (N_train,) int64
    test_images: np.ndarray   # (N_test, H, W) float32 in [0, 1]
    test_labels: np.ndarray   # (N_test,) int64

    @property
    def image_shape(self):
        return tuple(self.train_images.shape[1:])

    @property
    def train_arrays(self):
        """What the training loop batches: (images, labels)."""
        return self.train_images, self.train_labels

    def subset(self, train=None, test=None):
        """The first ``train`` / ``test`` examples (a dry run trains on a few batches)."""
        return dataclasses.replace(self, train_images=self.train_images[:train],
                                   train_labels=self.train_labels[:train],
                                   test_images=self.test_images[:test], test_labels=self.test_labels[:test])


# ---- resampling ----------------------------------------------------------------------------------
def _bilinear_matrix(size_in, size_out):
    """(size_out, size_in) weights of 1-D linear interpolation with half-pixel centres.

    Output pixel j samples the input at s = (j + 0.5) * size_in / size_out - 0.5 (clamped at 0),
    and takes (1 - t) of pixel floor(s) and t of the next one, t = s - floor(s) — the
    ``align_corners=False`` convention of PyTorch and OpenCV.
    """
    source = np.maximum((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0.0)
    left = np.floor(source).astype(np.int64)
    right = np.minimum(left + 1, size_in - 1)
    fraction = source - left
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), left), 1 - fraction)
    np.add.at(weights, (np.arange(size_out), right), fraction)
    return weights


def resize_bilinear(images, size):
    """Resize (N, H, W) images to (N, size, size) by separable bilinear interpolation.

    out = R_rows @ image @ R_cols^T, one interpolation matrix per axis; the result stays in
    [0, 1] because every row of weights is a convex combination.
    """
    images = np.asarray(images)
    rows = _bilinear_matrix(images.shape[-2], size)
    cols = _bilinear_matrix(images.shape[-1], size)
    return np.einsum("ij,njk,lk->nil", rows, images, cols).astype(images.dtype)


def average_pool(images, size):
    """Shrink (N, H, W) images to (N, size, size) by averaging factor x factor blocks (H = factor * size)."""
    images = np.asarray(images)
    height, width = images.shape[-2:]
    if height != width or height % size:
        raise ValueError(f"average_pool: expected square images whose side is a multiple of {size}, "
                         f"got shape {images.shape}")
    factor = height // size
    return images.reshape(-1, size, factor, size, factor).mean(axis=(2, 4))
