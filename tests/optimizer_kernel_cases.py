"""The optimizer-kernel cases both kernel tests draw from (``tests/kernels/test_optim.py`` on the CPU,
``tests/gpu/test_gpu_optim_sim.py`` in the CUDA simulator): every option of each update, run for a
few steps from the same arrays through an implementation and through ``reference``."""
import numpy as np
from hypothesis import strategies as st

# (kernel, options, state arrays it keeps): every branch of every update is in some case.
CASES = [
    ("sgd_step", dict(lr=0.1, weight_decay=0.0, momentum=0.0, dampening=0.0, nesterov=False), ()),
    ("sgd_step", dict(lr=0.05, weight_decay=0.01, momentum=0.9, dampening=0.3, nesterov=False),
     ("momentum_buffer",)),
    ("sgd_step", dict(lr=0.05, weight_decay=0.1, momentum=0.8, dampening=0.0, nesterov=True),
     ("momentum_buffer",)),
    ("adam_step", dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False),
     ("exp_avg", "exp_avg_sq")),
    ("adam_step", dict(lr=0.02, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1, decoupled=False),
     ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")),
    ("adam_step", dict(lr=0.02, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.5, decoupled=True),
     ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")),
    ("rmsprop_step", dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0), ("square_avg",)),
    ("rmsprop_step", dict(lr=0.01, alpha=0.9, eps=1e-4, weight_decay=0.1, momentum=0.5),
     ("square_avg", "grad_avg", "momentum_buffer")),
    ("ema_step", dict(decay=0.9), ()),
]
STATE_ORDER = {"sgd_step": ("momentum_buffer",), "adam_step": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
               "rmsprop_step": ("square_avg", "grad_avg", "momentum_buffer"), "ema_step": ()}
STEPS = 3


@st.composite
def drawn_updates(draw):
    """A case, a buffer length (0 and 1 included), a dtype and a seed."""
    return dict(case=draw(st.sampled_from(range(len(CASES)))), size=draw(st.integers(0, 700)),
                dtype=draw(st.sampled_from([np.float32, np.float64])), seed=draw(st.integers(0, 2**16)))


def initial_arrays(size, dtype, seed):
    """Parameter, gradients of each step (some exactly zero, scales 1e-3..10) and the other operand."""
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(size).astype(dtype)
    gradients = [(rng.standard_normal(size) * 10.0 ** rng.integers(-3, 2) * (rng.random(size) > 0.1))
                 .astype(dtype) for _ in range(STEPS)]
    return param, gradients


def run(module, drawn, as_device=lambda array: array):
    """The arrays after ``STEPS`` calls of the drawn case's kernel from ``module`` (host arrays
    are moved with ``as_device`` first); returns the parameter and every state array."""
    name, options, kept = CASES[drawn["case"]]
    param, gradients = initial_arrays(drawn["size"], drawn["dtype"], drawn["seed"])
    param = as_device(param)
    state = {key: as_device(np.zeros(drawn["size"], drawn["dtype"])) if key in kept else None
             for key in STATE_ORDER[name]}
    kernel = getattr(module, name)
    for step, gradient in enumerate(gradients, start=1):
        gradient = as_device(gradient)
        if name == "ema_step":
            kernel(param, gradient, **options)  # the "parameter" is the shadow, the gradient the weights
        elif name == "adam_step":
            kernel(param, gradient, *state.values(), **options, step=step)
        elif name == "sgd_step":
            kernel(param, gradient, *state.values(), **options, fresh=step == 1)
        else:
            kernel(param, gradient, *state.values(), **options)
    return [param] + [array for array in state.values() if array is not None]
