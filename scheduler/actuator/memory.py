"""Give memory freed after a big, short-lived piece of work back to the operating system.

A list of 10,000 nodes is ~57 MB of JSON and about as much again while it is decoded; the
snapshot kept from it is a fraction of that. CPython frees the rest, but glibc's allocator keeps
most of it mapped (freed chunks scattered between live ones), so the daemon's resident memory at
rest would stay near its peak. malloc_trim(0) hands the free pages back. Elsewhere than glibc
(musl, macOS) there is no such call and this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_freed_memory() -> bool:
    """Whether the allocator could be asked (glibc); cheap when there is little to give back."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
