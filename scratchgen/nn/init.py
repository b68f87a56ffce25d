"""``scratchgen.nn.init``: the initialisers of ``scratchgen.init``, under PyTorch's path."""
from ..init import *  # noqa: F401,F403
from ..init import __all__, _calculate_fan_in_and_fan_out  # noqa: F401
