"""Pure array kernels for the hot paths: convolution, recurrence, attention, optimizer updates,
normalisation.

Installed as ``scratchgen.kernels``. Nothing here knows about ``Tensor``: every function takes
NumPy (or CuPy) arrays and returns arrays. Each family is a subpackage with three modules that
implement one contract (the same function names and signatures):

    reference   plain NumPy, the readable definition and the test oracle
    cpu         Numba ``@njit`` kernels (``cache=True``), chosen for speed
    gpu         ``numba.cuda`` kernels launched on CuPy arrays (matrix products through cuBLAS)

``implementation(family, array)`` picks the module: the user's choice made with
``use_kernels(name)`` wins; otherwise ``"gpu"`` for CuPy arrays and ``"cpu"`` for NumPy arrays.
"""
import contextlib
import functools
import importlib
import os
import threading

FAMILIES = ("conv", "recurrence", "attention", "optim", "normalization")
IMPLEMENTATIONS = ("reference", "cpu", "gpu")

_state = threading.local()

# Called as ``listener(family, name)`` each time a kernel module is picked (the profiler records
# which implementation ran); empty, and so free, unless someone listens.
implementation_listeners = []


def current_choice():
    """The implementation forced by ``use_kernels``, or None (choose by device)."""
    return getattr(_state, "choice", None)


class use_kernels:
    """Force one implementation for every kernel call.

    Three forms:

    - a plain call, ``use_kernels("reference")``, switches until the next call (``None`` goes
      back to choosing by device);
    - a context manager, ``with use_kernels("reference"):``, restores the previous choice on exit;
    - a decorator, ``@use_kernels("reference")``, switches only while the function runs. The
      object switches as soon as it is built (that is the plain call), so decorating undoes that
      switch at once: defining a function must not change the choice for the rest of the program.
    """

    def __init__(self, name):
        if name is not None and name not in IMPLEMENTATIONS:
            raise ValueError(f"use_kernels: expected one of {IMPLEMENTATIONS} or None, got {name!r}")
        self.previous = current_choice()
        self.name = name
        _state.choice = name

    def __enter__(self):
        _state.choice = self.name
        return self

    def __exit__(self, *exc):
        _state.choice = self.previous
        return False

    def __call__(self, function):
        _state.choice = self.previous  # undo the plain-call switch made when the decorator was built
        name = self.name

        @functools.wraps(function)
        def with_kernels_switched(*args, **kwargs):
            with _choice(name):
                return function(*args, **kwargs)
        return with_kernels_switched


@contextlib.contextmanager
def _choice(name):
    """Switch to ``name`` and back to what was chosen on entry (whatever happened in between)."""
    previous = current_choice()
    _state.choice = name
    try:
        yield
    finally:
        _state.choice = previous


def simulating_gpu():
    """Inside Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the ``gpu`` kernels run on NumPy
    arrays, so ``use_kernels("gpu")`` is allowed there: that is how they are tested without a GPU."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def default_implementation(array):
    """``"gpu"`` for CuPy arrays, ``"cpu"`` for everything else."""
    return "gpu" if type(array).__module__.startswith("cupy") else "cpu"


def implementation(family, array):
    """The kernel module of ``family`` to run on ``array`` (see the module docstring)."""
    if family not in FAMILIES:
        raise ValueError(f"kernels: unknown family {family!r}; expected one of {FAMILIES}")
    name = current_choice() or default_implementation(array)
    on_gpu = default_implementation(array) == "gpu" or (name == "gpu" and simulating_gpu())
    if on_gpu != (name == "gpu") and name != "reference":
        where = "CuPy (GPU)" if on_gpu else "NumPy (CPU)"
        raise ValueError(f"kernels: implementation {name!r} cannot run on {where} arrays; "
                         f"use 'reference' or {default_implementation(array)!r}")
    for listener in implementation_listeners:
        listener(family, name)
    return importlib.import_module(f"{__name__}.{family}.{name}")
