"""Test-wide settings: one thread everywhere (deterministic results), hypothesis profiles, and the
PyTorch oracle, which may be absent on a user's machine but must never be skipped in CI."""
import importlib
import os

# Before NumPy/Numba load: BLAS and Numba thread pools are sized on import.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# "ci" is derandomised so a red CI run can be replayed exactly; "dev" explores new examples.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=30, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("dev", deadline=None, max_examples=30,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev"))


def require_optional(module, what, install):
    """The imported ``module``, or a skip on machines without it — but a failure when ``CI=true``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what} is required in CI (the tests that use it must not skip): {install}")
        pytest.skip(f"{what} is not installed; test skipped ({install})")


def require_torch():
    """``torch`` (the oracle), one-threaded; see ``require_optional``."""
    torch = require_optional("torch", "PyTorch", "pip install torch==2.13.0")
    torch.set_num_threads(1)
    return torch


@pytest.fixture
def torch():
    return require_torch()
