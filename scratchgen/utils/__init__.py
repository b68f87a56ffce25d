"""``scratchgen.utils``, as ``torch.utils``: ``scratchgen.utils.data`` holds the data loading."""
from . import data  # noqa: F401
