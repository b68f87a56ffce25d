"""``load_images(spec)``: the image data set named by the ``--data`` string.

    "digits"        scikit-learn's digits (the default; ``scratchgen.data.digits``)
    "idx:FOLDER"    MNIST-format IDX files in FOLDER (``scratchgen.data.idx`` names the files)

The dispatcher lives above the sources it picks from (they import ``images``, never this module).
"""
import dataclasses

from .digits import DIGITS_SIZE, load_digits_split
from .idx import load_idx_folder
from .images import resize_bilinear


def load_images(spec="digits", image_size=None):
    """The data set named by ``spec`` ("digits" or "idx:FOLDER"), resized to ``image_size`` when given."""
    if spec == "digits":
        return load_digits_split(image_size or DIGITS_SIZE)
    kind, _, folder = spec.partition(":")
    if kind != "idx" or not folder:
        raise ValueError(f"data: expected 'digits' or 'idx:FOLDER', got {spec!r}")
    data = load_idx_folder(folder)
    if image_size is None or image_size == data.image_shape[0]:
        return data
    return dataclasses.replace(data, train_images=resize_bilinear(data.train_images, image_size),
                               test_images=resize_bilinear(data.test_images, image_size))
