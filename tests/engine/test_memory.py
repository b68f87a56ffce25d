"""``scratchgen.memory.keep_freed_memory``: after it, an 8 MiB array comes from malloc's heap rather
than from a fresh ``mmap`` (read off glibc's ``mallinfo2`` in a process of its own); without
``mallopt`` it does nothing and says so."""
import platform
import subprocess
import sys

import pytest

from scratchgen import memory

MMAPPED_BYTES_OF_A_NEW_ARRAY = """
import ctypes, sys
import numpy as np
from scratchgen.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep" and not keep_freed_memory():
    sys.exit("keep_freed_memory() returned False")
before = libc.mallinfo2().hblkhd
array = np.ones(2 ** 21, dtype=np.float32)
print(libc.mallinfo2().hblkhd - before)
"""


def mmapped_bytes(mode):
    done = subprocess.run([sys.executable, "-c", MMAPPED_BYTES_OF_A_NEW_ARRAY, mode],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def glibc_version():
    name, version = platform.libc_ver()
    return tuple(int(part) for part in version.split(".")) if name == "glibc" else ()


@pytest.mark.skipif(glibc_version() < (2, 33),
                    reason="mallopt's settings and mallinfo2 are glibc's (2.33 and later)")
def test_large_arrays_come_from_the_heap_once_freed_memory_is_kept():
    assert mmapped_bytes("default") >= 8 << 20   # glibc's default: a fresh mapping, faulted in page by page
    assert mmapped_bytes("keep") == 0


def test_a_c_library_without_mallopt_changes_nothing(monkeypatch):
    class NoMallopt:
        def __init__(self, name):
            pass
    monkeypatch.setattr(memory.ctypes, "CDLL", NoMallopt)
    assert memory.keep_freed_memory() is False
