"""Sample-quality metrics on the digits (``metrics``) and the classifier they read through
(``classifier``). ``scratchgen eval samples FILE.npy`` prints ``digits_metrics`` of a file."""
from .classifier import DigitsClassifier, classify, load_digits_classifier  # noqa: F401
from .metrics import (class_shares, digits_metrics, fid_floor, frechet_distance,  # noqa: F401
                      inception_score, nearest_distances)
