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

# mallopt's M_ARENA_MAX (malloc.h): the most allocation arenas glibc keeps for a process's threads
_M_ARENA_MAX = -8


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def few_malloc_arenas(arenas: int = 2) -> bool:
    """Let glibc keep at most `arenas` allocation arenas, before any thread starts. By default a
    thread that allocates gets an arena of its own (up to 8 per core), and memory freed in each
    stays mapped apart: the daemon's watch threads and its writer pool would each keep the
    scraps of a cold start's lists and writes. A daemon that holds a fleet at rest needs few.
    Whether the allocator could be asked (glibc)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    trim: Callable[[int], int] | None = getattr(_libc(), "malloc_trim", None)
    return trim


def release_freed_memory() -> bool:
    """Whether the allocator could be asked (glibc); cheap when there is little to give back."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
