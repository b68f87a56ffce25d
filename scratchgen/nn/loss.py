"""Loss modules: the functions of ``scratchgen.functional`` with their options fixed at
construction. Class weights are buffers, as in PyTorch, so they travel with ``state_dict``."""
from .. import functional as F
from ..tensor import Tensor, tensor
from .module import Module


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"{type(self).__name__}: expected reduction 'mean', 'sum' or 'none', "
                             f"got {reduction!r}")
        self.reduction = reduction

    def _register_weight(self, name, weight):
        self.register_buffer(name, None if weight is None else
                             weight if isinstance(weight, Tensor) else tensor(weight))

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C, ...) at integer targets (N, ...)."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.ignore_index = ignore_index
        self._register_weight("weight", weight)

    def forward(self, input, target):
        return F.nll_loss(input, target, ignore_index=self.ignore_index, reduction=self.reduction,
                          weight=self.weight)


class CrossEntropyLoss(NLLLoss):
    """Cross-entropy of logits (N, C, ...) at integer targets (N, ...), with optional label smoothing."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, ignore_index, reduction)
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing, weight=self.weight)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits; ``weight`` rescales each element's loss, ``pos_weight``
    the positive term (per class, broadcast over the last dim)."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self._register_weight("weight", weight)
        self._register_weight("pos_weight", pos_weight)

    def forward(self, input, target):
        if self.weight is None:
            return F.binary_cross_entropy_with_logits(input, target, reduction=self.reduction,
                                                      pos_weight=self.pos_weight)
        loss = F.binary_cross_entropy_with_logits(input, target, reduction="none", pos_weight=self.pos_weight)
        return F._reduce(loss * self.weight, self.reduction, "BCEWithLogitsLoss")
