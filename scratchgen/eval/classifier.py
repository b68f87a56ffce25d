"""The digits classifier behind the sample metrics.

    64 pixels -> Linear 128 -> ReLU -> Linear 64 -> ReLU  (the 64 "features")  -> Linear 10 (logits)

It is the ``mlp`` model (``scratchgen train mlp``) at its defaults, trained with this engine on
the digits training split. Its weights ship with the package as ``digits_classifier.npz`` (an
``mlp`` checkpoint without optimizer state, ~70 KB); test accuracy **98.2%** on the 450 test
images (recorded in the file's metadata as ``test_accuracy``). The features are what the digits
FID compares; the softmax of the logits gives class coverage and the Inception Score.

Retrain it reproducibly (same seed and thread count give the same bits)::

    OMP_NUM_THREADS=1 scratchgen retrain-classifier      # rewrites digits_classifier.npz

(``runner.retrain_classifier``: training is the runner's job, and ``eval`` sits below it.)
"""
import functools
import importlib.resources

import numpy as np

from .. import nn, serialize
from ..autograd import no_grad
from ..tensor import tensor

WEIGHTS_FILE = "digits_classifier.npz"
NUM_CLASSES = 10


class DigitsClassifier(nn.Module):
    """An MLP over flattened images; ``features`` is its penultimate (post-ReLU) layer."""

    def __init__(self, pixels=64, hidden=128, features=64, classes=NUM_CLASSES):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU(),
                                  nn.Linear(hidden, features), nn.ReLU())
        self.head = nn.Linear(features, classes)

    def features(self, images):
        return self.body(images.reshape(images.shape[0], -1))  # (N, features)

    def forward(self, images):
        return self.head(self.features(images))  # (N, classes) logits


def weights_path():
    return importlib.resources.files(__package__).joinpath(WEIGHTS_FILE)


@functools.lru_cache(maxsize=1)
def load_digits_classifier():
    """The shipped classifier (evaluation mode), loaded once per process."""
    with importlib.resources.as_file(weights_path()) as path:
        checkpoint = serialize.load(path, expected_kind="mlp")
    config = checkpoint["meta"]["config"]
    model = DigitsClassifier(hidden=config["hidden"], features=config["features"])
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def classify(images, batch_size=1024):
    """(features (N, F), class probabilities (N, 10)) of (N, 8, 8) images, as float64 NumPy."""
    model = load_digits_classifier()
    features, probabilities = [], []
    with no_grad():
        for start in range(0, len(images), batch_size):
            chunk = tensor(np.asarray(images[start:start + batch_size], dtype=np.float32))
            hidden = model.features(chunk)
            features.append(hidden.numpy().astype(np.float64))
            probabilities.append(model.head(hidden).softmax(-1).numpy().astype(np.float64))
    return np.concatenate(features), np.concatenate(probabilities)
