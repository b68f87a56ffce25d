"""``scratchgen.optim``: optimizers (SGD, Adam, AdamW, RMSprop; ``fused=True`` updates flat buffers in one
kernel call), schedules (``lr_scheduler``), the exponential moving average of weights
(``ExponentialMovingAverage``) and the flat parameter layout (``FlatParameters``)."""
from . import lr_scheduler  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .ema import ExponentialMovingAverage  # noqa: F401
from .flat import FlatParameters  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .sgd import SGD  # noqa: F401
