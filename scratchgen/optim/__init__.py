"""``scratchgen.optim``: optimizers (SGD, Adam, AdamW, RMSprop), schedules (``lr_scheduler``) and the
exponential moving average of weights (``ExponentialMovingAverage``)."""
from . import lr_scheduler  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .ema import ExponentialMovingAverage  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .sgd import SGD  # noqa: F401
