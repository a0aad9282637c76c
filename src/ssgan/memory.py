"""The process's memory allocator: keep freed memory instead of returning it to the kernel.

Why: PyTorch on the CPU has no caching allocator; every activation of a training step is a fresh
``malloc`` of tens to hundreds of MB, and glibc serves allocations that large with ``mmap`` and
hands them back with ``munmap`` when they are freed. The next step maps the same amount again and
the kernel zero-fills every page on first touch: an EnvNet training step on 2 cores spent about a
third of its CPU time in page faults that way (docs/performance.md).

``keep_freed_memory`` tells glibc, through ``mallopt``, to serve every allocation from the heap
(``M_MMAP_MAX = 0``), to keep up to 2 GiB of free memory at the heap's top instead of trimming it
(``M_TRIM_THRESHOLD``), to grow the heap 256 MiB at a time (``M_TOP_PAD``) and to keep one
arena for every thread (``M_ARENA_MAX``: a worker thread's large blocks are otherwise mapped
and unmapped in an arena of its own). The pages a step
touched stay mapped, so the next step reuses them without a fault. The cost: the resident size
stays at its high-water mark instead of shrinking between steps.

It runs when ``ssgan`` is imported, so every entry point gets it from a clean install: the
``ssgan`` command, ``python -m ssgan``, torchrun workers, the tests and the benchmarks.
``SSGAN_MALLOC=system`` (set before the import) leaves the allocator as it was. A thread that
allocated before ``ssgan`` was imported keeps the arena it has (``M_ARENA_MAX`` only stops new
ones), so a program that runs torch on several threads first gets part of the benefit: import
ssgan first. On a C library
other than glibc it does nothing. It changes where memory comes from, never what is computed.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["ENV_VAR", "allocator_settings", "keep_freed_memory"]

ENV_VAR = "SSGAN_MALLOC"

# mallopt's parameter numbers (glibc <malloc.h>)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

_SETTINGS = {
    "M_MMAP_MAX": (_M_MMAP_MAX, 0),
    "M_TRIM_THRESHOLD": (_M_TRIM_THRESHOLD, 2**31 - 1),  # mallopt takes an int: 2 GiB at most
    "M_TOP_PAD": (_M_TOP_PAD, 256 << 20),
    # One arena: an allocation made on a worker thread otherwise lands in a thread arena, whose
    # large blocks glibc maps and unmaps whatever the settings above say.
    "M_ARENA_MAX": (_M_ARENA_MAX, 1),
}

_applied: dict[str, int] = {}


def allocator_settings() -> dict[str, int]:
    """The ``mallopt`` settings this process runs with (empty if none were applied)."""
    return dict(_applied)


def keep_freed_memory() -> bool:
    """Apply the settings above once per process; return whether they are in force.

    Does nothing (returns ``False``) when ``SSGAN_MALLOC=system`` or the C library is not glibc.
    """
    if _applied:
        return True
    if os.environ.get(ENV_VAR, "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    for name, (param, value) in _SETTINGS.items():
        if libc.mallopt(param, value) == 1:  # mallopt returns 1 on success
            _applied[name] = value
    return bool(_applied)
