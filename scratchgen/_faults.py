"""Named points where a test may kill the process, to prove that no crash loses or corrupts a run.

    SCRATCHGEN_KILL_AT=temp-written:3 scratchgen train mlp ...   # SIGKILL at the 3rd checkpoint temp file

``fault_point(name)`` is called at each such point: ``step`` (a training step done, its bookkeeping
not), ``temp-written`` (a checkpoint's temporary file complete), ``before-rename`` / ``after-rename``
(around the rename over ``last.npz``) and ``log`` (a checkpoint saved, its metrics record not yet
written). Unless the variable names the point it does nothing but a dictionary lookup. The
fault-injection test (tests/release/test_fault_injection.py) uses it; nothing else should.
"""
import os
import signal

_counts = {}


def _armed():
    """(point, n) from ``SCRATCHGEN_KILL_AT=point:n``, or None."""
    value = os.environ.get("SCRATCHGEN_KILL_AT")
    if not value:
        return None
    point, _, count = value.partition(":")
    return point, int(count or 1)


_ARMED = _armed()


def arm(point, count):
    """Kill this process at the ``count``-th time ``point`` is reached (what the variable does)."""
    global _ARMED
    _ARMED = (point, count)
    _counts.clear()


def fault_point(name):
    if _ARMED is None or _ARMED[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == _ARMED[1]:
        os.kill(os.getpid(), signal.SIGKILL)
