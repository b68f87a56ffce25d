"""``scratchgen.nn``: ``Module``, ``Parameter`` and the layers, with PyTorch's names, parameter names
and layouts (so a ``state_dict`` of NumPy arrays moves between the two)."""
from . import init, utils  # noqa: F401
from .activation import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax,  # noqa: F401
                         Softplus, Tanh)
from .containers import ModuleDict, ModuleList, Sequential  # noqa: F401
from .layers import Dropout, Embedding, Flatten, Identity, Linear, Unflatten  # noqa: F401
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss  # noqa: F401
from .module import Module, Parameter  # noqa: F401
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm  # noqa: F401
from .recurrent import GRU, LSTM, RNN, LSTMCell  # noqa: F401
from .transformer import (TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,  # noqa: F401
                          TransformerEncoderLayer)
from .conv import AvgPool2d, Conv2d, ConvTranspose2d, MaxPool2d, Upsample  # noqa: F401
from .attention import MultiheadAttention  # noqa: F401
from . import functional  # noqa: E402,F401  (torch.nn.functional's path: scratchgen.functional itself)
