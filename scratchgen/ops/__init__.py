"""The differentiable ops, grouped by kind. ``METHODS`` lists those that are also Tensor methods."""
from . import elementwise, linalg, reduction, shape

_METHOD_NAMES = {
    elementwise: ["exp", "log", "sqrt", "abs", "erf", "clamp", "clip", "maximum", "minimum", "relu",
                  "sigmoid", "tanh", "softplus", "pow", "isfinite", "isnan", "sign", "any", "all", "neg"],
    reduction: ["sum", "mean", "var", "std", "amax", "amin", "max", "min", "argmax", "argmin",
                "logsumexp", "softmax", "log_softmax"],
    shape: ["reshape", "view", "flatten", "permute", "transpose", "t", "squeeze", "unsqueeze", "expand",
            "expand_as", "broadcast_to", "split", "chunk", "unbind", "gather", "sum_to"],
    linalg: ["matmul"],
}

METHODS = {name: getattr(module, name) for module, names in _METHOD_NAMES.items() for name in names}
