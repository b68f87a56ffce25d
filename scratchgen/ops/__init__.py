"""The differentiable ops, grouped by kind; many are also ``Tensor`` methods (written out in tensor.py)."""
from . import elementwise, linalg, reduction, shape
