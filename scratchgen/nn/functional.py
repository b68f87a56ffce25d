"""``scratchgen.nn.functional`` is ``scratchgen.functional``: PyTorch's module path for ``F``.

``import scratchgen.nn.functional as F`` and ``import scratchgen.functional as F`` give the one
module object (this file replaces its own entry in ``sys.modules``), so nothing is listed twice.
"""
import sys

from .. import functional

sys.modules[__name__] = functional
